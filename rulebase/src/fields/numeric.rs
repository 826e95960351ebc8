//! Numeric field types: number, float, hexnumber.

use super::{at, is_space, Fmt, Out, Parsed};

/// Decimal digits. Like liblognorm the accumulated value wraps silently on overflow and
/// `maxval` (when > 0) rejects larger values.
pub(crate) fn number(s: &[u8], offs: usize, maxval: i64, fmt: Fmt) -> Parsed {
    let mut i = offs;
    let mut val: i64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        val = val.wrapping_mul(10).wrapping_add((s[i] - b'0') as i64);
        i += 1;
    }
    if (maxval > 0 && val > maxval) || i == offs {
        return None;
    }
    let out = if fmt == Fmt::Number {
        Out::Int(val)
    } else {
        Out::Span(offs, i)
    };
    Some((i - offs, out))
}

/// Optional '-', digits with at most one '.'. Mirrors liblognorm, which also accepts a
/// lone "-" or "." as a float.
pub(crate) fn float(s: &[u8], offs: usize, fmt: Fmt) -> Parsed {
    let mut i = offs;
    if at(s, i) == b'-' {
        i += 1;
    }
    let mut seen_point = false;
    while i < s.len() {
        let c = s[i];
        if c == b'.' {
            if seen_point {
                break;
            }
            seen_point = true;
        } else if !c.is_ascii_digit() {
            break;
        }
        i += 1;
    }
    if i == offs || i > s.len() {
        return None;
    }
    let out = if fmt == Fmt::Number {
        let text = std::str::from_utf8(&s[offs..i]).unwrap_or("0");
        Out::Float(text.parse::<f64>().unwrap_or(0.0))
    } else {
        Out::Span(offs, i)
    };
    Some((i - offs, out))
}

/// `0x` followed by hex digits and then whitespace (which liblognorm requires, so a hex
/// number at the very end of a line never matches).
pub(crate) fn hexnumber(s: &[u8], offs: usize, maxval: u64, fmt: Fmt) -> Parsed {
    if at(s, offs) != b'0' || at(s, offs + 1) != b'x' {
        return None;
    }
    let mut i = offs + 2;
    let mut val: u64 = 0;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        let d = (s[i] as char).to_digit(16).unwrap_or(0) as u64;
        val = val.wrapping_mul(16).wrapping_add(d);
        i += 1;
    }
    if !is_space(at(s, i)) || (maxval > 0 && val > maxval) {
        return None;
    }
    let out = if fmt == Fmt::Number {
        Out::Int(val as i64)
    } else {
        Out::Span(offs, i)
    };
    Some((i - offs, out))
}
