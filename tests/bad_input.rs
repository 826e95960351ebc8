//! Bad input over TCP, UDP and HTTP: every malformed, oversized, non-UTF-8, unauthenticated,
//! slow, vanishing or oversize request gets an explained rejection or a lossless raw event,
//! never a crash or a silent drop, and the good input around it is stored intact. Plus a full
//! disk: 503 while full, everything acknowledged kept once space is back.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use meniscus_tests::{free_port, sql_quote, Meniscus, StartOptions, DEFAULT_LISTENERS, TENANTS};
use serde_json::{json, Map, Value};

const CREDENTIALS: &str = r#"[meniscus tenant="acme" token="acme-token"]"#;
const STAMP: &str = "2026-11-25T10:00:00Z";
/// `limits.maxMessageBytes` of these tests.
const MAX_MESSAGE: usize = 1024;
/// `limits.maxHttpBodyBytes` of these tests.
const MAX_BODY: usize = 65536;

struct Server {
    meniscus: Meniscus,
    /// A TCP listener bound to tenant `acme` (no credentials needed).
    acme_port: u16,
}

fn start() -> Server {
    let acme_port = free_port();
    let listeners = format!("{DEFAULT_LISTENERS}  - {{protocol: tcp, address: \"127.0.0.1:{acme_port}\", tenant: acme}}\n");
    let extra = format!(
        "{TENANTS}limits: {{maxMessageBytes: {MAX_MESSAGE}, maxHttpBodyBytes: {MAX_BODY}}}\n"
    );
    let meniscus = Meniscus::start_with_options(StartOptions {
        listeners: &listeners,
        extra: &extra,
        ..Default::default()
    });
    Server {
        meniscus,
        acme_port,
    }
}

/// An RFC 5424 line for acme (producer `web`) with `msg`, no terminator.
fn line(msg: &str) -> String {
    format!("<13>1 {STAMP} h web 7 - {CREDENTIALS} {msg}")
}

fn octets(frame: &[u8]) -> Vec<u8> {
    let mut framed = format!("{} ", frame.len()).into_bytes();
    framed.extend_from_slice(frame);
    framed
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the syslog listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

/// Writes `bytes`, half-closes, and waits until the server has read everything and closed
/// (it closes after handing the last batch on).
fn send_and_close(port: u16, bytes: &[u8]) {
    let mut stream = connect(port);
    stream.write_all(bytes).unwrap();
    finish(stream);
}

fn finish(mut stream: TcpStream) {
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

/// The one row whose msg matches `like`, with every column.
fn row(meniscus: &Meniscus, like: &str) -> Map<String, Value> {
    let filter = format!("msg LIKE {}", sql_quote(like));
    let found = meniscus.wait_for_count("acme", "acme-token", &filter, 1);
    if found != 1 {
        let all = meniscus.sql(
            "acme",
            "acme-token",
            "SELECT msg, parse_error, truncated_from, transport FROM events ORDER BY received_at",
        );
        panic!(
            "expected exactly one event with msg LIKE {like:?}, found {found}; acme holds:\n{}",
            all.iter()
                .map(|row| format!("{row:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    meniscus
        .sql(
            "acme",
            "acme-token",
            &format!("SELECT * FROM events WHERE {filter}"),
        )
        .remove(0)
}

fn count_like(meniscus: &Meniscus, like: &str) -> u64 {
    meniscus.count(
        "acme",
        "acme-token",
        &format!("msg LIKE {}", sql_quote(like)),
    )
}

fn is_null(row: &Map<String, Value>, column: &str) -> bool {
    row.get(column).is_none_or(Value::is_null)
}

/// A good line is stored exactly as sent: parsed, not flagged, not cut.
fn assert_intact(meniscus: &Meniscus, msg: &str) {
    let row = row(meniscus, msg);
    assert_eq!(row["msg"], msg, "{row:?}");
    assert_eq!(row["pname"], "web", "{row:?}");
    assert_eq!(row["host"], "h", "{row:?}");
    for flag in ["parse_error", "truncated_from", "raw", "raw_encoding"] {
        assert!(is_null(&row, flag), "{msg}: {flag} is set: {row:?}");
    }
}

fn auth_failures(meniscus: &Meniscus, transport: &str, reason: &str) -> u64 {
    meniscus.metric(&format!(
        "meniscus_ingest_auth_failures_total{{transport=\"{transport}\",reason=\"{reason}\"}}"
    ))
}

#[test]
fn malformed_frames_are_stored_raw_or_refused_and_the_lines_around_them_are_intact() {
    let Server {
        meniscus,
        acme_port,
    } = start();
    let mut stream = Vec::new();
    stream.extend(format!("{}\n", line("m1-good-before")).bytes());
    // An impossible RFC 5424 stamp: kept whole as msg, parse_error says why.
    let bad_stamp = format!("<13>1 2026-13-45T99:00:00Z h web - - {CREDENTIALS} m1-bad-stamp");
    stream.extend(format!("{bad_stamp}\n").bytes());
    // Garbage without credentials on a tenant-less listener: refused, counted.
    stream.extend(b"\x01\x02 garbage ### no tenant at all\n");
    // Garbage that is not RFC 5424 (no PRI) and mentions the credential element in the middle
    // of its text: an element counts only where a header field would be, so on this
    // tenant-less listener the line has no tenant: refused, counted.
    stream
        .extend(format!("this is not syslog {CREDENTIALS} m1-garbage-with-credentials\n").bytes());
    stream.extend(format!("{}\n", line("m1-good-middle")).bytes());
    // An octet count shorter than the frame: the first 20 bytes are a frame without a tenant
    // (refused, counted); the rest of the line, read as a line of its own, has the element in
    // the middle of its text: no tenant either (refused, counted).
    stream.extend(format!("20 {}\n", line("m1-short-count")).bytes());
    stream.extend(octets(line("m1-good-octets").as_bytes()));
    stream.extend(format!("{}\n", line("m1-good-after")).bytes());
    // An octet count longer than what follows: it swallows the next line, and the stream
    // ends inside the frame, which is stored flagged.
    let lying = line("m1-long-count");
    stream.extend(format!("{} {lying}\n", lying.len() + 500).bytes());
    stream.extend(format!("{}\n", line("m1-swallowed")).bytes());
    send_and_close(meniscus.syslog_port, &stream);

    for good in [
        "m1-good-before",
        "m1-good-middle",
        "m1-good-octets",
        "m1-good-after",
    ] {
        assert_intact(&meniscus, good);
    }
    let bad = row(&meniscus, "%m1-bad-stamp");
    let without_credentials = bad_stamp.replace(&format!("{CREDENTIALS} "), "");
    assert_eq!(
        bad["msg"],
        without_credentials.as_str(),
        "a malformed frame is kept whole, but never its credentials"
    );
    assert_eq!(count_like(&meniscus, "%m1-garbage-with-credentials"), 0);
    assert!(
        bad["parse_error"]
            .as_str()
            .is_some_and(|error| error.contains("timestamp")),
        "{bad:?}"
    );
    let long = row(&meniscus, "%m1-long-count%");
    let parse_error = long["parse_error"].as_str().unwrap_or("");
    assert!(
        parse_error.starts_with("framing: stream ended after"),
        "a frame cut by the end of the stream is flagged: {long:?}"
    );
    assert!(
        long["msg"].as_str().unwrap().contains("m1-swallowed"),
        "the swallowed line is kept inside it: {long:?}"
    );
    assert_eq!(
        count_like(&meniscus, "%m1-%"),
        6,
        "4 good lines + bad stamp + long-count frame"
    );
    assert_eq!(
        auth_failures(&meniscus, "tcp", "no_tenant"),
        4,
        "refused as tenant-less: both garbage lines and both parts of the short-counted frame"
    );

    // The same garbage on the listener bound to acme needs no credentials: stored, whole.
    let mut stream = b"\x01\x02 m1-bound-garbage ###\n".to_vec();
    stream.extend(format!("20 {}\n", line("m1-bound-short-count")).bytes());
    stream.extend(format!("{}\n", line("m1-bound-good")).bytes());
    send_and_close(acme_port, &stream);
    assert_intact(&meniscus, "m1-bound-good");
    let garbage = row(&meniscus, "%m1-bound-garbage ###");
    assert!(
        garbage["msg"]
            .as_str()
            .unwrap()
            .contains("\u{1}\u{2} m1-bound-garbage ###"),
        "{garbage:?}"
    );
    assert_eq!(
        count_like(&meniscus, "%m1-bound-short-count"),
        1,
        "the rest of the short-counted frame is kept"
    );
    let rest = row(&meniscus, "%m1-bound-short-count");
    assert!(
        !rest["msg"].as_str().unwrap().contains("acme-token"),
        "a valid token in the text is cut out, even on a bound listener: {rest:?}"
    );
    assert!(!meniscus.log().contains("panicked"), "{}", meniscus.log());

    // The listener keeps serving.
    send_and_close(
        meniscus.syslog_port,
        format!("{}\n", line("m1-next-connection")).as_bytes(),
    );
    assert_intact(&meniscus, "m1-next-connection");
}

#[test]
fn an_oversize_message_is_cut_to_the_limit_and_the_next_one_is_intact() {
    let Server { meniscus, .. } = start();
    let big = |label: &str| {
        let frame = line(&format!("{label} {}", "x".repeat(3000)));
        let frame = frame[..3000].to_string();
        // What is kept: the first maxMessageBytes bytes of the frame, header removed.
        let header = line("");
        let kept = frame[header.len()..MAX_MESSAGE].to_string();
        (frame, kept)
    };
    let (lf_frame, lf_kept) = big("m2-big-lf");
    let (octet_frame, octet_kept) = big("m2-big-octets");
    let mut stream = Vec::new();
    stream.extend(format!("{lf_frame}\n{}\n", line("m2-next-lf")).bytes());
    stream.extend(octets(octet_frame.as_bytes()));
    stream.extend(octets(line("m2-next-octets").as_bytes()));
    send_and_close(meniscus.syslog_port, &stream);

    for (label, kept) in [("m2-big-lf", &lf_kept), ("m2-big-octets", &octet_kept)] {
        let row = row(&meniscus, &format!("{label} %"));
        assert_eq!(
            row["msg"].as_str().unwrap(),
            kept,
            "{label}: cut to the limit"
        );
        assert_eq!(row["truncated_from"], 3000, "{label}: {row:?}");
        assert!(is_null(&row, "parse_error"), "{label}: {row:?}");
    }
    assert_intact(&meniscus, "m2-next-lf");
    assert_intact(&meniscus, "m2-next-octets");
    assert_eq!(
        meniscus.metric("meniscus_ingest_oversize_messages_total{transport=\"tcp\"}"),
        2
    );

    // UDP: a datagram over the limit, one far over it (60000 bytes), then a normal one.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (udp_frame, udp_kept) = big("m2-big-udp");
    socket
        .send_to(udp_frame.as_bytes(), meniscus.syslog_addr())
        .unwrap();
    let huge = line(&format!("m2-huge-udp {}", "y".repeat(60000)));
    let huge = &huge[..60000];
    socket
        .send_to(huge.as_bytes(), meniscus.syslog_addr())
        .unwrap();
    socket
        .send_to(line("m2-next-udp").as_bytes(), meniscus.syslog_addr())
        .unwrap();
    let row_udp = row(&meniscus, "m2-big-udp %");
    assert_eq!(row_udp["msg"].as_str().unwrap(), udp_kept);
    assert_eq!(row_udp["truncated_from"], 3000);
    let row_huge = row(&meniscus, "m2-huge-udp %");
    assert_eq!(row_huge["truncated_from"], 60000);
    assert_eq!(
        row_huge["msg"].as_str().unwrap().len(),
        MAX_MESSAGE - line("").len()
    );
    assert_intact(&meniscus, "m2-next-udp");
    assert_eq!(
        meniscus.metric("meniscus_ingest_oversize_messages_total{transport=\"udp\"}"),
        2
    );
}

#[test]
fn invalid_utf8_is_stored_with_the_exact_bytes() {
    let Server {
        meniscus,
        acme_port,
    } = start();
    let mut frame = format!("<13>1 {STAMP} h web 7 - {CREDENTIALS} m3-latin1 caf").into_bytes();
    frame.extend_from_slice(b"\xe9 \xff\xfe\x80 end");
    // RFC 3164 on the listener bound to acme, with a lone continuation byte.
    let bsd = b"<13>Nov 25 10:00:00 h web: m3-bsd \xc3\x28 \xa0\xa1".to_vec();
    let mut stream = frame.clone();
    stream.push(b'\n');
    stream.extend(format!("{}\n", line("m3-next")).bytes());
    send_and_close(meniscus.syslog_port, &stream);
    send_and_close(acme_port, &[bsd.clone(), b"\n".to_vec()].concat());

    for (like, expected) in [("%m3-latin1%", &frame[..]), ("%m3-bsd%", &bsd[..])] {
        let row = row(&meniscus, like);
        assert_eq!(row["raw_encoding"], "base64", "{row:?}");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(row["raw"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw, expected, "raw must hold the exact bytes received");
    }
    assert_intact(&meniscus, "m3-next");
    assert_eq!(
        meniscus.metric("meniscus_ingest_invalid_utf8_messages_total{transport=\"tcp\"}"),
        2
    );
}

#[test]
fn a_wrong_token_is_refused_counted_and_the_next_line_on_the_connection_is_stored() {
    let Server {
        meniscus,
        acme_port,
    } = start();
    let wrong = format!(
        "<13>1 {STAMP} h web 7 - [meniscus tenant=\"acme\" token=\"not-the-token\"] m4-wrong-token"
    );
    let foreign = format!("<13>1 {STAMP} h web 7 - [meniscus tenant=\"other\" token=\"other-token\"] m4-foreign-tenant");
    let ghost = format!(
        "<13>1 {STAMP} h web 7 - [meniscus tenant=\"ghost\" token=\"x\"] m4-unknown-tenant"
    );
    let missing = format!("<13>1 {STAMP} h web 7 - [meniscus tenant=\"acme\"] m4-missing-token");
    send_and_close(
        meniscus.syslog_port,
        format!(
            "{wrong}\n{}\n{ghost}\n{missing}\n{}\n",
            line("m4-good-1"),
            line("m4-good-2")
        )
        .as_bytes(),
    );
    // On the port bound to acme, credentials naming another tenant are refused.
    send_and_close(
        acme_port,
        format!("{foreign}\n{}\n", line("m4-good-bound")).as_bytes(),
    );

    for good in ["m4-good-1", "m4-good-2", "m4-good-bound"] {
        assert_intact(&meniscus, good);
    }
    assert_eq!(auth_failures(&meniscus, "tcp", "invalid_token"), 1);
    assert_eq!(auth_failures(&meniscus, "tcp", "unknown_tenant"), 1);
    assert_eq!(auth_failures(&meniscus, "tcp", "missing_token"), 1);
    assert_eq!(auth_failures(&meniscus, "tcp", "tenant_mismatch"), 1);
    assert_eq!(
        count_like(&meniscus, "%m4-%"),
        3,
        "nothing refused is stored for acme"
    );
    assert_eq!(
        meniscus.count("other", "other-token", ""),
        0,
        "nor for other"
    );
}

#[test]
fn a_slow_client_sending_byte_by_byte_is_stored_whole() {
    let Server { meniscus, .. } = start();
    let lf = format!("{}\n", line("m5-slow-lf"));
    let counted = octets(line("m5-slow-octets").as_bytes());
    let mut stream = connect(meniscus.syslog_port);
    for (index, byte) in lf.bytes().chain(counted.iter().copied()).enumerate() {
        stream.write_all(&[byte]).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(if index % 25 == 0 { 150 } else { 3 }));
    }
    finish(stream);
    assert_intact(&meniscus, "m5-slow-lf");
    assert_intact(&meniscus, "m5-slow-octets");
}

/// A sender that speaks TLS to a plain TCP listener (the OpenTelemetry Collector's syslog
/// exporter does unless told not to): its handshake is refused and counted, not stored as
/// garbage events of the listener's tenant; the next plain sender is stored as usual.
#[test]
fn a_tls_handshake_on_a_plain_listener_is_refused_not_stored() {
    let Server {
        meniscus,
        acme_port,
    } = start();
    let output = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{acme_port}"))
        .args(["-servername", "localhost"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    assert!(
        !output.status.success()
            || !String::from_utf8_lossy(&output.stdout).contains("Verify return code: 0"),
        "no TLS session can be set up with a plain listener"
    );
    let refused = "meniscus_ingest_rejected_messages_total{transport=\"tcp\",reason=\"tls_on_plain_listener\"}";
    meniscus_tests::wait_for_metric(&meniscus, refused, 30, |value| value == 1);
    send_and_close(acme_port, format!("{}\n", line("m-after-tls")).as_bytes());
    assert_intact(&meniscus, "m-after-tls");
    assert_eq!(
        meniscus.count("acme", "acme-token", ""),
        1,
        "only the plain line is stored: {:?}",
        meniscus.sql("acme", "acme-token", "SELECT msg, raw FROM events")
    );
    assert!(meniscus
        .log()
        .contains("TLS handshake on a plain TCP listener"));
}

/// Closes with RST instead of FIN, like a crashed sender or a dropped connection.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

#[test]
fn a_vanishing_client_loses_nothing_it_completed_and_the_server_keeps_serving() {
    let Server { meniscus, .. } = start();
    // LF framing, reset in the middle of a line.
    let mut stream = connect(meniscus.syslog_port);
    stream
        .write_all(format!("{}\n{}\n", line("m6-complete-1"), line("m6-complete-2")).as_bytes())
        .unwrap();
    stream
        .write_all(line("m6-partial-lf-cut-her").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    reset(stream);
    // Octet counting, reset inside a counted frame.
    let mut stream = connect(meniscus.syslog_port);
    stream
        .write_all(&octets(line("m6-complete-octets").as_bytes()))
        .unwrap();
    let partial = octets(line("m6-partial-octets-and-more-0123456789").as_bytes());
    stream.write_all(&partial[..partial.len() - 10]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    reset(stream);

    for complete in ["m6-complete-1", "m6-complete-2", "m6-complete-octets"] {
        assert_intact(&meniscus, complete);
    }
    // What the product does with the cut-off frames: the unterminated line is stored as it
    // arrived (LF framing cannot tell a cut line from a last line without LF); the counted
    // frame, which is known to be incomplete, is stored flagged.
    let lf = row(&meniscus, "m6-partial-lf%");
    assert_eq!(lf["msg"], "m6-partial-lf-cut-her");
    let counted = row(&meniscus, "m6-partial-octets%");
    let parse_error = counted["parse_error"].as_str().unwrap_or("");
    assert!(
        parse_error.starts_with("framing: stream ended after"),
        "{counted:?}"
    );
    assert_eq!(
        counted["msg"], "m6-partial-octets-and-more-",
        "the bytes that arrived"
    );

    // The server keeps serving new connections, and the connection gauge went back down.
    send_and_close(
        meniscus.syslog_port,
        format!("{}\n", line("m6-after")).as_bytes(),
    );
    assert_intact(&meniscus, "m6-after");
    meniscus.wait_until(10, "no open tcp connections", || {
        meniscus.metric("meniscus_ingest_open_connections{transport=\"tcp\"}") == 0
    });
}

fn good_publish(meniscus: &Meniscus, msg: &str) {
    let (status, answer) = meniscus.publish_json(
        "acme",
        "acme-token",
        &json!({"pname": "web", "host": "h", "msg": msg}),
    );
    assert_eq!(status, 202, "a good publish after a bad one: {answer}");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn error_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|body| body["error"]["message"].as_str().map(String::from))
        .unwrap_or_else(|| text.to_string())
}

#[test]
fn bad_http_requests_are_explained_and_store_nothing() {
    let Server { meniscus, .. } = start();
    let json_type = ("Content-Type", "application/json");
    let ndjson_type = ("Content-Type", "application/x-ndjson");
    let message =
        |msg: &str| json!({"log_message": {"pname": "web", "host": "h", "msg": msg}}).to_string();
    let ndjson = |lines: &[String]| lines.join("\n").into_bytes();
    let bomb = gzip(&vec![b' '; 8 * MAX_BODY]);
    assert!(bomb.len() < MAX_BODY / 8, "the bomb is small on the wire");
    let over_limit = format!(
        "[{}]",
        (0..400)
            .map(|index| message(&format!("h-too-large-{index:0>150}")))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(over_limit.len() > MAX_BODY);

    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "invalid JSON",
            "acme",
            Some("acme-token"),
            vec![json_type],
            br#"{"log_message": {"msg": "h-invalid" "#.to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "not a log message",
            "acme",
            Some("acme-token"),
            vec![json_type],
            br#"{"log_message": {"host": "h-no-msg"}}"#.to_vec(),
            400,
            "msg",
        ),
        (
            "bad time",
            "acme",
            Some("acme-token"),
            vec![json_type],
            br#"{"log_message": {"msg": "h-bad-time", "time": "yesterday"}}"#.to_vec(),
            400,
            "RFC 3339",
        ),
        (
            "bad NDJSON line",
            "acme",
            Some("acme-token"),
            vec![ndjson_type],
            ndjson(&[
                message("h-nd-1"),
                message("h-nd-2"),
                "{not json".into(),
                message("h-nd-4"),
            ]),
            400,
            "line 3",
        ),
        (
            "NDJSON line that is not a log message",
            "acme",
            Some("acme-token"),
            vec![ndjson_type],
            ndjson(&[
                message("h-nd2-1"),
                message("h-nd2-2"),
                message("h-nd2-3"),
                r#"{"msg": 42}"#.into(),
            ]),
            400,
            "line 4",
        ),
        (
            "wrong token",
            "acme",
            Some("other-token"),
            vec![json_type],
            message("h-wrong-token").into_bytes(),
            401,
            "token",
        ),
        (
            "missing token",
            "acme",
            None,
            vec![json_type],
            message("h-missing-token").into_bytes(),
            401,
            "token",
        ),
        (
            "unknown tenant",
            "ghost",
            Some("acme-token"),
            vec![json_type],
            message("h-unknown-tenant").into_bytes(),
            401,
            "ghost",
        ),
        (
            "body over the limit",
            "acme",
            Some("acme-token"),
            vec![json_type],
            over_limit.into_bytes(),
            413,
            "limit",
        ),
        (
            "gzip bomb",
            "acme",
            Some("acme-token"),
            vec![json_type, ("Content-Encoding", "gzip")],
            bomb,
            413,
            "larger than",
        ),
        (
            "corrupt gzip",
            "acme",
            Some("acme-token"),
            vec![json_type, ("Content-Encoding", "gzip")],
            b"\x1f\x8b not really".to_vec(),
            400,
            "decompress",
        ),
        (
            "unsupported encoding",
            "acme",
            Some("acme-token"),
            vec![json_type, ("Content-Encoding", "br")],
            message("h-brotli").into_bytes(),
            415,
            "br",
        ),
        (
            "unsupported type",
            "acme",
            Some("acme-token"),
            vec![("Content-Type", "image/png")],
            message("h-png").into_bytes(),
            415,
            "image/png",
        ),
        (
            "empty body",
            "acme",
            Some("acme-token"),
            vec![json_type],
            Vec::new(),
            400,
            "",
        ),
        (
            "empty array",
            "acme",
            Some("acme-token"),
            vec![json_type],
            b"[]".to_vec(),
            400,
            "no log message",
        ),
    ];
    for (index, (name, tenant, token, headers, body, status, says)) in cases.into_iter().enumerate()
    {
        let (got, text) = meniscus.publish_raw(tenant, token, &headers, body);
        assert_eq!(got, status, "{name}: {text}");
        let explanation = error_message(&text);
        assert!(
            explanation.contains(says),
            "{name}: the answer should say {says:?}: {text}"
        );
        assert!(!explanation.is_empty(), "{name}: no explanation");
        good_publish(&meniscus, &format!("h-good-after-{index}"));
    }
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'h-good-after-%'", 15),
        15
    );
    let stored_bad = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT msg FROM events WHERE msg NOT LIKE 'h-good-after-%'",
    );
    assert!(
        stored_bad.is_empty(),
        "nothing from a refused request may be stored: {stored_bad:?}"
    );
    assert_eq!(meniscus.count("other", "other-token", ""), 0);
    assert_eq!(auth_failures(&meniscus, "http", "invalid_token"), 1);
    assert_eq!(auth_failures(&meniscus, "http", "missing_token"), 1);
    assert_eq!(auth_failures(&meniscus, "http", "unknown_tenant"), 1);

    // A syslog line naming another tenant costs the other lines of its request nothing: it
    // is left out and the answer says which line and why.
    let body = format!(
        "{}\n<13>1 {STAMP} h web - - [meniscus tenant=\"other\" token=\"other-token\"] h-syslog-2\n{}\n",
        line("h-syslog-1"),
        line("h-syslog-3")
    );
    let (status, text) = meniscus.publish_raw(
        "acme",
        Some("acme-token"),
        &[("Content-Type", "text/plain")],
        body.into_bytes(),
    );
    assert!(status == 200 || status == 202, "{status}: {text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["refused"][0]["line"], 2, "{text}");
    assert_eq!(answer["refused"][0]["reason"], "tenant_mismatch", "{text}");
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'h-syslog-%'", 2),
        2
    );
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg = 'h-syslog-2'"),
        0,
        "the refused line is not stored"
    );
}

/// A small tmpfs, unmounted on drop (after the server using it was killed).
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output();
        match output {
            Ok(output) if output.status.success() => Tmpfs { path, _dir: dir },
            Ok(output) => panic!(
                "the full-disk test needs root and `mount -t tmpfs` (it puts the data dir on a small tmpfs); mount failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => panic!("the full-disk test needs `mount -t tmpfs`: cannot run mount: {error}"),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn fill(path: &Path, bytes: usize) {
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(&vec![0x5a; bytes]).unwrap();
    file.sync_all().unwrap();
}

/// Fills the data disk with durable publishes: 503 with an explanation (no crash) while full;
/// once space is freed the server takes publishes again, and everything acknowledged with 202
/// is stored, also after a kill -9 and restart.
#[test]
fn a_full_disk_answers_503_and_loses_nothing_acknowledged() {
    let disk = Tmpfs::mount("8m");
    let filler = disk.path.join("filler");
    fill(&filler, 6 * 1024 * 1024);
    let extra = format!("{TENANTS}limits: {{maxResultRows: 100000}}\n");
    let mut meniscus = Meniscus::start_with_options(StartOptions {
        storage: "storage: {flushInterval: 600s}",
        extra: &extra,
        data_dir: Some(disk.path.join("data")),
        ..Default::default()
    });
    let mut acked: Vec<String> = Vec::new();
    let mut request = 0;
    // `count` messages of `size` bytes in one request; acknowledged ids are remembered.
    let mut publish = |meniscus: &Meniscus,
                       acked: &mut Vec<String>,
                       count: usize,
                       size: usize|
     -> (u16, String) {
        request += 1;
        let msgs: Vec<String> = (0..count)
            .map(|index| format!("disk-{request}-{index} {}", "z".repeat(size)))
            .collect();
        let body: Vec<Value> = msgs
            .iter()
            .map(|msg| json!({"pname": "web", "host": "h", "msg": msg}))
            .collect();
        let (status, text) = meniscus.publish_messages("acme", "acme-token", &body);
        match status {
            202 => acked.extend(
                msgs.iter()
                    .map(|msg| msg.split(' ').next().unwrap().to_string()),
            ),
            503 => {}
            other => panic!("a full disk must give 503, got {other}: {text}"),
        }
        (status, text)
    };

    // Fill the disk.
    let mut refusal = None;
    for _ in 0..400 {
        let (status, text) = publish(&meniscus, &mut acked, 8, 4000);
        if status == 503 {
            refusal = Some(text);
            break;
        }
    }
    let refusal = refusal.expect("the 2 MiB left on the disk never filled up");
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the disk filled"
    );
    let explanation = error_message(&refusal);
    assert!(
        explanation.contains("No space")
            || explanation.contains("space")
            || explanation.contains("full"),
        "the 503 should say the disk is full: {refusal}"
    );
    // Squeeze the last bytes out with smaller and smaller requests: each is taken (202) or
    // refused (503) as the space allows, and some writes fail half-way.
    for size in [
        24000, 16000, 12000, 8000, 6000, 4000, 3000, 2000, 1500, 1000, 700, 400, 200, 100, 50,
    ] {
        for _ in 0..2 {
            publish(&meniscus, &mut acked, 1, size);
        }
    }
    // Still full: still refused, still running.
    for _ in 0..3 {
        let (status, text) = publish(&meniscus, &mut acked, 8, 4000);
        assert_eq!(status, 503, "while full: {text}");
    }
    assert!(
        meniscus.is_running(),
        "the server died on a full disk; log:\n{}",
        meniscus.log()
    );
    let before = acked.len();
    let wal_bytes_while_full: u64 = meniscus
        .data_files(".wal")
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum();
    let appended_while_full = meniscus.metric("meniscus_wal_appended_bytes_total");
    eprintln!("while full: {before} events acknowledged, WAL files {wal_bytes_while_full} bytes, whole records {appended_while_full} bytes");

    // Free space: publishes are taken again.
    std::fs::remove_file(&filler).unwrap();
    let mut accepted = 0;
    for _ in 0..50 {
        let (status, _) = publish(&meniscus, &mut acked, 8, 4000);
        match status {
            202 => accepted += 1,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
        if accepted == 20 {
            break;
        }
    }
    assert_eq!(
        accepted, 20,
        "publishes are not accepted again after space was freed"
    );
    assert!(acked.len() > before);

    let check = |meniscus: &Meniscus, context: &str| {
        let rows = meniscus.sql(
            "acme",
            "acme-token",
            "SELECT split_part(msg, ' ', 1) AS id, count(*) AS n FROM events GROUP BY 1",
        );
        let stored: std::collections::HashMap<String, u64> = rows
            .iter()
            .map(|row| {
                (
                    row["id"].as_str().unwrap().to_string(),
                    row["n"].as_u64().unwrap(),
                )
            })
            .collect();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|id| !stored.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{context}: {} of {} acknowledged events are missing (first acknowledged after the disk was freed: {}), e.g. {:?}; \
             while full, the WAL files held {wal_bytes_while_full} bytes, of which {appended_while_full} were whole records",
            missing.len(),
            acked.len(),
            acked[before],
            &missing[..missing.len().min(5)]
        );
        let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{context}: stored twice: {twice:?}");
    };
    check(&meniscus, "while running");
    meniscus.kill9();
    meniscus.restart();
    check(&meniscus, "after kill -9 and restart");
}
