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

mod builtin;
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
        Ok(Rulebase { c: l.finish(), source: source_name.to_string() })
    }

    /// Load and compile a rulebase file; `include=` paths are resolved relative to the
    /// including file.
    pub fn load(path: &Path) -> Result<Rulebase, RulebaseError> {
        let mut l = parser::Loader::new();
        l.load_file(path)?;
        Ok(Rulebase { c: l.finish(), source: path.display().to_string() })
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
        let mut m = Matcher { g: &self.c.graph, s, parsed_to: 0 };
        let mut fields = Fields::new();
        let end = m.rec(self.c.root, 0, false, &mut fields);
        match end {
            Some(end) => {
                let tags = self.c.graph.nodes[end as usize].tags.as_deref();
                for tag in tags.unwrap_or(&[]) {
                    for (k, v) in self.c.annotations.get(tag).map(Vec::as_slice).unwrap_or(&[]) {
                        set_field(&mut fields, Cow::Borrowed(k.as_str()), fields::Out::Value(Value::String(v.clone())));
                    }
                }
                Raw { fields, tags, matched: true }
            }
            None => {
                let fields = vec![
                    (Cow::Borrowed("originalmsg"), fields::Out::Span(0, s.len())),
                    (Cow::Borrowed("unparsed-data"), fields::Out::Span(m.parsed_to.min(s.len()), s.len())),
                ];
                Raw { fields, tags: None, matched: false }
            }
        }
    }

    /// Normalize one line (without its trailing newline).
    pub fn normalize(&self, line: &str) -> Normalized {
        let raw = self.run(line);
        Normalized {
            fields: graph::to_map(raw.fields, line.as_bytes()),
            tags: raw.tags.map(|t| t.to_vec()).unwrap_or_default(),
            matched: raw.matched,
        }
    }

    /// Normalize one line and append liblognorm's JSON rendering of the result to
    /// `out` (json-c "spaced" style, fields in liblognorm's order), optionally with
    /// `event.tags` as `lognormalizer -T` prints it. Returns whether a rule matched.
    pub fn normalize_to_json(&self, line: &str, with_tags: bool, out: &mut String) -> bool {
        let raw = self.run(line);
        let s = line.as_bytes();
        out.push('{');
        let mut first = true;
        let mut emit = |out: &mut String, k: &str, v: &fields::Out| {
            out.push_str(if first { " " } else { ", " });
            first = false;
            jsonc::string(out, k);
            out.push_str(": ");
            match v {
                fields::Out::Span(a, b) => match line.get(*a..*b) {
                    Some(t) => jsonc::string(out, t),
                    None => jsonc::string(out, &fields::span_str(s, *a, *b)),
                },
                fields::Out::Value(v) => jsonc::value(out, v),
                fields::Out::Int(i) => out.push_str(&i.to_string()),
                other @ fields::Out::Float(_) => {
                    if let Some(f) = other.as_f64() {
                        jsonc::value(out, &serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
                    }
                }
            }
        };
        // event.tags is added after the fields and before annotations
        let n_annot = if raw.matched {
            raw.tags.unwrap_or(&[]).iter().filter_map(|t| self.c.annotations.get(t)).map(Vec::len).sum::<usize>()
        } else {
            0
        };
        let split = raw.fields.len().saturating_sub(n_annot);
        for (k, v) in &raw.fields[..split] {
            emit(out, k, v);
        }
        if with_tags {
            if let Some(tags) = raw.tags {
                let arr = Value::Array(tags.iter().map(|t| Value::String(t.clone())).collect());
                emit(out, "event.tags", &fields::Out::Value(arr));
            }
        }
        for (k, v) in &raw.fields[split..] {
            emit(out, k, v);
        }
        out.push_str(if first { " }" } else { " }" });
        raw.matched
    }
}

/// json-c's `JSON_C_TO_STRING_SPACED` rendering, so output can be diffed with
/// lognormalizer's.
mod jsonc {
    use serde_json::Value;

    pub(crate) fn string(out: &mut String, s: &str) {
        out.push('"');
        // fast path: copy runs that need no escaping in one go
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
        let b = s.as_bytes();
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            if NEEDS_ESCAPE[c as usize] {
                out.push_str(&s[start..i]);
                escape_char(out, c as char);
                start = i + 1;
            }
        }
        out.push_str(&s[start..]);
        out.push('"');
    }

    fn escape_char(out: &mut String, c: char) {
        {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' => out.push_str("\\/"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }

    pub(crate) fn value(out: &mut String, v: &Value) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&n.to_string()),
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
                out.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    out.push_str(if i == 0 { " " } else { ", " });
                    string(out, k);
                    out.push_str(": ");
                    value(out, x);
                }
                out.push_str(" }");
            }
        }
    }
}
