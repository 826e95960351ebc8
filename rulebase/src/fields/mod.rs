//! Field parsers: one function per liblognorm field type.
//!
//! Each parser looks at the line (as bytes) from an offset and either declines or
//! reports how many bytes it consumed plus how to build the value. Values are built
//! lazily (`Out::Span`) so a parser that is later backtracked over costs no allocation.
//! The code mirrors liblognorm 2.0.6's `parser.c` closely, quirks included, because the
//! goal is byte-for-byte identical results; where a quirk is surprising it is noted.

pub(crate) mod net;
pub(crate) mod numeric;
pub(crate) mod structured;
pub(crate) mod text;
pub(crate) mod time;

use serde_json::{Map, Value};
use std::borrow::Cow;

/// Index of a node in the parse graph arena.
pub(crate) type NodeId = u32;

/// How a value is rendered (the `format` parameter of several types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fmt {
    String,
    Number,
    TimestampUnix,
    TimestampUnixMs,
}

/// A compiled field parser (one edge of the parse graph).
#[derive(Debug)]
pub(crate) enum Field {
    Literal(Box<[u8]>),
    Repeat {
        parser: NodeId,
        while_cond: NodeId,
        permit_mismatch: bool,
    },
    Custom(usize),
    Rfc3164(Fmt),
    Rfc5424(Fmt),
    Number {
        maxval: i64,
        fmt: Fmt,
    },
    Float(Fmt),
    HexNumber {
        maxval: u64,
        fmt: Fmt,
    },
    KernelTimestamp,
    Whitespace,
    Ipv4,
    Ipv6,
    Word,
    Alpha,
    Rest,
    OpQuotedString,
    QuotedString,
    IsoDate,
    Time24,
    Time12,
    Duration,
    CiscoInterfaceSpec,
    NameValueList,
    Json,
    CeeSyslog,
    Mac48,
    Cef,
    CheckpointLea,
    V2IpTables,
    StringTo(Box<[u8]>),
    CharTo(Box<[u8]>),
    CharSep(Box<[u8]>),
    String(Box<text::StringOpts>),
}

/// Fields collected during a match, in liblognorm's insertion order (deepest first).
pub(crate) type Fields<'g> = Vec<(Key<'g>, Out<'g>)>;

/// A field name from the rulebase with its JSON member prefixes rendered once at compile
/// time, so output needs no escaping pass for it.
#[derive(Debug)]
pub(crate) struct KeyText {
    pub(crate) name: Cow<'static, str>,
    /// json-c style (`, "name": `), for [`crate::jsonc`].
    pub(crate) json: Cow<'static, str>,
    /// serde_json compact style (`"name":`), for [`crate::compact`].
    pub(crate) compact: Cow<'static, str>,
    /// Position of `name` among all names of the compiled rulebase sorted bytewise (equal
    /// names share a rank), so objects can be put in serde_json's key order by comparing
    /// integers; [`UNRANKED`] until [`crate::compact::rank_keys`] has run.
    pub(crate) rank: u32,
}

/// [`KeyText::rank`] of a name that has no rank.
pub(crate) const UNRANKED: u32 = u32::MAX;

impl KeyText {
    pub(crate) fn new(name: &str) -> Self {
        KeyText {
            name: Cow::Owned(name.to_string()),
            json: Cow::Owned(crate::jsonc::key_text(name)),
            compact: Cow::Owned(crate::compact::key_text(name)),
            rank: UNRANKED,
        }
    }
}

// A line's field buffer (16 entries, see `Rulebase::run`) must stay below glibc's
// 1 KiB small-bin limit; see `Key`.
const _: () = assert!(std::mem::size_of::<(Key<'static>, Out<'static>)>() * 16 < 1008);

/// The name of a collected field. Kept to 24 bytes so that a line's field buffer stays
/// a small allocation (a buffer over ~1 KiB makes glibc consolidate its free lists on
/// every line).
#[derive(Debug)]
pub(crate) enum Key<'g> {
    /// A name from the rulebase (field, annotation or built-in key).
    Rule(&'g KeyText),
    /// A name taken from the data (members merged by `.`).
    Owned(Box<str>),
}

impl Key<'_> {
    /// The name's [`KeyText::rank`], if it has one.
    #[inline]
    pub(crate) fn rank(&self) -> Option<u32> {
        match self {
            Key::Rule(k) if k.rank != UNRANKED => Some(k.rank),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn name(&self) -> &str {
        match self {
            Key::Rule(k) => &k.name,
            Key::Owned(n) => n,
        }
    }

    pub(crate) fn into_string(self) -> String {
        match self {
            Key::Owned(n) => n.into(),
            other => other.name().to_string(),
        }
    }
}

/// The value a successful parser produced, built only when the whole rule matched.
///
/// Values stay recipes (spans of the line, a nested field list) until the result is
/// rendered, so neither matching nor liblognorm-style JSON output builds maps.
#[derive(Debug)]
pub(crate) enum Out<'g> {
    /// The input bytes `[start, end)` as a JSON string.
    Span(usize, usize),
    Int(i64),
    /// A float; the original text is kept so output can reproduce it exactly.
    Float(f64),
    /// A `v2-iptables` body `[start, end)`, already validated by the parser; its
    /// `NAME=value` pairs are re-scanned when the value is rendered. `repeat`: some name
    /// may occur twice (json-c then keeps its first position and last value).
    Iptables {
        start: usize,
        end: usize,
        repeat: bool,
    },
    /// The fields of a user-defined type (an object), in liblognorm's insertion order.
    Fields(Fields<'g>),
    Null,
    /// A string owned by the compiled rulebase (annotation values).
    Str(&'g str),
    /// Anything else (boxed to keep `Out`, and so each collected field, small).
    Value(Box<Value>),
}

impl Out<'_> {
    pub(crate) fn into_value(self, line: &str) -> Value {
        match self {
            Out::Span(a, b) => Value::String(span_str(line, a, b).into_owned()),
            Out::Int(i) => Value::from(i),
            Out::Float(f) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Out::Iptables {
                start: a, end: b, ..
            } => {
                let mut m = Map::new();
                structured::iptables_pairs(line.as_bytes(), a, b, |n, v| {
                    let v = v.map_or(Value::Null, |(va, vb)| {
                        Value::String(span_str(line, va, vb).into_owned())
                    });
                    m.insert(span_str(line, n.0, n.1).into_owned(), v);
                });
                Value::Object(m)
            }
            Out::Fields(f) => Value::Object(fields_to_map(f, line)),
            Out::Null => Value::Null,
            Out::Str(s) => Value::String(s.to_string()),
            Out::Value(v) => *v,
        }
    }
}

/// Build a JSON object from ordered fields (later duplicates replace earlier ones).
pub(crate) fn fields_to_map(fields: Fields<'_>, line: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert(k.into_string(), v.into_value(line));
    }
    m
}

/// The first 8 bytes of `b` as a big-endian integer, zero-padded. Loads without a `memcpy` call, which a variable-length
/// `copy_from_slice` into a word buffer compiles to.
#[inline]
pub(crate) fn load_be(b: &[u8]) -> u64 {
    match b.first_chunk::<8>() {
        Some(w) => u64::from_be_bytes(*w),
        None => b
            .iter()
            .enumerate()
            .fold(0u64, |x, (i, &c)| x | (c as u64) << (56 - 8 * i)),
    }
}

/// Bytes `[a, b)` of the line as text: borrowed (no copy, no UTF-8 re-validation) when
/// the span lies on character boundaries, which all spans of the built-in parsers do
/// except in contrived cases; otherwise lossily converted.
#[inline]
pub(crate) fn span_str(line: &str, a: usize, b: usize) -> Cow<'_, str> {
    match line.get(a..b) {
        Some(t) => Cow::Borrowed(t),
        None => String::from_utf8_lossy(line.as_bytes().get(a..b.min(line.len())).unwrap_or(&[])),
    }
}

/// Bytes `[a, b)` of the line as an owned string (lossy: the line came from a `&str`, but
/// a span can in principle cut through a multi-byte character).
pub(crate) fn span_string(s: &[u8], a: usize, b: usize) -> String {
    let bytes = s.get(a..b.min(s.len())).unwrap_or(&[]);
    match std::str::from_utf8(bytes) {
        Ok(v) => v.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Byte at `i`, or NUL past the end: liblognorm reads its NUL-terminated C string this
/// way, and several parsers rely on it.
#[inline(always)]
pub(crate) fn at(s: &[u8], i: usize) -> u8 {
    match s.get(i) {
        Some(&c) => c,
        None => 0,
    }
}

/// C `isspace` in the C locale.
#[inline(always)]
pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Result of a primitive parser: consumed bytes and value recipe.
pub(crate) type Parsed = Option<(usize, Out<'static>)>;

/// The built-in priority of a type (lower runs first), from liblognorm's parser table.
/// The user `priority` parameter (default 30000) is placed above these 8 bits.
pub(crate) fn base_prio(type_name: &str) -> Option<u8> {
    Some(match type_name {
        "literal"
        | "repeat"
        | "whitespace"
        | "ipv4"
        | "ipv6"
        | "cisco-interface-spec"
        | "json"
        | "cee-syslog"
        | "cef"
        | "checkpoint-lea"
        | "v2-iptables" => 4,
        "date-rfc3164" | "date-rfc5424" | "date-iso" | "time-24hr" | "time-12hr"
        | "name-value-list" => 8,
        "number" | "float" | "hexnumber" | "kernel-timestamp" | "duration" | "mac48" => 16,
        "word" | "alpha" | "string-to" | "char-to" | "char-sep" | "string" => 32,
        "op-quoted-string" | "quoted-string" => 64,
        "rest" => 255,
        _ => return None,
    })
}

fn fmt_param(type_name: &str, v: &Value, allow_ts: bool) -> Result<Fmt, String> {
    match v.as_str() {
        Some("string") => Ok(Fmt::String),
        Some("number") if !allow_ts => Ok(Fmt::Number),
        Some("timestamp-unix") if allow_ts => Ok(Fmt::TimestampUnix),
        Some("timestamp-unix-ms") if allow_ts => Ok(Fmt::TimestampUnixMs),
        _ => Err(format!("invalid value for {type_name}:format {v}")),
    }
}

fn extradata(type_name: &str, params: &Map<String, Value>) -> Result<Box<[u8]>, String> {
    match params.get("extradata") {
        Some(Value::String(s)) => Ok(s.as_bytes().into()),
        Some(other) => Ok(other.to_string().into_bytes().into()),
        None => Err(format!("{type_name} type needs 'extradata' parameter")),
    }
}

fn check_params(
    type_name: &str,
    params: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), String> {
    for k in params.keys() {
        // legacy `%name:type:extra%` syntax passes extradata to every type; liblognorm
        // only warns about it for types that ignore it, so we ignore it too.
        if k == "extradata" {
            continue;
        }
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(k)) {
            return Err(format!("invalid param for {type_name}: {k}"));
        }
    }
    Ok(())
}

/// Build a primitive field from its type name and remaining parameters (the config
/// object minus `type`, `name` and `priority`). `repeat` and `@custom` types are built by
/// the graph, because they own sub-graphs.
pub(crate) fn construct(type_name: &str, params: &Map<String, Value>) -> Result<Field, String> {
    let int_param = |k: &str| -> Result<i64, String> {
        match params.get(k) {
            None => Ok(0),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| format!("param '{k}' must be integer but is: {v}")),
        }
    };
    let fmt = |allow_ts: bool| -> Result<Fmt, String> {
        match params.get("format") {
            None => Ok(Fmt::String),
            Some(v) => fmt_param(type_name, v, allow_ts),
        }
    };
    let none = |f: Field| -> Result<Field, String> {
        check_params(type_name, params, &[])?;
        Ok(f)
    };
    match type_name {
        "literal" => match params.get("text") {
            Some(Value::String(t)) => Ok(Field::Literal(t.as_bytes().into())),
            _ => Err("literal type needs 'text' parameter".into()),
        },
        "date-rfc3164" => {
            check_params(type_name, params, &["format"])?;
            Ok(Field::Rfc3164(fmt(true)?))
        }
        "date-rfc5424" => {
            check_params(type_name, params, &["format"])?;
            Ok(Field::Rfc5424(fmt(true)?))
        }
        "number" => {
            check_params(type_name, params, &["format", "maxval"])?;
            Ok(Field::Number {
                maxval: int_param("maxval")?,
                fmt: fmt(false)?,
            })
        }
        "float" => {
            check_params(type_name, params, &["format"])?;
            Ok(Field::Float(fmt(false)?))
        }
        "hexnumber" => {
            check_params(type_name, params, &["format", "maxval"])?;
            Ok(Field::HexNumber {
                maxval: int_param("maxval")? as u64,
                fmt: fmt(false)?,
            })
        }
        "kernel-timestamp" => none(Field::KernelTimestamp),
        "whitespace" => none(Field::Whitespace),
        "ipv4" => none(Field::Ipv4),
        "ipv6" => none(Field::Ipv6),
        "word" => none(Field::Word),
        "alpha" => none(Field::Alpha),
        "rest" => none(Field::Rest),
        "op-quoted-string" => none(Field::OpQuotedString),
        "quoted-string" => none(Field::QuotedString),
        "date-iso" => none(Field::IsoDate),
        "time-24hr" => none(Field::Time24),
        "time-12hr" => none(Field::Time12),
        "duration" => none(Field::Duration),
        "cisco-interface-spec" => none(Field::CiscoInterfaceSpec),
        "name-value-list" => none(Field::NameValueList),
        "json" => none(Field::Json),
        "cee-syslog" => none(Field::CeeSyslog),
        "mac48" => none(Field::Mac48),
        "cef" => none(Field::Cef),
        "checkpoint-lea" => none(Field::CheckpointLea),
        "v2-iptables" => none(Field::V2IpTables),
        "string-to" => {
            check_params(type_name, params, &["extradata"])?;
            Ok(Field::StringTo(extradata(type_name, params)?))
        }
        "char-to" => {
            check_params(type_name, params, &["extradata"])?;
            Ok(Field::CharTo(extradata(type_name, params)?))
        }
        "char-sep" => {
            check_params(type_name, params, &["extradata"])?;
            Ok(Field::CharSep(extradata("char-separated", params)?))
        }
        "string" => Ok(Field::String(Box::new(text::StringOpts::from_params(
            params,
        )?))),
        other => Err(format!("unknown field type \"{other}\"")),
    }
}

/// Run a primitive parser at `offs`. Graph-level fields (repeat, custom types) are
/// handled by the graph and never reach here.
#[inline]
pub(crate) fn parse(field: &Field, s: &[u8], offs: usize) -> Parsed {
    use Field::*;
    match field {
        Literal(lit) => text::literal(s, offs, lit),
        Word => text::word(s, offs),
        Alpha => text::alpha(s, offs),
        Rest => text::rest(s, offs),
        Whitespace => text::whitespace(s, offs),
        StringTo(t) => text::string_to(s, offs, t),
        CharTo(t) => text::char_to(s, offs, t),
        CharSep(t) => text::char_sep(s, offs, t),
        QuotedString => text::quoted_string(s, offs),
        OpQuotedString => text::op_quoted_string(s, offs),
        String(o) => text::string(s, offs, o),
        Number { maxval, fmt } => numeric::number(s, offs, *maxval, *fmt),
        Float(fmt) => numeric::float(s, offs, *fmt),
        HexNumber { maxval, fmt } => numeric::hexnumber(s, offs, *maxval, *fmt),
        Rfc3164(fmt) => time::rfc3164(s, offs, *fmt),
        Rfc5424(fmt) => time::rfc5424(s, offs, *fmt),
        IsoDate => time::iso_date(s, offs),
        Time24 => time::time24(s, offs),
        Time12 => time::time12(s, offs),
        KernelTimestamp => time::kernel_timestamp(s, offs),
        Duration => time::duration(s, offs),
        Ipv4 => net::ipv4(s, offs).map(|n| (n, Out::Span(offs, offs + n))),
        Ipv6 => net::ipv6(s, offs),
        Mac48 => net::mac48(s, offs),
        CiscoInterfaceSpec => net::cisco_interface_spec(s, offs),
        NameValueList => structured::name_value_list(s, offs),
        Json => structured::json(s, offs),
        CeeSyslog => structured::cee_syslog(s, offs),
        V2IpTables => structured::v2_iptables(s, offs),
        Cef => structured::cef(s, offs),
        CheckpointLea => structured::checkpoint_lea(s, offs),
        Repeat { .. } | Custom(_) => None,
    }
}
