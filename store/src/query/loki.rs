//! LogQL queries (the Loki-compatible API) on the query engine: log lines grouped into
//! streams, metrics over time, series, label names and values, and the rows a live tail has
//! not seen yet. Selectors and filters are compiled into the plan ([`crate::logql::compile`]);
//! what SQL cannot say (sliding windows that overlap, `topk` per step) is done here on the
//! engine's grouped counts, which are small: series × time buckets, never rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::functions::expr_fn::octet_length;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{col, lit, Expr, SortExpr};
use datafusion::prelude::DataFrame;
use meniscus_grid::tenant::TenantId;

use super::{timestamp_literal, QueryEngine, QueryError, UnreadableWindow};
use crate::logql::ast::{AggregateOp, Grouping, LogQuery, Matcher, MetricExpr, RangeFunction};
use crate::logql::compile::{self, EVENT_LABELS};
use crate::logql::fields::line_fields;

/// Points one series may have in a range query (Loki's limit, with Loki's advice).
pub const MAX_POINTS: i64 = 11_000;
/// Time buckets one metric query may count in (range and step with a tiny common divisor
/// would make millions).
const MAX_BUCKETS: i64 = 1_000_000;
/// Longest range a range function takes (`[3650d]`): longer ones would reach outside the
/// times the engine's arithmetic holds.
const MAX_RANGE: std::time::Duration = std::time::Duration::from_secs(3650 * 86_400);
/// Series one query may produce before it is refused.
const MAX_SERIES: usize = 50_000;

/// A time bucket of one series: (index, lines, bytes).
type Bucket = (i64, i64, i64);

/// Lines of one stream, oldest or newest first as asked; times in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LogStream {
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<(i64, String)>,
}

#[derive(Debug)]
pub struct Streams {
    pub streams: Vec<LogStream>,
    pub unreadable: Vec<UnreadableWindow>,
}

/// A metric series; points as (milliseconds since the epoch, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug)]
pub struct Matrix {
    pub series: Vec<Series>,
    pub unreadable: Vec<UnreadableWindow>,
}

/// When a metric is evaluated: `start`, `start + step`, … up to `end` (microseconds); an
/// instant query has `start == end`.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub start_us: i64,
    pub end_us: i64,
    pub step_us: i64,
}

impl Steps {
    pub fn instant(at: DateTime<Utc>) -> Steps {
        let at = at.timestamp_micros();
        Steps {
            start_us: at,
            end_us: at,
            step_us: 1,
        }
    }

    /// How many steps (in i128: a range from the year -262143 to 262143 overflows i64).
    fn count(&self) -> i128 {
        (i128::from(self.end_us) - i128::from(self.start_us)) / i128::from(self.step_us.max(1)) + 1
    }
}

/// Where a live tail is: the newest arrival it has sent, and the events that arrived in that
/// same microsecond (a later batch may share it).
#[derive(Debug, Clone, Default)]
pub struct TailCursor {
    pub received_us: i64,
    pub seen: HashSet<String>,
}

impl QueryEngine {
    /// Lines matching a log query with `from <= time < to`, the `limit` newest (or oldest,
    /// `forward`), grouped into streams by label set.
    pub async fn loki_lines(
        &self,
        tenant: &TenantId,
        query: &LogQuery,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
        forward: bool,
    ) -> Result<Streams, QueryError> {
        let mut running = self.admit(tenant)?;
        let ctx = self.session(true)?;
        let filter = compile::filter(query);
        let (frame, unreadable) = self
            .events_frame(
                &ctx,
                tenant,
                Some(from),
                Some(to),
                Some(&[vec![filter.clone()]]),
                &mut running,
            )
            .await?;
        let frame = frame
            .filter(time_within(from, to).and(filter))?
            .sort(vec![
                SortExpr::new(col("ts"), forward, false),
                SortExpr::new(col("event_id"), forward, false),
            ])?
            .limit(0, Some(limit.max(1)))?;
        let frame = select_lines(frame)?;
        let parser = query.parser();
        self.run("logql", async move {
            let _running = running;
            let batches = frame.collect().await?;
            let mut streams = StreamsBuilder::default();
            for batch in &batches {
                let lines = LineColumns::of(batch)?;
                for row in 0..batch.num_rows() {
                    let (labels, nanos, line) = lines.row(row, parser);
                    streams.push(labels, nanos, line);
                }
            }
            Ok(Streams {
                streams: streams.finish(),
                unreadable,
            })
        })
        .await
    }

    /// Lines that arrived after `cursor` (by arrival, so an event with an old time stamp is
    /// still seen), among events whose time is after `window_from`; at most `limit`, oldest
    /// arrival first. Returns the streams and the new cursor.
    pub async fn loki_tail(
        &self,
        tenant: &TenantId,
        query: &LogQuery,
        window_from: DateTime<Utc>,
        cursor: TailCursor,
        limit: usize,
    ) -> Result<(Vec<LogStream>, TailCursor), QueryError> {
        let mut running = self.admit(tenant)?;
        let ctx = self.session(true)?;
        let filter = compile::filter(query);
        let (frame, _) = self
            .events_frame(
                &ctx,
                tenant,
                Some(window_from),
                None,
                Some(&[vec![filter.clone()]]),
                &mut running,
            )
            .await?;
        let frame = frame
            .filter(
                col("received_at")
                    .gt_eq(timestamp_literal(cursor.received_us))
                    .and(filter),
            )?
            .sort(vec![
                SortExpr::new(col("received_at"), true, false),
                SortExpr::new(col("ts"), true, false),
            ])?
            .limit(0, Some(limit.max(1) + cursor.seen.len()))?;
        let mut columns = vec![
            datafusion::logical_expr::cast(col("received_at"), DataType::Int64)
                .alias("received_us"),
            col("event_id"),
        ];
        columns.extend(line_columns());
        let frame = frame.select(columns)?;
        let parser = query.parser();
        self.run("logql_tail", async move {
            let _running = running;
            let batches = frame.collect().await?;
            let mut streams = StreamsBuilder::default();
            let mut next = cursor.clone();
            for batch in &batches {
                let lines = LineColumns::of(batch)?;
                let received = int_column(batch, "received_us")?;
                let event_ids = text_column(batch, "event_id")?;
                let event_ids = event_ids.as_string::<i32>();
                for row in 0..batch.num_rows() {
                    let received_us = received.value(row);
                    let event_id = event_ids.value(row);
                    if received_us == cursor.received_us && cursor.seen.contains(event_id) {
                        continue;
                    }
                    if received_us > next.received_us {
                        next.received_us = received_us;
                        next.seen.clear();
                    }
                    next.seen.insert(event_id.to_string());
                    let (labels, nanos, line) = lines.row(row, parser);
                    streams.push(labels, nanos, line);
                }
            }
            Ok((streams.finish(), next))
        })
        .await
    }

    /// A metric query evaluated at each of `steps`.
    pub async fn loki_metric(
        &self,
        tenant: &TenantId,
        expr: &MetricExpr,
        steps: Steps,
    ) -> Result<Matrix, QueryError> {
        if steps.count() > i128::from(MAX_POINTS) {
            return Err(QueryError::Invalid(format!(
                "exceeded maximum resolution of {MAX_POINTS} points per timeseries. Try \
                 increasing the value of the step parameter"
            )));
        }
        // The wrappers from the outside in, down to the one range function.
        let mut wrappers = Vec::new();
        let mut leaf = expr;
        let (function, query, range) = loop {
            match leaf {
                MetricExpr::Range {
                    function,
                    query,
                    range,
                } => break (*function, query, *range),
                MetricExpr::Aggregate { inner, .. } | MetricExpr::TopK { inner, .. } => {
                    wrappers.push(leaf);
                    leaf = inner;
                }
            }
        };
        // `sum by (...)` straight over the range function is counted per group by the engine
        // (counts add up); any other shape gets one series per stream first.
        let pushed_down = match wrappers.last() {
            Some(MetricExpr::Aggregate {
                op: AggregateOp::Sum,
                grouping: grouping @ (Grouping::By(_) | Grouping::All),
                ..
            }) => {
                let labels = match grouping {
                    Grouping::By(labels) => labels.clone(),
                    _ => Vec::new(),
                };
                wrappers.pop();
                Some(labels)
            }
            _ => None,
        };
        if pushed_down.is_none() && query.parser().is_some() {
            return Err(QueryError::Invalid(
                "unsupported LogQL: a metric over `| json` or `| logfmt` needs `sum by (...)` \
                 (or `sum`) directly around its range function; per-stream series of parsed \
                 lines are not supported by Meniscus"
                    .into(),
            ));
        }
        if range > MAX_RANGE {
            return Err(QueryError::Invalid(format!(
                "the range [{}s] is longer than {} days, the longest a range function takes",
                range.as_secs(),
                MAX_RANGE.as_secs() / 86_400
            )));
        }
        let range_us = i64::try_from(range.as_micros()).unwrap_or(i64::MAX);
        let step_us = if steps.start_us == steps.end_us {
            range_us
        } else {
            steps.step_us
        };
        let bucket_us = gcd(range_us, step_us).max(1);
        let base_us = steps.start_us.saturating_sub(range_us);
        let buckets = (i128::from(steps.end_us) - i128::from(base_us)) / i128::from(bucket_us) + 1;
        if buckets > i128::from(MAX_BUCKETS) {
            return Err(QueryError::Invalid(format!(
                "the range [{}] and the step {}s divide the time into {buckets} slices, more \
                 than {MAX_BUCKETS}; choose a step that divides the range (or the other way \
                 round)",
                humantime_short(range_us),
                step_us as f64 / 1e6
            )));
        }
        let (group_exprs, group_names): (Vec<Expr>, Option<Vec<String>>) = match &pushed_down {
            Some(labels) => (
                labels
                    .iter()
                    .enumerate()
                    .map(|(index, name)| {
                        compile::group_value(name, query.parser()).alias(format!("g{index}"))
                    })
                    .collect(),
                Some(labels.clone()),
            ),
            None => (compile::stream_key(), None),
        };
        let mut running = self.admit(tenant)?;
        let ctx = self.session(false)?;
        let from = DateTime::<Utc>::from_timestamp_micros(base_us);
        let to = DateTime::<Utc>::from_timestamp_micros(steps.end_us.saturating_add(1));
        let filter = compile::filter(query);
        let (frame, unreadable) = self
            .events_frame(
                &ctx,
                tenant,
                from,
                to,
                Some(&[vec![filter.clone()]]),
                &mut running,
            )
            .await?;
        let bucket = ((datafusion::logical_expr::cast(col("ts"), DataType::Int64)
            - lit(base_us + 1))
            / lit(bucket_us))
        .alias("bucket");
        let mut keys = group_exprs;
        keys.push(bucket);
        let frame = frame
            .filter(
                col("ts")
                    .gt(timestamp_literal(base_us))
                    .and(col("ts").lt_eq(timestamp_literal(steps.end_us)))
                    .and(filter),
            )?
            .aggregate(keys, {
                // Bytes only when asked: summing them reads every line's text, the largest
                // column (a count over 10 M events took 4.5x the time of the same count in SQL).
                let mut aggregates = vec![count(lit(1)).alias("lines")];
                if matches!(
                    function,
                    RangeFunction::BytesOverTime | RangeFunction::BytesRate
                ) {
                    aggregates.push(sum(octet_length(col("msg"))).alias("bytes"));
                }
                aggregates
            })?;
        let key_count = match &group_names {
            Some(names) => names.len(),
            None => EVENT_LABELS.len() + 1,
        };
        let wrappers: Vec<MetricExpr> = wrappers.into_iter().cloned().collect();
        self.run("logql_metric", async move {
            let _running = running;
            let batches = frame.collect().await?;
            // Per series key: its buckets' line and byte counts.
            let mut groups: HashMap<Vec<Option<String>>, Vec<Bucket>> = HashMap::new();
            for batch in &batches {
                let keys = leading_texts(batch, key_count)?;
                let buckets = int_column(batch, "bucket")?;
                let lines = int_column(batch, "lines")?;
                let bytes = batch
                    .column_by_name("bytes")
                    .map(|_| int_column(batch, "bytes"))
                    .transpose()?;
                for row in 0..batch.num_rows() {
                    let key = row_texts(&keys, row)
                        .into_iter()
                        .map(|value| value.map(str::to_string))
                        .collect();
                    groups.entry(key).or_default().push((
                        buckets.value(row),
                        lines.value(row),
                        bytes
                            .as_ref()
                            .filter(|bytes| !bytes.is_null(row))
                            .map_or(0, |bytes| bytes.value(row)),
                    ));
                    if groups.len() > MAX_SERIES {
                        return Err(too_many_series());
                    }
                }
            }
            let mut series: Vec<Series> = groups
                .into_iter()
                .map(|(key, mut buckets)| {
                    buckets.sort_unstable();
                    let labels = match &group_names {
                        Some(names) => names
                            .iter()
                            .zip(&key)
                            .filter_map(|(name, value)| {
                                value
                                    .as_ref()
                                    .filter(|value| !value.is_empty())
                                    .map(|value| (name.clone(), compile::label_text(name, value)))
                            })
                            .collect(),
                        None => {
                            let key: Vec<Option<&str>> = key.iter().map(Option::as_deref).collect();
                            compile::stream_labels(&key)
                        }
                    };
                    let points = windows(&buckets, steps, step_us, range_us, bucket_us, function);
                    Series { labels, points }
                })
                .filter(|series| !series.points.is_empty())
                .collect();
            // Label sets from different keys can coincide (`sum by (a)` of a missing and an
            // empty value); Loki would have one series.
            series = merge_same_labels(series);
            for wrapper in wrappers.iter().rev() {
                series = apply(wrapper, series);
            }
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(Matrix { series, unreadable })
        })
        .await
    }

    /// The distinct label sets (streams) of the events between `from` and `to` that match any
    /// of `selectors` (all events when there are none).
    pub async fn loki_series(
        &self,
        tenant: &TenantId,
        selectors: &[Vec<Matcher>],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BTreeMap<String, String>>, QueryError> {
        let mut running = self.admit(tenant)?;
        let ctx = self.session(false)?;
        let (frame, _) = self
            .events_frame(&ctx, tenant, Some(from), Some(to), None, &mut running)
            .await?;
        let frame = frame
            .filter(time_within(from, to).and(compile::any_selector(selectors)))?
            .aggregate(compile::stream_key(), vec![])?;
        self.run("logql_series", async move {
            let _running = running;
            let batches = frame.collect().await?;
            let mut sets = std::collections::BTreeSet::new();
            for batch in &batches {
                let keys = leading_texts(batch, EVENT_LABELS.len() + 1)?;
                for row in 0..batch.num_rows() {
                    sets.insert(compile::stream_labels(&row_texts(&keys, row)));
                    if sets.len() > MAX_SERIES {
                        return Err(too_many_series());
                    }
                }
            }
            Ok(sets.into_iter().collect())
        })
        .await
    }

    /// The values one label takes between `from` and `to`, among events matching `selector`
    /// (all when none), sorted.
    pub async fn loki_label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        selector: Option<&[Matcher]>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>, QueryError> {
        let mut running = self.admit(tenant)?;
        let ctx = self.session(false)?;
        let (frame, _) = self
            .events_frame(&ctx, tenant, Some(from), Some(to), None, &mut running)
            .await?;
        let selectors: Vec<Vec<Matcher>> = selector.map(|s| vec![s.to_vec()]).unwrap_or_default();
        let frame = frame
            .filter(time_within(from, to).and(compile::any_selector(&selectors)))?
            .aggregate(
                vec![compile::group_value(name, None).alias("value")],
                vec![],
            )?;
        let name = name.to_string();
        self.run("logql_labels", async move {
            let _running = running;
            let batches = frame.collect().await?;
            let mut values = Vec::new();
            for batch in &batches {
                let column = text_column(batch, "value")?;
                let column = column.as_string::<i32>();
                for row in 0..batch.num_rows() {
                    if !column.is_null(row) && !column.value(row).is_empty() {
                        values.push(compile::label_text(&name, column.value(row)));
                    }
                }
            }
            values.sort();
            values.dedup();
            Ok(values)
        })
        .await
    }
}

fn too_many_series() -> QueryError {
    QueryError::Invalid(format!(
        "the query has more than {MAX_SERIES} series; narrow the selector or the time range, \
         or aggregate with sum by (...)"
    ))
}

/// `5m` for a whole number of minutes, else seconds.
fn humantime_short(micros: i64) -> String {
    let seconds = micros as f64 / 1e6;
    if micros % 60_000_000 == 0 {
        format!("{}m", micros / 60_000_000)
    } else {
        format!("{seconds}s")
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

/// The value of each step's window `(t - range, t]` from a series' sorted buckets
/// `(index, lines, bytes)`; steps whose window holds no line have no point.
fn windows(
    buckets: &[Bucket],
    steps: Steps,
    step_us: i64,
    range_us: i64,
    bucket_us: i64,
    function: RangeFunction,
) -> Vec<(i64, f64)> {
    let per_window = range_us / bucket_us;
    let per_step = step_us / bucket_us;
    let range_seconds = range_us as f64 / 1e6;
    let mut points = Vec::new();
    // Two pointers over the buckets: windows only move forward.
    let (mut low, mut high) = (0usize, 0usize);
    let (mut lines, mut bytes) = (0i64, 0i64);
    let mut at = steps.start_us;
    let mut index = 0i64;
    while at <= steps.end_us {
        let first = index * per_step;
        let last = first + per_window; // exclusive
        while high < buckets.len() && buckets[high].0 < last {
            lines += buckets[high].1;
            bytes += buckets[high].2;
            high += 1;
        }
        while low < high && buckets[low].0 < first {
            lines -= buckets[low].1;
            bytes -= buckets[low].2;
            low += 1;
        }
        if lines > 0 {
            let value = match function {
                RangeFunction::CountOverTime => lines as f64,
                RangeFunction::Rate => lines as f64 / range_seconds,
                RangeFunction::BytesOverTime => bytes as f64,
                RangeFunction::BytesRate => bytes as f64 / range_seconds,
            };
            points.push((at.div_euclid(1000), value));
        }
        if steps.start_us == steps.end_us {
            break;
        }
        index += 1;
        at = steps.start_us + index * step_us;
    }
    points
}

fn merge_same_labels(series: Vec<Series>) -> Vec<Series> {
    let mut merged: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, f64>> = BTreeMap::new();
    for one in series {
        let points = merged.entry(one.labels).or_default();
        for (at, value) in one.points {
            *points.entry(at).or_default() += value;
        }
    }
    merged
        .into_iter()
        .map(|(labels, points)| Series {
            labels,
            points: points.into_iter().collect(),
        })
        .collect()
}

/// An aggregation or `topk` over already evaluated series (also what the grid's tenant API
/// applies to the storage workers' merged series).
pub fn apply(wrapper: &MetricExpr, series: Vec<Series>) -> Vec<Series> {
    match wrapper {
        MetricExpr::Aggregate { op, grouping, .. } => {
            let mut groups: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, Vec<f64>>> =
                BTreeMap::new();
            for one in series {
                let labels: BTreeMap<String, String> = match grouping {
                    Grouping::All => BTreeMap::new(),
                    Grouping::By(names) => one
                        .labels
                        .into_iter()
                        .filter(|(name, _)| names.contains(name))
                        .collect(),
                    Grouping::Without(names) => one
                        .labels
                        .into_iter()
                        .filter(|(name, _)| !names.contains(name))
                        .collect(),
                };
                let points = groups.entry(labels).or_default();
                for (at, value) in one.points {
                    points.entry(at).or_default().push(value);
                }
            }
            groups
                .into_iter()
                .map(|(labels, points)| Series {
                    labels,
                    points: points
                        .into_iter()
                        .map(|(at, values)| (at, aggregate(*op, &values)))
                        .collect(),
                })
                .collect()
        }
        MetricExpr::TopK { k, bottom, .. } => {
            let mut at_each: BTreeMap<i64, Vec<(f64, usize)>> = BTreeMap::new();
            for (index, one) in series.iter().enumerate() {
                for (at, value) in &one.points {
                    at_each.entry(*at).or_default().push((*value, index));
                }
            }
            let mut kept: Vec<Vec<(i64, f64)>> = vec![Vec::new(); series.len()];
            for (at, mut values) in at_each {
                values.sort_by(|a, b| {
                    let order = a.0.total_cmp(&b.0);
                    if *bottom {
                        order
                    } else {
                        order.reverse()
                    }
                });
                for (value, index) in values.into_iter().take(*k) {
                    kept[index].push((at, value));
                }
            }
            series
                .into_iter()
                .zip(kept)
                .filter(|(_, points)| !points.is_empty())
                .map(|(one, points)| Series {
                    labels: one.labels,
                    points,
                })
                .collect()
        }
        MetricExpr::Range { .. } => series,
    }
}

fn aggregate(op: AggregateOp, values: &[f64]) -> f64 {
    match op {
        AggregateOp::Sum => values.iter().sum(),
        AggregateOp::Count => values.len() as f64,
        AggregateOp::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        AggregateOp::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        AggregateOp::Avg => values.iter().sum::<f64>() / values.len().max(1) as f64,
    }
}

/// The columns a log line is answered with: its time, text and stream key.
fn line_columns() -> Vec<Expr> {
    let mut columns = vec![
        datafusion::logical_expr::cast(col("ts"), DataType::Int64).alias("ts_us"),
        col("msg"),
    ];
    columns.extend(compile::stream_key());
    columns
}

fn select_lines(frame: DataFrame) -> Result<DataFrame, QueryError> {
    Ok(frame.select(line_columns())?)
}

/// A batch's line columns, as text and numbers.
struct LineColumns {
    ts: datafusion::arrow::array::PrimitiveArray<Int64Type>,
    msg: datafusion::arrow::array::ArrayRef,
    key: Vec<datafusion::arrow::array::ArrayRef>,
}

impl LineColumns {
    fn of(batch: &RecordBatch) -> Result<LineColumns, QueryError> {
        let mut key = Vec::new();
        for name in EVENT_LABELS {
            key.push(text_column(batch, &format!("label_{name}"))?);
        }
        key.push(text_column(batch, "loki_labels")?);
        Ok(LineColumns {
            ts: int_column(batch, "ts_us")?,
            msg: text_column(batch, "msg")?,
            key,
        })
    }

    /// A row's labels (with the line's fields when the query parses lines), time in
    /// nanoseconds, and line.
    fn row(
        &self,
        row: usize,
        parser: Option<crate::logql::ast::LineFormat>,
    ) -> (BTreeMap<String, String>, i64, String) {
        let mut labels = compile::stream_labels(&row_texts(&self.key, row));
        let line = self.msg.as_string::<i32>().value(row).to_string();
        if let Some(format) = parser {
            for (name, value) in line_fields(format, &line) {
                // Loki keeps the stream's label and renames the extracted one.
                if labels.contains_key(&name) {
                    labels.insert(format!("{name}_extracted"), value);
                } else if !value.is_empty() {
                    labels.insert(name, value);
                }
            }
        }
        (labels, self.ts.value(row).saturating_mul(1000), line)
    }
}

#[derive(Default)]
struct StreamsBuilder {
    streams: Vec<LogStream>,
    index: HashMap<BTreeMap<String, String>, usize>,
}

impl StreamsBuilder {
    fn push(&mut self, labels: BTreeMap<String, String>, nanos: i64, line: String) {
        let at = match self.index.get(&labels) {
            Some(at) => *at,
            None => {
                self.streams.push(LogStream {
                    labels: labels.clone(),
                    entries: Vec::new(),
                });
                self.index.insert(labels, self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.streams[at].entries.push((nanos, line));
    }

    fn finish(self) -> Vec<LogStream> {
        self.streams
    }
}

/// Events with `from <= ts < to`.
fn time_within(from: DateTime<Utc>, to: DateTime<Utc>) -> Expr {
    col("ts")
        .gt_eq(timestamp_literal(from.timestamp_micros()))
        .and(col("ts").lt(timestamp_literal(to.timestamp_micros())))
}

/// A batch's first `count` columns as text (group keys come first in the aggregates).
fn leading_texts(
    batch: &RecordBatch,
    count: usize,
) -> Result<Vec<datafusion::arrow::array::ArrayRef>, QueryError> {
    (0..count)
        .map(|index| {
            cast(batch.column(index), &DataType::Utf8)
                .map_err(|error| QueryError::Internal(error.to_string()))
        })
        .collect()
}

/// One row of text columns; a null is `None`.
fn row_texts(columns: &[datafusion::arrow::array::ArrayRef], row: usize) -> Vec<Option<&str>> {
    columns
        .iter()
        .map(|array| {
            let text = array.as_string::<i32>();
            (!text.is_null(row)).then(|| text.value(row))
        })
        .collect()
}

/// A column as text (Parquet scans may hand out views or dictionaries).
fn text_column(
    batch: &RecordBatch,
    name: &str,
) -> Result<datafusion::arrow::array::ArrayRef, QueryError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::Internal(format!("no column {name}")))?;
    cast(column, &DataType::Utf8).map_err(|error| QueryError::Internal(error.to_string()))
}

fn int_column(
    batch: &RecordBatch,
    name: &str,
) -> Result<datafusion::arrow::array::PrimitiveArray<Int64Type>, QueryError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::Internal(format!("no column {name}")))?;
    let column =
        cast(column, &DataType::Int64).map_err(|error| QueryError::Internal(error.to_string()))?;
    Ok(column.as_primitive::<Int64Type>().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(start_s: i64, end_s: i64, step_s: i64) -> Steps {
        Steps {
            start_us: start_s * 1_000_000,
            end_us: end_s * 1_000_000,
            step_us: step_s * 1_000_000,
        }
    }

    #[test]
    fn overlapping_windows_count_each_line_in_every_window_that_holds_it() {
        // Range 60 s, step 30 s: buckets of 30 s from base = start - 60 s. One line in
        // bucket 2 (start-0..+30 s... after base+60 s) is in the windows ending at start and
        // start + 30 s.
        let buckets = [(1, 1, 10), (2, 2, 20)];
        let points = windows(
            &buckets,
            steps(1_000, 1_090, 30),
            30_000_000,
            60_000_000,
            30_000_000,
            RangeFunction::CountOverTime,
        );
        // Window at 1000 s: buckets 0,1 → 1 line; at 1030: buckets 1,2 → 3; at 1060: buckets
        // 2,3 → 2; at 1090: buckets 3,4 → none, no point.
        assert_eq!(
            points,
            vec![(1_000_000, 1.0), (1_030_000, 3.0), (1_060_000, 2.0)]
        );
        let rate = windows(
            &buckets,
            steps(1_000, 1_000, 30),
            30_000_000,
            60_000_000,
            30_000_000,
            RangeFunction::BytesRate,
        );
        assert_eq!(rate, vec![(1_000_000, 10.0 / 60.0)]);
    }

    #[test]
    fn aggregations_and_topk_work_per_step() {
        let series = |host: &str, points: Vec<(i64, f64)>| Series {
            labels: BTreeMap::from([
                ("host".to_string(), host.to_string()),
                ("app".to_string(), "web".to_string()),
            ]),
            points,
        };
        let input = vec![
            series("a", vec![(1, 1.0), (2, 5.0)]),
            series("b", vec![(1, 3.0)]),
            series("c", vec![(1, 2.0), (2, 1.0)]),
        ];
        let max = apply(
            &MetricExpr::Aggregate {
                op: AggregateOp::Max,
                grouping: Grouping::By(vec!["app".into()]),
                inner: Box::new(dummy()),
            },
            input.clone(),
        );
        assert_eq!(max.len(), 1);
        assert_eq!(max[0].points, vec![(1, 3.0), (2, 5.0)]);
        assert_eq!(max[0].labels.len(), 1);
        let top = apply(
            &MetricExpr::TopK {
                k: 1,
                bottom: false,
                inner: Box::new(dummy()),
            },
            input,
        );
        let hosts: Vec<(&str, Vec<(i64, f64)>)> = top
            .iter()
            .map(|one| (one.labels["host"].as_str(), one.points.clone()))
            .collect();
        assert_eq!(hosts, vec![("a", vec![(2, 5.0)]), ("b", vec![(1, 3.0)])]);
    }

    fn dummy() -> MetricExpr {
        MetricExpr::Range {
            function: RangeFunction::CountOverTime,
            query: LogQuery {
                selector: Vec::new(),
                stages: Vec::new(),
            },
            range: std::time::Duration::from_secs(60),
        }
    }
}
