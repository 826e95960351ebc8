//! RFC 5424: `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
//! STRUCTURED-DATA [SP MSG]`.
//!
//! This is the hot path (the format most tenants send), so it is a single forward scan over
//! bytes with no allocation except the structured-data vectors and escaped values, and no
//! time-zone database work (every RFC 5424 stamp carries its own offset).
//!
//! Strict where a mistake would put wrong values into named fields: header fields longer than
//! RFC 5424 allows (HOSTNAME 255, APP-NAME 48, PROCID 128, MSGID 32, SD-NAME 32 bytes), control
//! characters in a header field, a bad timestamp or malformed structured data are errors, so
//! the caller stores the line raw with a parse-error flag. Lenient where nothing is lost:
//! spaces after `<PRI>`, non-ASCII bytes in header fields, a backslash before a character other
//! than `"`, `\` or `]` in a PARAM-VALUE (both bytes are kept, as RFC 5424 §6.3.3 says), MSG
//! glued to the closing `]` without the space, a missing MSG.

use std::borrow::Cow;

use crate::error::{ParseError, ParseErrorKind};
use crate::message::{Message, Protocol, SdElement};
use crate::pri::{parse_pri, Pri};
use crate::timestamp::parse_rfc3339;
use crate::trim_terminators;

const BOM: &str = "\u{feff}";

/// Parses an RFC 5424 message (no RFC 3164 fallback). Trailing LF, CR LF and NUL are
/// stripped. A missing `<PRI>` is an error here, unlike in [`crate::parse`].
pub fn parse(input: &str) -> Result<Message<'_>, ParseError> {
    let input = trim_terminators(input);
    if input.is_empty() {
        return Err(ParseError::new(ParseErrorKind::Empty, 0));
    }
    match parse_pri(input)? {
        Some(pri) => parse_trimmed(input, Some(pri)),
        None => Err(ParseError::new(ParseErrorKind::Missing("pri"), 0)),
    }
}

/// True when the bytes at `at` are `VERSION SP` followed by `-` or a digit: the shape that
/// tells RFC 5424 from RFC 3164 (whose stamp starts with a month name, and whose Cisco
/// sequence numbers are followed by `:`).
pub(crate) fn looks_like_5424(b: &[u8], at: usize) -> bool {
    let mut i = at;
    match b.get(i) {
        Some(b'1'..=b'9') => i += 1,
        _ => return false,
    }
    while i < at + 3 && b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    b.get(i) == Some(&b' ') && matches!(b.get(i + 1), Some(b'-' | b'0'..=b'9'))
}

/// Parses after the caller has stripped terminators and read the PRI (a 5424 message
/// without PRI is parsed with `pri_missing`, PRI 13).
pub(crate) fn parse_trimmed(input: &str, pri: Option<Pri>) -> Result<Message<'_>, ParseError> {
    let b = input.as_bytes();
    let (pri_value, missing, mut i) = match pri {
        Some(p) => (p.value, false, p.end),
        None => (13, true, 0),
    };
    let mut m = Message::empty(Protocol::Rfc5424, pri_value, missing);

    // VERSION: NONZERO-DIGIT 0*2DIGIT.
    let start = i;
    let mut version: u16 = 0;
    while i < b.len() && i - start < 3 && b[i].is_ascii_digit() {
        version = version * 10 + u16::from(b[i] - b'0');
        i += 1;
    }
    if i == start || b[start] == b'0' {
        return Err(ParseError::new(ParseErrorKind::InvalidVersion, start));
    }
    m.version = Some(
        u8::try_from(version)
            .map_err(|_| ParseError::new(ParseErrorKind::InvalidVersion, start))?,
    );
    i = expect_space(b, i, "version")?;

    // TIMESTAMP.
    if b.get(i) == Some(&b'-') {
        i += 1;
    } else {
        let rest = b.get(i..).unwrap_or_default();
        let (ts, n) = parse_rfc3339(rest)
            .ok_or_else(|| ParseError::new(ParseErrorKind::InvalidTimestamp, i))?;
        m.timestamp = Some(ts);
        i += n;
    }
    i = expect_space(b, i, "timestamp")?;

    let (hostname, next) = header_field(input, i, "hostname", 255)?;
    i = expect_space(b, next, "hostname")?;
    let (app_name, next) = header_field(input, i, "app-name", 48)?;
    i = expect_space(b, next, "app-name")?;
    let (proc_id, next) = header_field(input, i, "procid", 128)?;
    i = expect_space(b, next, "procid")?;
    let (msg_id, next) = header_field(input, i, "msgid", 32)?;
    m.hostname = hostname;
    m.app_name = app_name;
    m.proc_id = proc_id;
    m.msg_id = msg_id;
    i = expect_space(b, next, "msgid")?;

    // STRUCTURED-DATA.
    match b.get(i) {
        Some(b'-') => {
            i += 1;
            match b.get(i) {
                None => return Ok(m),
                Some(b' ') => i += 1,
                Some(_) => {
                    return Err(ParseError::new(
                        ParseErrorKind::ExpectedSpace("structured data"),
                        i,
                    ))
                }
            }
        }
        Some(b'[') => {
            i = parse_sd(input, i, &mut m.structured_data)?;
            match b.get(i) {
                None => return Ok(m),
                // The RFC wants a space before MSG; a message glued to `]` is kept whole.
                Some(b' ') => i += 1,
                Some(_) => {}
            }
        }
        None => {
            return Err(ParseError::new(
                ParseErrorKind::Missing("structured data"),
                i,
            ))
        }
        Some(_) => {
            return Err(ParseError::new(
                ParseErrorKind::StructuredData("expected '-' or '['"),
                i,
            ))
        }
    }

    let msg = input.get(i..).unwrap_or_default();
    m.msg = msg.strip_prefix(BOM).unwrap_or(msg);
    Ok(m)
}

#[inline]
fn expect_space(b: &[u8], i: usize, after: &'static str) -> Result<usize, ParseError> {
    match b.get(i) {
        Some(b' ') => Ok(i + 1),
        None => Err(ParseError::new(
            ParseErrorKind::Missing(next_field(after)),
            i,
        )),
        Some(_) => Err(ParseError::new(ParseErrorKind::ExpectedSpace(after), i)),
    }
}

/// Name of the field that follows `after`, for "missing ..." errors.
fn next_field(after: &'static str) -> &'static str {
    match after {
        "version" => "timestamp",
        "timestamp" => "hostname",
        "hostname" => "app-name",
        "app-name" => "procid",
        "procid" => "msgid",
        _ => "structured data",
    }
}

/// One space-delimited header field; `-` alone is NILVALUE.
#[inline]
fn header_field<'a>(
    input: &'a str,
    start: usize,
    name: &'static str,
    max: usize,
) -> Result<(Option<&'a str>, usize), ParseError> {
    let b = input.as_bytes();
    let mut i = start;
    while let Some(&c) = b.get(i) {
        if c == b' ' {
            break;
        }
        if c < 0x21 || c == 0x7f {
            return Err(ParseError::new(ParseErrorKind::InvalidChar(name), i));
        }
        i += 1;
    }
    if i == start {
        return Err(ParseError::new(ParseErrorKind::Missing(name), start));
    }
    if i - start > max {
        return Err(ParseError::new(
            ParseErrorKind::FieldTooLong { field: name, max },
            start,
        ));
    }
    let field = input.get(start..i).unwrap_or_default();
    Ok((if field == "-" { None } else { Some(field) }, i))
}

/// SD-ELEMENTs from `[` at `i`; returns the offset just past the last `]`.
fn parse_sd<'a>(
    input: &'a str,
    mut i: usize,
    out: &mut Vec<SdElement<'a>>,
) -> Result<usize, ParseError> {
    let b = input.as_bytes();
    while b.get(i) == Some(&b'[') {
        i += 1;
        let (id, next) = sd_name(input, i, "sd-id")?;
        i = next;
        let mut params = Vec::new();
        loop {
            match b.get(i) {
                Some(b']') => {
                    i += 1;
                    break;
                }
                Some(b' ') => {
                    i += 1;
                    // Tolerate several spaces between params.
                    while b.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    if b.get(i) == Some(&b']') {
                        continue;
                    }
                    let (name, next) = sd_name(input, i, "param-name")?;
                    i = next;
                    if b.get(i) != Some(&b'=') {
                        return Err(ParseError::new(
                            ParseErrorKind::StructuredData("expected '=' after param-name"),
                            i,
                        ));
                    }
                    i += 1;
                    if b.get(i) != Some(&b'"') {
                        return Err(ParseError::new(
                            ParseErrorKind::StructuredData("expected '\"' to open param-value"),
                            i,
                        ));
                    }
                    let (value, next) = param_value(input, i + 1)?;
                    i = next;
                    params.push((name, value));
                }
                None => {
                    return Err(ParseError::new(
                        ParseErrorKind::StructuredData("unterminated sd-element"),
                        i,
                    ))
                }
                Some(_) => {
                    return Err(ParseError::new(
                        ParseErrorKind::StructuredData("expected ' ' or ']' in sd-element"),
                        i,
                    ))
                }
            }
        }
        out.push(SdElement { id, params });
    }
    Ok(i)
}

/// SD-NAME: 1-32 printable ASCII bytes other than `=`, SP, `]`, `"`.
#[inline]
fn sd_name<'a>(
    input: &'a str,
    start: usize,
    what: &'static str,
) -> Result<(&'a str, usize), ParseError> {
    let b = input.as_bytes();
    let mut i = start;
    while let Some(&c) = b.get(i) {
        if matches!(c, b'=' | b' ' | b']' | b'"') {
            break;
        }
        if !(0x21..0x7f).contains(&c) {
            return Err(ParseError::new(ParseErrorKind::InvalidChar(what), i));
        }
        i += 1;
    }
    if i == start {
        return Err(ParseError::new(ParseErrorKind::Missing(what), start));
    }
    if i - start > 32 {
        return Err(ParseError::new(
            ParseErrorKind::FieldTooLong {
                field: what,
                max: 32,
            },
            start,
        ));
    }
    Ok((input.get(start..i).unwrap_or_default(), i))
}

/// PARAM-VALUE from just after the opening quote; returns the value and the offset past the
/// closing quote. `\"`, `\\` and `\]` are unescaped (allocating only then); any other
/// backslash is an ordinary byte.
#[inline]
fn param_value(input: &str, start: usize) -> Result<(Cow<'_, str>, usize), ParseError> {
    let b = input.as_bytes();
    let mut owned: Option<String> = None;
    let mut seg = start; // start of the not-yet-copied run
    let mut i = start;
    loop {
        let Some(off) = memchr::memchr2(b'"', b'\\', b.get(i..).unwrap_or_default()) else {
            return Err(ParseError::new(
                ParseErrorKind::StructuredData("unterminated param-value"),
                start,
            ));
        };
        i += off;
        if b[i] == b'"' {
            let tail = input.get(seg..i).unwrap_or_default();
            let value = match owned {
                Some(mut s) => {
                    s.push_str(tail);
                    Cow::Owned(s)
                }
                None => Cow::Borrowed(tail),
            };
            return Ok((value, i + 1));
        }
        // Backslash.
        match b.get(i + 1) {
            Some(b'"' | b'\\' | b']') => {
                let s = owned.get_or_insert_with(String::new);
                s.push_str(input.get(seg..i).unwrap_or_default());
                seg = i + 1; // keep the escaped byte, drop the backslash
                i += 2;
            }
            // Not an escape: the backslash stays and the next byte is scanned normally.
            _ => i += 1,
        }
    }
}
