//! Date and time field types: date-rfc3164, date-rfc5424, date-iso, time-24hr,
//! time-12hr, kernel-timestamp, duration.

use super::{at, Fmt, Out, Parsed};

/// liblognorm's `hParseInt`: digits up to `len` bytes, wrapping like C `int`.
fn parse_int(s: &[u8], p: &mut usize, len: &mut usize) -> i32 {
    let mut v: i32 = 0;
    while *len > 0 && at(s, *p).is_ascii_digit() {
        v = v.wrapping_mul(10).wrapping_add((s[*p] - b'0') as i32);
        *p += 1;
        *len -= 1;
    }
    v
}

/// Seconds since the epoch for a civil date at `utc_offset_seconds` east of UTC, 0 outside
/// 1970..=2100 as liblognorm.
fn to_unix(
    year: i32,
    month: i32,
    day: i32,
    hour: i32,
    min: i32,
    sec: i32,
    utc_offset_seconds: i64,
) -> i64 {
    if !(1970..=2100).contains(&year) {
        return 0;
    }
    const CUM: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let mut days = CUM[(month.clamp(1, 12) - 1) as usize] + day as i64 - 1;
    let leap = (year % 100 != 0 && year % 4 == 0) || year == 2000;
    if leap && month > 2 {
        days += 1;
    }
    let y = year as i64;
    // days from 1970-01-01 to Jan 1 of `year`
    let yd = (y - 1970) * 365 + ((y - 1969) / 4) - ((y - 1901) / 100) + ((y - 1601) / 400);
    (yd + days) * 86400 + hour as i64 * 3600 + min as i64 * 60 + sec as i64 - utc_offset_seconds
}

fn month_of(s: &[u8], p: usize) -> Option<i32> {
    let m = [
        at(s, p).to_ascii_lowercase(),
        at(s, p + 1).to_ascii_lowercase(),
        at(s, p + 2).to_ascii_lowercase(),
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

/// `Mmm dd hh:mm:ss`, also `Mmm  d`, `Mmm dd yyyy hh:mm:ss` and a trailing ':' (Cisco).
pub(crate) fn rfc3164(s: &[u8], offs: usize, fmt: Fmt) -> Parsed {
    let orglen = s.len().checked_sub(offs)?;
    let mut len = orglen;
    if len < 3 {
        return None;
    }
    let month = month_of(s, offs)?;
    let mut p = offs + 3;
    len -= 3;
    if len == 0 || at(s, p) != b' ' {
        return None;
    }
    p += 1;
    len -= 1;
    if at(s, p) == b' ' {
        // one-digit day padded with a space; liblognorm does not check len here
        len = len.wrapping_sub(1);
        p += 1;
    }
    let day = parse_int(s, &mut p, &mut len);
    if !(1..=31).contains(&day) || len == 0 || at(s, p) != b' ' {
        return None;
    }
    p += 1;
    len -= 1;
    let mut hour = parse_int(s, &mut p, &mut len);
    if hour > 1970 && hour < 2100 {
        if len == 0 || at(s, p) != b' ' {
            return None;
        }
        p += 1;
        len -= 1;
        hour = parse_int(s, &mut p, &mut len);
    }
    if !(0..=23).contains(&hour) || len == 0 || at(s, p) != b':' {
        return None;
    }
    p += 1;
    len -= 1;
    let minute = parse_int(s, &mut p, &mut len);
    if !(0..=59).contains(&minute) || len == 0 || at(s, p) != b':' {
        return None;
    }
    p += 1;
    len -= 1;
    let second = parse_int(s, &mut p, &mut len);
    if !(0..=60).contains(&second) {
        return None;
    }
    if len > 0 && at(s, p) == b':' {
        len -= 1;
    }
    let parsed = orglen - len;
    let out = match fmt {
        Fmt::String | Fmt::Number => Out::Span(offs, offs + parsed),
        ts => {
            // no year in the timestamp: liblognorm assumes the current (UTC) year
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let year = current_year(now);
            let mut t = to_unix(year, month, day, hour, minute, second, 0);
            if ts == Fmt::TimestampUnixMs {
                t *= 1000;
            }
            Out::Int(t)
        }
    };
    Some((parsed, out))
}

fn current_year(now: i64) -> i32 {
    let mut y = 1970;
    while to_unix(y + 1, 1, 1, 0, 0, 0, 0) <= now && y < 2100 {
        y += 1;
    }
    y
}

/// RFC 5424 / RFC 3339 timestamp, followed by SP or end of line.
pub(crate) fn rfc5424(s: &[u8], offs: usize, fmt: Fmt) -> Parsed {
    let orglen = s.len().checked_sub(offs)?;
    let mut len = orglen;
    let mut p = offs;
    macro_rules! expect {
        ($c:expr) => {{
            if len == 0 || at(s, p) != $c {
                return None;
            }
            p += 1;
            len -= 1;
        }};
    }
    let year = parse_int(s, &mut p, &mut len);
    expect!(b'-');
    let month = parse_int(s, &mut p, &mut len);
    if !(1..=12).contains(&month) {
        return None;
    }
    expect!(b'-');
    let day = parse_int(s, &mut p, &mut len);
    if !(1..=31).contains(&day) {
        return None;
    }
    expect!(b'T');
    let hour = parse_int(s, &mut p, &mut len);
    if !(0..=23).contains(&hour) {
        return None;
    }
    expect!(b':');
    let minute = parse_int(s, &mut p, &mut len);
    if !(0..=59).contains(&minute) {
        return None;
    }
    expect!(b':');
    let second = parse_int(s, &mut p, &mut len);
    if !(0..=60).contains(&second) {
        return None;
    }
    let (mut secfrac, mut prec) = (0i32, 0usize);
    if len > 0 && at(s, p) == b'.' {
        len -= 1;
        p += 1;
        let start = p;
        secfrac = parse_int(s, &mut p, &mut len);
        prec = p - start;
    }
    if len == 0 {
        return None;
    }
    let (off_h, off_m, plus);
    match at(s, p) {
        b'Z' => {
            off_h = 0;
            off_m = 0;
            plus = true;
            len -= 1;
            p += 1;
        }
        c @ (b'+' | b'-') => {
            plus = c == b'+';
            len -= 1;
            p += 1;
            off_h = parse_int(s, &mut p, &mut len);
            if !(0..=23).contains(&off_h) {
                return None;
            }
            expect!(b':');
            off_m = parse_int(s, &mut p, &mut len);
            if !(0..=59).contains(&off_m) {
                return None;
            }
        }
        _ => return None,
    }
    if len > 0 && at(s, p) != b' ' {
        return None;
    }
    let parsed = orglen - len;
    let out = match fmt {
        Fmt::String | Fmt::Number => Out::Span(offs, offs + parsed),
        ts => {
            let offset = (off_h as i64 * 3600 + off_m as i64 * 60) * if plus { 1 } else { -1 };
            let mut t = to_unix(year, month, day, hour, minute, second, offset);
            if ts == Fmt::TimestampUnixMs {
                t *= 1000;
                let mut frac = secfrac as i64;
                let mut div = 1i64;
                match prec {
                    1 => frac *= 100,
                    2 => frac *= 10,
                    p if p > 3 => (0..p - 3).for_each(|_| div = div.wrapping_mul(10)),
                    _ => {}
                }
                t += if div == 0 { 0 } else { frac / div };
            }
            Out::Int(t)
        }
    };
    Some((parsed, out))
}

#[inline]
fn d(s: &[u8], i: usize) -> bool {
    at(s, i).is_ascii_digit()
}

#[inline]
fn between(s: &[u8], i: usize, lo: u8, hi: u8) -> bool {
    (lo..=hi).contains(&at(s, i))
}

/// Exactly `YYYY-MM-DD`.
pub(crate) fn iso_date(s: &[u8], i: usize) -> Parsed {
    if i + 10 > s.len() {
        return None;
    }
    let ok = d(s, i)
        && d(s, i + 1)
        && d(s, i + 2)
        && d(s, i + 3)
        && s[i + 4] == b'-'
        && match s[i + 5] {
            b'0' => between(s, i + 6, b'1', b'9'),
            b'1' => between(s, i + 6, b'0', b'2'),
            _ => false,
        }
        && s[i + 7] == b'-'
        && match s[i + 8] {
            b'0' => between(s, i + 9, b'1', b'9'),
            b'1' | b'2' => d(s, i + 9),
            b'3' => between(s, i + 9, b'0', b'1'),
            _ => false,
        };
    ok.then_some((10, Out::Span(i, i + 10)))
}

fn mm_ss(s: &[u8], i: usize) -> bool {
    s[i + 2] == b':'
        && between(s, i + 3, b'0', b'5')
        && d(s, i + 4)
        && s[i + 5] == b':'
        && between(s, i + 6, b'0', b'5')
        && d(s, i + 7)
}

/// Exactly `HH:MM:SS`, hours 00-23.
pub(crate) fn time24(s: &[u8], i: usize) -> Parsed {
    if i + 8 > s.len() {
        return None;
    }
    let h = match s[i] {
        b'0' | b'1' => d(s, i + 1),
        b'2' => between(s, i + 1, b'0', b'3'),
        _ => false,
    };
    (h && mm_ss(s, i)).then_some((8, Out::Span(i, i + 8)))
}

/// Exactly `HH:MM:SS`, hours 00-12.
pub(crate) fn time12(s: &[u8], i: usize) -> Parsed {
    if i + 8 > s.len() {
        return None;
    }
    let h = match s[i] {
        b'0' => d(s, i + 1),
        b'1' => between(s, i + 1, b'0', b'2'),
        _ => false,
    };
    (h && mm_ss(s, i)).then_some((8, Out::Span(i, i + 8)))
}

/// `[sssss.uuuuuu]` with 5 to 12 digits of seconds.
pub(crate) fn kernel_timestamp(s: &[u8], offs: usize) -> Parsed {
    let len = s.len();
    let mut i = offs;
    if at(s, i) != b'[' || i + 14 > len || !(1..=5).all(|k| d(s, i + k)) {
        return None;
    }
    i += 6;
    let mut j = 0;
    while j < 7 && i < len && d(s, i) {
        i += 1;
        j += 1;
    }
    if i >= len || s[i] != b'.' {
        return None;
    }
    i += 1;
    if i + 7 > len || !(0..6).all(|k| d(s, i + k)) || s[i + 6] != b']' {
        return None;
    }
    i += 7;
    Some((i - offs, Out::Span(offs, i)))
}

/// `h:mm:ss` or `hh:mm:ss` (hours unbounded in two digits).
pub(crate) fn duration(s: &[u8], offs: usize) -> Parsed {
    let mut i = offs;
    if !d(s, i) {
        return None;
    }
    i += 1;
    if d(s, i) {
        i += 1;
    }
    if at(s, i) != b':' {
        return None;
    }
    i += 1;
    if i + 5 > s.len() {
        return None;
    }
    if !between(s, i, b'0', b'5')
        || !d(s, i + 1)
        || s[i + 2] != b':'
        || !between(s, i + 3, b'0', b'5')
        || !d(s, i + 4)
    {
        return None;
    }
    Some((i + 5 - offs, Out::Span(offs, i + 5)))
}
