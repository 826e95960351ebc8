//! Syslog for Meniscus: RFC 6587 framing of TCP streams and parsing of RFC 5424, RFC 3164 and
//! the vendor dialects seen in the wild (Cisco IOS, ASA, PIX, haproxy, rsyslog, syslog-ng).
//!
//! The crate has two halves that the ingest path chains together:
//!
//! * [`Framer`] cuts a byte stream into frames (octet counting, LF/NUL terminated, or an
//!   automatic per-frame choice between the two). UDP needs no framer: one datagram is one
//!   message (RFC 5426).
//! * [`parse`] turns one frame (already converted to UTF-8 by the caller) into a [`Message`]
//!   whose fields borrow from the input. It never panics; it only fails when a line is truly
//!   unusable, so a caller that gets a [`ParseError`] should store the line raw with a
//!   parse-error flag rather than drop it.
//!
//! Modules have one job each: `framing` (RFC 6587), `rfc5424`, `rfc3164`, `timestamp` (RFC 3339
//! and BSD stamps, year and zone resolution), `message` (the parsed shape), `format` (the RFC
//! 5424 serializer), `error`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod format;
mod framing;
mod message;
mod pri;
pub mod rfc3164;
pub mod rfc5424;
mod timestamp;

pub use error::{ParseError, ParseErrorKind};
pub use format::format_rfc5424;
pub use framing::{Frame, FrameError, FrameRef, Framer, Framing, UnknownFraming};
pub use message::{Message, ParseOptions, Protocol, SdElement};

/// Parses one syslog message, detecting RFC 5424 or RFC 3164.
///
/// Trailing `\n`, `\r\n` and NUL bytes are stripped first, so a UDP datagram (RFC 5426) or a
/// frame with its terminator still attached parses the same as a bare message.
///
/// Detection: after a `<PRI>` (and any spaces after it), the message is RFC 5424 when it
/// continues with `VERSION SP` (1-3 digits, not starting with 0) followed by either a NILVALUE
/// timestamp `-` or a digit (the start of a full-date). Everything else is RFC 3164 and is parsed
/// leniently. Once a message is recognised as RFC 5424 its grammar is enforced and a violation is
/// a [`ParseError`] (the caller keeps the raw line), because a half-parsed 5424 header would put
/// wrong values into named fields.
///
/// Errors for any input: empty input (after stripping terminators), and a well-formed `<PRI>`
/// whose value is above 191 (facility 23, severity 7 is the largest that exists).
pub fn parse<'a>(input: &'a str, opts: &ParseOptions) -> Result<Message<'a>, ParseError> {
    let input = trim_terminators(input);
    if input.is_empty() {
        return Err(ParseError::new(ParseErrorKind::Empty, 0));
    }
    let pri = pri::parse_pri(input)?;
    let after = pri.map_or(0, |p| p.end);
    // RFC 5424 requires a PRI; a line without one is a 3164 relay case (PRI 13).
    if pri.is_some() && rfc5424::looks_like_5424(input.as_bytes(), after) {
        rfc5424::parse_trimmed(input, pri)
    } else {
        Ok(rfc3164::parse_trimmed(input, pri, opts))
    }
}

/// Strips what a transport may leave at the end of a message: LF, CR LF, NUL (Juniper
/// NetScreen ends frames with NUL), in any combination.
pub(crate) fn trim_terminators(input: &str) -> &str {
    input.trim_end_matches(['\n', '\r', '\0'])
}
