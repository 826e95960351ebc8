//! Parse errors: what went wrong and where, so an operator reading a rejected line knows which
//! byte to look at.

use std::fmt;

/// Why a message could not be parsed. The `Display` text is lowercase and names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Nothing left after stripping line terminators.
    #[error("empty message")]
    Empty,
    /// `<PRI>` held a number above 191.
    #[error("priority {0} is out of range (0-191)")]
    PriOutOfRange(u16),
    /// RFC 5424 VERSION is not a number from 1 to 255.
    #[error("invalid version")]
    InvalidVersion,
    /// RFC 5424 TIMESTAMP is neither `-` nor an RFC 3339 date-time.
    #[error("invalid timestamp")]
    InvalidTimestamp,
    /// A header field or SD-NAME exceeds its RFC 5424 length limit.
    #[error("{field} is longer than {max} bytes")]
    FieldTooLong {
        /// Field name as RFC 5424 spells it, lowercase.
        field: &'static str,
        /// The limit in bytes.
        max: usize,
    },
    /// A header field contains a control character.
    #[error("invalid character in {0}")]
    InvalidChar(&'static str),
    /// The message ended before a required field.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field was not followed by the single space that separates it from the next.
    #[error("expected a space after {0}")]
    ExpectedSpace(&'static str),
    /// Malformed structured data; the text says what was expected.
    #[error("invalid structured data: {0}")]
    StructuredData(&'static str),
}

/// A message that could not be parsed: the reason and the byte offset into the input at which
/// the parser gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Byte offset into the input passed to `parse`.
    pub offset: usize,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for ParseError {}
