//! RFC 5424 serializer: the inverse of the parser, used to forward messages and to check the
//! parser by round trip.

use std::fmt::Write;

use chrono::Timelike;

use crate::message::Message;

/// Serializes a message as RFC 5424 (without a trailing newline or octet count).
///
/// Absent fields become NILVALUE `-`; the version is written as 1 when absent (an RFC 3164
/// message converted to 5424); the timestamp keeps its offset and microseconds (`Z` for a zero
/// offset); PARAM-VALUEs get `"`, `\` and `]` escaped. `parse(format_rfc5424(m))` gives back
/// `m` for every message whose fields are valid RFC 5424 (printable, non-empty, not `-`,
/// within the length limits) and whose `msg` does not start with a BOM.
pub fn format_rfc5424(m: &Message<'_>) -> String {
    let mut out = String::with_capacity(64 + m.msg.len());
    let _ = write!(out, "<{}>{} ", m.pri, m.version.unwrap_or(1));
    match &m.timestamp {
        Some(ts) => {
            let offset = ts.offset().local_minus_utc();
            // A leap second carries an extra 1e9 ns; only the remainder is a fraction.
            let fmt = if ts.nanosecond() % 1_000_000_000 == 0 {
                "%Y-%m-%dT%H:%M:%S"
            } else {
                "%Y-%m-%dT%H:%M:%S%.6f"
            };
            let _ = write!(out, "{}", ts.format(fmt));
            if offset == 0 {
                out.push('Z');
            } else {
                let _ = write!(out, "{}", ts.format("%:z"));
            }
        }
        None => out.push('-'),
    }
    for field in [m.hostname, m.app_name, m.proc_id, m.msg_id] {
        out.push(' ');
        match field {
            Some(f) if !f.is_empty() => out.push_str(f),
            _ => out.push('-'),
        }
    }
    out.push(' ');
    if m.structured_data.is_empty() {
        out.push('-');
    }
    for e in &m.structured_data {
        out.push('[');
        out.push_str(e.id);
        for (name, value) in &e.params {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            for c in value.chars() {
                if matches!(c, '"' | '\\' | ']') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        out.push(']');
    }
    if !m.msg.is_empty() {
        out.push(' ');
        out.push_str(m.msg);
    }
    out
}
