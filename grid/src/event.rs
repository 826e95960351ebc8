//! The CEE event: one JSON object per log message.
//!
//! Syslog header fields keep the names the original Meniscus used (`time`, `host`, `pname`,
//! `pid`, `msgid`, `pri`, `ver`, `msg`); structured data goes under `native`; correlation
//! metadata under `meniscus`; normalizer output under `normalized.<pattern>`. Exported as
//! `@cee: {...}` (see [`Event::to_cee_line`]).

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tenant::Producer;

/// How the message reached Meniscus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Syslog over TCP.
    Tcp,
    /// Syslog over UDP.
    Udp,
    /// Syslog over TLS.
    Tls,
    /// The Meniscus HTTP publish API.
    Http,
    /// Loki's push API (`/loki/api/v1/push`), JSON or protobuf.
    Loki,
    /// Elasticsearch's `_bulk` API.
    Elastic,
    /// OTLP/HTTP logs (`/v1/logs`), protobuf or JSON.
    Otlp,
    /// RELP, rsyslog's acknowledged syslog transport.
    Relp,
}

impl Transport {
    pub const ALL: [Transport; 8] = [
        Transport::Tcp,
        Transport::Udp,
        Transport::Tls,
        Transport::Http,
        Transport::Loki,
        Transport::Elastic,
        Transport::Otlp,
        Transport::Relp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Tls => "tls",
            Transport::Http => "http",
            Transport::Loki => "loki",
            Transport::Elastic => "elastic",
            Transport::Otlp => "otlp",
            Transport::Relp => "relp",
        }
    }

    /// The transport whose [`as_str`](Self::as_str) is `text`.
    pub fn parse(text: &str) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|transport| transport.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The time the sender put in the message; `None` when it sent none (NILVALUE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164): what producers are matched by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// Syslog priority, `facility * 8 + severity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pri: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<u8>,
    pub msg: String,
    /// Structured data: `{"SD-ID": {"param": "value"}}`; repeated params become arrays.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub native: Map<String, Value>,
    pub meniscus: Correlation,
    /// Normalizer output keyed by pattern: `{"sshd": {"user": "root", ...}}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub normalized: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// Correlation metadata Meniscus attaches to every event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    pub tenant: String,
    pub producer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub durable: bool,
    #[serde(default)]
    pub encrypted: bool,
    /// ULID: sortable by creation time, unique, the key storage dedupes on.
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub transport: Transport,
    /// Why the message could not be parsed; the event then carries the frame in `raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// The frame as received, kept when parsing failed or the bytes were not UTF-8
    /// (then base64, see `raw_encoding`), so nothing the sender wrote is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_encoding: Option<String>,
    /// Original length in bytes when the message was longer than the limit and was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_from: Option<u64>,
}

impl Correlation {
    /// The correlation of a new event from `producer` of `tenant`: a fresh ULID stamped with
    /// the receive time, no job yet, nothing flagged.
    pub fn new(
        tenant: &str,
        producer: &Producer,
        transport: Transport,
        received_at: DateTime<Utc>,
    ) -> Correlation {
        Correlation {
            tenant: tenant.to_string(),
            producer: producer.name.clone(),
            pattern: producer.pattern.clone(),
            durable: producer.durable,
            encrypted: producer.encrypted,
            event_id: new_ulid_at(received_at),
            job_id: None,
            received_at,
            transport,
            parse_error: None,
            raw: None,
            raw_encoding: None,
            truncated_from: None,
        }
    }
}

impl Event {
    /// An event that is only a message: no syslog header fields, no structured data (a frame
    /// that did not parse; the starting point of tests).
    pub fn from_message(msg: String, meniscus: Correlation) -> Event {
        Event {
            time: None,
            host: None,
            pname: None,
            pid: None,
            msgid: None,
            pri: None,
            ver: None,
            msg,
            native: Map::new(),
            meniscus,
            normalized: Map::new(),
            tags: Vec::new(),
        }
    }

    pub fn severity(&self) -> Option<u8> {
        self.pri.map(|pri| pri & 7)
    }

    pub fn facility(&self) -> Option<u8> {
        self.pri.map(|pri| pri >> 3)
    }

    /// The time used for ordering, time windows and retention: the sender's time when it gave
    /// one, otherwise the time Meniscus received the message.
    pub fn effective_time(&self) -> DateTime<Utc> {
        match self.time {
            Some(time) => time.with_timezone(&Utc),
            None => self.meniscus.received_at,
        }
    }

    /// The CEE export form, `@cee: {...}`.
    pub fn to_cee_line(&self) -> String {
        // Serialising a struct of strings, numbers and JSON values cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("@cee: {json}")
    }
}

/// A new ULID as a string: the id of one event or of one durable job.
///
/// Monotonic per thread: ids made in the same millisecond count up from one random start
/// instead of each drawing 80 random bits. They stay unique and sortable, cost less to make,
/// and consecutive ids share long prefixes, which the columnar store compresses to a few bytes.
pub fn new_ulid() -> String {
    new_ulid_at(Utc::now())
}

/// A new ULID stamped with `time` (the receive time a caller already has, which saves reading
/// the clock once per event). Monotonic like [`new_ulid`].
pub fn new_ulid_at(time: DateTime<Utc>) -> String {
    let ulid = ulid::Ulid(new_event_key_at(time));
    let mut buffer = [0u8; ulid::ULID_LEN];
    String::from(ulid.array_to_str(&mut buffer))
}

/// [`new_ulid_at`] as its 128 bits: the key storage dedupes on, made without text.
pub fn new_event_key_at(time: DateTime<Utc>) -> u128 {
    /// The last id this thread made: its millisecond and its 80 random bits.
    #[derive(Clone, Copy)]
    struct Last {
        millis: u64,
        random: u128,
    }
    const RANDOM_BITS: u32 = 80;
    const RANDOM_MASK: u128 = (1 << RANDOM_BITS) - 1;
    thread_local! {
        static LAST: std::cell::Cell<Option<Last>> = const { std::cell::Cell::new(None) };
    }
    // 48 bits of milliseconds last until the year 10889; times before 1970 are stamped 0.
    let millis = (time.timestamp_millis().max(0) as u64) & ((1 << 48) - 1);
    let random = LAST.with(|last| {
        let random = match last.get() {
            // Same millisecond: count up. Wrapping past 2^80 (not reachable in a millisecond)
            // would break the order, so a fresh random start is drawn instead.
            Some(previous) if previous.millis == millis && previous.random < RANDOM_MASK => {
                previous.random + 1
            }
            _ => rand_u128() & RANDOM_MASK,
        };
        last.set(Some(Last { millis, random }));
        random
    });
    ((millis as u128) << RANDOM_BITS) | random
}

/// Fresh random bits (once per millisecond per thread): the low 80 bits of a new random ULID,
/// drawn from `rand`'s thread-local generator, which the operating system seeds.
fn rand_u128() -> u128 {
    ulid::Ulid::new().0
}

/// Severity names as RFC 5424 §6.2.1 lists them, index = severity code.
pub const SEVERITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Parses a severity given as a code (`3`) or a name (`err`, `error`, `warn`).
pub fn parse_severity(text: &str) -> Option<u8> {
    if let Ok(code) = text.parse::<u8>() {
        return (code < 8).then_some(code);
    }
    let lower = text.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "emergency" | "panic" => "emerg",
        "critical" => "crit",
        "error" => "err",
        "warn" => "warning",
        "informational" => "info",
        other => other,
    };
    SEVERITY_NAMES
        .iter()
        .position(|name| *name == alias)
        .map(|index| index as u8)
}

/// Facility names (RFC 5424 §6.2.1 and the usual BSD names), index = facility code.
pub const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

pub fn parse_facility(text: &str) -> Option<u8> {
    if let Ok(code) = text.parse::<u8>() {
        return (code < 24).then_some(code);
    }
    let lower = text.to_ascii_lowercase();
    FACILITY_NAMES
        .iter()
        .position(|name| *name == lower)
        .map(|index| index as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Event {
        Event {
            time: Some(DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123+02:00").unwrap()),
            host: Some("web-1".into()),
            pname: Some("nginx".into()),
            pid: Some("42".into()),
            msgid: None,
            pri: Some(134),
            ver: Some(1),
            msg: "GET / 200".into(),
            native: Map::new(),
            meniscus: Correlation {
                tenant: "acme".into(),
                producer: "nginx".into(),
                pattern: None,
                durable: true,
                encrypted: false,
                event_id: new_ulid(),
                job_id: Some(new_ulid()),
                received_at: Utc::now(),
                transport: Transport::Tcp,
                parse_error: None,
                raw: None,
                raw_encoding: None,
                truncated_from: None,
            },
            normalized: Map::new(),
            tags: vec![],
        }
    }

    #[test]
    fn cee_line_round_trips() {
        let event = sample();
        let line = event.to_cee_line();
        let json = line.strip_prefix("@cee: ").unwrap();
        let back: Event = serde_json::from_str(json).unwrap();
        assert_eq!(back, event);
        assert!(json.contains("\"pname\":\"nginx\""));
    }

    #[test]
    fn ulids_carry_the_given_millisecond_and_count_up_within_it() {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 21, 0, 0).unwrap();
        let ids: Vec<ulid::Ulid> = (0..1_000)
            .map(|_| ulid::Ulid::from_string(&new_ulid_at(at)).unwrap())
            .collect();
        assert!(ids
            .iter()
            .all(|id| id.timestamp_ms() == at.timestamp_millis() as u64));
        assert!(ids.windows(2).all(|pair| pair[1].0 == pair[0].0 + 1));
        // A later millisecond starts from fresh random bits, still above the earlier ids.
        let later =
            ulid::Ulid::from_string(&new_ulid_at(at + chrono::Duration::milliseconds(1))).unwrap();
        assert!(later > ids[999]);
        assert_eq!(later.timestamp_ms(), at.timestamp_millis() as u64 + 1);
    }

    #[test]
    fn ulids_from_one_thread_are_unique_and_ascending() {
        let ids: Vec<String> = (0..10_000).map(|_| new_ulid()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ids.iter().all(|id| ulid::Ulid::from_string(id).is_ok()));
    }

    #[test]
    fn severity_and_facility_come_from_pri() {
        let event = sample();
        assert_eq!(event.severity(), Some(6));
        assert_eq!(event.facility(), Some(16));
    }

    #[test]
    fn severity_names_and_codes_parse() {
        assert_eq!(parse_severity("err"), Some(3));
        assert_eq!(parse_severity("ERROR"), Some(3));
        assert_eq!(parse_severity("7"), Some(7));
        assert_eq!(parse_severity("8"), None);
        assert_eq!(parse_severity("loud"), None);
        assert_eq!(parse_facility("local7"), Some(23));
        assert_eq!(parse_facility("auth"), Some(4));
    }
}
