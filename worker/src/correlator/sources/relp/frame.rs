//! RELP frames (rsyslog's Reliable Event Logging Protocol, as librelp speaks it):
//! `TXNR SP COMMAND SP DATALEN [SP DATA] LF`, where TXNR is the client's transaction number
//! (1–999,999,999), COMMAND a word (`open`, `syslog`, `close`, `rsp`, `serverclose`), DATALEN
//! the number of DATA bytes (0: no data).

/// One frame, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub txnr: u64,
    pub command: &'a str,
    pub data: &'a [u8],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed RELP frame: {0}")]
    Malformed(&'static str),
    #[error("RELP frame of {declared} data bytes, more than the {limit} accepted")]
    TooLarge { declared: usize, limit: usize },
}

/// The longest header: 9-digit txnr, a 32-byte command, a 9-digit length, three spaces.
const MAX_HEADER: usize = 9 + 1 + 32 + 1 + 9 + 1;

/// A number of 1 to 9 digits ending at a space or LF; with where it ended. `None` when the
/// buffer ends first.
fn number(buffer: &[u8], from: usize) -> Result<Option<(u64, usize)>, FrameError> {
    let mut at = from;
    while at < buffer.len() && buffer[at].is_ascii_digit() {
        at += 1;
        if at - from > 9 {
            return Err(FrameError::Malformed("a number longer than 9 digits"));
        }
    }
    if at == buffer.len() {
        return Ok(None);
    }
    if at == from {
        return Err(FrameError::Malformed("a number was expected"));
    }
    let text = std::str::from_utf8(&buffer[from..at]).unwrap_or("0");
    Ok(Some((text.parse().unwrap_or(0), at)))
}

/// The first frame of `buffer` and the bytes it took; `Ok(None)` while it is incomplete.
pub fn parse(buffer: &[u8], max_data: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let incomplete = |at: usize| {
        if at > MAX_HEADER {
            Err(FrameError::Malformed("the header is too long"))
        } else {
            Ok(None)
        }
    };
    let Some((txnr, at)) = number(buffer, 0)? else {
        return incomplete(buffer.len());
    };
    if buffer[at] != b' ' {
        return Err(FrameError::Malformed(
            "a space after the transaction number",
        ));
    }
    let start = at + 1;
    let mut end = start;
    while end < buffer.len() && buffer[end].is_ascii_alphabetic() {
        end += 1;
        if end - start > 32 {
            return Err(FrameError::Malformed("a command longer than 32 letters"));
        }
    }
    if end == buffer.len() {
        return incomplete(end);
    }
    if end == start || buffer[end] != b' ' {
        return Err(FrameError::Malformed("a command of letters, then a space"));
    }
    let command = std::str::from_utf8(&buffer[start..end]).unwrap_or("");
    let Some((length, mut at)) = number(buffer, end + 1)? else {
        return incomplete(buffer.len());
    };
    let length = length as usize;
    if length > max_data {
        return Err(FrameError::TooLarge {
            declared: length,
            limit: max_data,
        });
    }
    if length > 0 {
        if buffer[at] != b' ' {
            return Err(FrameError::Malformed("a space before the data"));
        }
        at += 1;
    } else if buffer[at] == b' ' {
        // Some senders write the space even without data.
        at += 1;
    }
    if buffer.len() < at + length + 1 {
        return Ok(None);
    }
    let data = &buffer[at..at + length];
    if buffer[at + length] != b'\n' {
        return Err(FrameError::Malformed(
            "the frame does not end in LF after DATALEN bytes",
        ));
    }
    Ok(Some((
        Frame {
            txnr,
            command,
            data,
        },
        at + length + 1,
    )))
}

/// A response frame: `TXNR rsp LEN BODY LF`.
pub fn response(txnr: u64, body: &str) -> Vec<u8> {
    if body.is_empty() {
        format!("{txnr} rsp 0\n").into_bytes()
    } else {
        format!("{txnr} rsp {} {body}\n", body.len()).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_whole_or_not_at_all() {
        let offers = "relp_version=0\nrelp_software=librelp,1.11.0\ncommands=syslog";
        let open = format!("1 open {} {offers}\n", offers.len());
        let open = open.as_bytes();
        let (frame, used) = parse(open, 1024).unwrap().unwrap();
        assert_eq!(frame.txnr, 1);
        assert_eq!(frame.command, "open");
        assert!(frame.data.starts_with(b"relp_version=0"));
        assert_eq!(used, open.len());
        for cut in 0..open.len() {
            assert_eq!(parse(&open[..cut], 1024).unwrap(), None, "cut at {cut}");
        }
        let close = b"3 close 0\n";
        let (frame, used) = parse(close, 1024).unwrap().unwrap();
        assert_eq!(
            (frame.command, frame.data, used),
            ("close", &b""[..], close.len())
        );
        let two = b"2 syslog 5 hello\n4 syslog 3 abc\n";
        let (first, used) = parse(two, 1024).unwrap().unwrap();
        assert_eq!(first.data, b"hello");
        assert_eq!(parse(&two[used..], 1024).unwrap().unwrap().0.txnr, 4);
    }

    #[test]
    fn bad_frames_are_errors_not_waits() {
        assert!(parse(b"x open 0\n", 1024).is_err());
        assert!(parse(b"1 op3n 0\n", 1024).is_err());
        assert!(parse(b"1 syslog 5 helloX", 1024).is_err());
        assert!(parse(b"1234567890 open 0\n", 1024).is_err());
        assert_eq!(
            parse(b"1 syslog 99999 ", 1024),
            Err(FrameError::TooLarge {
                declared: 99_999,
                limit: 1024
            })
        );
        // A header that never ends is refused once it is longer than any header can be.
        assert!(parse(&[b'1'; 5][..], 1024).unwrap().is_none());
        assert!(parse(format!("1 {}", "a".repeat(40)).as_bytes(), 1024).is_err());
    }

    #[test]
    fn responses_carry_their_length() {
        assert_eq!(response(7, "200 OK"), b"7 rsp 6 200 OK\n");
        assert_eq!(response(9, ""), b"9 rsp 0\n");
    }
}
