//! Hostile tenants and strangers: no request takes the service down, no log line can be
//! hidden, no token is stored. Each test is a class of attack that was tried against a
//! release build and worked (see the issue); the exact requests are examples of the class.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use meniscus_tests::{
    connect_from, raise_open_files, Meniscus, StartOptions, DEFAULT_LISTENERS, TENANTS,
};

const STAMP: &str = "2026-11-25T10:00:00Z";
const CREDENTIALS: &str = r#"[meniscus tenant="acme" token="acme-token"]"#;

fn start(extra: &str) -> Meniscus {
    Meniscus::start_with_options(StartOptions {
        extra: &format!("{TENANTS}{extra}"),
        ..StartOptions::default()
    })
}

/// The server still answers and never panicked.
fn assert_alive(meniscus: &Meniscus) {
    let started = Instant::now();
    let health = meniscus
        .client
        .get(meniscus.ops_url("/healthz"))
        .send()
        .expect("/healthz answers");
    assert!(health.status().is_success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "/healthz took {:?}",
        started.elapsed()
    );
    let log = meniscus.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    assert!(
        !log.contains("has overflowed its stack"),
        "a stack overflowed:\n{log}"
    );
}

fn send_syslog(port: u16, lines: &[String]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for line in lines {
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
}

/// Flat chains of thousands of terms of every kind of binary operator, deep function nesting,
/// long CASE and IN lists: each one either answers or is refused with a 4xx; the process
/// survives (a flat `1+1+…+1` of a thousand terms aborted it before).
#[test]
fn deep_and_long_expressions_are_answered_or_refused_never_a_crash() {
    let meniscus = start("limits: {queryTimeout: 20s}\n");
    let chain = |term: &str, operator: &str, count: usize| {
        let terms: Vec<&str> = std::iter::repeat_n(term, count).collect();
        format!("SELECT {}", terms.join(operator))
    };
    let mut statements = Vec::new();
    for (term, operator) in [
        ("1", "+"),
        ("1", "-"),
        ("1", "*"),
        ("1", "/"),
        ("1", "%"),
        ("true", " AND "),
        ("false", " OR "),
        ("'a'", " || "),
        ("1", " = "),
        ("1", " < "),
        ("1", " & "),
        ("1", " | "),
    ] {
        statements.push(chain(term, operator, 12_000));
    }
    statements.push(format!(
        "SELECT {}1{}",
        "abs(".repeat(5_000),
        ")".repeat(5_000)
    ));
    statements.push(format!(
        "SELECT {}1{}",
        "(".repeat(20_000),
        ")".repeat(20_000)
    ));
    statements.push(format!(
        "SELECT CASE {} ELSE 0 END",
        (0..3_000)
            .map(|n| format!("WHEN {n} = 1 THEN {n}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    statements.push(format!(
        "SELECT 1 IN ({})",
        (0..9_000)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    statements.push(format!(
        "SELECT count(*) FROM events WHERE {}",
        std::iter::repeat_n("msg LIKE '%x%'", 3_000)
            .collect::<Vec<_>>()
            .join(" OR ")
    ));
    for sql in &statements {
        let (status, body) = meniscus.sql_raw("acme", "acme-token", sql);
        assert!(
            status == 200 || status == 400 || status == 422,
            "{}…: {status} {body}",
            &sql[..60.min(sql.len())]
        );
        assert_alive(&meniscus);
    }
    // Over the statement limit: refused by size, before any parsing.
    let long = chain("1", "+", 40_000);
    let (status, body) = meniscus.sql_raw("acme", "acme-token", &long);
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("at most"), "{body}");
    // Far over it: the body itself is refused, unread.
    let huge = chain("1", "+", 1_000_000);
    let (status, body) = meniscus.sql_raw("acme", "acme-token", &huge);
    assert_eq!(status, 413, "{body}");
    assert_alive(&meniscus);
}

/// Functions that build big values from small arguments are held to the query's memory
/// limit: refused with 422 before they allocate, so the process never grows by gigabytes.
#[test]
fn functions_that_allocate_are_held_to_the_memory_limit() {
    let meniscus = start("limits: {queryMemoryBytes: 67108864, maxResultBytes: 20000}\n");
    let lines: Vec<String> = (0..200)
        .map(|n| {
            format!(
                "<13>1 {STAMP} h web - - {CREDENTIALS} payload-{n} {}",
                "x".repeat(100)
            )
        })
        .collect();
    send_syslog(meniscus.syslog_port, &lines);
    meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'payload-%'", 200);
    let before = meniscus.memory_kb("VmRSS");
    for sql in [
        "SELECT cardinality(range(1, 150000000))",
        "SELECT cardinality(range(150000000))",
        "SELECT cardinality(generate_series(1, 200000000))",
        "SELECT cardinality(range(TIMESTAMP '1700-01-01T00:00:00', TIMESTAMP '2200-01-01T00:00:00', INTERVAL '1 second'))",
        "SELECT length(repeat('a', 1500000000))",
        "SELECT length(lpad('a', 1000000000))",
        "SELECT length(rpad('a', 1000000000, 'xy'))",
        "SELECT cardinality(array_repeat(1, 100000000))",
        "SELECT cardinality(array_resize(make_array(1), 100000000))",
        "SELECT length(replace(repeat('a', 10000), 'a', repeat('b', 60000)))",
        "SELECT length(regexp_replace(repeat('a', 10000), '', repeat('b', 10000), 'g'))",
        "SELECT max(length(repeat(msg, 100000))) FROM events",
    ] {
        let (status, body) = meniscus.sql_raw("acme", "acme-token", sql);
        assert_eq!(status, 422, "{sql}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("memory limit")),
            "{sql}: {body}"
        );
    }
    let after = meniscus.memory_kb("VmHWM");
    assert!(
        after < before + 512 * 1024,
        "peak RSS grew from {before} kB to {after} kB"
    );
    // Within the limit they still work.
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT length(repeat('ab', 1000)) AS n",
    );
    assert_eq!(rows[0]["n"], 2000);
    // The answer is capped in bytes, and says so.
    let (status, body) = meniscus.sql_raw("acme", "acme-token", "SELECT msg FROM events");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["truncated"], true, "{body}");
    assert!(body["rows"].as_array().unwrap().len() < 200);
    // No engine name or version for strangers to look up.
    let rows = meniscus.sql("acme", "acme-token", "SELECT version() AS v");
    assert_eq!(rows[0]["v"], "Meniscus");
    assert_alive(&meniscus);
}

/// A query past its deadline stops working (it kept a core busy for ~8 s more before), and
/// concurrent queries are capped per tenant: 429 with Retry-After beyond.
#[test]
fn a_query_past_its_deadline_stops_and_concurrency_is_capped() {
    let meniscus = start("limits: {queryTimeout: 2s, maxConcurrentQueriesPerTenant: 1}\n");
    let endless = "SELECT count(*) FROM generate_series(1, 100000000000)";
    let (status, body) = meniscus.sql_raw("acme", "acme-token", endless);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "query_timeout", "{body}");
    // A second after the answer the work is gone: over the next two seconds the process uses
    // a small fraction of that time (a query still running would use it all).
    std::thread::sleep(Duration::from_secs(1));
    let cpu_before = meniscus.cpu_time();
    std::thread::sleep(Duration::from_secs(2));
    let spent = meniscus.cpu_time() - cpu_before;
    assert!(
        spent < Duration::from_millis(700),
        "the timed-out query went on working: {spent:?} of CPU in 2 s"
    );

    let running = {
        let url = meniscus.url("/v1/tenant/acme/sql");
        std::thread::spawn(move || {
            reqwest::blocking::Client::new()
                .post(url)
                .header("MESSAGE-TOKEN", "acme-token")
                .json(&serde_json::json!({ "sql": endless }))
                .send()
                .map(|response| response.status().as_u16())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let response = meniscus
        .client
        .post(meniscus.url("/v1/tenant/acme/sql"))
        .header("MESSAGE-TOKEN", "acme-token")
        .json(&serde_json::json!({ "sql": "SELECT 1" }))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
    // Another tenant is not held up by acme's running query.
    let (status, body) = meniscus.sql_raw("other", "other-token", "SELECT 1 AS one");
    assert_eq!(status, 200, "{body}");
    assert_eq!(running.join().unwrap().unwrap(), 422);
    assert_alive(&meniscus);
}

/// A stranger's sockets: only its share of one listener is kept, idle ones are closed, and the
/// tenants' syslog, durable publishes, queries and health checks go on.
#[test]
fn a_strangers_idle_connections_cost_the_tenants_nothing() {
    raise_open_files();
    let meniscus = Meniscus::start_with_options(StartOptions {
        storage: "storage: {flushInterval: 1s}",
        extra: &format!("{TENANTS}limits: {{maxConnectionsPerAddress: 100, idleTimeout: 4s}}\n"),
        ..StartOptions::default()
    });
    let stranger = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..1_600 {
        if let Ok(stream) = connect_from(stranger, meniscus.syslog_port) {
            // A partial line, never finished.
            let mut stream = stream;
            let _ = stream.write_all(b"<13>1 2026-11-25T10:00:00Z stranger app - - - partial");
            held.push(stream);
        }
    }
    assert!(
        held.len() > 1_000,
        "only {} connections could be made",
        held.len()
    );
    // Most are refused at once; a few may still wait in the kernel's accept queue.
    let expected_refusals = held.len() as u64 - 300;
    meniscus_tests::wait_for_metric(
        &meniscus,
        "meniscus_ingest_refused_connections_total{transport=\"tcp\",reason=\"address_full\"}",
        20,
        |refused| refused >= expected_refusals,
    );
    let open = meniscus.metric("meniscus_ingest_open_connections{transport=\"tcp\"}");
    assert!(open <= 100, "{open} of the stranger's connections kept");
    // The tenants do not notice.
    let lines: Vec<String> = (0..50)
        .map(|n| format!("<13>1 {STAMP} h web - - {CREDENTIALS} during-{n}"))
        .collect();
    send_syslog(meniscus.syslog_port, &lines);
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'during-%'", 50),
        50
    );
    let (status, body) = meniscus.publish_json(
        "acme",
        "acme-token",
        &serde_json::json!({"msg": "durable during the flood", "pname": "web"}),
    );
    assert_eq!(status, 202, "{body}");
    assert_alive(&meniscus);
    // Idle connections are closed by the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut closed = 0;
    for stream in held.iter_mut() {
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
            ))
            .unwrap();
        let mut byte = [0u8; 1];
        // Closed by the server: an end of stream, or a reset when it closed a connection
        // with unread bytes (those it refused at once).
        let ended = match stream.read(&mut byte) {
            Ok(0) => true,
            Err(error) => matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            Ok(_) => false,
        };
        if ended {
            closed += 1;
        }
    }
    assert_eq!(closed, held.len(), "idle connections were closed");
    assert!(!meniscus.log().contains("Too many open files"));
}

/// With a small open-file limit, sockets never take the store's reserve: new connections are
/// refused, the connection already open keeps being stored and flushed.
#[test]
fn sockets_never_take_the_file_descriptors_the_store_needs() {
    raise_open_files();
    let meniscus = Meniscus::start_with_options(StartOptions {
        listeners: DEFAULT_LISTENERS,
        storage: "storage: {flushInterval: 1s}",
        extra: &format!("{TENANTS}limits: {{maxConnectionsPerAddress: 10000}}\n"),
        open_files: Some(512),
        ..StartOptions::default()
    });
    let mut tenant = TcpStream::connect(("127.0.0.1", meniscus.syslog_port)).unwrap();
    // A sender that has spoken keeps its place even on a full listener (a silent one may be
    // closed for a newcomer after a second, see the next test).
    tenant
        .write_all(format!("<13>1 {STAMP} h web - - {CREDENTIALS} warm-up\n").as_bytes())
        .unwrap();
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg = 'warm-up'", 1),
        1
    );
    let mut held = Vec::new();
    for n in 0..800u32 {
        let address = Ipv4Addr::new(127, 0, 1, (n % 200) as u8 + 1);
        if let Ok(stream) = connect_from(address, meniscus.syslog_port) {
            held.push(stream);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // Past the budget a newcomer is refused, or, once the stranger's sockets have been
    // silent for a second (a slow machine), takes the place of one of them.
    let refused = meniscus.metric(
        "meniscus_ingest_refused_connections_total{transport=\"tcp\",reason=\"file_descriptors\"}",
    );
    let made_room =
        meniscus.metric("meniscus_ingest_idle_connections_closed_total{transport=\"tcp\"}");
    assert!(refused + made_room > 0, "the socket budget was reached");
    for n in 0..20 {
        tenant
            .write_all(format!("<13>1 {STAMP} h web - - {CREDENTIALS} reserve-{n}\n").as_bytes())
            .unwrap();
    }
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'reserve-%'", 20),
        20
    );
    let flushes = meniscus.metric("meniscus_hot_flushes_total");
    let deadline = Instant::now() + Duration::from_secs(20);
    while meniscus.metric("meniscus_hot_flushes_total") == flushes {
        assert!(
            Instant::now() < deadline,
            "no flush while the sockets were full"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        meniscus.metric("meniscus_wal_failures_total{operation=\"open\"}"),
        0
    );
    assert!(!meniscus.log().contains("Too many open files"));
    assert_alive(&meniscus);
    drop(held);
}

/// A stranger with many addresses fills a syslog listener with silent connections: a
/// tenant's sender that arrives afterwards still gets in (the idlest stranger is closed for
/// it), and the stranger's connections that spoke keep theirs only while they speak.
#[test]
fn a_full_listener_makes_room_for_a_sender_by_closing_an_idle_stranger() {
    raise_open_files();
    let meniscus = Meniscus::start_with_options(StartOptions {
        storage: "storage: {flushInterval: 1s}",
        extra: &format!(
            "{TENANTS}limits: {{maxConnections: 100, maxConnectionsPerAddress: 10, idleTimeout: 10m}}\n"
        ),
        ..StartOptions::default()
    });
    let mut held = Vec::new();
    for n in 0..150u32 {
        let address = Ipv4Addr::new(127, 0, 2, (n % 15) as u8 + 1);
        if let Ok(stream) = connect_from(address, meniscus.syslog_port) {
            held.push(stream);
        }
    }
    meniscus_tests::wait_for_metric(
        &meniscus,
        "meniscus_ingest_open_connections{transport=\"tcp\"}",
        20,
        |open| open >= 100,
    );
    // Silent for more than a second: each may now be closed for a newcomer.
    std::thread::sleep(Duration::from_millis(1_500));
    // The senders stay connected until all have spoken: a sender that had closed would
    // leave a free place for the next one, which then would not need an eviction.
    let mut senders = Vec::new();
    for round in 0..3 {
        let mut sender = TcpStream::connect(("127.0.0.1", meniscus.syslog_port)).unwrap();
        for n in 0..20 {
            sender
                .write_all(
                    format!("<13>1 {STAMP} h web - - {CREDENTIALS} room-{round}-{n}\n").as_bytes(),
                )
                .unwrap();
        }
        senders.push(sender);
    }
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'room-%'", 60),
        60
    );
    assert!(
        meniscus.metric("meniscus_ingest_idle_connections_closed_total{transport=\"tcp\"}") >= 3,
        "a stranger's idle connection was closed for each sender"
    );
    let open = meniscus.metric("meniscus_ingest_open_connections{transport=\"tcp\"}");
    assert!(open <= 100, "the listener cap still holds: {open} open");
    assert_alive(&meniscus);
    drop((held, senders));
}

/// Slow HTTP clients: headers trickled are cut off at the header timeout; a body is not read
/// before the token is checked.
#[test]
fn slow_or_unauthenticated_http_clients_hold_nothing() {
    let meniscus = start("limits: {httpHeaderTimeout: 1s}\n");
    let mut trickle = TcpStream::connect(("127.0.0.1", meniscus.http_port)).unwrap();
    trickle
        .write_all(b"POST /v1/tenant/acme/publish HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    trickle
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    loop {
        // One header byte every 200 ms; the server must hang up long before they are done.
        if trickle.write_all(b"X").is_err() {
            break;
        }
        let mut buffer = [0u8; 256];
        match trickle.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a client trickling headers was not cut off"
        );
    }
    assert!(!String::from_utf8_lossy(&answer).contains(" 200 "));

    // A 16 MB body announced with a wrong token: refused before a byte of it is sent.
    let mut stranger = TcpStream::connect(("127.0.0.1", meniscus.http_port)).unwrap();
    stranger
        .write_all(
            b"POST /v1/tenant/acme/publish HTTP/1.1\r\nHost: x\r\nMESSAGE-TOKEN: wrong\r\nContent-Type: application/json\r\nContent-Length: 16000000\r\n\r\n",
        )
        .unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 64];
    let read = stranger.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..read]).to_string();
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_alive(&meniscus);
}

/// A log line cannot get itself refused or dropped by mentioning the credential element, and
/// no token is ever stored, wherever it was written.
#[test]
fn no_log_line_can_hide_itself_and_no_token_is_stored() {
    let port = meniscus_tests::free_port();
    let meniscus = Meniscus::start_with_options(StartOptions {
        listeners: &format!(
            "{DEFAULT_LISTENERS}  - {{protocol: tcp, address: \"127.0.0.1:{port}\", tenant: acme}}\n"
        ),
        extra: TENANTS,
        ..StartOptions::default()
    });
    // On acme's own port, an intruder's user name that mimics credentials (naming another
    // tenant, with a wrong token) is data: the line is stored as logged.
    let sneaky = r#"<38>Nov 25 10:00:00 bastion sshd[42]: Invalid user [meniscus tenant="other" token="guess"] from 10.9.9.9 hide-me"#;
    send_syslog(port, &[sneaky.to_string()]);
    meniscus.wait_for_count("acme", "acme-token", "msg LIKE '%hide-me'", 1);

    // Credentials where an RFC 3164 host would be: the host is the host, the token nowhere.
    let after_stamp = format!("<13>Nov 25 10:00:00 {CREDENTIALS} web-7 app: host-position");
    // A frame that is not UTF-8: the raw copy leaves the element out.
    let mut binary = format!("<13>Nov 25 10:00:00 h app: {CREDENTIALS} caf").into_bytes();
    binary.extend_from_slice(b"\xe9 not-utf8\n");
    let mut stream = TcpStream::connect(("127.0.0.1", meniscus.syslog_port)).unwrap();
    stream
        .write_all(format!("{after_stamp}\n").as_bytes())
        .unwrap();
    stream.write_all(&binary).unwrap();
    drop(stream);
    meniscus.wait_for_count(
        "acme",
        "acme-token",
        "msg LIKE '%host-position' OR msg LIKE '%not-utf8'",
        2,
    );
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT host, msg, raw FROM events WHERE msg LIKE '%host-position' OR msg LIKE '%not-utf8'",
    );
    let field = |row: &serde_json::Map<String, serde_json::Value>, name: &str| {
        row.get(name).cloned().unwrap_or(serde_json::Value::Null)
    };
    for row in &rows {
        assert_ne!(field(row, "host"), "[meniscus", "{row:?}");
        let raw = field(row, "raw")
            .as_str()
            .map(|raw| {
                base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .unwrap()
            })
            .unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&raw).contains("acme-token"),
            "the raw copy holds the token: {row:?}"
        );
    }
    let host_position = rows
        .iter()
        .find(|row| {
            field(row, "msg")
                .as_str()
                .unwrap_or("")
                .contains("host-position")
        })
        .unwrap();
    assert_eq!(field(host_position, "host"), "web-7", "{host_position:?}");
    let leaked = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT count(*) AS n FROM events WHERE msg LIKE '%acme-token%' OR host LIKE '%acme-token%' OR pname LIKE '%acme-token%' OR native LIKE '%acme-token%'",
    );
    assert_eq!(leaked[0]["n"], 0, "a token was stored");
    assert_alive(&meniscus);
}

/// Every route with extreme parameters answers 4xx, never 5xx, and no handler panics.
#[test]
fn extreme_parameters_get_400_never_a_panic_or_500() {
    let meniscus = start("");
    let huge = "99999999999999999999999";
    let routes = [
        "/v1/tenant/acme/events?from=999999999d".to_string(),
        "/v1/tenant/acme/events?to=999999999w".to_string(),
        format!("/v1/tenant/acme/events?from={huge}s"),
        "/v1/tenant/acme/events?from=-262143-01-01T00:00:00Z".to_string(),
        "/v1/tenant/acme/events?from=+262142-12-31T23:59:59Z".to_string(),
        format!("/v1/tenant/acme/events?limit={huge}"),
        "/v1/tenant/acme/events?limit=-1".to_string(),
        "/v1/tenant/acme/events?cursor=%FF%FE".to_string(),
        format!(
            "/v1/tenant/acme/events?cursor={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{huge}:x"))
        ),
        "/v1/tenant/acme/events?severity=999,notaseverity".to_string(),
        "/v1/tenant/acme/events?facility=-1".to_string(),
        "/v1/tenant/acme/metrics?bucket=999999999999w".to_string(),
        "/v1/tenant/acme/metrics?bucket=0s".to_string(),
        format!("/v1/tenant/acme/metrics?bucket={huge}s"),
        "/v1/tenant/acme/metrics?from=999999999d".to_string(),
        "/v1/tenant/acme/metrics?from=1s&to=999999999d".to_string(),
        "/v1/tenant/acme/metrics?group_by=msg".to_string(),
        "/v1/tenant/acme/metrics?from=-262143-01-01T00:00:00Z&bucket=1s".to_string(),
        format!("/v1/tenant/acme/jobs/{huge}"),
        "/v1/tenant/acme/jobs/%00".to_string(),
        format!("/v1/tenant/{}/events", "a".repeat(10_000)),
        "/v1/tenant/%00/events".to_string(),
    ];
    for route in &routes {
        let (status, body) = meniscus.get(route, "acme-token");
        assert!((400..500).contains(&status), "{route}: {status} {body}");
    }
    assert_alive(&meniscus);
}

/// Strangers learn nothing: the public `/metrics` names no tenant, an unknown tenant answers
/// exactly like a wrong token.
#[test]
fn strangers_cannot_enumerate_tenants() {
    let meniscus = start("");
    let line = format!("<13>1 {STAMP} h web - - {CREDENTIALS} counted");
    send_syslog(meniscus.syslog_port, &[line]);
    meniscus.wait_for_count("acme", "acme-token", "msg = 'counted'", 1);
    let public = meniscus
        .client
        .get(meniscus.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(public.contains("meniscus_wal_fsyncs_total"), "{public}");
    assert!(
        !public.contains("tenant="),
        "the public /metrics names tenants:\n{public}"
    );
    assert!(!public.contains("acme"), "{public}");
    let full = meniscus
        .client
        .get(meniscus.ops_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        full.contains("tenant=\"acme\""),
        "the ops listener has every series"
    );

    let unknown = meniscus.get("/v1/tenant/ghost/events", "whatever");
    let wrong = meniscus.get("/v1/tenant/acme/events", "whatever");
    assert_eq!(unknown.0, 401);
    assert_eq!(wrong.0, 401);
    assert_eq!(unknown.1["error"]["code"], wrong.1["error"]["code"]);
}

/// With one tenant at its query cap and a stranger holding connections, another tenant's
/// syslog and durable publishes keep flowing and health checks answer within a second.
#[test]
fn a_noisy_neighbour_and_a_stranger_do_not_stop_another_tenant() {
    raise_open_files();
    let meniscus = start("limits: {queryTimeout: 3s, maxConnectionsPerAddress: 500}\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut noise = Vec::new();
    for _ in 0..3 {
        let url = meniscus.url("/v1/tenant/other/sql");
        let stop = stop.clone();
        noise.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = client
                    .post(&url)
                    .header("MESSAGE-TOKEN", "other-token")
                    .json(&serde_json::json!({
                        "sql": "SELECT count(*) FROM generate_series(1, 100000000000)"
                    }))
                    .send();
            }
        }));
    }
    let stranger = Ipv4Addr::new(127, 0, 0, 3);
    let held: Vec<TcpStream> = (0..500)
        .filter_map(|_| connect_from(stranger, meniscus.syslog_port).ok())
        .collect();
    for round in 0..10 {
        let lines: Vec<String> = (0..100)
            .map(|n| format!("<13>1 {STAMP} h web - - {CREDENTIALS} neighbour-{round}-{n}"))
            .collect();
        send_syslog(meniscus.syslog_port, &lines);
        let (status, body) = meniscus.publish_json(
            "acme",
            "acme-token",
            &serde_json::json!({"msg": format!("durable-neighbour-{round}"), "pname": "web"}),
        );
        assert_eq!(status, 202, "{body}");
        let started = Instant::now();
        let health = meniscus
            .client
            .get(meniscus.url("/healthz"))
            .send()
            .unwrap();
        assert!(health.status().is_success());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "/healthz took {:?} under noise",
            started.elapsed()
        );
    }
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'neighbour-%'", 1000),
        1000
    );
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg LIKE 'durable-neighbour-%'"),
        10
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for thread in noise {
        let _ = thread.join();
    }
    drop(held);
    assert_alive(&meniscus);
}
