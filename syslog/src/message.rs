//! The parsed shape of a syslog message. Fields borrow from the input line so parsing
//! allocates only for structured data.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, Utc};

/// Context a parser needs that is not in the message itself.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// When the message arrived; supplies the year RFC 3164 stamps lack.
    pub received_at: DateTime<Utc>,
    /// Zone for RFC 3164 stamps that carry none (RFC 5424 stamps always carry an offset and
    /// never touch this).
    pub timezone: chrono_tz::Tz,
}

impl Default for ParseOptions {
    /// Now, in UTC.
    fn default() -> Self {
        Self {
            received_at: Utc::now(),
            timezone: chrono_tz::UTC,
        }
    }
}

impl ParseOptions {
    /// Options with the given arrival time and UTC as the zone for zone-less stamps.
    pub fn new(received_at: DateTime<Utc>) -> Self {
        Self {
            received_at,
            timezone: chrono_tz::UTC,
        }
    }
}

/// Which grammar the message followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`).
    Rfc5424,
    /// RFC 3164 / BSD syslog and vendor variants, parsed leniently.
    Rfc3164,
}

/// One RFC 5424 SD-ELEMENT: `[id name="value" ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    /// SD-ID, e.g. `timeQuality` or `meniscus@32473`.
    pub id: &'a str,
    /// PARAM-NAME and unescaped PARAM-VALUE pairs in wire order. A value is `Cow::Owned` only
    /// when it contained one of the escapes `\"`, `\\`, `\]`.
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> SdElement<'a> {
    /// The first value of the named parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// A parsed syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Grammar the message followed.
    pub protocol: Protocol,
    /// PRI value (facility * 8 + severity); 13 (user.notice) when the line had none, as RFC 3164
    /// §4.3.3 tells a relay to assume.
    pub pri: u8,
    /// The line had no `<PRI>`.
    pub pri_missing: bool,
    /// RFC 5424 VERSION (`Some(1)`); `None` for RFC 3164.
    pub version: Option<u8>,
    /// Timestamp; `None` for NILVALUE, an absent stamp, or an RFC 3164 stamp that could not be
    /// read (then the text is left in `msg`).
    pub timestamp: Option<DateTime<FixedOffset>>,
    /// HOSTNAME.
    pub hostname: Option<&'a str>,
    /// APP-NAME, or the RFC 3164 TAG, or a Cisco mnemonic such as `%ASA-6-302014`.
    pub app_name: Option<&'a str>,
    /// PROCID, or the RFC 3164 `[pid]`.
    pub proc_id: Option<&'a str>,
    /// MSGID (RFC 5424 only).
    pub msg_id: Option<&'a str>,
    /// Structured data (RFC 5424 only; a 3164 message starting with `[` is plain text).
    pub structured_data: Vec<SdElement<'a>>,
    /// Free-form message, with a leading UTF-8 BOM removed.
    pub msg: &'a str,
    /// Cisco sequence number that preceded the stamp (`91: *Oct  7 ...`).
    pub sequence: Option<&'a str>,
}

impl<'a> Message<'a> {
    /// Facility (PRI / 8), 0-23.
    pub fn facility(&self) -> u8 {
        self.pri >> 3
    }

    /// Severity (PRI % 8), 0 (emergency) to 7 (debug).
    pub fn severity(&self) -> u8 {
        self.pri & 7
    }

    /// The first SD-ELEMENT with the given SD-ID.
    pub fn sd_element(&self, id: &str) -> Option<&SdElement<'a>> {
        self.structured_data.iter().find(|e| e.id == id)
    }

    /// A message of the given protocol with every optional field empty: the starting point
    /// the parsers fill in.
    pub(crate) fn empty(protocol: Protocol, pri: u8, pri_missing: bool) -> Self {
        Message {
            protocol,
            pri,
            pri_missing,
            version: None,
            timestamp: None,
            hostname: None,
            app_name: None,
            proc_id: None,
            msg_id: None,
            structured_data: Vec::new(),
            msg: "",
            sequence: None,
        }
    }
}
