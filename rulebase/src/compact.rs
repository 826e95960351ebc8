//! serde_json's compact rendering of a result, written straight from the [`Out`] recipes.
//!
//! [`Rulebase::normalize_json_into`](crate::Rulebase::normalize_json_into) promises the
//! exact text of `serde_json::to_string(&normalize(line).fields)` without building the
//! `serde_json::Map`. That text is defined by three things, all reproduced here:
//!
//! * **Member order.** serde_json's `Map` is a `BTreeMap<String, Value>` (unless the
//!   `preserve_order` feature is on, see [`map_is_sorted`]): members come out sorted by
//!   the bytes of their names, and a name inserted twice keeps its last value. Objects are
//!   sorted here through a small index array on the stack; names from the rulebase carry
//!   a precomputed rank ([`rank_keys`]), so for them sorting compares integers, and
//!   `v2-iptables` names compare by their first 8 bytes as one integer.
//! * **String escaping.** `"`, `\` and the control characters below 0x20 only (`\b`, `\t`,
//!   `\n`, `\f`, `\r`, else `\u00xx` with lower-case hex); `/` and DEL stay as they are
//!   (json-c, and so [`crate::jsonc`], escapes both).
//! * **Numbers.** Integers in decimal, floats as serde_json's `Number` displays them (the
//!   same shortest round-trip formatter its serializer uses), non-finite floats as `null`.
//!
//! No whitespace anywhere: `{"a":"x","b":{"c":null}}`.

use crate::fields::{load_be, span_str, structured::iptables_pairs, Key, KeyText, Out};
use crate::graph::Graph;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Whether serde_json's `Map` iterates (and so serializes) its keys sorted, as the default
/// `BTreeMap` does. With serde_json's `preserve_order` feature, which any crate in a build
/// can switch on for everyone, it keeps insertion order instead; callers then fall back to
/// building the map, so the text stays identical either way.
pub(crate) fn map_is_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = serde_json::Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().next().map(String::as_str) == Some("a")
    })
}

/// `"name":` for a member key known in advance (field names of the rulebase).
pub(crate) fn key_text(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 3);
    string(&mut s, name);
    s.push(':');
    s
}

/// Give every field and annotation name of a compiled rulebase its [`KeyText::rank`]: its
/// position among all of the rulebase's names sorted bytewise, equal names sharing one.
pub(crate) fn rank_keys(
    graph: &mut Graph,
    annotations: &mut HashMap<String, Vec<(KeyText, String)>>,
) {
    let mut names: Vec<String> = graph
        .nodes
        .iter()
        .flat_map(|n| n.edges.iter().filter_map(|e| e.name.as_ref()))
        .chain(annotations.values().flatten().map(|(k, _)| k))
        .map(|k| k.name.to_string())
        .collect();
    names.sort_unstable();
    names.dedup();
    let rank = |k: &mut KeyText| {
        k.rank = match names.binary_search_by(|n| n.as_str().cmp(&k.name)) {
            Ok(r) => u32::try_from(r).unwrap_or(crate::fields::UNRANKED),
            Err(_) => crate::fields::UNRANKED,
        };
    };
    for e in graph.nodes.iter_mut().flat_map(|n| n.edges.iter_mut()) {
        if let Some(k) = e.name.as_mut() {
            rank(k);
        }
    }
    for (k, _) in annotations.values_mut().flatten() {
        rank(k);
    }
}

/// Sort keys up to this many are sorted on the stack.
const STACK_KEYS: usize = 32;

/// Sorts `keys` and calls `emit` with the low 32 bits (the index) of each key, skipping a
/// key whose high 32 bits (the name's rank) equal the next key's: serde_json's `Map` keeps
/// the last value inserted under a name.
#[inline]
fn emit_ranked(keys: &mut [u64], mut emit: impl FnMut(usize)) {
    keys.sort_unstable();
    for (pos, &k) in keys.iter().enumerate() {
        if keys.get(pos + 1).is_some_and(|&next| next >> 32 == k >> 32) {
            continue;
        }
        emit((k & 0xffff_ffff) as usize);
    }
}

/// Calls `emit` with the indices `0..n` in the order serde_json's sorted `Map` would hold
/// them: by name (bytewise), and for a name that occurs more than once only its last
/// occurrence (a later `insert` replaces the value).
fn in_key_order<'a>(n: usize, name: impl Fn(usize) -> &'a str, mut emit: impl FnMut(usize)) {
    let mut emit_sorted = |idx: &mut [usize]| {
        // ties broken by position, so equal names stay in insertion order
        idx.sort_unstable_by(|&a, &b| name(a).cmp(name(b)).then(a.cmp(&b)));
        for (pos, &i) in idx.iter().enumerate() {
            match idx.get(pos + 1) {
                Some(&next) if name(next) == name(i) => continue,
                _ => emit(i),
            }
        }
    };
    if n <= STACK_KEYS {
        let mut idx = [0usize; STACK_KEYS];
        for (k, slot) in idx[..n].iter_mut().enumerate() {
            *slot = k;
        }
        emit_sorted(&mut idx[..n]);
    } else {
        let mut idx: Vec<usize> = (0..n).collect();
        emit_sorted(&mut idx);
    }
}

/// Render collected fields as serde_json renders the `Map` that
/// [`fields_to_map`](crate::fields::fields_to_map) builds from them.
pub(crate) fn object(out: &mut String, fields: &[(Key<'_>, Out<'_>)], line: &str) {
    out.push('{');
    let mut first = true;
    let member = |i: usize| {
        let (k, v) = &fields[i];
        if !first {
            out.push(',');
        }
        first = false;
        match k {
            Key::Rule(kt) => out.push_str(&kt.compact),
            Key::Owned(name) => {
                string(out, name);
                out.push(':');
            }
        }
        out_value(out, v, line);
    };
    // names of the rulebase (nearly always all of them) sort by rank and position, packed
    // into one integer; names from the data (`.` merges) by their text
    let n = fields.len();
    let mut keys = [0u64; STACK_KEYS];
    let ranked = n <= STACK_KEYS
        && fields
            .iter()
            .zip(&mut keys)
            .enumerate()
            .all(|(i, ((k, _), slot))| {
                k.rank()
                    .map(|r| *slot = (r as u64) << 32 | i as u64)
                    .is_some()
            });
    if ranked {
        emit_ranked(&mut keys[..n], member);
    } else {
        in_key_order(n, |i| fields[i].0.name(), member);
    }
    out.push('}');
}

/// Render one field value as serde_json renders `Out::into_value`.
pub(crate) fn out_value(out: &mut String, v: &Out<'_>, line: &str) {
    match v {
        Out::Span(a, b) => string(out, &span_str(line, *a, *b)),
        Out::Int(i) => {
            use std::fmt::Write;
            let _ = write!(out, "{i}");
        }
        Out::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => {
                use std::fmt::Write;
                let _ = write!(out, "{n}");
            }
            None => out.push_str("null"),
        },
        Out::Iptables { start, end, .. } => iptables(out, line, *start, *end),
        Out::Fields(fields) => object(out, fields, line),
        Out::Null => out.push_str("null"),
        Out::Str(s) => string(out, s),
        Out::Value(v) => value(out, v),
    }
}

type Span = (usize, usize);

/// Pairs of a `v2-iptables` body handled on the stack (a kernel log line has about 20).
const STACK_PAIRS: usize = 32;

/// A `v2-iptables` object: names sorted, a repeated name with its last value. Names are
/// upper-case ASCII (the parser checked), so they need no escaping and compare as bytes.
fn iptables(out: &mut String, line: &str, a: usize, b: usize) {
    let s = line.as_bytes();
    let mut buf: [(Span, Option<Span>); STACK_PAIRS] = [((0, 0), None); STACK_PAIRS];
    // Sort keys: a name's first 8 bytes as a big-endian integer (zero-padded; names hold
    // no zero bytes, so a name sorts before its extensions, as bytewise) above its
    // position. Exact while no name is longer than 8 bytes, as in kernel log lines.
    let mut keys = [0u128; STACK_PAIRS];
    let (mut n, mut long) = (0, false);
    iptables_pairs(s, a, b, |name, val| {
        if let (Some(slot), Some(key)) = (buf.get_mut(n), keys.get_mut(n)) {
            *slot = (name, val);
            *key = (load_be(&s[name.0..name.1]) as u128) << 64 | n as u128;
            long |= name.1 - name.0 > 8;
        }
        n += 1;
    });
    if n <= STACK_PAIRS && !long {
        let keys = &mut keys[..n];
        keys.sort_unstable();
        out.push('{');
        let mut first = true;
        for (pos, &k) in keys.iter().enumerate() {
            // equal names: only the last occurrence (highest position) counts
            if keys.get(pos + 1).is_some_and(|&next| next >> 64 == k >> 64) {
                continue;
            }
            let (name, val) = buf[(k & 0xffff_ffff) as usize];
            iptables_member(out, line, &mut first, name, val);
        }
        out.push('}');
    } else if n <= STACK_PAIRS {
        iptables_sorted(out, line, &mut buf[..n]);
    } else {
        let mut pairs = Vec::with_capacity(n);
        iptables_pairs(s, a, b, |name, val| pairs.push((name, val)));
        iptables_sorted(out, line, &mut pairs);
    }
}

/// The general case of [`iptables`]: names compared as byte strings.
fn iptables_sorted(out: &mut String, line: &str, pairs: &mut [(Span, Option<Span>)]) {
    out.push('{');
    let s = line.as_bytes();
    let name = |p: &(Span, Option<Span>)| &s[p.0 .0..p.0 .1];
    // ties broken by position (a name's start offset), so the last occurrence sorts last
    pairs.sort_unstable_by(|x, y| name(x).cmp(name(y)).then(x.0 .0.cmp(&y.0 .0)));
    let mut first = true;
    for (pos, p) in pairs.iter().enumerate() {
        if pairs.get(pos + 1).is_some_and(|next| name(next) == name(p)) {
            continue;
        }
        iptables_member(out, line, &mut first, p.0, p.1);
    }
    out.push('}');
}

/// One `"NAME":value` member of a `v2-iptables` object.
#[inline]
fn iptables_member(out: &mut String, line: &str, first: &mut bool, name: Span, val: Option<Span>) {
    out.push_str(if std::mem::take(first) { "\"" } else { ",\"" });
    out.push_str(&span_str(line, name.0, name.1));
    out.push_str("\":");
    match val {
        Some((va, vb)) => string(out, &span_str(line, va, vb)),
        None => out.push_str("null"),
    }
}

/// serde_json's compact rendering of a value (objects in the `Map`'s own order, which is
/// the order serde_json serializes them in).
pub(crate) fn value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            use std::fmt::Write;
            let _ = write!(out, "{n}");
        }
        Value::String(s) => string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, x);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, k);
                out.push(':');
                value(out, x);
            }
            out.push('}');
        }
    }
}

/// Whether any of the 8 bytes in `x` is one serde_json escapes: below 0x20, `"` or `\`
/// (SWAR; exact, see [`crate::jsonc`]'s escaper for the construction).
#[inline(always)]
fn word_needs_escape(x: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let ctl = x.wrapping_sub(LO * 0x20) & !x & HI;
    ctl | has_zero(x ^ (LO * b'"' as u64)) | has_zero(x ^ (LO * b'\\' as u64)) != 0
}

/// `s` as a JSON string literal, escaped exactly as serde_json escapes it.
pub(crate) fn string(out: &mut String, s: &str) {
    write_escaped(out, s, word_needs_escape, |c| {
        c < 0x20 || c == b'"' || c == b'\\'
    });
}

/// `s` as a JSON string literal, escaping the bytes `byte_needs_escape` names, for both JSON
/// dialects written here (serde_json's, above, and json-c's in [`crate::jsonc`]). Runs that
/// need no escaping are copied in one go, testing 8 bytes at a time with `word_needs_escape`,
/// which must be exact for the same set of bytes.
#[inline(always)]
pub(crate) fn write_escaped(
    out: &mut String,
    s: &str,
    word_needs_escape: impl Fn(u64) -> bool,
    byte_needs_escape: impl Fn(u8) -> bool,
) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push('"');
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let end = (i + 8).min(b.len());
        let w = match b[i..].first_chunk::<8>() {
            Some(w) => u64::from_le_bytes(*w),
            // a partial last word, padded with 'a' (needs no escaping); built with shifts,
            // as a short copy into a buffer would be a memcpy call
            None => b[i..]
                .iter()
                .enumerate()
                .fold(u64::from_le_bytes([b'a'; 8]), |x, (k, &c)| {
                    (x & !(0xff << (8 * k))) | (c as u64) << (8 * k)
                }),
        };
        if word_needs_escape(w) {
            for (j, &c) in b.iter().enumerate().take(end).skip(i) {
                if byte_needs_escape(c) {
                    out.push_str(&s[start..j]);
                    escape_byte(out, c);
                    start = j + 1;
                }
            }
        }
        i = end;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The escape of one byte that needs one, in either dialect (`/` only json-c escapes).
fn escape_byte(out: &mut String, c: u8) {
    match c {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        b'/' => out.push_str("\\/"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        c => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(c >> 4) as usize] as char);
            out.push(HEX[(c & 15) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every ASCII byte at every position of a word, and multi-byte text, escapes as
    /// serde_json escapes it.
    #[test]
    fn string_escaping_matches_serde_json() {
        for b in 0u8..0x80 {
            for pos in 0..19 {
                for len in [pos + 1, pos + 3, 20] {
                    let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    s[pos] = b;
                    let s = String::from_utf8(s).expect("ascii");
                    let mut got = String::new();
                    super::string(&mut got, &s);
                    assert_eq!(got, serde_json::to_string(&s).expect("string"));
                }
            }
        }
        for s in [
            "",
            "é/ü\u{7f}\"x",
            "ünïcödé text with / and \\ and \u{1}\u{1f}",
            "a\u{2028}b\u{0}",
        ] {
            let mut got = String::new();
            super::string(&mut got, s);
            assert_eq!(got, serde_json::to_string(s).expect("string"));
        }
    }

    #[test]
    fn values_render_as_serde_json() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"z":[1,-2,3.5,1e300,0.1,null,true,false,"x\u0001/"],"a":{"b":{},"c":[]},"":""}"#,
        )
        .expect("json");
        let mut got = String::new();
        super::value(&mut got, &v);
        assert_eq!(got, serde_json::to_string(&v).expect("value"));
        for f in [
            0.0,
            -0.0,
            1.5,
            1e21,
            1e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
            123456.789,
        ] {
            let mut got = String::new();
            super::out_value(&mut got, &crate::fields::Out::Float(f), "");
            let want = serde_json::to_string(
                &serde_json::Number::from_f64(f)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
            )
            .expect("f");
            assert_eq!(got, want, "{f}");
        }
        for f in [f64::NAN, f64::INFINITY] {
            let mut got = String::new();
            super::out_value(&mut got, &crate::fields::Out::Float(f), "");
            assert_eq!(got, "null");
        }
    }
}
