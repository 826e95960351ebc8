//! Text-shaped field types: literal, word, alpha, rest, whitespace, string-to, char-to,
//! char-sep, quoted-string, op-quoted-string and the generic `string`.

use super::{at, is_space, Out, Parsed};
use serde_json::{Map, Value};

#[inline]
pub(crate) fn literal(s: &[u8], offs: usize, lit: &[u8]) -> Parsed {
    // most literal edges fail on their first byte: decide that without a memcmp call
    if let Some(&c) = lit.first() {
        if s.get(offs) != Some(&c) {
            return None;
        }
    }
    let end = offs.checked_add(lit.len())?;
    if s.get(offs..end)? == lit {
        Some((lit.len(), Out::Span(offs, end)))
    } else {
        None
    }
}

/// Everything up to the next SP (only SP, not tab: liblognorm's definition).
pub(crate) fn word(s: &[u8], offs: usize) -> Parsed {
    let rest = s.get(offs..)?;
    let n = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    if n == 0 {
        return None;
    }
    Some((n, Out::Span(offs, offs + n)))
}

pub(crate) fn alpha(s: &[u8], offs: usize) -> Parsed {
    let rest = s.get(offs..)?;
    let n = rest.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    if n == 0 {
        return None;
    }
    Some((n, Out::Span(offs, offs + n)))
}

pub(crate) fn rest(s: &[u8], offs: usize) -> Parsed {
    if offs > s.len() {
        return None;
    }
    Some((s.len() - offs, Out::Span(offs, s.len())))
}

pub(crate) fn whitespace(s: &[u8], offs: usize) -> Parsed {
    if !is_space(at(s, offs)) {
        return None;
    }
    let mut i = offs + 1;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    Some((i - offs, Out::Span(offs, i)))
}

/// Up to (not including) the string `to`. Mirrors liblognorm: the first character is
/// never considered as the start of the terminator, the terminator must lie completely
/// inside the line, and (a liblognorm quirk) a one-character terminator never matches.
pub(crate) fn string_to(s: &[u8], offs: usize, to: &[u8]) -> Parsed {
    let len = s.len();
    let first = *to.first()?;
    let mut i = offs;
    let mut found = false;
    while !found && i < len {
        i += 1;
        if at(s, i) == first {
            let mut j = 1;
            let mut m = i + 1;
            while m < len && j < to.len() {
                if s[m] != to[j] {
                    break;
                }
                if j == to.len() - 1 {
                    found = true;
                    break;
                }
                j += 1;
                m += 1;
            }
        }
    }
    if i == offs || i == len || !found {
        return None;
    }
    Some((i - offs, Out::Span(offs, i)))
}

#[inline]
fn find_any(s: &[u8], offs: usize, set: &[u8]) -> Option<usize> {
    let rest = s.get(offs..)?;
    let pos = match set.len() {
        1 => memchr::memchr(set[0], rest),
        2 => memchr::memchr2(set[0], set[1], rest),
        3 => memchr::memchr3(set[0], set[1], set[2], rest),
        _ => rest.iter().position(|c| set.contains(c)),
    };
    pos.map(|p| offs + p)
}

/// Up to the first of the terminator characters, which must exist; at least one byte.
pub(crate) fn char_to(s: &[u8], offs: usize, set: &[u8]) -> Parsed {
    let i = find_any(s, offs, set)?;
    if i == offs {
        return None;
    }
    Some((i - offs, Out::Span(offs, i)))
}

/// Up to the first separator or end of line; may be empty, always succeeds.
pub(crate) fn char_sep(s: &[u8], offs: usize, set: &[u8]) -> Parsed {
    if offs > s.len() {
        return None;
    }
    let i = find_any(s, offs, set).unwrap_or(s.len());
    Some((i - offs, Out::Span(offs, i)))
}

/// `"..."` without escapes; unlike op-quoted-string the value keeps the quotes.
pub(crate) fn quoted_string(s: &[u8], offs: usize) -> Parsed {
    if offs + 2 > s.len() || s[offs] != b'"' {
        return None;
    }
    let close = offs + 1 + memchr::memchr(b'"', &s[offs + 1..])?;
    Some((close + 1 - offs, Out::Span(offs, close + 1)))
}

/// Optionally quoted: a quoted string (value without quotes) or a word.
pub(crate) fn op_quoted_string(s: &[u8], offs: usize) -> Parsed {
    if at(s, offs) != b'"' {
        return word(s, offs);
    }
    let close = offs + 1 + memchr::memchr(b'"', s.get(offs + 1..)?)?;
    Some((close + 1 - offs, Out::Span(offs + 1, close)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteMode {
    Auto,
    None,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscMode {
    None,
    Backslash,
    Double,
    Both,
}

/// Options of the generic `string` type.
#[derive(Debug)]
pub(crate) struct StringOpts {
    quote_mode: QuoteMode,
    strip_quotes: bool,
    esc: EscMode,
    q_begin: u8,
    q_end: u8,
    permitted: [bool; 256],
}

impl StringOpts {
    pub(crate) fn from_params(params: &Map<String, Value>) -> Result<Self, String> {
        let mut o = StringOpts {
            quote_mode: QuoteMode::Auto,
            strip_quotes: true,
            esc: EscMode::Both,
            q_begin: b'"',
            q_end: b'"',
            permitted: [true; 256],
        };
        for (k, v) in params {
            let sv = v.as_str().unwrap_or("");
            match k.to_ascii_lowercase().as_str() {
                "extradata" => {}
                "quoting.mode" => {
                    o.quote_mode = match sv.to_ascii_lowercase().as_str() {
                        "auto" => QuoteMode::Auto,
                        "none" => QuoteMode::None,
                        "required" => QuoteMode::Required,
                        _ => return Err(format!("invalid quoting.mode for string parser: {sv}")),
                    }
                }
                "quoting.escape.mode" => {
                    o.esc = match sv.to_ascii_lowercase().as_str() {
                        "none" => EscMode::None,
                        "backslash" => EscMode::Backslash,
                        "double" => EscMode::Double,
                        "both" => EscMode::Both,
                        _ => {
                            return Err(format!(
                                "invalid quoting.escape.mode for string parser: {sv}"
                            ))
                        }
                    }
                }
                "quoting.char.begin" | "quoting.char.end" => {
                    if sv.len() != 1 {
                        return Err(format!("{k} must be exactly one character but is: '{sv}'"));
                    }
                    if k.eq_ignore_ascii_case("quoting.char.begin") {
                        o.q_begin = sv.as_bytes()[0];
                    } else {
                        o.q_end = sv.as_bytes()[0];
                    }
                }
                "matching.permitted" => {
                    o.permitted = [false; 256];
                    match v {
                        Value::String(chars) => {
                            chars.bytes().for_each(|c| o.permitted[c as usize] = true)
                        }
                        Value::Array(items) => {
                            for item in items {
                                let Some(obj) = item.as_object() else {
                                    continue;
                                };
                                for (ik, iv) in obj {
                                    let iv = iv.as_str().unwrap_or("");
                                    if ik.eq_ignore_ascii_case("chars") {
                                        iv.bytes().for_each(|c| o.permitted[c as usize] = true);
                                    } else if ik.eq_ignore_ascii_case("class") {
                                        let set: &dyn Fn(u8) -> bool =
                                            match iv.to_ascii_lowercase().as_str() {
                                                "digit" => &|c: u8| c.is_ascii_digit(),
                                                "hexdigit" => &|c: u8| c.is_ascii_hexdigit(),
                                                "alpha" => &|c: u8| c.is_ascii_alphabetic(),
                                                "alnum" => &|c: u8| c.is_ascii_alphanumeric(),
                                                _ => {
                                                    return Err(format!(
                                                        "invalid character class '{iv}'"
                                                    ))
                                                }
                                            };
                                        (0..=255u8)
                                            .filter(|c| set(*c))
                                            .for_each(|c| o.permitted[c as usize] = true);
                                    }
                                }
                            }
                        }
                        _ => {
                            return Err(format!(
                                "matching.permitted is invalid object type, given as '{v}'"
                            ))
                        }
                    }
                }
                _ => return Err(format!("invalid param for string: {k}")),
            }
        }
        if o.quote_mode == QuoteMode::None {
            o.esc = EscMode::None;
        }
        Ok(o)
    }
}

/// The generic string parser (liblognorm's `string`), including its escape handling.
pub(crate) fn string(s: &[u8], offs: usize, o: &StringOpts) -> Parsed {
    let len = s.len();
    if offs >= len {
        return None;
    }
    let esc_double = matches!(o.esc, EscMode::Double | EscMode::Both);
    let esc_bs = matches!(o.esc, EscMode::Backslash | EscMode::Both);
    let mut i = offs;
    let mut have_quotes = false;
    let mut had_end_quote = false;
    let mut had_escape = false;
    if o.quote_mode == QuoteMode::Auto && s[i] == o.q_begin {
        have_quotes = true;
        i += 1;
    } else if o.quote_mode == QuoteMode::Required {
        if s[i] == o.q_begin {
            have_quotes = true;
            i += 1;
        } else {
            return None;
        }
    }
    while i < len {
        if have_quotes && s[i] == o.q_end {
            if esc_double && i + 1 < len && s[i + 1] == o.q_end {
                had_escape = true;
                i += 1;
            } else {
                had_end_quote = true;
                break;
            }
        }
        if s[i] == b'\\' && i + 1 < len && esc_bs {
            had_escape = true;
            i += 1;
        }
        if !have_quotes && s[i] == b' ' {
            break;
        }
        if !o.permitted[s[i] as usize] {
            break;
        }
        i += 1;
    }
    if (have_quotes && !had_end_quote) || i == offs {
        return None;
    }
    let trm = if have_quotes { i + 1 } else { i };
    if at(s, trm) != b' ' && trm != len {
        return None;
    }
    let mut parsed = i - offs;
    if had_end_quote {
        parsed += 1;
    }
    let (start, vlen) = if have_quotes && o.strip_quotes {
        (offs + 1, parsed.saturating_sub(2))
    } else {
        (offs, parsed)
    };
    if !had_escape {
        return Some((parsed, Out::Span(start, start + vlen)));
    }
    // Remove escape characters the way liblognorm's post-processing does: drop the
    // escape and keep the following byte verbatim.
    let raw = &s[start..start + vlen];
    let mut out = Vec::with_capacity(raw.len());
    let mut j = 0;
    while j < raw.len() {
        let c = raw[j];
        let next = raw.get(j + 1).copied().unwrap_or(0);
        if (c == o.q_end && next == o.q_end && esc_double) || (c == b'\\' && esc_bs) {
            if j + 1 < raw.len() {
                out.push(next);
            }
            j += 2;
        } else {
            out.push(c);
            j += 1;
        }
    }
    Some((
        parsed,
        Out::Value(Box::new(Value::String(
            String::from_utf8_lossy(&out).into_owned(),
        ))),
    ))
}
