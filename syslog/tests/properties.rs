//! Property tests: RFC 5424 round trip, parsers and framer never panic, the framer never
//! invents bytes and honours its limit.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use meniscus_syslog::{
    format_rfc5424, parse, rfc3164, rfc5424, Framer, Framing, Message, ParseOptions, Protocol,
    SdElement,
};
use proptest::prelude::*;

fn opts() -> ParseOptions {
    ParseOptions::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 16, 0, 0)
            .single()
            .expect("literal"),
    )
}

#[derive(Debug, Clone)]
struct Owned {
    pri: u8,
    timestamp: Option<DateTime<FixedOffset>>,
    hostname: Option<String>,
    app_name: Option<String>,
    proc_id: Option<String>,
    msg_id: Option<String>,
    sd: Vec<(String, Vec<(String, String)>)>,
    msg: String,
}

impl Owned {
    fn message(&self) -> Message<'_> {
        Message {
            protocol: Protocol::Rfc5424,
            pri: self.pri,
            pri_missing: false,
            version: Some(1),
            timestamp: self.timestamp,
            hostname: self.hostname.as_deref(),
            app_name: self.app_name.as_deref(),
            proc_id: self.proc_id.as_deref(),
            msg_id: self.msg_id.as_deref(),
            structured_data: self
                .sd
                .iter()
                .map(|(id, params)| SdElement {
                    id,
                    params: params
                        .iter()
                        .map(|(n, v)| (n.as_str(), Cow::Borrowed(v.as_str())))
                        .collect(),
                })
                .collect(),
            msg: &self.msg,
            sequence: None,
        }
    }
}

/// A header field: printable ASCII, not NILVALUE.
fn field(max: usize) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        proptest::string::string_regex(&format!("[!-~]{{1,{max}}}"))
            .expect("regex")
            .prop_filter("nil", |s| s != "-"),
    )
}

fn timestamp() -> impl Strategy<Value = Option<DateTime<FixedOffset>>> {
    proptest::option::of(
        (
            0i64..253_402_300_799 - 86_400,
            0u32..1_000_000,
            -(23 * 60 + 59)..=(23 * 60 + 59i32),
        )
            .prop_filter_map("valid", |(secs, micros, off_min)| {
                let offset = FixedOffset::east_opt(off_min * 60)?;
                let utc = DateTime::from_timestamp(secs, micros * 1000)?;
                Some(utc.with_timezone(&offset))
            }),
    )
}

fn sd_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9@._#-]{1,32}"
}

prop_compose! {
    fn owned()(
        pri in 0u8..=191,
        timestamp in timestamp(),
        hostname in field(255),
        app_name in field(48),
        proc_id in field(128),
        msg_id in field(32),
        sd in proptest::collection::vec((sd_name(), proptest::collection::vec((sd_name(), "\\PC{0,20}|[\"\\\\\\]]{0,5}"), 0..4)), 0..4),
        msg in "\\PC{0,80}",
    ) -> Owned {
        Owned { pri, timestamp, hostname, app_name, proc_id, msg_id, sd, msg }
    }
}

/// Strings built from syslog fragments, to reach deep parser states more often than random
/// text does.
fn syslogish() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("<13>".to_string()),
        Just("<191>".to_string()),
        Just("<".to_string()),
        Just(">".to_string()),
        Just("1 ".to_string()),
        Just("- ".to_string()),
        Just("2026-11-25T15:43:54.123456+01:00 ".to_string()),
        Just("2026-11-25T15:43:54".to_string()),
        Just("Oct  7 ".to_string()),
        Just("NOV 22 ".to_string()),
        Just("03:10:04".to_string()),
        Just(".123".to_string()),
        Just(" 2024".to_string()),
        Just(" UTC:".to_string()),
        Just("*".to_string()),
        Just("91: ".to_string()),
        Just("%ASA-6-302014: ".to_string()),
        Just("host ".to_string()),
        Just("app[12]: ".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("x@1".to_string()),
        Just(" a=\"".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just(" ".to_string()),
        Just(":".to_string()),
        Just("\u{feff}".to_string()),
        Just("\n".to_string()),
        Just("\0".to_string()),
        "[0-9]{1,4}",
        "\\PC{0,8}",
    ];
    proptest::collection::vec(frag, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rfc5424_round_trip(o in owned()) {
        let m = o.message();
        let wire = format_rfc5424(&m);
        let back = parse(&wire, &opts()).map_err(|e| TestCaseError::fail(format!("{wire:?}: {e}")))?;
        prop_assert_eq!(&back, &m, "{:?}", wire);
        prop_assert_eq!(back.timestamp.map(|t| *t.offset()), m.timestamp.map(|t| *t.offset()));
        // And the serializer is stable.
        prop_assert_eq!(format_rfc5424(&back), wire);
    }

    #[test]
    fn parse_never_panics_on_text(s in any::<String>()) {
        let _ = parse(&s, &opts());
        let _ = rfc5424::parse(&s);
        let _ = rfc3164::parse(&s, &opts());
    }

    #[test]
    fn parse_never_panics_on_syslogish(s in syslogish(), tz in prop_oneof![Just(chrono_tz::UTC), Just(chrono_tz::Europe::Berlin), Just(chrono_tz::Pacific::Chatham)]) {
        let o = ParseOptions { timezone: tz, ..opts() };
        if let Ok(m) = parse(&s, &o) {
            // Whatever parsed keeps pointing into the input.
            prop_assert!(m.msg.len() <= s.len());
            prop_assert!(m.pri <= 191);
        }
        let _ = rfc5424::parse(&s);
        let _ = rfc3164::parse(&s, &o);
    }

    #[test]
    fn parse_never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = String::from_utf8_lossy(&b);
        let _ = parse(&s, &opts());
    }

    #[test]
    fn framer_never_panics_nor_invents_bytes(
        input in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            syslogish().prop_map(String::into_bytes),
            proptest::collection::vec(prop_oneof![Just(b'1'), Just(b'0'), Just(b' '), Just(b'<'), Just(b'\n'), Just(b'\r'), Just(0u8), Just(b'a')], 0..600),
        ],
        chunks in proptest::collection::vec(1usize..50, 1..20),
        framing in prop_oneof![Just(Framing::Auto), Just(Framing::OctetCounting), Just(Framing::Lf)],
        max in 1usize..64,
    ) {
        let mut f = Framer::new(framing, max);
        let mut out = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < input.len() {
            let n = chunks[i % chunks.len()].min(input.len() - at);
            f.extend(&input[at..at + n]);
            at += n;
            i += 1;
            while let Some(fr) = f.next_frame() {
                out.push(fr);
                prop_assert!(out.len() <= input.len(), "more frames than bytes");
            }
            prop_assert!(f.buffered() <= max + 1 + 50 + 11, "buffered {}", f.buffered());
        }
        while let Some(fr) = f.finish() {
            out.push(fr);
            prop_assert!(out.len() <= input.len() + 1, "finish loops");
        }
        let total: usize = out.iter().map(|fr| fr.bytes.len()).sum();
        prop_assert!(total <= input.len(), "yielded {} of {} bytes", total, input.len());
        for fr in &out {
            prop_assert!(fr.bytes.len() <= max);
            if let Some(orig) = fr.truncated_from {
                prop_assert!(orig > max && fr.bytes.len() == max);
            }
        }
    }

    #[test]
    fn auto_reproduces_octet_counted_and_lf_streams(
        msgs in proptest::collection::vec("<[0-9]{1,3}>[^\n\r\0]{0,40}", 1..20),
        counted in proptest::collection::vec(any::<bool>(), 20),
        chunk in 1usize..64,
    ) {
        let mut stream = Vec::new();
        for (m, &c) in msgs.iter().zip(&counted) {
            if c {
                stream.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
            } else {
                stream.extend_from_slice(m.as_bytes());
                stream.push(b'\n');
            }
        }
        let mut f = Framer::new(Framing::Auto, 1024);
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            f.extend(piece);
            while let Some(fr) = f.next_frame() {
                got.push(fr);
            }
        }
        while let Some(fr) = f.finish() {
            got.push(fr);
        }
        let got: Vec<String> = got.into_iter().map(|fr| String::from_utf8_lossy(&fr.bytes).into_owned()).collect();
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn borrowed_frames_equal_owned_frames(
        input in proptest::collection::vec(prop_oneof![
            Just(b'\n'), Just(b'\r'), Just(0u8), Just(b' '), Just(b'<'), Just(b'1'), Just(b'5'),
            any::<u8>(),
        ], 0..400),
        chunks in proptest::collection::vec(1usize..50, 1..20),
        framing in prop_oneof![Just(Framing::Auto), Just(Framing::OctetCounting), Just(Framing::Lf)],
        max in 1usize..64,
    ) {
        let (mut owned, mut borrowed) = (Framer::new(framing, max), Framer::new(framing, max));
        let (mut by_copy, mut by_ref) = (Vec::new(), Vec::new());
        let mut at = 0;
        let mut i = 0;
        while at < input.len() {
            let n = chunks[i % chunks.len()].min(input.len() - at);
            owned.extend(&input[at..at + n]);
            borrowed.extend(&input[at..at + n]);
            at += n;
            i += 1;
            while let Some(fr) = owned.next_frame() {
                by_copy.push((fr.bytes, fr.truncated_from, fr.error));
            }
            while let Some(fr) = borrowed.next_frame_ref(false) {
                by_ref.push((fr.bytes.to_vec(), fr.truncated_from, fr.error));
            }
        }
        while let Some(fr) = owned.finish() {
            by_copy.push((fr.bytes, fr.truncated_from, fr.error));
        }
        while let Some(fr) = borrowed.next_frame_ref(true) {
            by_ref.push((fr.bytes.to_vec(), fr.truncated_from, fr.error));
            prop_assert!(by_ref.len() <= input.len() + 1, "the last frame repeats");
        }
        prop_assert_eq!(by_ref, by_copy);
    }
}
