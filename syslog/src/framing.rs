//! RFC 6587 framing: cuts a TCP (or TLS) byte stream into syslog frames.
//!
//! The framer copies each frame out of its buffer, so the caller can hand frames to another
//! task while the framer keeps reading. Memory is bounded: at most `max_frame_len` (plus a
//! byte for a CR and the bytes of the latest `extend`) is ever buffered, whatever the peer
//! sends; over-long frames are cut, not accumulated.

use std::fmt;
use std::str::FromStr;

/// How a stream is split into messages.
///
/// * `OctetCounting` (RFC 6587 §3.4.1): every frame is `MSG-LEN SP SYSLOG-MSG`, `MSG-LEN` being
///   the decimal byte length of the message. Stray LF, CR or NUL bytes between frames are
///   skipped (some senders add a newline after each counted frame). A frame that does not
///   start with a valid count yields a [`Frame`] carrying a [`FrameError`] and the bytes up to
///   the next LF; the framer then resynchronises after that LF.
/// * `Lf` (RFC 6587 §3.4.2, "non-transparent framing"): a frame ends at LF or at NUL (Juniper
///   NetScreen ends frames with NUL); a CR just before the terminator is dropped; empty lines
///   are skipped.
/// * `Auto` decides per frame, so one listener takes both: a frame is octet-counted **only if
///   it starts with 1 to 9 ASCII digits, then exactly one space, and the byte after that space
///   is `<`** (the start of a syslog PRI), and the count is not zero. Anything else is
///   LF-framed. The decision waits for at most 11 bytes when a frame starts with digits. A mere leading digit is
///   not enough: an unframed Cisco IOS line such as
///   `91: *Oct  7 03:10:04.123: %SYS-5-CONFIG_I: ...`, or any line starting with a number, is
///   read as a line, not as a length.
///
/// In every mode a frame longer than `max_frame_len` is cut to `max_frame_len` bytes and its
/// [`Frame::truncated_from`] holds the original length. For LF framing the rest of the line is
/// discarded up to the next terminator; for octet counting the remaining declared bytes are
/// skipped. Neither ever becomes a frame of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Framing {
    /// Octet counting when the frame starts with `DIGITS SP <`, LF otherwise.
    #[default]
    Auto,
    /// RFC 6587 octet counting only.
    OctetCounting,
    /// LF (or NUL) terminated lines only.
    Lf,
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framing::Auto => "auto",
            Framing::OctetCounting => "octet-counting",
            Framing::Lf => "lf",
        })
    }
}

/// A framing name that is not `auto`, `octet-counting` or `lf`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown framing {0:?} (expected auto, octet-counting or lf)")]
pub struct UnknownFraming(pub String);

impl FromStr for Framing {
    type Err = UnknownFraming;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Framing::Auto),
            "octet-counting" => Ok(Framing::OctetCounting),
            "lf" => Ok(Framing::Lf),
            _ => Err(UnknownFraming(s.to_owned())),
        }
    }
}

/// Why a frame is not a clean message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Octet counting expected a digit.
    #[error("octet count is not a number")]
    InvalidOctetCount,
    /// More than 10 digits, or a value that does not fit in memory sizes.
    #[error("octet count is too long")]
    OctetCountTooLong,
    /// The digits were not followed by a space.
    #[error("octet count is not followed by a space")]
    MissingSpace,
    /// `0 ` announces an empty message, which RFC 6587 does not allow.
    #[error("octet count is zero")]
    ZeroOctetCount,
    /// The stream ended inside an octet-counted frame.
    #[error("stream ended after {received} of {declared} declared bytes")]
    Incomplete {
        /// The octet count.
        declared: usize,
        /// Bytes that arrived (before any cut to `max_frame_len`).
        received: usize,
    },
}

/// One frame from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message bytes, without the octet count or the LF/CR/NUL terminator. For an error
    /// frame, the bytes that could not be framed (kept so they can be logged or stored raw).
    pub bytes: Vec<u8>,
    /// Original length when the frame was longer than `max_frame_len` and `bytes` was cut to
    /// that length.
    pub truncated_from: Option<usize>,
    /// Set when the bytes are not a properly framed message.
    pub error: Option<FrameError>,
}

/// A frame borrowed from the framer's buffer: what [`Framer::next_frame_ref`] returns, so a
/// caller that copies the message on (into columns) does not pay for a copy of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// As [`Frame::bytes`].
    pub bytes: &'a [u8],
    /// As [`Frame::truncated_from`].
    pub truncated_from: Option<usize>,
    /// As [`Frame::error`].
    pub error: Option<FrameError>,
}

/// Where a found frame's bytes are: in the buffer (the common case) or cut out of it.
enum Body {
    Buf(std::ops::Range<usize>),
    Owned(Vec<u8>),
}

struct Found {
    body: Body,
    truncated_from: Option<usize>,
    error: Option<FrameError>,
}

/// Incremental RFC 6587 framer. Feed it with [`Framer::extend`], then drain
/// [`Framer::next_frame`] until `None`; at end of stream call [`Framer::finish`].
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    max: usize,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    state: State,
    /// The bytes of the last frame [`Framer::next_frame_ref`] returned when they are not a
    /// plain slice of `buf` (a cut-short long line, the last frame of a stream).
    scratch: Vec<u8>,
}

#[derive(Debug)]
enum State {
    /// At a frame boundary.
    Idle,
    /// Inside an octet-counted frame whose header is consumed: wait for `keep` bytes.
    Octets { keep: usize, declared: usize },
    /// Discarding the rest of an over-long octet-counted frame.
    Skip { remaining: usize },
    /// Inside a line; the first `scanned` bytes hold no terminator (saves rescanning).
    Line {
        scanned: usize,
        error: Option<FrameError>,
    },
    /// Inside a line already longer than the limit: its first `max` bytes are kept, the rest is
    /// counted and dropped until the terminator.
    LongLine {
        kept: Vec<u8>,
        total: usize,
        last_cr: bool,
        error: Option<FrameError>,
    },
}

enum Decision {
    NeedMore,
    SkipByte,
    Line,
    Octets { header: usize, declared: usize },
    Error(FrameError),
}

/// Most digits an octet count may have: 10 allows counts far beyond any sane frame limit and
/// bounds the header scan.
const MAX_COUNT_DIGITS: usize = 10;
/// Most digits `Auto` accepts before deciding the frame is a line.
const AUTO_MAX_DIGITS: usize = 9;

impl Framer {
    /// A framer cutting frames longer than `max_frame_len` bytes (treated as at least 1).
    pub fn new(framing: Framing, max_frame_len: usize) -> Self {
        Self {
            framing,
            max: max_frame_len.max(1),
            buf: Vec::new(),
            pos: 0,
            state: State::Idle,
            scratch: Vec::new(),
        }
    }

    /// The framing mode.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes held that are not yet part of a returned frame (for metrics and tests).
    pub fn buffered(&self) -> usize {
        let kept = match &self.state {
            State::LongLine { kept, .. } => kept.len(),
            _ => 0,
        };
        self.buf.len() - self.pos + kept
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            // Drop consumed bytes; what remains is at most a partial frame.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Next complete frame, if any. Call in a loop after each `extend`.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let found = self.next_inner()?;
        Some(self.owned(found))
    }

    /// [`Framer::next_frame`], or with `at_end` [`Framer::finish`] once no complete frame is
    /// left, borrowing the frame's bytes instead of copying them. Call in a loop; the frame is
    /// valid until the next call.
    pub fn next_frame_ref(&mut self, at_end: bool) -> Option<FrameRef<'_>> {
        let found = match self.next_inner() {
            Some(found) => found,
            None if at_end => self.finish_inner()?,
            None => return None,
        };
        let bytes = match found.body {
            Body::Buf(range) => &self.buf[range],
            Body::Owned(bytes) => {
                self.scratch = bytes;
                &self.scratch[..]
            }
        };
        Some(FrameRef {
            bytes,
            truncated_from: found.truncated_from,
            error: found.error,
        })
    }

    fn owned(&self, found: Found) -> Frame {
        Frame {
            bytes: match found.body {
                Body::Buf(range) => self.buf[range].to_vec(),
                Body::Owned(bytes) => bytes,
            },
            truncated_from: found.truncated_from,
            error: found.error,
        }
    }

    fn next_inner(&mut self) -> Option<Found> {
        loop {
            let avail = &self.buf[self.pos..];
            match &mut self.state {
                State::Idle => {
                    if avail.is_empty() {
                        return None;
                    }
                    match self.decide(false) {
                        Decision::NeedMore => return None,
                        Decision::SkipByte => self.pos += 1,
                        Decision::Line => {
                            self.state = State::Line {
                                scanned: 0,
                                error: None,
                            }
                        }
                        Decision::Error(e) => {
                            self.state = State::Line {
                                scanned: 0,
                                error: Some(e),
                            }
                        }
                        Decision::Octets { header, declared } => {
                            self.pos += header;
                            self.state = State::Octets {
                                keep: declared.min(self.max),
                                declared,
                            };
                        }
                    }
                }
                State::Octets { keep, declared } => {
                    let (keep, declared) = (*keep, *declared);
                    if avail.len() < keep {
                        return None;
                    }
                    let start = self.pos;
                    self.pos += keep;
                    self.state = if declared > keep {
                        State::Skip {
                            remaining: declared - keep,
                        }
                    } else {
                        State::Idle
                    };
                    return Some(Found {
                        body: Body::Buf(start..start + keep),
                        truncated_from: (declared > keep).then_some(declared),
                        error: None,
                    });
                }
                State::Skip { remaining } => {
                    let n = (*remaining).min(avail.len());
                    *remaining -= n;
                    self.pos += n;
                    if *remaining > 0 {
                        return None;
                    }
                    self.state = State::Idle;
                }
                State::Line { scanned, error } => {
                    let from = *scanned;
                    match memchr::memchr2(b'\n', 0, &avail[from..]) {
                        Some(off) => {
                            let end = from + off;
                            let error = error.take();
                            let frame =
                                line_frame(&self.buf, self.pos, self.pos + end, self.max, error);
                            self.pos += end + 1;
                            self.state = State::Idle;
                            if let Some(f) = frame {
                                return Some(f);
                            }
                        }
                        // One byte of slack: the line may still end in CR LF at exactly max.
                        None if avail.len() > self.max + 1 => {
                            let kept = avail[..self.max].to_vec();
                            let total = avail.len();
                            let last_cr = avail.last() == Some(&b'\r');
                            let error = error.take();
                            self.pos = self.buf.len();
                            self.state = State::LongLine {
                                kept,
                                total,
                                last_cr,
                                error,
                            };
                            return None;
                        }
                        None => {
                            *scanned = avail.len();
                            return None;
                        }
                    }
                }
                State::LongLine { total, last_cr, .. } => match memchr::memchr2(b'\n', 0, avail) {
                    Some(off) => {
                        *total += off;
                        if off > 0 {
                            *last_cr = avail[off - 1] == b'\r';
                        }
                        self.pos += off + 1;
                        return self.take_long_line();
                    }
                    None => {
                        *total += avail.len();
                        if let Some(&c) = avail.last() {
                            *last_cr = c == b'\r';
                        }
                        self.pos = self.buf.len();
                        return None;
                    }
                },
            }
        }
    }

    /// At end of stream: any complete frames still buffered first (so calling this until
    /// `None` is always safe), then whatever is left — an unterminated last line, or a cut-off
    /// octet-counted frame flagged [`FrameError::Incomplete`] — as a final frame, if non-empty.
    /// The framer is empty afterwards.
    pub fn finish(&mut self) -> Option<Frame> {
        let found = match self.next_inner() {
            Some(found) => found,
            None => self.finish_inner()?,
        };
        Some(self.owned(found))
    }

    /// What is left at end of stream, once no complete frame is: always owned, since the
    /// buffer is cleared.
    fn finish_inner(&mut self) -> Option<Found> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        let frame = match state {
            State::Idle => self.finish_idle(),
            State::Octets { declared, .. } => {
                let avail = &self.buf[self.pos..];
                Some(Found {
                    body: Body::Owned(avail.to_vec()),
                    truncated_from: None,
                    error: Some(FrameError::Incomplete {
                        declared,
                        received: avail.len(),
                    }),
                })
            }
            State::Skip { .. } => None,
            State::Line { error, .. } => {
                line_frame(&self.buf, self.pos, self.buf.len(), self.max, error)
            }
            State::LongLine {
                kept,
                total,
                last_cr,
                error,
            } => {
                let total = total - usize::from(last_cr);
                Some(Found {
                    body: Body::Owned(kept),
                    truncated_from: Some(total),
                    error,
                })
            }
        };
        // The buffer is cleared below: a frame still pointing into it is copied out first.
        let frame = frame.map(|found| match found.body {
            Body::Buf(range) => Found {
                body: Body::Owned(self.buf[range].to_vec()),
                ..found
            },
            owned => Found {
                body: owned,
                ..found
            },
        });
        self.buf.clear();
        self.pos = 0;
        frame
    }

    fn finish_idle(&mut self) -> Option<Found> {
        loop {
            let avail = &self.buf[self.pos..];
            if avail.is_empty() {
                return None;
            }
            let (start, end) = (self.pos, self.buf.len());
            return match self.decide(true) {
                Decision::SkipByte => {
                    self.pos += 1;
                    continue;
                }
                Decision::NeedMore | Decision::Line => {
                    line_frame(&self.buf, start, end, self.max, None)
                }
                Decision::Error(e) => line_frame(&self.buf, start, end, self.max, Some(e)),
                Decision::Octets { header, declared } => {
                    let body = &avail[header..];
                    Some(Found {
                        body: Body::Owned(body[..body.len().min(self.max)].to_vec()),
                        truncated_from: None,
                        error: Some(FrameError::Incomplete {
                            declared,
                            received: body.len(),
                        }),
                    })
                }
            };
        }
    }

    fn take_long_line(&mut self) -> Option<Found> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::LongLine {
                kept,
                total,
                last_cr,
                error,
            } => Some(Found {
                body: Body::Owned(kept),
                truncated_from: Some(total - usize::from(last_cr)),
                error,
            }),
            _ => None,
        }
    }

    /// Chooses how the frame starting at `pos` is delimited. `eof`: no more bytes will come,
    /// so an undecided prefix is a line.
    fn decide(&self, eof: bool) -> Decision {
        let avail = &self.buf[self.pos..];
        let digits = avail
            .iter()
            .take(MAX_COUNT_DIGITS + 1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        match self.framing {
            Framing::Lf => Decision::Line,
            Framing::Auto => {
                if digits == 0 || digits > AUTO_MAX_DIGITS {
                    return Decision::Line;
                }
                match (avail.get(digits), avail.get(digits + 1)) {
                    (None, _) | (Some(b' '), None) if !eof => Decision::NeedMore,
                    (Some(b' '), Some(b'<')) => match count(&avail[..digits]) {
                        Some(declared) if declared > 0 => Decision::Octets {
                            header: digits + 1,
                            declared,
                        },
                        _ => Decision::Line,
                    },
                    _ => Decision::Line,
                }
            }
            Framing::OctetCounting => {
                if matches!(avail.first(), Some(b'\n' | b'\r' | 0)) {
                    return Decision::SkipByte;
                }
                if digits == 0 {
                    return Decision::Error(FrameError::InvalidOctetCount);
                }
                if digits > MAX_COUNT_DIGITS {
                    return Decision::Error(FrameError::OctetCountTooLong);
                }
                match avail.get(digits) {
                    None if !eof => Decision::NeedMore,
                    Some(b' ') => match count(&avail[..digits]) {
                        None => Decision::Error(FrameError::OctetCountTooLong),
                        Some(0) => Decision::Error(FrameError::ZeroOctetCount),
                        Some(declared) => Decision::Octets {
                            header: digits + 1,
                            declared,
                        },
                    },
                    _ => Decision::Error(FrameError::MissingSpace),
                }
            }
        }
    }
}

/// Decimal value of ASCII digits, `None` if it does not fit in `usize`.
fn count(digits: &[u8]) -> Option<usize> {
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    usize::try_from(v).ok()
}

/// A line frame from its content `buf[start..end]` (terminator already removed): trailing CR
/// dropped, cut to `max`. An empty line without an error is no frame at all.
fn line_frame(
    buf: &[u8],
    start: usize,
    end: usize,
    max: usize,
    error: Option<FrameError>,
) -> Option<Found> {
    let end = if end > start && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    let length = end - start;
    if length == 0 && error.is_none() {
        return None;
    }
    let (kept, truncated_from) = if length > max {
        (max, Some(length))
    } else {
        (length, None)
    };
    Some(Found {
        body: Body::Buf(start..start + kept),
        truncated_from,
        error,
    })
}
