//! What each scan of `events` in a query needs of the archive: the hours its rows may lie in
//! (from the query's own time range and the scan's filters on `ts`) and the text every row it
//! reads contains (from its filters on `msg`, see [`skipping::required_text`]). An archived
//! hour that no scan needs is not fetched at all, so an SQL statement over the last hour does
//! not open months of objects.
//!
//! Only filters every row of the scan must pass are read (the conjuncts DataFusion pushes
//! into the scan), and anything not understood gives no bound: a bound can only spare
//! fetches, never change an answer.

use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use super::skipping;
use crate::archive::ScanNeeds;
use crate::hot::{window_of, WINDOW_SECONDS};

/// Rows of the window starting at `W` (seconds) have `ts` in `[W, W + WINDOW_SECONDS)`.
const MICROS_PER_WINDOW: i64 = WINDOW_SECONDS * 1_000_000;

/// The needs of a query reading `from..to` (either open) whose scans of `events` push the
/// filters `scans` (`None`: not known, as one scan with no filter; an empty list: the query
/// reads no row of `events`).
pub(super) fn of(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    scans: Option<&[Vec<Expr>]>,
) -> Vec<ScanNeeds> {
    let range = from.map(window_of).unwrap_or(i64::MIN)..=to.map(window_of).unwrap_or(i64::MAX);
    match scans {
        None => vec![ScanNeeds {
            windows: range,
            needles: Vec::new(),
        }],
        Some(scans) => scans
            .iter()
            .map(|filters| {
                let bounds = windows_of(filters);
                ScanNeeds {
                    windows: *range.start().max(bounds.start())..=*range.end().min(bounds.end()),
                    needles: filters.iter().flat_map(skipping::required_text).collect(),
                }
            })
            .collect(),
    }
}

/// The windows (starts, in seconds) rows passing every filter of `filters` may lie in.
fn windows_of(filters: &[Expr]) -> RangeInclusive<i64> {
    let (mut low, mut high) = (i64::MIN, i64::MAX);
    for filter in filters.iter().flat_map(split_conjunction) {
        let (from, to) = ts_bounds(filter);
        low = low.max(from.unwrap_or(i64::MIN));
        high = high.min(to.unwrap_or(i64::MAX));
    }
    let window = |micros: i64| micros.div_euclid(MICROS_PER_WINDOW) * WINDOW_SECONDS;
    let first = if low == i64::MIN {
        i64::MIN
    } else {
        window(low)
    };
    let last = if high == i64::MAX {
        i64::MAX
    } else {
        window(high)
    };
    first..=last
}

/// The least and greatest `ts` (microseconds, inclusive) a row passing `filter` (not a
/// conjunction: [`windows_of`] splits those) may have.
fn ts_bounds(filter: &Expr) -> (Option<i64>, Option<i64>) {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = if is_ts(left) {
                (*op, micros(right))
            } else if is_ts(right) {
                match op.swap() {
                    Some(swapped) => (swapped, micros(left)),
                    None => return (None, None),
                }
            } else {
                return (None, None);
            };
            let Some(value) = value else {
                return (None, None);
            };
            match op {
                Operator::Gt | Operator::GtEq => (Some(value), None),
                Operator::Lt | Operator::LtEq => (None, Some(value)),
                Operator::Eq => (Some(value), Some(value)),
                _ => (None, None),
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_ts(expr) => (micros(low), micros(high)),
        _ => (None, None),
    }
}

fn is_ts(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(column) if column.name == "ts")
}

/// A timestamp literal in microseconds (rounded outwards is not needed: a window is an hour).
fn micros(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => match value {
            ScalarValue::TimestampMicrosecond(Some(micros), _) => Some(*micros),
            ScalarValue::TimestampNanosecond(Some(nanos), _) => Some(nanos.div_euclid(1_000)),
            ScalarValue::TimestampMillisecond(Some(millis), _) => millis.checked_mul(1_000),
            ScalarValue::TimestampSecond(Some(seconds), _) => seconds.checked_mul(1_000_000),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use datafusion::prelude::{SQLOptions, SessionContext};

    fn at(hour: u32, minute: u32) -> i64 {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, minute, 0)
            .unwrap()
            .timestamp()
    }

    /// The window range of each scan of `sql`.
    fn windows(sql: &str) -> Vec<RangeInclusive<i64>> {
        windows_as_of(sql, Utc::now())
    }

    /// The window range of each scan of `sql` planned with `now()` at `started`.
    fn windows_as_of(sql: &str, started: DateTime<Utc>) -> Vec<RangeInclusive<i64>> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let scans = runtime
            .block_on(super::super::filters_of_scans(
                &SessionContext::new(),
                sql,
                SQLOptions::new(),
                started,
            ))
            .unwrap();
        of(None, None, Some(&scans))
            .into_iter()
            .map(|needs| needs.windows)
            .collect()
    }

    #[test]
    fn an_archived_hour_is_needed_only_within_the_time_a_scan_allows() {
        let count = "SELECT count(*) FROM events WHERE";
        assert_eq!(
            windows(&format!(
                "{count} ts >= TIMESTAMP '2026-12-01T10:00:00Z' AND ts < TIMESTAMP '2026-12-01T12:00:00Z'"
            )),
            [at(10, 0)..=at(12, 0)]
        );
        assert_eq!(
            windows(&format!(
                "{count} ts BETWEEN '2026-12-01T10:30:00Z' AND '2026-12-01T10:45:00Z' AND severity < 4"
            )),
            [at(10, 0)..=at(10, 0)]
        );
        assert_eq!(
            windows(&format!("{count} '2026-12-01T10:30:00Z' < ts")),
            [at(10, 0)..=i64::MAX]
        );
        // A relative time: `now()` is folded when the statement is planned.
        let recent = windows(&format!("{count} ts > now() - INTERVAL '1 hour'"));
        let now = window_of(Utc::now());
        assert_eq!(recent.len(), 1);
        assert!((now - 2 * WINDOW_SECONDS..=now).contains(recent[0].start()));
        assert_eq!(*recent[0].end(), i64::MAX);
        // `now()` is the statement's start, as given, so every plan of one statement sees the
        // same time (an upper bound must not move between finding the hours and running).
        let started = Utc.timestamp_opt(at(12, 30), 0).unwrap();
        assert_eq!(
            windows_as_of(&format!("{count} ts < now() - INTERVAL '2 hours'"), started),
            [i64::MIN..=at(10, 0)]
        );
        // Nothing understood: every hour.
        for unbounded in [
            format!("{count} severity < 4"),
            format!("{count} ts >= TIMESTAMP '2026-12-01T10:00:00Z' OR severity = 1"),
            format!("{count} date_trunc('hour', ts) = TIMESTAMP '2026-12-01T10:00:00Z'"),
        ] {
            assert_eq!(windows(&unbounded), [i64::MIN..=i64::MAX], "{unbounded}");
        }
        // Two scans, each with its own range; a statement that reads no row of events needs
        // no hour.
        let mut two = windows(
            "SELECT count(*) FROM events a JOIN events b ON a.host = b.host \
             WHERE a.ts >= TIMESTAMP '2026-12-01T10:00:00Z' AND b.ts < TIMESTAMP '2026-12-01T08:00:00Z'",
        );
        two.sort_by_key(|range| *range.start());
        assert_eq!(two, [i64::MIN..=at(8, 0), at(10, 0)..=i64::MAX]);
        assert!(windows("SELECT 1").is_empty());
    }

    #[test]
    fn bounds_are_read_from_either_side_of_a_comparison_and_from_between() {
        use datafusion::prelude::{col, lit};
        let at_micros = |hour, minute| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(at(hour, minute) * 1_000_000),
                None,
            ))
        };
        let nanos = lit(ScalarValue::TimestampNanosecond(
            Some(at(11, 0) * 1_000_000_000 - 1),
            None,
        ));
        assert_eq!(
            windows_of(&[at_micros(10, 30).lt(col("ts"))]),
            at(10, 0)..=i64::MAX
        );
        assert_eq!(
            windows_of(&[nanos.clone().gt_eq(col("ts"))]),
            i64::MIN..=at(10, 0),
            "one nanosecond before 11:00 is in the 10:00 hour"
        );
        assert_eq!(
            windows_of(&[col("ts").between(at_micros(9, 59), nanos)]),
            at(9, 0)..=at(10, 0)
        );
        assert_eq!(
            windows_of(&[col("ts").not_between(at_micros(9, 59), at_micros(10, 0))]),
            i64::MIN..=i64::MAX
        );
        assert_eq!(
            windows_of(&[col("ts").not_eq(at_micros(10, 0))]),
            i64::MIN..=i64::MAX
        );
        // A conjunction left whole is split.
        assert_eq!(
            windows_of(&[at_micros(10, 30)
                .lt(col("ts"))
                .and(col("ts").lt(at_micros(11, 30)))]),
            at(10, 0)..=at(11, 0)
        );
    }

    #[test]
    fn the_query_time_range_bounds_every_scan() {
        let from = Utc.timestamp_opt(at(9, 15), 0).unwrap();
        let to = Utc.timestamp_opt(at(11, 5), 0).unwrap();
        assert_eq!(
            of(Some(from), Some(to), None),
            [ScanNeeds {
                windows: at(9, 0)..=at(11, 0),
                needles: Vec::new()
            }]
        );
        assert!(of(Some(from), Some(to), Some(&[])).is_empty());
    }
}
