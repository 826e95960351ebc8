//! RFC 5424 table tests: real sender output, every header field, structured data escapes,
//! limits and the errors that make the caller store a line raw.

use std::borrow::Cow;

use chrono::{DateTime, TimeZone, Utc};
use meniscus_syslog::{parse, Message, ParseErrorKind, ParseOptions, Protocol};

fn opts() -> ParseOptions {
    ParseOptions::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 16, 0, 0)
            .single()
            .expect("literal"),
    )
}

fn ok(input: &str) -> Message<'_> {
    let m = parse(input, &opts()).unwrap_or_else(|e| panic!("{input:?}: {e}"));
    assert_eq!(m.protocol, Protocol::Rfc5424, "{input:?}");
    m
}

fn ts(s: &str) -> Option<DateTime<chrono::FixedOffset>> {
    Some(DateTime::parse_from_rfc3339(s).expect("literal"))
}

#[test]
fn logger_rfc5424_with_meniscus_sd() {
    let input = r#"<13>1 2026-11-25T15:43:54.123456+00:00 myhost root 1234 - [timeQuality tzKnown="1" isSynced="1" syncAccuracy="232000"][meniscus@32473 tenant="demo" token="abc"] hello"#;
    let m = ok(input);
    assert_eq!(m.pri, 13);
    assert_eq!((m.facility(), m.severity()), (1, 5));
    assert!(!m.pri_missing);
    assert_eq!(m.version, Some(1));
    assert_eq!(m.timestamp, ts("2026-11-25T15:43:54.123456Z"));
    assert_eq!(m.hostname, Some("myhost"));
    assert_eq!(m.app_name, Some("root"));
    assert_eq!(m.proc_id, Some("1234"));
    assert_eq!(m.msg_id, None);
    assert_eq!(m.structured_data.len(), 2);
    let tq = &m.structured_data[0];
    assert_eq!(tq.id, "timeQuality");
    assert_eq!(
        tq.params,
        vec![
            ("tzKnown", Cow::Borrowed("1")),
            ("isSynced", Cow::Borrowed("1")),
            ("syncAccuracy", Cow::Borrowed("232000"))
        ]
    );
    let men = m.sd_element("meniscus@32473").expect("meniscus element");
    assert_eq!(men.param("tenant"), Some("demo"));
    assert_eq!(men.param("token"), Some("abc"));
    assert_eq!(m.msg, "hello");
    assert_eq!(m.sequence, None);
}

#[test]
fn rfc_examples_and_senders() {
    // (input, timestamp, host, app, procid, msgid, sd ids, msg)
    type Row = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        &'static [&'static str],
        &'static str,
    );
    let rows: &[Row] = &[
        // RFC 5424 §6.5 example 1 (with BOM).
        ("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
         Some("2003-10-11T22:14:15.003Z"), Some("mymachine.example.com"), Some("su"), None, Some("ID47"), &[], "'su root' failed for lonvick on /dev/pts/8"),
        // Example 2.
        ("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
         Some("2003-08-24T05:14:15.000003-07:00"), Some("192.0.2.1"), Some("myproc"), Some("8710"), None, &[], "%% It's time to make the do-nuts."),
        // Example 3.
        ("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \u{feff}An application event log entry...",
         Some("2003-10-11T22:14:15.003Z"), Some("mymachine.example.com"), Some("evntslog"), None, Some("ID47"), &["exampleSDID@32473"], "An application event log entry..."),
        // Example 4: SD only, no MSG.
        ("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
         Some("2003-10-11T22:14:15.003Z"), Some("mymachine.example.com"), Some("evntslog"), None, Some("ID47"), &["exampleSDID@32473", "examplePriority@32473"], ""),
        // rsyslog RSYSLOG_SyslogProtocol23Format.
        ("<86>1 2026-11-25T16:01:02.345678+01:00 web01 sshd 4242 - - Accepted publickey for deploy from 10.0.0.5 port 52144 ssh2",
         Some("2026-11-25T16:01:02.345678+01:00"), Some("web01"), Some("sshd"), Some("4242"), None, &[], "Accepted publickey for deploy from 10.0.0.5 port 52144 ssh2"),
        // syslog-ng `syslog()` destination (IETF), with its meta SD.
        ("<38>1 2026-11-25T16:01:02+01:00 ng01 nginx 77 - [meta sequenceId=\"12\" sysUpTime=\"35\"] GET / 200",
         Some("2026-11-25T16:01:02+01:00"), Some("ng01"), Some("nginx"), Some("77"), None, &["meta"], "GET / 200"),
        // Every header field NILVALUE.
        ("<0>1 - - - - - -", None, None, None, None, None, &[], ""),
        ("<191>1 - - - - - - msg", None, None, None, None, None, &[], "msg"),
        // Space after <PRI> tolerated.
        ("<13> 1 2026-11-25T15:43:54Z h a p m - x", Some("2026-11-25T15:43:54Z"), Some("h"), Some("a"), Some("p"), Some("m"), &[], "x"),
        // Fractions: 1 to 6 digits, more truncated; lowercase t and z.
        ("<13>1 2026-11-25T15:43:54.1Z h - - - - x", Some("2026-11-25T15:43:54.1Z"), Some("h"), None, None, None, &[], "x"),
        ("<13>1 2026-11-25T15:43:54.123456789Z h - - - - x", Some("2026-11-25T15:43:54.123456Z"), Some("h"), None, None, None, &[], "x"),
        ("<13>1 2026-11-25t15:43:54z h - - - - x", Some("2026-11-25T15:43:54Z"), Some("h"), None, None, None, &[], "x"),
        ("<13>1 2026-11-25T15:43:54-05:30 h - - - - x", Some("2026-11-25T15:43:54-05:30"), Some("h"), None, None, None, &[], "x"),
        // MSG keeps inner and trailing spaces, and a leading one past the separator.
        ("<13>1 - - - - - -  two  spaces ", None, None, None, None, None, &[], " two  spaces "),
        // MSG glued to the SD (not RFC, but nothing is lost by keeping it).
        ("<13>1 - - - - - [a@1 b=\"c\"]glued", None, None, None, None, None, &["a@1"], "glued"),
        // UTF-8 in MSG and in values.
        ("<13>1 - - - - - [a@1 b=\"grüße\"] héllo wörld ✓", None, None, None, None, None, &["a@1"], "héllo wörld ✓"),
        // SD element with no params, and empty value.
        ("<13>1 - - - - - [empty][e@1 v=\"\"] m", None, None, None, None, None, &["empty", "e@1"], "m"),
        // Version 2 (unknown but well-formed) is kept.
        ("<13>2 - - - - - - m", None, None, None, None, None, &[], "m"),
    ];
    for &(input, t, host, app, pid, msgid, sd, msg) in rows {
        let m = ok(input);
        assert_eq!(m.timestamp, t.and_then(ts), "{input:?}");
        if let (Some(got), Some(want)) = (m.timestamp, t.and_then(ts)) {
            assert_eq!(got.offset(), want.offset(), "{input:?}");
        }
        assert_eq!(m.hostname, host, "{input:?}");
        assert_eq!(m.app_name, app, "{input:?}");
        assert_eq!(m.proc_id, pid, "{input:?}");
        assert_eq!(m.msg_id, msgid, "{input:?}");
        let ids: Vec<&str> = m.structured_data.iter().map(|e| e.id).collect();
        assert_eq!(ids, sd, "{input:?}");
        assert_eq!(m.msg, msg, "{input:?}");
    }
}

#[test]
fn terminators_are_stripped_udp_and_tcp_alike() {
    let base = "<13>1 2026-11-25T15:43:54Z h a - - - hello";
    for suffix in ["", "\n", "\r\n", "\0", "\n\0", "\r\n\r\n"] {
        let input = format!("{base}{suffix}");
        let m = ok(&input);
        assert_eq!(m.msg, "hello", "{suffix:?}");
    }
    // Also when the message ends right after a header field.
    assert_eq!(ok("<13>1 - - - - - -\n").msg, "");
}

#[test]
fn sd_escapes() {
    // (PARAM-VALUE as on the wire, unescaped, borrowed?)
    let rows: &[(&str, &str, bool)] = &[
        (r#"plain"#, "plain", true),
        (r#"a\"b"#, "a\"b", false),
        (r#"a\\b"#, "a\\b", false),
        (r#"a\]b"#, "a]b", false),
        (r#"\"\\\]"#, "\"\\]", false),
        // Not an escape: both bytes kept, element kept, no allocation.
        (r#"http:\/\/x"#, r"http:\/\/x", true),
        (r#"C:\temp\new"#, r"C:\temp\new", true),
        (r#"ends\\"#, "ends\\", false),
        (r#"]"#, "]", true),
        (r#"a]b[c=d"#, "a]b[c=d", true),
        (r#"\é"#, r"\é", true),
    ];
    for &(wire, want, borrowed) in rows {
        let input = format!(r#"<13>1 - - - - - [x@1 k="{wire}" after="ok"] msg"#);
        let m = ok(&input);
        let e = &m.structured_data[0];
        assert_eq!(e.params.len(), 2, "{wire}");
        assert_eq!(e.params[0].1, want, "{wire}");
        assert_eq!(
            matches!(e.params[0].1, Cow::Borrowed(_)),
            borrowed,
            "{wire}"
        );
        assert_eq!(e.param("after"), Some("ok"), "{wire}");
        assert_eq!(m.msg, "msg", "{wire}");
    }
}

#[test]
fn length_limits() {
    let at = |n: usize| "a".repeat(n);
    // (field position, limit)
    let fields = [(0usize, 255usize), (1, 48), (2, 128), (3, 32)];
    for (pos, max) in fields {
        for (len, good) in [(max, true), (max + 1, false)] {
            let mut parts = vec!["-".to_string(); 4];
            parts[pos] = at(len);
            let input = format!("<13>1 - {} - m", parts.join(" "));
            let r = parse(&input, &opts());
            assert_eq!(r.is_ok(), good, "field {pos} len {len}: {r:?}");
            if let Err(e) = r {
                assert!(
                    matches!(e.kind, ParseErrorKind::FieldTooLong { max: m, .. } if m == max),
                    "{e}"
                );
                assert_eq!(e.offset, 8 + 2 * pos, "{e}");
            }
        }
    }
    let ok_id = format!("<13>1 - - - - - [{}] m", at(32));
    assert!(parse(&ok_id, &opts()).is_ok());
    let long_id = format!("<13>1 - - - - - [{}] m", at(33));
    let e = parse(&long_id, &opts()).expect_err("sd-id too long");
    assert_eq!(e.to_string(), "sd-id is longer than 32 bytes at byte 17");
    let long_param = format!("<13>1 - - - - - [x {}=\"v\"] m", at(33));
    let e = parse(&long_param, &opts()).expect_err("param-name too long");
    assert_eq!(
        e.to_string(),
        "param-name is longer than 32 bytes at byte 19"
    );
}

#[test]
fn errors_say_what_and_where() {
    let rows: &[(&str, &str)] = &[
        ("", "empty message at byte 0"),
        ("\r\n", "empty message at byte 0"),
        (
            "<192>1 - - - - - -",
            "priority 192 is out of range (0-191) at byte 1",
        ),
        (
            "<999>1 - - - - - -",
            "priority 999 is out of range (0-191) at byte 1",
        ),
        (
            "<13>1 2026-13-01T00:00:00Z h - - - -",
            "invalid timestamp at byte 6",
        ),
        (
            "<13>1 2026-11-25T15:43:54 h - - - -",
            "invalid timestamp at byte 6",
        ),
        ("<13>1 - h", "missing app-name at byte 9"),
        ("<13>1 - h a p", "missing msgid at byte 13"),
        ("<13>1 - h a p m", "missing structured data at byte 15"),
        (
            "<13>1 - h a p m x",
            "invalid structured data: expected '-' or '[' at byte 16",
        ),
        (
            "<13>1 - h a p m -x",
            "expected a space after structured data at byte 17",
        ),
        (
            "<13>1 - h a p m [x",
            "invalid structured data: unterminated sd-element at byte 18",
        ),
        (
            "<13>1 - h a p m [x a]",
            "invalid structured data: expected '=' after param-name at byte 20",
        ),
        (
            "<13>1 - h a p m [x a=b]",
            "invalid structured data: expected '\"' to open param-value at byte 21",
        ),
        (
            "<13>1 - h a p m [x a=\"b]",
            "invalid structured data: unterminated param-value at byte 22",
        ),
        (
            "<13>1 - h a p m [x a=\"b\\\"]",
            "invalid structured data: unterminated param-value at byte 22",
        ),
        ("<13>1 - h a p m []", "missing sd-id at byte 17"),
        (
            "<13>1 - h\ta p m -",
            "invalid character in hostname at byte 9",
        ),
        ("<13>1 - h  a p m -", "missing app-name at byte 10"),
        (
            "<13>1 - h a p m [x a=\"b\"x]",
            "invalid structured data: expected ' ' or ']' in sd-element at byte 24",
        ),
        (
            "<13>1 -x h a p m -",
            "expected a space after timestamp at byte 7",
        ),
    ];
    for &(input, want) in rows {
        let e = parse(input, &opts()).expect_err(input);
        assert_eq!(e.to_string(), want, "{input:?}");
    }
}

#[test]
fn rfc5424_module_requires_pri() {
    let e = meniscus_syslog::rfc5424::parse("1 - - - - - - x").expect_err("no pri");
    assert_eq!(e.to_string(), "missing pri at byte 0");
    let m = meniscus_syslog::rfc5424::parse("<14>1 - - - - - - x\n").expect("ok");
    assert_eq!(m.msg, "x");
}

#[test]
fn detection_does_not_misread_3164() {
    // Each of these has a digit after <PRI> but is not RFC 5424.
    for input in [
        "<189>91: *Oct  7 03:10:04.123: %SYS-5-CONFIG_I: Configured from console",
        "<13>2026-11-25T15:43:54+01:00 host app[1]: rsyslog forward format",
        "<13>1000 apples",
        "<13>0 - - - - - -",
        "<13>1 apples",
    ] {
        let m = parse(input, &opts()).expect(input);
        assert_eq!(m.protocol, Protocol::Rfc3164, "{input:?}");
    }
}
