//! Structured field types that yield JSON objects: name-value-list, json, cee-syslog,
//! v2-iptables, cef, checkpoint-lea.

use super::{at, is_space, span_string, Out, Parsed};
use serde_json::{Map, Value};

fn str_val(s: &[u8], a: usize, b: usize) -> Value {
    Value::String(span_string(s, a, b))
}

/// Start and end offsets of a piece of the input.
type Span = (usize, usize);

/// One `name=value` pair (name: alnum . _ -; value: up to whitespace).
/// Returns (name span, value span, new offset).
fn name_value(s: &[u8], i: usize) -> Option<(Span, Span, usize)> {
    let len = s.len();
    let mut j = i;
    while j < len && (s[j].is_ascii_alphanumeric() || matches!(s[j], b'.' | b'_' | b'-')) {
        j += 1;
    }
    if j == i || at(s, j) != b'=' {
        return None;
    }
    let name = (i, j);
    j += 1;
    let vstart = j;
    while j < len && !is_space(s[j]) {
        j += 1;
    }
    Some((name, (vstart, j), j))
}

/// `name=value` pairs separated by whitespace, up to the end of the line.
pub(crate) fn name_value_list(s: &[u8], offs: usize) -> Parsed {
    let len = s.len();
    if offs > len {
        return None;
    }
    let mut i = offs;
    let mut obj = Map::new();
    while i < len {
        let ((na, nb), (va, vb), next) = name_value(s, i)?;
        obj.insert(span_string(s, na, nb), str_val(s, va, vb));
        i = next;
        while i < len && is_space(s[i]) {
            i += 1;
        }
    }
    Some((i - offs, Out::Value(Box::new(Value::Object(obj)))))
}

/// Parse one JSON value at the start of `s`; returns it and the bytes consumed,
/// including trailing whitespace (json-c, which liblognorm uses, eats it too).
fn json_prefix(s: &[u8]) -> Option<(Value, usize)> {
    let mut it = serde_json::Deserializer::from_slice(s).into_iter::<Value>();
    match it.next() {
        Some(Ok(v)) => {
            let mut end = it.byte_offset();
            while end < s.len() && is_space(s[end]) {
                end += 1;
            }
            Some((v, end))
        }
        _ => None,
    }
}

/// A JSON object (liblognorm rejects anything not starting with '{'); text may follow.
pub(crate) fn json(s: &[u8], offs: usize) -> Parsed {
    if at(s, offs) != b'{' {
        return None;
    }
    let (v, n) = json_prefix(&s[offs..])?;
    Some((n, Out::Value(Box::new(v))))
}

/// `@cee:` followed by a JSON object that must end the line.
pub(crate) fn cee_syslog(s: &[u8], offs: usize) -> Parsed {
    let len = s.len();
    if len < offs + 7 || &s[offs..offs + 5] != b"@cee:" {
        return None;
    }
    let mut i = offs + 5;
    while i < len && is_space(s[i]) {
        i += 1;
    }
    if at(s, i) != b'{' {
        return None;
    }
    let (v, n) = json_prefix(&s[i..])?;
    if i + n != len {
        return None;
    }
    // liblognorm reports the whole line length as consumed, not `len - offs`, so a
    // cee-syslog field only completes a rule when it starts the line.
    Some((len, Out::Value(Box::new(v))))
}

/// C `isspace` (C locale) as a table, for the scanning loops.
static IS_SPACE: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[0x0b] = true;
    t[0x0c] = true;
    t[b'\r' as usize] = true;
    t
};

/// One iptables `NAME=value` or flag `NAME` (upper-case names only).
/// Returns (name span, value span if any, new offset).
#[allow(clippy::type_complexity)]
#[inline]
fn iptables_pair(s: &[u8], i: usize) -> Option<((usize, usize), Option<(usize, usize)>, usize)> {
    let rest = s.get(i..)?;
    let n = rest
        .iter()
        .position(|c| !c.is_ascii_uppercase())
        .unwrap_or(rest.len());
    let j = i + n;
    match rest.get(n) {
        _ if n == 0 => None,
        None | Some(b' ') => Some(((i, j), None, j)),
        Some(b'=') => {
            let v = &rest[n + 1..];
            let vlen = v
                .iter()
                .position(|&c| IS_SPACE[c as usize])
                .unwrap_or(v.len());
            Some(((i, j), Some((j + 1, j + 1 + vlen)), j + 1 + vlen))
        }
        Some(_) => None,
    }
}

/// Kernel netfilter log body: `IN=eth0 OUT= SRC=1.2.3.4 ... DF SYN`, at least two fields,
/// single spaces between them, up to the end of the line. Flags map to `null`.
///
/// Only validates here (and notes whether a name repeats); the object is built, or
/// written out as JSON, from [`iptables_pairs`] once the whole rule has matched.
pub(crate) fn v2_iptables(s: &[u8], offs: usize) -> Parsed {
    let len = s.len();
    if offs > len {
        return None;
    }
    // repeated names are detected through an 8-byte fingerprint of each name (exact for
    // names up to 8 bytes; a longer shared prefix is merely reported as a repeat)
    const MAX: usize = 48;
    let mut seen = [0u64; MAX];
    let (mut n, mut repeat) = (0usize, false);
    let end = iptables_scan(s, offs, |(a, b), _| {
        if !repeat {
            let fp = fingerprint(&s[a..b]);
            if n == MAX || seen[..n].contains(&fp) {
                repeat = true;
            } else {
                seen[n] = fp;
            }
        }
        n += 1;
    })?;
    if n < 2 {
        return None;
    }
    Some((
        end - offs,
        Out::Iptables {
            start: offs,
            end,
            repeat,
        },
    ))
}

/// Up to 8 bytes of an upper-case name and its length (zero padding cannot collide with
/// a name byte).
#[inline]
fn fingerprint(name: &[u8]) -> u64 {
    super::load_be(name) ^ (name.len() as u64)
}

/// Walk the pairs of a `v2-iptables` body starting at `offs` up to the end of the line,
/// calling `f(name span, value span)` for each (the value is `None` for a flag).
/// Returns the end offset, or `None` if the text is not a valid body.
#[inline]
fn iptables_scan(
    s: &[u8],
    offs: usize,
    mut f: impl FnMut((usize, usize), Option<(usize, usize)>),
) -> Option<usize> {
    let len = s.len();
    let mut i = offs;
    while i < len {
        let (name, val, next) = iptables_pair(s, i)?;
        f(name, val);
        i = next;
        if i < len && s[i] == b' ' {
            i += 1;
        }
    }
    Some(i)
}

/// The pairs of a body that [`v2_iptables`] accepted (`[a, b)` with `b` the end of the
/// line), in order, duplicates included (json-c keeps the first position and the last
/// value; callers apply that).
pub(crate) fn iptables_pairs(
    s: &[u8],
    a: usize,
    b: usize,
    f: impl FnMut((usize, usize), Option<(usize, usize)>),
) {
    let _ = iptables_scan(&s[..b.min(s.len())], a, f);
}

/// A CEF header field up to an unescaped '|'; returns (unescaped value, new offset).
fn cef_hdr_field(s: &[u8], mut i: usize) -> Option<(String, usize)> {
    let len = s.len();
    let mut val = Vec::new();
    while i < len && s[i] != b'|' {
        if s[i] == b'\\' {
            i += 1;
            if at(s, i) != b'\\' && at(s, i) != b'|' {
                return None;
            }
        }
        val.push(at(s, i));
        i += 1;
    }
    if at(s, i) != b'|' {
        return None;
    }
    Some((String::from_utf8_lossy(&val).into_owned(), i + 1))
}

/// CEF extension `name=value ...` where values may contain unescaped spaces.
fn cef_extensions(s: &[u8], mut i: usize, mut out: Option<&mut Map<String, Value>>) -> Option<()> {
    let len = s.len();
    while i < len {
        while i < len && s[i] == b' ' {
            i += 1;
        }
        let name_start = i;
        while i < len && s[i] != b'=' {
            if !(s[i].is_ascii_alphanumeric() || s[i] == b'_' || s[i] == b'.') {
                return None;
            }
            i += 1;
        }
        if i + 1 >= len || s[i] != b'=' {
            return None;
        }
        let name_end = i;
        i += 1;
        let vstart = i;
        // the value ends before the last word preceding the next unescaped '='
        let (mut had_sp, mut in_esc, mut last_word) = (false, false, 0usize);
        while i < len {
            let c = s[i];
            if in_esc {
                if !matches!(c, b'=' | b'\\' | b'r' | b'n') {
                    return None;
                }
                in_esc = false;
            } else if c == b'=' {
                break;
            } else if c == b'\\' {
                in_esc = true;
            } else if c == b' ' {
                had_sp = true;
            } else if had_sp {
                last_word = i;
                had_sp = false;
            }
            i += 1;
        }
        if i < len {
            i = if last_word == 0 { i } else { last_word - 1 };
        }
        let vend = i;
        i += 1;
        if let Some(map) = out.as_deref_mut() {
            let mut v = Vec::with_capacity(vend - vstart);
            let mut k = vstart;
            while k < vend {
                if s[k] == b'\\' {
                    k += 1;
                    v.push(match at(s, k) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        c => c,
                    });
                } else {
                    v.push(s[k]);
                }
                k += 1;
            }
            map.insert(
                span_string(s, name_start, name_end),
                Value::String(String::from_utf8_lossy(&v).into_owned()),
            );
        }
    }
    Some(())
}

/// ArcSight Common Event Format, version 0.
pub(crate) fn cef(s: &[u8], offs: usize) -> Parsed {
    let len = s.len();
    if len < offs + 17 || &s[offs..offs + 6] != b"CEF:0|" {
        return None;
    }
    let mut i = offs + 6;
    let mut hdr = Vec::with_capacity(6);
    for _ in 0..6 {
        let (v, next) = cef_hdr_field(s, i)?;
        hdr.push(v);
        i = next;
    }
    i += 1; // liblognorm skips one more byte (normally the SP before the extensions)
    let mut ext = Map::new();
    cef_extensions(s, i, Some(&mut ext))?;
    let mut obj = Map::new();
    for (k, v) in [
        "DeviceVendor",
        "DeviceProduct",
        "DeviceVersion",
        "SignatureID",
        "Name",
        "Severity",
    ]
    .iter()
    .zip(hdr)
    {
        obj.insert((*k).into(), Value::String(v));
    }
    obj.insert("Extensions".into(), Value::Object(ext));
    Some((len - offs, Out::Value(Box::new(Value::Object(obj)))))
}

/// Checkpoint LEA `name: value; name: value;`.
pub(crate) fn checkpoint_lea(s: &[u8], offs: usize) -> Parsed {
    let len = s.len();
    let mut i = offs;
    let mut found = 0;
    let mut obj = Map::new();
    while i < len {
        while i < len && s[i] == b' ' {
            i += 1;
        }
        if i == len {
            if found == 0 {
                return None;
            }
            break;
        }
        found += 1;
        let name_start = i;
        while i < len && s[i] != b':' {
            i += 1;
        }
        if i + 1 >= len || s[i] != b':' {
            return None;
        }
        let name_end = i;
        i += 1;
        while i < len && s[i] == b' ' {
            i += 1;
        }
        let vstart = i;
        while i < len && s[i] != b';' {
            i += 1;
        }
        if i + 1 > len || s[i] != b';' {
            return None;
        }
        obj.insert(span_string(s, name_start, name_end), str_val(s, vstart, i));
        i += 1;
    }
    if i < offs {
        return None;
    }
    Some((i - offs, Out::Value(Box::new(Value::Object(obj)))))
}
