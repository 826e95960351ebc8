//! liblognorm-compatible rulebases compiled into a parse graph.
//!
//! Meniscus turns unstructured log lines (sshd, sudo, firewall drops, access logs...)
//! into structured fields using the rulebase format of rsyslog's mmnormalize /
//! liblognorm, so existing rulebases work unchanged:
//!
//! ```text
//! version=2
//! type=@port:%port:number%
//! rule=ssh,auth:Accepted %method:word% for %user:word% from %ip:ipv4% port %.:@port% ssh2
//! annotate=auth:+category="authentication"
//! ```
//!
//! ```
//! use meniscus_rulebase::Rulebase;
//! let rb = Rulebase::parse_str(
//!     "version=2\nrule=ssh:Accepted %method:word% for %user:word% from %ip:ipv4% port %port:number% ssh2\n",
//!     "example.rb",
//! ).unwrap();
//! let n = rb.normalize("Accepted publickey for alice from 10.0.0.5 port 50022 ssh2");
//! assert!(n.matched);
//! assert_eq!(n.fields["user"], "alice");
//! assert_eq!(n.tags, vec!["ssh".to_string()]);
//! let miss = rb.normalize("something else");
//! assert_eq!(miss.fields["originalmsg"], "something else");
//! ```
//!
//! # Supported syntax
//!
//! * `version=2` rulebases: `rule=tags:sample`, `type=@name:sample` user-defined types,
//!   `annotate=tag:+field="value"`, `include=file`, `prefix=`/`extendprefix=`, comments
//!   (`#` at the start of a line) and rules continued over several lines inside a field.
//! * Field descriptions `%name:type%`, `%name:type:extradata%` (the v1 syntax),
//!   `%name:type{"param":...}%`, `%{"name":...,"type":...}%` and `%[ ... ]%` sequences;
//!   `-` as the name discards the value, `.` merges an object value into the event.
//! * Field types: literal, word, alpha, string, string-to, char-to, char-sep, rest,
//!   quoted-string, op-quoted-string, number, float, hexnumber, whitespace,
//!   date-rfc3164, date-rfc5424, date-iso, time-24hr, time-12hr, kernel-timestamp,
//!   duration, ipv4, ipv6, mac48, cisco-interface-spec, name-value-list, json,
//!   cee-syslog, v2-iptables, cef, checkpoint-lea, alternative, repeat and `@user` types.
//!
//! # Matching semantics
//!
//! Rules compile into one shared-prefix graph (liblognorm's "pdag"): identical parsers
//! at the same position are shared, literal runs are compacted, and at each node edges
//! are tried in priority order (liblognorm's per-type priorities, e.g. literal/ipv4 4,
//! number 16, word 32, rest 255, refined by a `priority` parameter) with backtracking.
//! The **first** path that reaches the end of a rule wins; it is not a longest-match
//! search. A line that matches nothing yields `originalmsg` and `unparsed-data` (the
//! text after the furthest point any parser reached), exactly like liblognorm.
//!
//! # Differences from liblognorm 2.0.6 (the version the tests compare against)
//!
//! The behaviour was checked field type by field type against the real `lognormalizer`
//! (see `tests/differential.rs`); the parsers reproduce liblognorm's quirks on purpose
//! (for example `quoted-string` keeps its quotes, `hexnumber` needs whitespace after it,
//! a one-character `string-to` terminator never matches, a custom type ends at the
//! furthest offset reached inside it). Known, deliberate differences:
//!
//! * **Errors are fatal.** liblognorm prints an error for a bad rule and skips it;
//!   [`Rulebase::parse_str`]/[`Rulebase::load`] return a [`RulebaseError`] with file, line
//!   and column instead, including for unknown parameters of a field type.
//! * **`include=` paths** are resolved relative to the including file (liblognorm
//!   uses the process's working directory).
//! * **v1 rulebases** (no `version=2` first line) are compiled by the same v2 engine.
//!   liblognorm 2.0.6 still runs its old v1 engine for them, whose matching order
//!   differs (literals before fields, different `unparsed-data`), so results for
//!   overlapping v1 rules may differ; single-path rules give the same fields.
//! * **JSON parsing** for `json`/`cee-syslog` uses standard JSON (serde_json); json-c
//!   additionally accepts some non-standard input (single quotes, comments, `NaN`) and
//!   limits nesting to 32 levels.
//! * Parser configurations are compared structurally when merging rule prefixes
//!   (liblognorm compares their JSON text, so it does not merge `{"a":1,"b":2}` with
//!   `{"b":2,"a":1}`); this only changes graph shape, not results, except for
//!   `unparsed-data` in contrived cases.
//! * `date-rfc3164` with a `timestamp-unix` format assumes the current UTC year, as
//!   liblognorm does, so such values change with the calendar.
//!
//! # Performance
//!
//! Matching records values as recipes (spans of the line, a validated `v2-iptables`
//! body, a user type's nested field list) and builds nothing until a rule has matched.
//! [`Rulebase::normalize_to_json`] then writes JSON straight from the line (field names
//! are escaped once at compile time, values with a word-at-a-time escaper) in
//! liblognorm's member order, so for the built-in rulebases its text is byte-identical
//! to `lognormalizer`'s; [`Rulebase::normalize`] builds the `serde_json::Map` directly.
//! [`Rulebase::normalize_json_into`], the path the Meniscus pipeline stores, writes the
//! text `serde_json` would print for that map (members sorted, serde_json's escaping)
//! straight from the recipes too; members are sorted on the stack by ranks computed at
//! compile time for the rulebase's field names. `bench/normalizer/run.sh` measures the CLI and both API paths
//! against `lognormalizer` (results in `bench/results/normalizer.txt`).

mod builtin;
mod compact;
pub mod coverage;
mod error;
mod fields;
mod graph;
mod parser;

pub use error::RulebaseError;

use graph::{set_field, Fields, Matcher};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::path::Path;

/// A compiled rulebase. Cheap to share between threads (`Send + Sync`, immutable).
pub struct Rulebase {
    c: parser::Compiled,
    source: String,
}

/// The result of normalizing one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// The extracted fields (plus annotations); for an unmatched line, `originalmsg`
    /// and `unparsed-data`.
    pub fields: Map<String, Value>,
    /// Tags of the matching rule (liblognorm's `event.tags`).
    pub tags: Vec<String>,
    /// Whether a rule matched.
    pub matched: bool,
}

/// What [`Rulebase::normalize_json_into`] reports besides the JSON text it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonNormalized<'r> {
    /// Whether a rule matched.
    pub matched: bool,
    /// Tags of the matching rule (empty when none matched), borrowed from the rulebase.
    pub tags: &'r [String],
}

/// Append `s` to `out` as a JSON string literal, escaped exactly as serde_json escapes it
/// (`"`, `\` and control characters; `/` and non-ASCII text unchanged), so callers can
/// write JSON around [`Rulebase::normalize_json_into`]'s output, such as a tags array,
/// without allocating.
pub fn push_json_string(out: &mut String, s: &str) {
    compact::string(out, s);
}

/// Ordered result, as liblognorm builds it (used for liblognorm-identical output).
struct Raw<'g> {
    fields: Fields<'g>,
    tags: Option<&'g [String]>,
    matched: bool,
}

impl Rulebase {
    /// Compile rulebase text. `source_name` is used in error messages; relative
    /// `include=` paths are resolved against the current directory.
    pub fn parse_str(text: &str, source_name: &str) -> Result<Rulebase, RulebaseError> {
        let mut l = parser::Loader::new();
        l.load_text(text, source_name, None)?;
        Ok(Rulebase {
            c: l.finish(),
            source: source_name.to_string(),
        })
    }

    /// Load and compile a rulebase file; `include=` paths are resolved relative to the
    /// including file.
    pub fn load(path: &Path) -> Result<Rulebase, RulebaseError> {
        let mut l = parser::Loader::new();
        l.load_file(path)?;
        Ok(Rulebase {
            c: l.finish(),
            source: path.display().to_string(),
        })
    }

    /// One of the rulebases shipped with Meniscus (see [`Rulebase::builtin_names`]).
    pub fn builtin(name: &str) -> Option<Rulebase> {
        let text = builtin::text(name)?;
        // the built-in texts are tested; a failure here would be a build defect
        Rulebase::parse_str(text, &format!("builtin:{name}")).ok()
    }

    /// Names of the built-in rulebases.
    pub fn builtin_names() -> &'static [&'static str] {
        builtin::NAMES
    }

    /// The source text of a built-in rulebase (for documentation and `include`-style reuse).
    pub fn builtin_text(name: &str) -> Option<&'static str> {
        builtin::text(name)
    }

    /// Where this rulebase came from (file path, source name or `builtin:NAME`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Rulebase format version: 2 for `version=2` files, 1 for legacy files.
    pub fn version(&self) -> u8 {
        self.c.version
    }

    fn run<'g>(&'g self, line: &str) -> Raw<'g> {
        let s = line.as_bytes();
        let mut m = Matcher {
            g: &self.c.graph,
            line,
            s,
            parsed_to: 0,
        };
        // one allocation per line covers the common rules (the built-ins have <= 16 fields)
        let mut fields = Fields::with_capacity(16);
        let end = m.rec(self.c.root, 0, false, &mut fields);
        match end {
            Some(end) => {
                let tags = self.c.graph.nodes[end as usize].tags.as_deref();
                for tag in tags.unwrap_or(&[]) {
                    for (k, v) in self
                        .c
                        .annotations
                        .get(tag)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        set_field(&mut fields, fields::Key::Rule(k), fields::Out::Str(v));
                    }
                }
                Raw {
                    fields,
                    tags,
                    matched: true,
                }
            }
            None => {
                fields.clear();
                static ORIGINALMSG: fields::KeyText = fields::KeyText {
                    name: Cow::Borrowed("originalmsg"),
                    json: Cow::Borrowed(", \"originalmsg\": "),
                    compact: Cow::Borrowed("\"originalmsg\":"),
                    rank: fields::UNRANKED,
                };
                static UNPARSED: fields::KeyText = fields::KeyText {
                    name: Cow::Borrowed("unparsed-data"),
                    json: Cow::Borrowed(", \"unparsed-data\": "),
                    compact: Cow::Borrowed("\"unparsed-data\":"),
                    rank: fields::UNRANKED,
                };
                fields.push((
                    fields::Key::Rule(&ORIGINALMSG),
                    fields::Out::Span(0, s.len()),
                ));
                fields.push((
                    fields::Key::Rule(&UNPARSED),
                    fields::Out::Span(m.parsed_to.min(s.len()), s.len()),
                ));
                Raw {
                    fields,
                    tags: None,
                    matched: false,
                }
            }
        }
    }

    /// Normalize one line (without its trailing newline).
    pub fn normalize(&self, line: &str) -> Normalized {
        let raw = self.run(line);
        Normalized {
            fields: fields::fields_to_map(raw.fields, line),
            tags: raw.tags.map(|t| t.to_vec()).unwrap_or_default(),
            matched: raw.matched,
        }
    }

    /// Normalize one line and append its fields to `out` as compact JSON: exactly the text
    /// of `serde_json::to_string(&self.normalize(line).fields)` (members sorted by name,
    /// serde_json's escaping and number formatting, nested objects of `v2-iptables`, user
    /// types, `json`/`cee-syslog` values and annotations included), but written straight
    /// from the line without building the `serde_json::Map`.
    ///
    /// Returns whether a rule matched and that rule's tags, borrowed from the rulebase:
    /// nothing is allocated per line beyond what `out` grows by. This is the path the
    /// Meniscus pipeline stores (`{"PATTERN":` + this text + `}`).
    ///
    /// ```
    /// use meniscus_rulebase::Rulebase;
    /// let rb = Rulebase::parse_str(
    ///     "version=2\nrule=ssh,auth:login %user:word% from %ip:ipv4%\n",
    ///     "x.rb",
    /// ).unwrap();
    /// let line = "login alice from 10.0.0.5";
    /// let mut out = String::new();
    /// let r = rb.normalize_json_into(line, &mut out);
    /// assert!(r.matched);
    /// assert_eq!(r.tags, ["ssh", "auth"]);
    /// assert_eq!(out, r#"{"ip":"10.0.0.5","user":"alice"}"#);
    /// assert_eq!(out, serde_json::to_string(&rb.normalize(line).fields).unwrap());
    /// ```
    ///
    /// If serde_json's `preserve_order` feature is enabled in the build (its `Map` then
    /// keeps insertion order), this builds the map and serializes it, so the text still
    /// equals `normalize()`'s serialization, only without the speed-up.
    pub fn normalize_json_into<'r>(&'r self, line: &str, out: &mut String) -> JsonNormalized<'r> {
        let raw = self.run(line);
        let result = JsonNormalized {
            matched: raw.matched,
            tags: raw.tags.unwrap_or(&[]),
        };
        if compact::map_is_sorted() {
            compact::object(out, &raw.fields, line);
        } else {
            let map = fields::fields_to_map(raw.fields, line);
            out.push_str(&Value::Object(map).to_string());
        }
        result
    }

    /// Normalize one line and append liblognorm's JSON rendering of the result to
    /// `out` (json-c "spaced" style, fields in liblognorm's order), optionally with
    /// `event.tags` as `lognormalizer -T` prints it. Returns whether a rule matched.
    pub fn normalize_to_json(&self, line: &str, with_tags: bool, out: &mut String) -> bool {
        let raw = self.run(line);
        // event.tags is added after the fields and before annotations
        let n_annot = if raw.matched {
            raw.tags
                .unwrap_or(&[])
                .iter()
                .filter_map(|t| self.c.annotations.get(t))
                .map(Vec::len)
                .sum::<usize>()
        } else {
            0
        };
        let split = raw.fields.len().saturating_sub(n_annot);
        let mut w = jsonc::ObjectWriter::new(out);
        for (k, v) in &raw.fields[..split] {
            w.member(k, v, line);
        }
        if with_tags {
            if let Some(tags) = raw.tags {
                w.key("event.tags");
                jsonc::string_array(w.out(), tags);
            }
        }
        for (k, v) in &raw.fields[split..] {
            w.member(k, v, line);
        }
        w.finish();
        raw.matched
    }
}

/// json-c's `JSON_C_TO_STRING_SPACED` rendering, so output can be diffed with
/// lognormalizer's. Values are written straight from their [`fields::Out`] recipes:
/// spans of the line are escaped into the output without intermediate strings, and
/// `v2-iptables` objects and user-type objects are written member by member without
/// building maps.
pub(crate) mod jsonc {
    use crate::fields::{span_str, structured::iptables_pairs, Key, Out};
    use serde_json::Value;

    /// Writes `{ "k": v, ... }` in json-c's spaced style.
    pub(crate) struct ObjectWriter<'o> {
        out: &'o mut String,
        first: bool,
    }

    impl<'o> ObjectWriter<'o> {
        pub(crate) fn new(out: &'o mut String) -> Self {
            out.push('{');
            ObjectWriter { out, first: true }
        }

        /// Write a member's key; its value must be written next, through [`Self::out`].
        #[inline]
        pub(crate) fn key(&mut self, k: &str) {
            self.out.push_str(if self.first { " " } else { ", " });
            self.first = false;
            string(self.out, k);
            self.out.push_str(": ");
        }

        /// Write a member's key that needs no escaping; its value must follow.
        #[inline]
        pub(crate) fn plain_key(&mut self, k: &str) {
            self.out.push_str(if self.first { " \"" } else { ", \"" });
            self.first = false;
            self.out.push_str(k);
            self.out.push_str("\": ");
        }

        /// Write a member whose key may come pre-rendered (see [`key_text`]).
        #[inline]
        pub(crate) fn member(&mut self, k: &Key<'_>, v: &Out<'_>, line: &str) {
            match k {
                // `, "name": `; the first member drops the comma
                Key::Rule(kt) => {
                    self.out
                        .push_str(if self.first { &kt.json[1..] } else { &kt.json });
                    self.first = false;
                }
                other => self.key(other.name()),
            }
            out_value(self.out, v, line);
        }

        pub(crate) fn out(&mut self) -> &mut String {
            self.out
        }

        pub(crate) fn finish(self) {
            // json-c prints an empty object as "{ }" too
            self.out.push_str(" }");
        }
    }

    /// `, "name": ` for a member key known in advance.
    pub(crate) fn key_text(name: &str) -> String {
        let mut s = String::from(", ");
        string(&mut s, name);
        s.push_str(": ");
        s
    }

    pub(crate) fn string_array(out: &mut String, items: &[String]) {
        out.push('[');
        for (i, x) in items.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            string(out, x);
        }
        out.push_str(" ]");
    }

    /// Render one field value.
    pub(crate) fn out_value(out: &mut String, v: &Out<'_>, line: &str) {
        match v {
            Out::Span(a, b) => string(out, &span_str(line, *a, *b)),
            Out::Int(i) => {
                use std::fmt::Write;
                let _ = write!(out, "{i}");
            }
            Out::Float(f) => value(
                out,
                &serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            ),
            Out::Iptables { start, end, repeat } => iptables(out, line, *start, *end, *repeat),
            Out::Fields(fields) => {
                let mut w = ObjectWriter::new(out);
                for (k, v) in fields {
                    w.member(k, v, line);
                }
                w.finish();
            }
            Out::Null => out.push_str("null"),
            Out::Str(s) => string(out, s),
            Out::Value(v) => value(out, v),
        }
    }

    type Span = (usize, usize);

    /// A `v2-iptables` object, member by member in line order. json-c keeps a repeated
    /// name at its first position with its last value; the parser flagged bodies where a
    /// name may repeat, and only those take the slower general path.
    fn iptables(out: &mut String, line: &str, a: usize, b: usize, repeat: bool) {
        let s = line.as_bytes();
        let mut w = ObjectWriter::new(out);
        let member = |w: &mut ObjectWriter<'_>, name: Span, val: Option<Span>| {
            // iptables names are upper-case ASCII letters: nothing to escape
            w.plain_key(&span_str(line, name.0, name.1));
            match val {
                Some((va, vb)) => string(w.out(), &span_str(line, va, vb)),
                None => w.out().push_str("null"),
            }
        };
        if !repeat {
            iptables_pairs(s, a, b, |name, val| member(&mut w, name, val));
        } else {
            let mut pairs: Vec<(Span, Option<Span>)> = Vec::new();
            iptables_pairs(s, a, b, |name, val| {
                match pairs
                    .iter_mut()
                    .find(|(n, _)| s[n.0..n.1] == s[name.0..name.1])
                {
                    Some(slot) => slot.1 = val,
                    None => pairs.push((name, val)),
                }
            });
            for (name, val) in pairs {
                member(&mut w, name, val);
            }
        }
        w.finish();
    }

    /// Bytes that json-c escapes: control characters, '"', '\\', '/' and DEL.
    const fn table() -> [bool; 256] {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 0x20 {
            t[i] = true;
            i += 1;
        }
        t[b'"' as usize] = true;
        t[b'\\' as usize] = true;
        t[b'/' as usize] = true;
        t[0x7f] = true;
        t
    }
    static NEEDS_ESCAPE: [bool; 256] = table();

    /// Whether any of the 8 bytes in `x` needs escaping (SWAR: exact, no false positives,
    /// because every test below is the standard exact "has zero byte" construction).
    #[inline(always)]
    fn word_needs_escape(x: u64) -> bool {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
        // bytes < 0x20: subtracting 0x20 borrows into the high bit only for them (bytes
        // >= 0x80 are excluded by `!x`)
        let ctl = x.wrapping_sub(LO * 0x20) & !x & HI;
        ctl | has_zero(x ^ (LO * b'"' as u64))
            | has_zero(x ^ (LO * b'\\' as u64))
            | has_zero(x ^ (LO * b'/' as u64))
            | has_zero(x ^ (LO * 0x7f))
            != 0
    }

    pub(crate) fn string(out: &mut String, s: &str) {
        crate::compact::write_escaped(out, s, word_needs_escape, |c| NEEDS_ESCAPE[c as usize]);
    }

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
                    out.push_str(if i == 0 { " " } else { ", " });
                    value(out, x);
                }
                out.push_str(" ]");
            }
            Value::Object(o) => {
                let mut w = ObjectWriter::new(out);
                for (k, x) in o {
                    w.key(k);
                    value(w.out(), x);
                }
                w.finish();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The word-at-a-time escaper agrees with a byte-by-byte reference for every ASCII
    /// byte at every position of a word, and for multi-byte text.
    #[test]
    fn json_string_escaping_matches_reference() {
        fn reference(s: &str) -> String {
            let mut o = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    '/' => o.push_str("\\/"),
                    '\n' => o.push_str("\\n"),
                    '\r' => o.push_str("\\r"),
                    '\t' => o.push_str("\\t"),
                    '\u{8}' => o.push_str("\\b"),
                    '\u{c}' => o.push_str("\\f"),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        o.push_str(&format!("\\u{:04x}", c as u32))
                    }
                    c => o.push(c),
                }
            }
            o.push('"');
            o
        }
        for b in 0u8..0x80 {
            for pos in 0..19 {
                for len in [pos + 1, pos + 3, 20] {
                    let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    s[pos] = b;
                    let s = String::from_utf8(s).expect("ascii");
                    let mut got = String::new();
                    super::jsonc::string(&mut got, &s);
                    assert_eq!(got, reference(&s), "byte {b:#x} at {pos} of {len}");
                }
            }
        }
        for s in [
            "",
            "é/ü\u{7f}\"x",
            "ünïcödé text with / and \\ and \u{1}",
            "a\u{2028}b",
        ] {
            let mut got = String::new();
            super::jsonc::string(&mut got, s);
            assert_eq!(got, reference(s));
        }
    }
}
