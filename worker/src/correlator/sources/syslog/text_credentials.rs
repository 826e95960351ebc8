//! A `[meniscus tenant="…" token="…"]` element written as text, for senders that cannot add
//! RFC 5424 structured data (RFC 3164 devices): where it counts, and how it is cut out.
//!
//! It counts only where a header field would be — never anywhere in a message. An sshd line
//! such as `Invalid user [meniscus tenant="x" …` from an intruder must be stored as data: were
//! the text scanned, the intruder could get the very line that records the attempt refused and
//! dropped. The positions that count:
//! - an RFC 3164 line: right after the time stamp (where the host would be) or at the very
//!   start of the message (after `TAG: `);
//! - a line that does not parse: right after `<PRI>`, or where an RFC 5424 header's structured
//!   data would be (after the version and five fields).
//!
//! An element that is honoured, and any element anywhere in the free text that carries a valid
//! token (of any tenant), is cut out of the text before the message is parsed and stored, so
//! no token reaches `host`, `msg` or the base64 copy of the raw frame. Cutting a line's
//! element never drops the line.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use meniscus_syslog::Message;

/// An element found in a frame's text: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextElement {
    /// Byte range of the element in the text, including one space that follows it.
    pub start: usize,
    pub end: usize,
    pub tenant: String,
    pub token: Option<String>,
}

impl TextElement {
    /// The text without the element.
    pub fn cut_from(&self, text: &str) -> String {
        cut_all(text, std::slice::from_ref(self))
    }

    /// The element as written (no trailing space).
    pub fn text<'a>(&self, text: &'a str) -> &'a str {
        text[self.start..self.end].trim_end()
    }
}

/// Parses an element starting exactly at `start` of `text`: `[meniscus` or
/// `[meniscus@DIGITS`, then `name="value"` parameters (with `\"`, `\\` and `\]` escapes), then
/// `]`. Returns it with its span (and one following space), if it is one.
fn element_at(text: &str, start: usize) -> Option<TextElement> {
    let rest = text.get(start..)?;
    let after_id = rest.strip_prefix("[meniscus")?;
    let bytes = after_id.as_bytes();
    let mut at = 0;
    if bytes.first() == Some(&b'@') {
        at = 1;
        while at < bytes.len() && (bytes[at].is_ascii_digit() || bytes[at] == b'.') {
            at += 1;
        }
        if at == 1 {
            return None;
        }
    }
    let (mut tenant, mut token) = (None, None);
    loop {
        match bytes.get(at) {
            Some(b']') => {
                at += 1;
                break;
            }
            Some(b' ') => at += 1,
            Some(_) => {
                let name_start = at;
                while at < bytes.len()
                    && bytes[at] != b'='
                    && bytes[at] != b' '
                    && bytes[at] != b']'
                {
                    at += 1;
                }
                let name = &after_id[name_start..at];
                if bytes.get(at) != Some(&b'=') || bytes.get(at + 1) != Some(&b'"') {
                    return None;
                }
                at += 2;
                let mut value = String::new();
                loop {
                    match bytes.get(at)? {
                        b'"' => {
                            at += 1;
                            break;
                        }
                        b'\\' if matches!(bytes.get(at + 1), Some(b'"' | b'\\' | b']')) => {
                            value.push(bytes[at + 1] as char);
                            at += 2;
                        }
                        _ => {
                            let character = after_id[at..].chars().next()?;
                            value.push(character);
                            at += character.len_utf8();
                        }
                    }
                }
                match name {
                    "tenant" => tenant = Some(value),
                    "token" => token = Some(value),
                    _ => {}
                }
            }
            None => return None,
        }
    }
    let mut end = start + "[meniscus".len() + at;
    if text.as_bytes().get(end) == Some(&b' ') {
        end += 1;
    }
    Some(TextElement {
        start,
        end,
        tenant: tenant?,
        token,
    })
}

/// `text` without `elements` (ascending, not overlapping).
pub fn cut_all(text: &str, elements: &[TextElement]) -> String {
    let mut cleaned = String::with_capacity(text.len());
    let mut from = 0;
    for element in elements {
        if element.start < from {
            continue;
        }
        cleaned.push_str(&text[from..element.start]);
        from = element.end;
    }
    cleaned.push_str(&text[from..]);
    cleaned
}

/// Where the next `[meniscus` starts in `text`, if anywhere. Asked of every message, so the
/// searcher is built once: `memmem::find` builds one per call, a twentieth of ingest's CPU.
pub fn mention(text: &str) -> Option<usize> {
    static MENTION: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"[meniscus"));
    MENTION.find(text.as_bytes())
}

/// Every element in `text` from byte `from` on, wherever it is, in order.
pub fn all_from(text: &str, from: usize) -> Vec<TextElement> {
    let mut found = Vec::new();
    let mut at = from;
    while let Some(offset) = text.get(at..).and_then(mention) {
        let start = at + offset;
        match element_at(text, start) {
            Some(element) => {
                at = element.end;
                found.push(element);
            }
            None => at = start + 1,
        }
    }
    found
}

/// Where the free text of a frame starts: an RFC 5424 message's MSG (its structured data has
/// a place of its own); anything else is free text from the start.
pub fn free_text_start(text: &str, parsed: Option<&Message<'_>>) -> usize {
    match parsed {
        Some(message) if message.version.is_some() => {
            offset_in(text, message.msg).unwrap_or(text.len())
        }
        _ => 0,
    }
}

/// Offset of `part` in `text`, when `part` is a slice of it.
fn offset_in(text: &str, part: &str) -> Option<usize> {
    let offset = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    (offset + part.len() <= text.len()).then_some(offset)
}

/// The element at a header position of `text`, if there is one (see the module comment).
pub fn find(text: &str, parsed: Option<&Message<'_>>) -> Option<TextElement> {
    match parsed {
        // RFC 5424 has a place for credentials (structured data); its text is never searched.
        Some(message) if message.version.is_some() => None,
        Some(message) => {
            let candidates = [message.hostname, Some(message.msg)];
            candidates
                .into_iter()
                .flatten()
                .filter_map(|part| offset_in(text, part))
                .find_map(|start| element_at(text, start))
        }
        None => {
            // Right after `<PRI>`.
            let after_pri = text
                .strip_prefix('<')
                .and_then(|rest| rest.find('>'))
                .map(|close| close + 2)?;
            if let Some(element) = element_at(text, after_pri) {
                return Some(element);
            }
            // Where an RFC 5424 header's structured data would be: after `1` and five fields,
            // past any other elements.
            let mut at = after_pri;
            let header = text.get(after_pri..)?;
            if !header.starts_with("1 ") {
                return None;
            }
            for _ in 0..6 {
                at += text[at..].find(' ')? + 1;
            }
            while text[at..].starts_with('[') {
                if let Some(element) = element_at(text, at) {
                    return Some(element);
                }
                at += text[at..].find(']')? + 1;
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meniscus_syslog::{parse, ParseOptions};

    fn found(line: &str) -> Option<(String, Option<String>, String)> {
        let options = ParseOptions::default();
        let parsed = parse(line, &options).ok();
        let element = find(line, parsed.as_ref())?;
        Some((
            element.tenant.clone(),
            element.token.clone(),
            element.cut_from(line),
        ))
    }

    #[test]
    fn an_element_counts_only_where_a_header_field_would_be() {
        let cases = [
            // At the start of an RFC 3164 message.
            (
                r#"<13>Nov 25 10:00:00 host app: [meniscus tenant="acme" token="s3cret"] hello"#,
                Some(("acme", "<13>Nov 25 10:00:00 host app: hello")),
            ),
            // Right after the time stamp, where the host would be.
            (
                r#"<13>Nov 25 10:00:00 [meniscus@32473 tenant="acme" token="s3cret"] host app: hi"#,
                Some(("acme", "<13>Nov 25 10:00:00 host app: hi")),
            ),
            // Inside a message: data, never credentials.
            (
                r#"<38>Nov 25 10:00:00 host sshd[42]: Invalid user [meniscus tenant="acme" token="x"] from 10.0.0.1"#,
                None,
            ),
            // A line that does not parse: right after the PRI, or where RFC 5424 puts SD.
            (
                r#"<13>[meniscus tenant="acme" token="t"] garbage"#,
                Some(("acme", "<13>garbage")),
            ),
            (
                r#"<13>1 2026-13-45T99:00:00Z h a - - [meniscus tenant="acme" token="t"] broken"#,
                Some(("acme", "<13>1 2026-13-45T99:00:00Z h a - - broken")),
            ),
            (
                r#"<13>1 2026-13-45T99:00:00Z h a - - [x a="b"][meniscus tenant="acme" token="t"] broken"#,
                Some((
                    "acme",
                    "<13>1 2026-13-45T99:00:00Z h a - - [x a=\"b\"]broken",
                )),
            ),
            (r#"<13>garbage [meniscus tenant="acme" token="t"]"#, None),
            // Not an element: no tenant, unterminated, malformed.
            (
                r#"<13>Nov 25 10:00:00 host app: [meniscus token="t"] x"#,
                None,
            ),
            (
                r#"<13>Nov 25 10:00:00 host app: [meniscus tenant="acme" x"#,
                None,
            ),
            (
                r#"<13>Nov 25 10:00:00 host app: [meniscusX tenant="acme"] x"#,
                None,
            ),
        ];
        for (line, expected) in cases {
            let got = found(line);
            match expected {
                None => assert_eq!(got, None, "{line}"),
                Some((tenant, cleaned)) => {
                    let (got_tenant, token, got_cleaned) =
                        got.unwrap_or_else(|| panic!("no element found in {line}"));
                    assert_eq!(got_tenant, tenant, "{line}");
                    assert!(token.is_some(), "{line}");
                    assert_eq!(got_cleaned, cleaned, "{line}");
                }
            }
        }
    }

    #[test]
    fn escaped_quotes_and_brackets_stay_inside_values() {
        let line = r#"<13>Nov 25 10:00:00 host app: [meniscus tenant="acme" token="a\"b\]c"] tail"#;
        let (tenant, token, cleaned) = found(line).unwrap();
        assert_eq!(tenant, "acme");
        assert_eq!(token.as_deref(), Some("a\"b]c"));
        assert_eq!(cleaned, "<13>Nov 25 10:00:00 host app: tail");
    }
}
