//! util-linux `logger` as a real sender: TCP, UDP, RFC 5424, octet counting, `--sd-id`.

use std::process::Command;

use meniscus_tests::{run, Meniscus, TENANTS};

fn logger(meniscus: &Meniscus, extra: &[&str], tenant: &str, token: &str, message: &str) {
    run(Command::new("logger")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &meniscus.syslog_port.to_string(),
        ])
        .args(extra)
        .args(["--rfc5424", "--sd-id", "meniscus@32473"])
        .arg("--sd-param")
        .arg(format!("tenant=\"{tenant}\""))
        .arg("--sd-param")
        .arg(format!("token=\"{token}\""))
        .args(["--tag", "web", "--id=4242"])
        .arg(message));
}

#[test]
fn every_logger_mode_is_stored_once_with_its_fields() {
    let meniscus = Meniscus::start(TENANTS);
    let modes: [(&str, &[&str]); 4] = [
        ("tcp-lf", &["--tcp"]),
        ("tcp-octet", &["--tcp", "--octet-count"]),
        ("udp", &["--udp"]),
        ("udp-octet", &["--udp", "--octet-count"]),
    ];
    for (name, flags) in modes {
        logger(
            &meniscus,
            flags,
            "acme",
            "acme-token",
            &format!("hello from {name}"),
        );
    }
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'hello from %'", 4),
        4
    );
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT msg, pname, pid, ver, severity, facility, producer, durable, native, transport, parse_error FROM events ORDER BY msg",
    );
    let messages: Vec<&str> = rows
        .iter()
        .map(|row| row["msg"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "hello from tcp-lf",
            "hello from tcp-octet",
            "hello from udp",
            "hello from udp-octet"
        ]
    );
    for row in &rows {
        assert_eq!(row["pname"], "web", "{row:?}");
        assert_eq!(row["pid"], "4242", "{row:?}");
        assert_eq!(row["ver"], 1);
        assert_eq!(row["severity"], 5, "logger defaults to user.notice");
        assert_eq!(row["facility"], 1);
        assert_eq!(row["producer"], "web");
        assert_eq!(row["durable"], true);
        assert!(
            row.get("parse_error").is_none_or(|value| value.is_null()),
            "{row:?}"
        );
        let native = row["native"].as_str().unwrap();
        assert!(
            !native.contains("token"),
            "credentials must be stripped: {native}"
        );
        assert!(native.contains("timeQuality"), "{native}");
    }
    let transports: Vec<&str> = rows
        .iter()
        .map(|row| row["transport"].as_str().unwrap())
        .collect();
    assert_eq!(transports, ["tcp", "tcp", "udp", "udp"]);
    // Nothing leaked to the other tenant.
    assert_eq!(meniscus.count("other", "other-token", ""), 0);
}

#[test]
fn a_wrong_token_is_refused_counted_and_stores_nothing() {
    let meniscus = Meniscus::start(TENANTS);
    logger(
        &meniscus,
        &["--tcp"],
        "acme",
        "wrong-token",
        "should not be stored",
    );
    logger(
        &meniscus,
        &["--tcp"],
        "nosuchtenant",
        "x",
        "should not be stored either",
    );
    logger(
        &meniscus,
        &["--tcp"],
        "acme",
        "acme-token",
        "marker after the refusals",
    );
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg = 'marker after the refusals'", 1),
        1
    );
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg LIKE 'should not%'"),
        0
    );
    assert_eq!(
        meniscus.metric(
            "meniscus_ingest_auth_failures_total{transport=\"tcp\",reason=\"invalid_token\"}"
        ),
        1
    );
    assert_eq!(
        meniscus.metric(
            "meniscus_ingest_auth_failures_total{transport=\"tcp\",reason=\"unknown_tenant\"}"
        ),
        1
    );
}
