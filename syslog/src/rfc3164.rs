//! RFC 3164 (BSD syslog) and the vendor forms that pass for it, parsed leniently: a relay must
//! accept whatever devices send, so the only failures are an empty line and a PRI above 191.
//!
//! Shape handled, every part optional except the message:
//!
//! ```text
//! <PRI> [SEQ: ] [*|.]STAMP[:] [HOST] [TAG[PID]:] MSG
//! ```
//!
//! * PRI missing: PRI 13 and `pri_missing` (RFC 3164 §4.3.3). Spaces after `<PRI>` are skipped.
//! * SEQ: a Cisco sequence number (`91: `), recognised only when a stamp or a `%MNEMONIC`
//!   follows, so a message that merely starts with `42:` keeps its text.
//! * STAMP: `Mmm dd hh:mm:ss` (month in any case, day padded with a space or zero or not at
//!   all), optional fraction, optional year before (`Apr 15 2007 21:28:13`, Cisco/PIX) or after
//!   the time (`Mar  1 12:00:00 2024`), optional Cisco zone name before a colon (`UTC:`; only
//!   UTC/GMT/UT/Z are honoured, other abbreviations are ambiguous and the configured zone
//!   applies), optional trailing colon. A leading `*` (clock not synchronised) or `.` (Cisco)
//!   is dropped. An RFC 3339 stamp (rsyslog's forward format, syslog-ng ISO dates) is read as
//!   such. Without a year, the year is chosen relative to `received_at`; without a zone the
//!   stamp is read in `ParseOptions::timezone` (see `timestamp`).
//! * No recognisable stamp: `timestamp` is `None` and everything after the PRI is the message,
//!   except that a leading Cisco mnemonic (`%ASA-6-302014: ...`) becomes `app_name`.
//! * HOST: the first word after the stamp, unless that word is a TAG (`haproxy[73411]:` or
//!   `word:`) or a `%MNEMONIC:`, in which case there is no host. A line with a stamp, no host
//!   and no tag is ambiguous; its first word is taken as the host, as rsyslog does.
//! * TAG: `name[pid]:`, `name[pid]` or `name:` after the host; `%FAC-SEV-MNEMONIC:` (Cisco
//!   IOS, ASA, PIX) is a tag too, and `app_name` keeps it without the colon, e.g.
//!   `%ASA-6-302014`. ASA's `host : %ASA-...` (space before the colon) is understood.
//! * MSG: the rest, one space after the tag removed. Never structured data, even when it starts
//!   with `[`.

use chrono::{DateTime, FixedOffset, NaiveDate};

use crate::error::{ParseError, ParseErrorKind};
use crate::message::{Message, ParseOptions, Protocol};
use crate::pri::{parse_pri, Pri};
use crate::timestamp::{
    self, digits, fraction, localize, parse_rfc3339, resolve_year, time_of_day,
};
use crate::trim_terminators;

/// Parses an RFC 3164 line (no RFC 5424 detection). Trailing LF, CR LF and NUL are stripped.
pub fn parse<'a>(input: &'a str, opts: &ParseOptions) -> Result<Message<'a>, ParseError> {
    let input = trim_terminators(input);
    if input.is_empty() {
        return Err(ParseError::new(ParseErrorKind::Empty, 0));
    }
    let pri = parse_pri(input)?;
    Ok(parse_trimmed(input, pri, opts))
}

/// Parses after the caller has stripped terminators and read the PRI. Cannot fail.
pub(crate) fn parse_trimmed<'a>(
    input: &'a str,
    pri: Option<Pri>,
    opts: &ParseOptions,
) -> Message<'a> {
    let b = input.as_bytes();
    let (pri_value, missing, body) = match pri {
        Some(p) => (p.value, false, p.end),
        None => (13, true, 0),
    };
    let mut m = Message::empty(Protocol::Rfc3164, pri_value, missing);

    let mut i = body;
    if let Some((seq_end, next)) = sequence(b, i) {
        m.sequence = input.get(i..seq_end);
        i = next;
    }

    match stamp(b, i, opts) {
        Some((ts, next)) => {
            m.timestamp = Some(ts);
            header(input, next, &mut m);
        }
        None => {
            let (token, after) = word(b, i);
            if is_mnemonic(token) {
                m.app_name = input.get(i..i + token.len() - 1);
                set_msg(&mut m, input, skip_one_space(b, after));
            } else {
                // Whole rest is the message; a sequence number only counts next to a stamp.
                m.sequence = None;
                set_msg(&mut m, input, body);
            }
        }
    }
    m
}

fn set_msg<'a>(m: &mut Message<'a>, input: &'a str, at: usize) {
    let msg = input.get(at..).unwrap_or_default();
    m.msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
}

/// HOST and TAG after the stamp, then MSG.
fn header<'a>(input: &'a str, mut i: usize, m: &mut Message<'a>) {
    let b = input.as_bytes();
    let (t1, after1) = word(b, i);
    if t1.is_empty() {
        set_msg(m, input, i);
        return;
    }
    if !is_mnemonic(t1) && tag(t1).is_none() {
        m.hostname = input.get(i..after1);
        i = after1;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        // ASA with `logging device-id`: `host : %ASA-6-...`.
        if b.get(i) == Some(&b':') && b.get(i + 1) == Some(&b' ') {
            i += 2;
        }
    }
    let (t, after) = word(b, i);
    if is_mnemonic(t) {
        m.app_name = input.get(i..i + t.len() - 1);
        set_msg(m, input, skip_one_space(b, after));
    } else if let Some((name_len, pid)) = tag(t) {
        m.app_name = input.get(i..i + name_len);
        m.proc_id = pid.and_then(|(s, e)| input.get(i + s..i + e));
        set_msg(m, input, skip_one_space(b, after));
    } else {
        set_msg(m, input, i);
    }
}

#[inline]
fn skip_one_space(b: &[u8], i: usize) -> usize {
    if b.get(i) == Some(&b' ') {
        i + 1
    } else {
        i
    }
}

/// The bytes from `i` up to the next space (or the end) and the offset of that space.
#[inline]
fn word(b: &[u8], i: usize) -> (&[u8], usize) {
    let rest = b.get(i..).unwrap_or_default();
    let n = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    (&rest[..n], i + n)
}

/// `%FAC-SEV-MNEMONIC:` as Cisco IOS, ASA and PIX put it where a tag would be.
fn is_mnemonic(t: &[u8]) -> bool {
    t.len() > 2 && t[0] == b'%' && t[t.len() - 1] == b':' && t[1..].contains(&b'-')
}

/// A TAG: `name[pid]:`, `name[pid]` or `name:`. Returns the name length and the pid's byte
/// range within the token.
fn tag(t: &[u8]) -> Option<(usize, Option<(usize, usize)>)> {
    let t_noc = t.strip_suffix(b":").unwrap_or(t);
    if let Some(inner) = t_noc.strip_suffix(b"]") {
        let open = memchr::memchr(b'[', inner)?;
        if open == 0 {
            return None;
        }
        let pid = (open + 1 < inner.len()).then_some((open + 1, inner.len()));
        return Some((open, pid));
    }
    if t_noc.len() < t.len() && !t_noc.is_empty() && !t_noc.contains(&b'[') {
        return Some((t_noc.len(), None));
    }
    None
}

/// `NNN: ` followed by something that starts a stamp or a mnemonic. Returns the end of the
/// digits and the offset after the colon and spaces.
fn sequence(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    while j < b.len() && j - i < 10 && b[j].is_ascii_digit() {
        j += 1;
    }
    if j == i || b.get(j) != Some(&b':') || b.get(j + 1) != Some(&b' ') {
        return None;
    }
    let mut k = j + 1;
    while b.get(k) == Some(&b' ') {
        k += 1;
    }
    let starts_stamp = match b.get(k)? {
        b'*' | b'.' | b'%' => true,
        c if c.is_ascii_digit() => true,
        _ => timestamp::month(b.get(k..)?).is_some(),
    };
    starts_stamp.then_some((j, k))
}

/// Reads a stamp at `i`; returns it and the offset where HOST/TAG/MSG start.
fn stamp(b: &[u8], i: usize, opts: &ParseOptions) -> Option<(DateTime<FixedOffset>, usize)> {
    let mut j = i;
    if matches!(b.get(j), Some(b'*' | b'.')) {
        j += 1;
    }
    let first = *b.get(j)?;
    let (ts, mut j) = if first.is_ascii_digit() {
        let (ts, n) = parse_rfc3339(b.get(j..)?)?;
        (ts, j + n)
    } else {
        bsd_stamp(b, j, opts)?
    };
    if b.get(j) == Some(&b':') {
        j += 1;
    }
    match b.get(j) {
        None => Some((ts, j)),
        Some(b' ') => {
            while b.get(j) == Some(&b' ') {
                j += 1;
            }
            Some((ts, j))
        }
        Some(_) => None,
    }
}

/// `Mmm dd [yyyy ]hh:mm:ss[.frac][ yyyy][ ZONE:]` at `j`; returns the time and the offset just
/// past it (before any trailing colon).
fn bsd_stamp(
    b: &[u8],
    mut j: usize,
    opts: &ParseOptions,
) -> Option<(DateTime<FixedOffset>, usize)> {
    let month = timestamp::month(b.get(j..)?)?;
    j += 3;
    if b.get(j) != Some(&b' ') {
        return None;
    }
    while b.get(j) == Some(&b' ') {
        j += 1;
    }
    let day = if let Some(d) = digits(b, j, 2) {
        j += 2;
        d
    } else {
        let d = digits(b, j, 1)?;
        j += 1;
        d
    };
    if b.get(j) != Some(&b' ') {
        return None;
    }
    j += 1;
    let mut year = None;
    if b.get(j + 4) == Some(&b' ') {
        year = Some(digits(b, j, 4)?);
        j += 5;
    }
    let h = digits(b, j, 2)?;
    if b.get(j + 2) != Some(&b':') || b.get(j + 5) != Some(&b':') {
        return None;
    }
    let mi = digits(b, j + 3, 2)?;
    let s = digits(b, j + 6, 2)?;
    j += 8;
    let (micros, n) = fraction(b, j)?;
    j += n;
    let time = time_of_day(h, mi, s, micros)?;

    // Year after the time: ` yyyy` followed by a space, a colon or the end.
    if year.is_none() && b.get(j) == Some(&b' ') {
        if let Some(y) = digits(b, j + 1, 4) {
            if matches!(b.get(j + 5), None | Some(b' ' | b':')) {
                year = Some(y);
                j += 5;
            }
        }
    }

    // Cisco zone name: ` UTC:`; only a name directly followed by a colon, so a host is never
    // taken for a zone.
    let mut utc = false;
    if b.get(j) == Some(&b' ') {
        let mut k = j + 1;
        while k < b.len() && k - j <= 5 && b[k].is_ascii_uppercase() {
            k += 1;
        }
        if k > j + 1 && b.get(k) == Some(&b':') {
            utc = matches!(&b[j + 1..k], b"UTC" | b"GMT" | b"UT" | b"Z");
            j = k;
        }
    }

    let local = match year {
        Some(y) => NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, month, day)?.and_time(time),
        None => {
            let received = if utc {
                opts.received_at.naive_utc()
            } else {
                timestamp::local_now(&opts.timezone, opts.received_at)
            };
            resolve_year(month, day, time, received)?
        }
    };
    let ts = if utc {
        localize(&chrono::Utc, local)?
    } else {
        localize(&opts.timezone, local)?
    };
    Some((ts, j))
}
