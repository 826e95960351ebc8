//! `<PRI>`, shared by both grammars.

use crate::error::{ParseError, ParseErrorKind};

/// A PRI found at the start of a line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pri {
    pub value: u8,
    /// Byte offset just past `>` and any spaces after it (a space after `<PRI>` is a common
    /// sender bug and is tolerated).
    pub end: usize,
}

/// `Ok(None)` when the line does not start with a well-formed `<1-3 digits>`: RFC 3164 §4.3.3
/// then has the relay assume PRI 13 and keep the whole line. A well-formed PRI above 191 is an
/// error: it is clearly meant as a PRI, and no facility/severity pair maps to it.
pub(crate) fn parse_pri(input: &str) -> Result<Option<Pri>, ParseError> {
    let b = input.as_bytes();
    if b.first() != Some(&b'<') {
        return Ok(None);
    }
    let mut value: u16 = 0;
    let mut i = 1;
    while i < b.len() && i <= 3 && b[i].is_ascii_digit() {
        value = value * 10 + u16::from(b[i] - b'0');
        i += 1;
    }
    if i == 1 || b.get(i) != Some(&b'>') {
        return Ok(None);
    }
    let Ok(value) = u8::try_from(value) else {
        return Err(ParseError::new(ParseErrorKind::PriOutOfRange(value), 1));
    };
    if value > 191 {
        return Err(ParseError::new(
            ParseErrorKind::PriOutOfRange(value.into()),
            1,
        ));
    }
    let mut end = i + 1;
    while b.get(end) == Some(&b' ') {
        end += 1;
    }
    Ok(Some(Pri { value, end }))
}
