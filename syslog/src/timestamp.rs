//! Timestamps: RFC 3339 (RFC 5424 and rsyslog's forward format) and BSD stamps
//! (`Mmm dd hh:mm:ss`, RFC 3164), including the year and zone the latter lack.
//!
//! Fractions are kept to microseconds, the most RFC 5424 TIME-SECFRAC allows; longer fractions
//! are accepted and truncated rather than rejected.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    Offset, TimeZone, Utc,
};

/// Reads `n` ASCII digits at `b[at..]`.
#[inline]
pub(crate) fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Reads `.digits` at `b[at..]`: returns (microseconds, bytes consumed). No dot: (0, 0).
#[inline]
pub(crate) fn fraction(b: &[u8], at: usize) -> Option<(u32, usize)> {
    if b.get(at) != Some(&b'.') {
        return Some((0, 0));
    }
    let mut i = at + 1;
    let mut micros = 0u32;
    let mut n = 0;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        if n < 6 {
            micros = micros * 10 + u32::from(c - b'0');
        }
        n += 1;
        i += 1;
    }
    if n == 0 {
        return None;
    }
    for _ in n..6 {
        micros *= 10;
    }
    Some((micros, i - at))
}

/// Builds a time of day; second 60 (a leap second, allowed by RFC 3339) becomes chrono's
/// representation of a leap second (59 s plus a second of nanoseconds).
#[inline]
pub(crate) fn time_of_day(h: u32, m: u32, s: u32, micros: u32) -> Option<NaiveTime> {
    if s == 60 {
        NaiveTime::from_hms_micro_opt(h, m, 59, micros + 1_000_000)
    } else {
        NaiveTime::from_hms_micro_opt(h, m, s, micros)
    }
}

/// Parses an RFC 3339 date-time at the start of `b`, as RFC 5424 §6.2.3 restricts it:
/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)`. Lowercase `t`/`z` are accepted (RFC 3339
/// §5.6 allows them). Returns the time and the bytes consumed.
pub(crate) fn parse_rfc3339(b: &[u8]) -> Option<(DateTime<FixedOffset>, usize)> {
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't')) {
        return None;
    }
    let h = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let m = digits(b, 14, 2)?;
    let s = digits(b, 17, 2)?;
    let (micros, flen) = fraction(b, 19)?;
    let mut i = 19 + flen;
    let offset_secs: i32 = match b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        &sign @ (b'+' | b'-') => {
            let oh = digits(b, i + 1, 2)?;
            if b.get(i + 3) != Some(&b':') {
                return None;
            }
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            i += 6;
            let secs = (oh * 3600 + om * 60) as i32;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = time_of_day(h, m, s, micros)?;
    let offset = FixedOffset::east_opt(offset_secs)?;
    let dt = offset.from_local_datetime(&date.and_time(time)).single()?;
    Some((dt, i))
}

/// Month from a three-letter English abbreviation, any case (`Nov`, `NOV`, `nov`).
#[inline]
pub(crate) fn month(b: &[u8]) -> Option<u32> {
    let m = [
        b.first()?.to_ascii_lowercase(),
        b.get(1)?.to_ascii_lowercase(),
        b.get(2)?.to_ascii_lowercase(),
    ];
    Some(match &m {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// How far in the future a year-less stamp may land before we take the previous year instead:
/// senders' clocks drift and queues delay, but a stamp months ahead means last year.
const MAX_FUTURE_DAYS: i64 = 31;

/// Picks the year for a year-less BSD stamp: the one that puts it closest to `received_at`
/// (seen in the stamp's zone) without being more than about a month in the future. A December
/// stamp received on 2 January gets last year; a 29 February stamp gets the nearest leap year
/// before.
pub(crate) fn resolve_year(
    month: u32,
    day: u32,
    time: NaiveTime,
    received_local: NaiveDateTime,
) -> Option<NaiveDateTime> {
    let ry = received_local.year();
    let max_future = Duration::days(MAX_FUTURE_DAYS);
    let mut best: Option<(NaiveDateTime, Duration)> = None;
    // Three years cover every ordinary date; 29 February needs up to four years back.
    for y in (ry - 4..=ry + 1).rev() {
        let Some(date) = NaiveDate::from_ymd_opt(y, month, day) else {
            continue;
        };
        let candidate = date.and_time(time);
        let diff = candidate - received_local;
        if diff > max_future {
            continue;
        }
        let dist = diff.abs();
        if best.as_ref().is_none_or(|(_, d)| dist < *d) {
            best = Some((candidate, dist));
        }
    }
    best.map(|(c, _)| c)
}

/// Places a zone-less local time in `tz`, deterministically across DST changes: an ambiguous
/// time (the repeated hour in autumn) is the earlier instant; a time that does not exist (the
/// skipped hour in spring) is read with the offset in force just before the gap, as a clock
/// that had not yet been moved forward would have meant it.
pub(crate) fn localize<Tz: TimeZone>(
    tz: &Tz,
    local: NaiveDateTime,
) -> Option<DateTime<FixedOffset>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.fixed_offset()),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.fixed_offset()),
        LocalResult::None => {
            // The gap is at most a few hours; a day earlier is safely before it.
            let before = local.checked_sub_signed(Duration::days(1))?;
            let offset = tz.offset_from_utc_datetime(&before).fix();
            offset.from_local_datetime(&local).single()
        }
    }
}

/// `received_at` as a wall-clock time in `tz`, for comparing with a zone-less stamp.
pub(crate) fn local_now<Tz: TimeZone>(tz: &Tz, received_at: DateTime<Utc>) -> NaiveDateTime {
    received_at.with_timezone(tz).naive_local()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("test literal")
    }

    #[test]
    fn rfc3339_forms() {
        let cases = [
            (
                "2026-11-25T15:43:54.123456+00:00",
                "2026-11-25T15:43:54.123456+00:00",
                32,
            ),
            ("2026-11-25T15:43:54Z", "2026-11-25T15:43:54Z", 20),
            ("2026-11-25t15:43:54z", "2026-11-25T15:43:54Z", 20),
            ("2003-10-11T22:14:15.003Z", "2003-10-11T22:14:15.003Z", 24),
            (
                "2003-08-24T05:14:15.000003-07:00",
                "2003-08-24T05:14:15.000003-07:00",
                32,
            ),
            (
                "2003-08-24T05:14:15.123456789-07:00",
                "2003-08-24T05:14:15.123456-07:00",
                35,
            ),
            (
                "2026-01-01T00:00:00.5+05:30",
                "2026-01-01T00:00:00.5+05:30",
                27,
            ),
        ];
        for (input, want, len) in cases {
            let (got, n) = parse_rfc3339(input.as_bytes()).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(got, dt(want), "{input}");
            assert_eq!(got.offset(), dt(want).offset(), "{input}");
            assert_eq!(n, len, "{input}");
        }
    }

    #[test]
    fn rfc3339_rejects() {
        for input in [
            "2026-11-25 15:43:54Z",
            "2026-13-25T15:43:54Z",
            "2026-02-30T15:43:54Z",
            "2026-11-25T25:43:54Z",
            "2026-11-25T15:43:54",
            "2026-11-25T15:43:54.Z",
            "2026-11-25T15:43:54+0100",
            "2026-11-25T15:43:54+24:00",
            "26-11-25T15:43:54Z",
            "",
        ] {
            assert!(parse_rfc3339(input.as_bytes()).is_none(), "{input}");
        }
    }

    #[test]
    fn leap_second_is_kept() {
        let (t, _) = parse_rfc3339(b"2016-12-31T23:59:60Z").expect("leap second");
        assert_eq!(t.format("%H:%M:%S").to_string(), "23:59:60");
    }

    #[test]
    fn year_resolution() {
        let t = NaiveTime::from_hms_opt(12, 0, 0).expect("literal");
        let now = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("literal");
        let cases = [
            // (month, day, received, expected year)
            (12, 31, "2027-01-02 00:00:00", 2026),
            (1, 2, "2026-12-31 23:00:00", 2027),
            (6, 1, "2026-06-01 00:00:00", 2026),
            (7, 15, "2026-06-01 00:00:00", 2025),
            (6, 20, "2026-06-01 00:00:00", 2026),
            (2, 29, "2026-03-01 00:00:00", 2024),
            (2, 29, "2028-02-29 10:00:00", 2028),
        ];
        for (m, d, recv, year) in cases {
            let got = resolve_year(m, d, t, now(recv)).expect("resolved");
            assert_eq!(got.year(), year, "{m}-{d} received {recv}");
        }
    }

    #[test]
    fn dst_is_deterministic() {
        let berlin = chrono_tz::Europe::Berlin;
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("literal");
        // Spring gap: 02:30 does not exist; read with the winter offset.
        assert_eq!(
            localize(&berlin, at("2026-03-29 02:30:00")),
            Some(dt("2026-03-29T02:30:00+01:00"))
        );
        // Autumn repeat: 02:30 happens twice; take the first (summer time).
        let amb = localize(&berlin, at("2026-10-25 02:30:00")).expect("ambiguous");
        assert_eq!(amb, dt("2026-10-25T02:30:00+02:00"));
        assert_eq!(amb.offset().local_minus_utc(), 7200);
        assert_eq!(
            localize(&berlin, at("2026-07-01 12:00:00")),
            Some(dt("2026-07-01T12:00:00+02:00"))
        );
    }

    #[test]
    fn months_any_case() {
        assert_eq!(month(b"NOV"), Some(11));
        assert_eq!(month(b"nov"), Some(11));
        assert_eq!(month(b"Jan"), Some(1));
        assert_eq!(month(b"Foo"), None);
        assert_eq!(month(b"No"), None);
    }
}
