//! RFC 3164 and vendor-dialect table tests. Every row is a line seen from a real sender or a
//! case from LESSONS.md "Syslog ingest".

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use meniscus_syslog::{parse, ParseOptions, Protocol};

/// Received 2026-11-25 16:00:00 UTC, zone-less stamps in UTC.
fn opts() -> ParseOptions {
    ParseOptions::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 16, 0, 0)
            .single()
            .expect("literal"),
    )
}

fn ts(s: &str) -> Option<DateTime<FixedOffset>> {
    Some(DateTime::parse_from_rfc3339(s).expect("literal"))
}

struct Row {
    input: &'static str,
    pri: u8,
    pri_missing: bool,
    ts: Option<&'static str>,
    host: Option<&'static str>,
    app: Option<&'static str>,
    pid: Option<&'static str>,
    seq: Option<&'static str>,
    msg: &'static str,
}

const fn row(
    input: &'static str,
    pri: u8,
    ts: Option<&'static str>,
    host: Option<&'static str>,
    app: Option<&'static str>,
    pid: Option<&'static str>,
    msg: &'static str,
) -> Row {
    Row {
        input,
        pri,
        pri_missing: false,
        ts,
        host,
        app,
        pid,
        seq: None,
        msg,
    }
}

fn check(rows: &[Row], opts: &ParseOptions) {
    for r in rows {
        let m = parse(r.input, opts).unwrap_or_else(|e| panic!("{:?}: {e}", r.input));
        assert_eq!(m.protocol, Protocol::Rfc3164, "{:?}", r.input);
        assert_eq!(m.pri, r.pri, "pri {:?}", r.input);
        assert_eq!(m.pri_missing, r.pri_missing, "pri_missing {:?}", r.input);
        assert_eq!(m.version, None, "{:?}", r.input);
        let want_ts = r.ts.and_then(ts);
        assert_eq!(m.timestamp, want_ts, "timestamp {:?}", r.input);
        if let (Some(a), Some(b)) = (m.timestamp, want_ts) {
            assert_eq!(a.offset(), b.offset(), "offset {:?}", r.input);
        }
        assert_eq!(m.hostname, r.host, "host {:?}", r.input);
        assert_eq!(m.app_name, r.app, "app {:?}", r.input);
        assert_eq!(m.proc_id, r.pid, "pid {:?}", r.input);
        assert_eq!(m.sequence, r.seq, "seq {:?}", r.input);
        assert_eq!(m.msg_id, None, "{:?}", r.input);
        assert!(m.structured_data.is_empty(), "{:?}", r.input);
        assert_eq!(m.msg, r.msg, "msg {:?}", r.input);
    }
}

#[test]
fn classic_bsd_and_senders() {
    check(
        &[
            // RFC 3164 §5.4 examples.
            row("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8", 34, Some("2026-10-11T22:14:15Z"), Some("mymachine"), Some("su"), None, "'su root' failed for lonvick on /dev/pts/8"),
            row("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", 13, Some("2026-02-05T17:32:18Z"), Some("10.0.0.99"), None, None, "Use the BFG!"),
            // Linux sysklogd / rsyslog default traditional format.
            row("<30>Nov 25 15:59:01 web01 systemd[1]: Started Session 42 of user root.", 30, Some("2026-11-25T15:59:01Z"), Some("web01"), Some("systemd"), Some("1"), "Started Session 42 of user root."),
            row("<22>Nov 25 15:59:01 mail postfix/smtpd[2211]: connect from unknown[10.1.2.3]", 22, Some("2026-11-25T15:59:01Z"), Some("mail"), Some("postfix/smtpd"), Some("2211"), "connect from unknown[10.1.2.3]"),
            row("<6>Nov 25 15:59:01 host kernel: [  123.456] eth0: link up", 6, Some("2026-11-25T15:59:01Z"), Some("host"), Some("kernel"), None, "[  123.456] eth0: link up"),
            // syslog-ng legacy output (`network()` with default template).
            row("<38>Nov 25 15:59:01 ng01 sshd[999]: Accepted password for bob", 38, Some("2026-11-25T15:59:01Z"), Some("ng01"), Some("sshd"), Some("999"), "Accepted password for bob"),
            // rsyslog RSYSLOG_ForwardFormat: RFC 3339 stamp in a 3164 header.
            row("<86>2026-11-25T16:01:02.345678+01:00 web01 sshd[4242]: Accepted publickey for deploy", 86, Some("2026-11-25T16:01:02.345678+01:00"), Some("web01"), Some("sshd"), Some("4242"), "Accepted publickey for deploy"),
            // haproxy with no hostname.
            row("<133>Jan 13 16:33:35 haproxy[73411]: Proxy www started.", 133, Some("2026-01-13T16:33:35Z"), None, Some("haproxy"), Some("73411"), "Proxy www started."),
            // Tag with a trailing colon only and no host.
            row("<14>Nov 25 15:00:00 cron: job done", 14, Some("2026-11-25T15:00:00Z"), None, Some("cron"), None, "job done"),
            // Tag with [pid] and no colon.
            row("<14>Nov 25 15:00:00 host app[7] no colon", 14, Some("2026-11-25T15:00:00Z"), Some("host"), Some("app"), Some("7"), "no colon"),
            // Upper-case month, single-digit day padded with space, unpadded, zero padded.
            row("<13>NOV 22 10:00:00 h a: m", 13, Some("2026-11-22T10:00:00Z"), Some("h"), Some("a"), None, "m"),
            row("<13>Oct  7 03:10:04 h a: m", 13, Some("2026-10-07T03:10:04Z"), Some("h"), Some("a"), None, "m"),
            row("<13>Oct 7 03:10:04 h a: m", 13, Some("2026-10-07T03:10:04Z"), Some("h"), Some("a"), None, "m"),
            row("<13>Oct 07 03:10:04 h a: m", 13, Some("2026-10-07T03:10:04Z"), Some("h"), Some("a"), None, "m"),
            // Fractional seconds.
            row("<13>Oct  7 03:10:04.123 h a: m", 13, Some("2026-10-07T03:10:04.123Z"), Some("h"), Some("a"), None, "m"),
            row("<13>Oct  7 03:10:04.123456789 h a: m", 13, Some("2026-10-07T03:10:04.123456Z"), Some("h"), Some("a"), None, "m"),
            // Year after the time.
            row("<13>Mar  1 12:00:00 2024 host app: m", 13, Some("2024-03-01T12:00:00Z"), Some("host"), Some("app"), None, "m"),
            row("<13>Mar 1 12:00:00 2024: %X-1-Y: m", 13, Some("2024-03-01T12:00:00Z"), None, Some("%X-1-Y"), None, "m"),
            // A message starting with `[` is text, not structured data.
            row("<13>Nov 25 15:00:00 host app: [INFO] [a b=\"c\"] started", 13, Some("2026-11-25T15:00:00Z"), Some("host"), Some("app"), None, "[INFO] [a b=\"c\"] started"),
            row("<13>[x@1 a=\"b\"] not sd", 13, None, None, None, None, "[x@1 a=\"b\"] not sd"),
            // Space after <PRI>.
            row("<13> Nov 25 15:00:00 host app: m", 13, Some("2026-11-25T15:00:00Z"), Some("host"), Some("app"), None, "m"),
            // Stamp only / stamp and host only.
            row("<13>Nov 25 15:00:00", 13, Some("2026-11-25T15:00:00Z"), None, None, None, ""),
            row("<13>Nov 25 15:00:00 host", 13, Some("2026-11-25T15:00:00Z"), Some("host"), None, None, ""),
            // Unparseable stamps: keep everything after the PRI as the message.
            row("<13>Nov 25 25:00:00 host app: m", 13, None, None, None, None, "Nov 25 25:00:00 host app: m"),
            row("<13>Feb 30 10:00:00 host app: m", 13, None, None, None, None, "Feb 30 10:00:00 host app: m"),
            row("<13>hello world", 13, None, None, None, None, "hello world"),
            row("<13>Novel idea", 13, None, None, None, None, "Novel idea"),
            row("<13>42: the answer", 13, None, None, None, None, "42: the answer"),
            // A malformed PRI is not a PRI: whole line kept, PRI 13.
            Row { pri_missing: true, ..row("<abc>hello", 13, None, None, None, None, "<abc>hello") },
            Row { pri_missing: true, ..row("<1234>hello", 13, None, None, None, None, "<1234>hello") },
            // Trailing terminators (UDP datagram or a frame with its LF).
            row("<13>Nov 25 15:00:00 host app: m\r\n", 13, Some("2026-11-25T15:00:00Z"), Some("host"), Some("app"), None, "m"),
            row("<13>Nov 25 15:00:00 host app: m\0", 13, Some("2026-11-25T15:00:00Z"), Some("host"), Some("app"), None, "m"),
        ],
        &opts(),
    );
}

#[test]
fn no_pri_means_13() {
    let missing = |r: Row| Row {
        pri_missing: true,
        ..r
    };
    check(
        &[
            missing(row(
                "Nov 25 15:00:00 host app[1]: no pri",
                13,
                Some("2026-11-25T15:00:00Z"),
                Some("host"),
                Some("app"),
                Some("1"),
                "no pri",
            )),
            missing(row(
                "just some text",
                13,
                None,
                None,
                None,
                None,
                "just some text",
            )),
            missing(row(
                "1 2026-11-25T15:43:54Z h a - - - looks like 5424 without pri",
                13,
                None,
                None,
                None,
                None,
                "1 2026-11-25T15:43:54Z h a - - - looks like 5424 without pri",
            )),
            Row {
                seq: Some("91"),
                ..missing(row(
                    "91: *Oct  7 03:10:04.123: %SYS-5-CONFIG_I: Configured from console",
                    13,
                    Some("2026-10-07T03:10:04.123Z"),
                    None,
                    Some("%SYS-5-CONFIG_I"),
                    None,
                    "Configured from console",
                ))
            },
        ],
        &opts(),
    );
}

#[test]
fn cisco_asa_pix() {
    let seq = |r: Row, s: &'static str| Row { seq: Some(s), ..r };
    check(
        &[
            // Cisco IOS: sequence number, `*` (clock not synchronised), fraction, trailing colon.
            seq(row("<189>91: *Oct  7 03:10:04.123: %SYS-5-CONFIG_I: Configured from console", 189, Some("2026-10-07T03:10:04.123Z"), None, Some("%SYS-5-CONFIG_I"), None, "Configured from console"), "91"),
            // `.` prefix (NTP configured but not authoritative) and a zone name.
            seq(row("<189>000123: .Oct  7 03:10:04.123 UTC: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up", 189, Some("2026-10-07T03:10:04.123Z"), None, Some("%LINK-3-UPDOWN"), None, "Interface Gi0/1, changed state to up"), "000123"),
            // Cisco IOS with year in the stamp and no sequence number.
            row("<187>Oct  7 2026 03:10:04: %LINEPROTO-5-UPDOWN: Line protocol on Interface Vlan1, changed state to down", 187, Some("2026-10-07T03:10:04Z"), None, Some("%LINEPROTO-5-UPDOWN"), None, "Line protocol on Interface Vlan1, changed state to down"),
            // Sequence number with no stamp.
            seq(row("<189>5: %SYS-5-RESTART: System restarted", 189, None, None, Some("%SYS-5-RESTART"), None, "System restarted"), "5"),
            // PIX: year before the time, trailing colon, no host.
            row("<190>Apr 15 2007 21:28:13: %PIX-6-302014: Teardown TCP connection 1 for outside:10.0.0.1/80 to inside:10.0.0.2/1025 duration 0:00:01 bytes 100 TCP FINs", 190, Some("2007-04-15T21:28:13Z"), None, Some("%PIX-6-302014"), None, "Teardown TCP connection 1 for outside:10.0.0.1/80 to inside:10.0.0.2/1025 duration 0:00:01 bytes 100 TCP FINs"),
            // ASA without a stamp: the mnemonic is where the host would be.
            row("<166>%ASA-6-302014: Teardown TCP connection 5 for outside:1.2.3.4/443 to inside:10.0.0.2/5555 duration 0:00:30 bytes 6000 TCP FINs", 166, None, None, Some("%ASA-6-302014"), None, "Teardown TCP connection 5 for outside:1.2.3.4/443 to inside:10.0.0.2/5555 duration 0:00:30 bytes 6000 TCP FINs"),
            // ASA with `logging timestamp` and `logging device-id hostname`.
            row("<166>Nov 25 2026 15:00:00 asa01 : %ASA-6-106015: Deny TCP (no connection)", 166, Some("2026-11-25T15:00:00Z"), Some("asa01"), Some("%ASA-6-106015"), None, "Deny TCP (no connection)"),
            row("<166>Nov 25 2026 15:00:00: %ASA-4-106023: Deny udp src outside:1.1.1.1/53", 166, Some("2026-11-25T15:00:00Z"), None, Some("%ASA-4-106023"), None, "Deny udp src outside:1.1.1.1/53"),
            // Nexus-style host then mnemonic.
            row("<189>Nov 25 15:00:00 nx01 %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up", 189, Some("2026-11-25T15:00:00Z"), Some("nx01"), Some("%ETHPORT-5-IF_UP"), None, "Interface Ethernet1/1 is up"),
        ],
        &opts(),
    );
}

#[test]
fn missing_year_is_resolved_against_received_at() {
    let at = |y, mo, d, h| {
        ParseOptions::new(
            Utc.with_ymd_and_hms(y, mo, d, h, 0, 0)
                .single()
                .expect("literal"),
        )
    };
    let rows: &[(ParseOptions, &str, &str)] = &[
        // A December message received in January is last year's.
        (
            at(2027, 1, 1, 0),
            "<13>Dec 31 23:59:59 h a: m",
            "2026-12-31T23:59:59Z",
        ),
        // A January message received on 31 December (sender clock ahead) is next year's.
        (
            at(2026, 12, 31, 23),
            "<13>Jan  1 00:00:05 h a: m",
            "2027-01-01T00:00:05Z",
        ),
        // Same month.
        (
            at(2026, 6, 15, 12),
            "<13>Jun 15 11:00:00 h a: m",
            "2026-06-15T11:00:00Z",
        ),
        // Slightly in the future (clock skew) stays this year.
        (
            at(2026, 6, 15, 12),
            "<13>Jun 20 11:00:00 h a: m",
            "2026-06-20T11:00:00Z",
        ),
        // Months in the future means last year (a replayed archive).
        (
            at(2026, 6, 15, 12),
            "<13>Oct  1 11:00:00 h a: m",
            "2025-10-01T11:00:00Z",
        ),
        // 29 February in a non-leap year goes back to the last leap year.
        (
            at(2026, 3, 1, 0),
            "<13>Feb 29 12:00:00 h a: m",
            "2024-02-29T12:00:00Z",
        ),
    ];
    for (opts, input, want) in rows {
        let m = parse(input, opts).expect(input);
        assert_eq!(m.timestamp, ts(want), "{input}");
    }
}

#[test]
fn zone_less_stamps_use_the_configured_zone() {
    let mut opts = ParseOptions::new(
        Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0)
            .single()
            .expect("literal"),
    );
    opts.timezone = chrono_tz::Europe::Berlin;
    let rows: &[(&str, &str)] = &[
        ("<13>Jul  1 13:00:00 h a: m", "2026-07-01T13:00:00+02:00"),
        (
            "<13>Jan 15 13:00:00 2026 h a: m",
            "2026-01-15T13:00:00+01:00",
        ),
        // DST gap (02:30 never happened in Berlin on 29 March): offset before the gap.
        ("<13>Mar 29 02:30:00 h a: m", "2026-03-29T02:30:00+01:00"),
        // DST repeat (02:30 happened twice on 25 October): the first one.
        (
            "<13>Oct 25 02:30:00 2026 h a: m",
            "2026-10-25T02:30:00+02:00",
        ),
        // An explicit UTC zone name wins over the configured zone.
        (
            "<13>*Jul  1 11:00:00.5 UTC: %SYS-5-X: m",
            "2026-07-01T11:00:00.5Z",
        ),
        // RFC 3339 stamps carry their own offset.
        (
            "<13>2026-07-01T09:00:00-04:00 h a: m",
            "2026-07-01T09:00:00-04:00",
        ),
    ];
    for (input, want) in rows {
        let m = parse(input, &opts).expect(input);
        let got = m.timestamp.expect(input);
        let want = DateTime::parse_from_rfc3339(want).expect("literal");
        assert_eq!(got, want, "{input}");
        assert_eq!(got.offset(), want.offset(), "{input}");
    }
    // New York, a received_at near midnight UTC that is still the previous day locally.
    let ny = ParseOptions {
        received_at: Utc
            .with_ymd_and_hms(2027, 1, 1, 3, 0, 0)
            .single()
            .expect("literal"),
        timezone: chrono_tz::America::New_York,
    };
    let m = parse("<13>Dec 31 22:00:00 h a: m", &ny).expect("ny");
    assert_eq!(m.timestamp, ts("2026-12-31T22:00:00-05:00"));
}

#[test]
fn only_unusable_input_fails() {
    for input in ["", "\n", "\r\n\0", "<192>Nov 25 15:00:00 h a: m", "<255>x"] {
        assert!(parse(input, &opts()).is_err(), "{input:?}");
        assert!(
            meniscus_syslog::rfc3164::parse(input, &opts()).is_err(),
            "{input:?}"
        );
    }
    for input in [
        " ", "<", "<>", "<13>", "<13", "\u{feff}", "%", "%A-:", "*", "91: ", "<13>*",
    ] {
        assert!(parse(input, &opts()).is_ok(), "{input:?}");
    }
}
