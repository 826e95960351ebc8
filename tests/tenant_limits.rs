//! Per-tenant ingest limits (`limits.eventsPerSecond`): HTTP over the limit gets 429 with
//! `Retry-After` and an error that names the limit, nothing of the refused request is stored,
//! other tenants are unaffected; a syslog TCP stream over the limit is slowed down, not cut,
//! and every line arrives.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use meniscus_tests::{log_messages_body, Meniscus};
use serde_json::{json, Value};

const LIMITED: &str = r#"
tenants:
  - id: slow
    tokens: [{value: slow-token}]
    limits: {eventsPerSecond: 2, burstEvents: 20}
  - id: paced
    tokens: [{value: paced-token}]
    limits: {eventsPerSecond: 20}
  - id: free
    tokens: [{value: free-token}]
"#;

fn batch(tag: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|index| json!({"host": "h", "pname": "app", "msg": format!("{tag} {index}")}))
        .collect()
}

#[test]
fn http_over_the_limit_gets_429_with_retry_after_and_loses_nothing_else() {
    let meniscus = Meniscus::start(LIMITED);
    // The burst: 20 events pass at once.
    let (status, text) = meniscus.publish_messages("slow", "slow-token", &batch("first", 20));
    assert_eq!(status, 204, "{text}");

    // The bucket is empty: the next request (10 events = 5 s of refill at 2/s) is refused
    // whole, with the wait and the limit.
    let response = reqwest::blocking::Client::new()
        .post(meniscus.url("/v1/tenant/slow/publish"))
        .header("MESSAGE-TOKEN", "slow-token")
        .header("Content-Type", "application/json")
        .body(log_messages_body(&batch("refused", 10)))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=5).contains(&retry_after), "retry after {retry_after}");
    let error: Value = response.json().unwrap();
    assert_eq!(error["error"]["code"], "rate_limited");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 events/s") && message.contains("slow"),
        "{message}"
    );

    // Another tenant is not slowed by this one.
    for round in 0..3 {
        let (status, text) =
            meniscus.publish_messages("free", "free-token", &batch(&format!("free{round}"), 50));
        assert_eq!(status, 204, "{text}");
    }

    // After the advertised wait the tenant is accepted again.
    std::thread::sleep(Duration::from_secs(retry_after));
    let (status, text) = meniscus.publish_messages("slow", "slow-token", &batch("later", 10));
    assert_eq!(status, 204, "{text}");

    assert_eq!(meniscus.wait_for_count("slow", "slow-token", "", 30), 30);
    assert_eq!(
        meniscus.count("slow", "slow-token", "msg LIKE 'refused%'"),
        0
    );
    assert_eq!(meniscus.wait_for_count("free", "free-token", "", 150), 150);
    assert_eq!(
        meniscus.metric(
            "meniscus_ingest_rate_limited_events_total{tenant=\"slow\",transport=\"http\"}"
        ),
        10
    );
}

#[test]
fn a_syslog_stream_over_the_limit_is_slowed_not_cut() {
    let listeners = "  - {protocol: tcp, address: \"127.0.0.1:{syslog_port}\", tenant: paced}\n";
    let meniscus = Meniscus::start_with_listeners(listeners, LIMITED);
    let started = Instant::now();
    let mut stream = TcpStream::connect(meniscus.syslog_addr()).unwrap();
    // 60 lines at 20 events/s with a burst of 20: about two seconds of pacing.
    for index in 0..60 {
        writeln!(stream, "<13>Nov 25 10:00:00 host app: paced {index}").unwrap();
        if index % 20 == 19 {
            // Separate reads, so the limiter sees several batches.
            stream.flush().unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(stream);
    assert_eq!(
        meniscus.wait_for_count("paced", "paced-token", "msg LIKE 'paced%'", 60),
        60
    );
    let elapsed = started.elapsed();
    assert!(
        meniscus.metric(
            "meniscus_ingest_rate_limited_events_total{tenant=\"paced\",transport=\"tcp\"}"
        ) > 0,
        "the stream was over its limit"
    );
    // Not a speed check but the limit itself: 40 events over the burst at 20/s cannot be
    // stored in less than two seconds, however fast the machine.
    assert!(
        elapsed >= Duration::from_millis(1500),
        "stored after {elapsed:?}"
    );
}
