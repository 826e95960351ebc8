//! A real rsyslogd (`omfwd`, RFC 5424) as a tenant's relay in front of Meniscus: octet-counted
//! and LF framing over TCP, TLS (gtls) with the tenant in structured data, and mutual TLS where
//! the client certificate names the tenant. Every line pushed into rsyslog must be stored
//! exactly once with its fields.

use std::path::Path;

use meniscus_tests::{
    assert_each_stored_once, make_certs, numbered_lines, openssl_send, Expect, Meniscus, Peer,
    TestLine, TENANTS,
};

/// Lines pushed through each peer.
const LINES: usize = 200;
const TENANT_ENV: &[(&str, &str)] = &[("TENANT", "acme"), ("TOKEN", "acme-token")];

fn rfc5424(lines: &[TestLine]) -> Vec<String> {
    lines.iter().map(TestLine::rfc5424).collect()
}

fn acme(transport: &str) -> Expect<'_> {
    Expect {
        tenant: "acme",
        token: "acme-token",
        transport,
        native_seq: true,
    }
}

/// A TLS listener on `{syslog_port}` with the server certificate of `certs`, plus `more` YAML
/// inside its `tls` section.
fn tls_listener(certs: &Path, more: &str) -> String {
    secure_listener("tls", certs, more)
}

/// A `protocol` (tls or relp) listener with the test certificates, on `{syslog_port}`.
fn secure_listener(protocol: &str, certs: &Path, more: &str) -> String {
    format!(
        "  - {{protocol: {protocol}, address: \"127.0.0.1:{{syslog_port}}\", tls: {{certFile: \"{}\", keyFile: \"{}\"{more}}}}}\n",
        certs.join("server.pem").display(),
        certs.join("server.key").display()
    )
}

/// The `tls` fields that ask for a client certificate of the test CA and map CN relay-7 to
/// tenant acme.
fn relay_7_is_acme(certs: &Path) -> String {
    format!(
        ", clientCaFile: \"{}\", clientTenants: [{{name: relay-7, tenant: acme}}]",
        certs.join("ca.pem").display()
    )
}

fn forward_and_check(framing: &str) {
    let meniscus = Meniscus::start(TENANTS);
    let peer = Peer::start(
        "rsyslog-forward.sh",
        meniscus.syslog_port,
        framing,
        None,
        TENANT_ENV,
    );
    let lines = numbered_lines(&format!("rsyslog-{framing}"), LINES);
    peer.send_lines(&rfc5424(&lines));
    assert_each_stored_once(&meniscus, &lines, &acme("tcp"));
    assert_eq!(
        meniscus.count("acme", "acme-token", ""),
        LINES as u64,
        "nothing but the forwarded lines"
    );
    assert_eq!(
        meniscus.count("other", "other-token", ""),
        0,
        "nothing leaks to another tenant"
    );
    assert!(peer.is_running(), "rsyslogd died:\n{}", peer.diagnostics());
}

#[test]
fn rsyslog_octet_counted_forwarding_stores_every_line_once() {
    forward_and_check("octet");
}

#[test]
fn rsyslog_lf_forwarding_stores_every_line_once() {
    forward_and_check("lf");
}

#[test]
fn rsyslog_over_tls_with_the_tenant_in_structured_data() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = make_certs(certs_dir.path(), "relay-7");
    let meniscus = Meniscus::start_with_listeners(&tls_listener(&certs, ""), TENANTS);
    let peer = Peer::start(
        "rsyslog-forward.sh",
        meniscus.syslog_port,
        "octet",
        Some(&certs.join("ca.pem")),
        TENANT_ENV,
    );
    let lines = numbered_lines("rsyslog-tls", LINES);
    peer.send_lines(&rfc5424(&lines));
    assert_each_stored_once(&meniscus, &lines, &acme("tls"));
    assert_eq!(meniscus.count("acme", "acme-token", ""), LINES as u64);
    assert_eq!(meniscus.count("other", "other-token", ""), 0);
    assert_eq!(
        meniscus.metric(
            "meniscus_ingest_rejected_messages_total{transport=\"tls\",reason=\"handshake_failed\"}"
        ),
        0
    );
}

/// rsyslog sends no `[meniscus ...]` element: only its client certificate (CN relay-7, mapped
/// to acme) says whose lines these are. Clients without a certificate, or with one from another
/// CA (even with the mapped CN and valid credentials in the message), are refused.
#[test]
fn rsyslog_over_mutual_tls_gets_its_tenant_from_the_client_certificate() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = make_certs(certs_dir.path(), "relay-7");
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = make_certs(foreign_dir.path(), "relay-7");
    let meniscus =
        Meniscus::start_with_listeners(&tls_listener(&certs, &relay_7_is_acme(&certs)), TENANTS);
    let client_cert = certs.join("client.pem").display().to_string();
    let client_key = certs.join("client.key").display().to_string();
    let peer = Peer::start(
        "rsyslog-forward.sh",
        meniscus.syslog_port,
        "octet",
        Some(&certs.join("ca.pem")),
        &[("TLS_CERT", &client_cert), ("TLS_KEY", &client_key)],
    );
    let lines = numbered_lines("rsyslog-mtls", LINES);
    peer.send_lines(&rfc5424(&lines));
    assert_each_stored_once(&meniscus, &lines, &acme("tls"));

    // Refused clients: their message carries valid credentials, so only the certificate check
    // can keep it out.
    let handshake_failed =
        "meniscus_ingest_rejected_messages_total{transport=\"tls\",reason=\"handshake_failed\"}";
    let before = meniscus.metric(handshake_failed);
    let payload = |who: &str| {
        format!(
            "<13>1 2026-11-25T10:00:00Z intruder app - - [meniscus@32473 tenant=\"acme\" token=\"acme-token\"] refused {who}\n"
        )
    };
    let ca = certs.join("ca.pem");
    let anonymous = openssl_send(
        meniscus.syslog_port,
        &ca,
        None,
        &payload("without a certificate"),
    );
    let foreign_client = openssl_send(
        meniscus.syslog_port,
        &ca,
        Some((&foreign.join("client.pem"), &foreign.join("client.key"))),
        &payload("with a certificate of another CA"),
    );
    // A marker through rsyslog after the refused clients: once it is stored, they were handled.
    let marker = numbered_lines("rsyslog-mtls-marker", 1);
    peer.send_lines(&rfc5424(&marker));
    assert_each_stored_once(&meniscus, &marker, &acme("tls"));
    meniscus_tests::wait_for_metric(&meniscus, handshake_failed, 30, |value| value >= before + 2);
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg LIKE 'refused %'"),
        0,
        "a refused client's message was stored; openssl without cert: {anonymous:?}; with a foreign cert: {foreign_client:?}"
    );
    assert_eq!(
        meniscus.metric(handshake_failed),
        before + 2,
        "exactly the two refused handshakes"
    );
    assert_eq!(meniscus.count("acme", "acme-token", ""), LINES as u64 + 1);
    assert_eq!(meniscus.count("other", "other-token", ""), 0);
    assert!(
        meniscus.log().contains("peer sent no certificates"),
        "the refusal of the anonymous client is logged:\n{}",
        meniscus.log()
    );
}

/// A RELP listener on `{syslog_port}`.
const RELP_LISTENER: &str = "  - {protocol: relp, address: \"127.0.0.1:{syslog_port}\"}\n";

#[test]
fn rsyslog_omrelp_stores_every_line_once() {
    let meniscus = Meniscus::start_with_listeners(RELP_LISTENER, TENANTS);
    let peer = Peer::start(
        "rsyslog-forward.sh",
        meniscus.syslog_port,
        "relp",
        None,
        TENANT_ENV,
    );
    let lines = numbered_lines("rsyslog-relp", LINES);
    peer.send_lines(&rfc5424(&lines));
    assert_each_stored_once(&meniscus, &lines, &acme("relp"));
    assert_eq!(meniscus.count("other", "other-token", ""), 0);
    assert!(peer.is_running(), "rsyslogd died:\n{}", peer.diagnostics());
}

/// RELP over TLS (librelp's TLS in omrelp, the server checked by name), the tenant from the
/// client certificate only: rsyslog adds no `[meniscus ...]` element. A client whose
/// certificate comes from another CA is refused at the handshake.
#[test]
fn rsyslog_omrelp_over_mutual_tls_gets_its_tenant_from_the_client_certificate() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = make_certs(certs_dir.path(), "relay-7");
    let meniscus = Meniscus::start_with_listeners(
        &secure_listener("relp", &certs, &relay_7_is_acme(&certs)),
        TENANTS,
    );
    let client_cert = certs.join("client.pem").display().to_string();
    let client_key = certs.join("client.key").display().to_string();
    let peer = Peer::start(
        "rsyslog-forward.sh",
        meniscus.syslog_port,
        "relp",
        Some(&certs.join("ca.pem")),
        &[("TLS_CERT", &client_cert), ("TLS_KEY", &client_key)],
    );
    let lines = numbered_lines("rsyslog-relp-tls", LINES);
    peer.send_lines(&rfc5424(&lines));
    assert_each_stored_once(&meniscus, &lines, &acme("relp"));
    assert_eq!(meniscus.count("other", "other-token", ""), 0);
    assert!(peer.is_running(), "rsyslogd died:\n{}", peer.diagnostics());

    // A client of another CA, with the mapped name and valid credentials in its message.
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = make_certs(foreign_dir.path(), "relay-7");
    let handshake_failed =
        "meniscus_ingest_rejected_messages_total{transport=\"relp\",reason=\"handshake_failed\"}";
    let before = meniscus.metric(handshake_failed);
    let refused = openssl_send(
        meniscus.syslog_port,
        &certs.join("ca.pem"),
        Some((&foreign.join("client.pem"), &foreign.join("client.key"))),
        "1 open 85 relp_version=0\nrelp_software=test\ncommands=syslog\n2 syslog 95 <13>1 2026-11-25T10:00:00Z intruder app - - [meniscus@32473 tenant=\"acme\" token=\"acme-token\"] refused\n",
    );
    meniscus_tests::wait_for_metric(&meniscus, handshake_failed, 30, |value| value > before);
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg LIKE '%refused%'"),
        0,
        "{refused:?}"
    );
}

/// RELP's point: Meniscus killed with `kill -9` in the middle of 10,000 lines and started
/// again, rsyslog resends what was not acknowledged and no line is lost. Delivery is at least
/// once: lines stored but not yet acknowledged when the process died are stored again, so
/// duplicates are allowed, and bounded by what can be in flight (omrelp's window of 128
/// messages and one read's batch).
#[test]
fn rsyslog_omrelp_loses_nothing_when_meniscus_is_killed() {
    const MANY: usize = 10_000;
    let mut meniscus = Meniscus::start_with_listeners(RELP_LISTENER, TENANTS);
    let peer = Peer::start(
        "rsyslog-forward.sh",
        meniscus.syslog_port,
        "relp",
        None,
        TENANT_ENV,
    );
    let lines = numbered_lines("relp-kill", MANY);
    let texts = rfc5424(&lines);
    let sender = {
        let port = peer.input_port;
        std::thread::spawn(move || {
            use std::io::Write;
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            for chunk in texts.chunks(100) {
                let mut text = chunk.join("\n");
                text.push('\n');
                stream.write_all(text.as_bytes()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    meniscus.wait_until(60, "some lines stored before the kill", || {
        meniscus.count("acme", "acme-token", "msg LIKE 'relp-kill line %'") >= 1_000
    });
    meniscus.kill9();
    std::thread::sleep(std::time::Duration::from_millis(500));
    meniscus.restart();
    sender.join().unwrap();
    meniscus.wait_until(120, "every line stored after the restart", || {
        meniscus.sql(
            "acme",
            "acme-token",
            "SELECT count(DISTINCT msg) AS n FROM events WHERE msg LIKE 'relp-kill line %'",
        )[0]["n"]
            == serde_json::json!(MANY)
    });
    let total = meniscus.count("acme", "acme-token", "msg LIKE 'relp-kill line %'");
    let duplicates = total - MANY as u64;
    eprintln!("relp across kill -9: {MANY} lines, {duplicates} stored twice");
    assert!(
        duplicates <= 1_000,
        "{duplicates} duplicates: more than could have been in flight"
    );
    assert!(peer.is_running(), "rsyslogd died:\n{}", peer.diagnostics());
}
