//! Syslog over TLS (RFC 5425) without syslog peers: a throw-away PKI made with rcgen in the
//! test, `openssl s_client` as the client. Client certificates map to tenants by subject CN or
//! DNS SAN; an unmapped certificate without credentials is refused and counted; a client that
//! never finishes its handshake does not hold up others.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use meniscus_tests::pki::Pki;
use meniscus_tests::{
    assert_each_stored_once, numbered_lines, openssl_send, wait_for_metric, Expect, Meniscus,
    TestLine, TENANTS,
};

/// A TLS listener on `{syslog_port}`, not bound to a tenant, verifying client certificates
/// against the CA of `pki`, mapping `device-cn-1` to acme and `sensor-12.example.net` to other.
fn listener(pki: &Pki) -> String {
    let (cert, key) = pki.server();
    format!(
        "  - {{protocol: tls, address: \"127.0.0.1:{{syslog_port}}\", tls: {{certFile: \"{}\", keyFile: \"{}\", clientCaFile: \"{}\", \
         clientTenants: [{{name: device-cn-1, tenant: acme}}, {{name: sensor-12.example.net, tenant: other}}]}}}}\n",
        cert.display(),
        key.display(),
        pki.ca().display()
    )
}

fn payload(lines: &[String]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

fn send(meniscus: &Meniscus, pki: &Pki, client: &(PathBuf, PathBuf), lines: &[String]) {
    let outcome = openssl_send(
        meniscus.syslog_port,
        &pki.ca(),
        Some((&client.0, &client.1)),
        &payload(lines),
    );
    assert!(outcome.success, "openssl s_client failed: {outcome:?}");
}

/// Sends `lines` as RFC 5424 over one TLS connection with `client`'s certificate.
fn send_lines(meniscus: &Meniscus, pki: &Pki, client: &(PathBuf, PathBuf), lines: &[TestLine]) {
    let sent: Vec<String> = lines.iter().map(TestLine::rfc5424).collect();
    send(meniscus, pki, client, &sent);
}

/// Each of `lines` is stored once, over TLS, for `tenant`.
fn assert_stored_over_tls(meniscus: &Meniscus, lines: &[TestLine], tenant: &str, token: &str) {
    assert_each_stored_once(
        meniscus,
        lines,
        &Expect {
            tenant,
            token,
            transport: "tls",
            native_seq: true,
        },
    );
}

const TLS_NO_TENANT: &str =
    "meniscus_ingest_auth_failures_total{transport=\"tls\",reason=\"no_tenant\"}";
const TLS_MISMATCH: &str =
    "meniscus_ingest_auth_failures_total{transport=\"tls\",reason=\"tenant_mismatch\"}";
const TLS_HANDSHAKE_TIMEOUT: &str =
    "meniscus_ingest_rejected_messages_total{transport=\"tls\",reason=\"handshake_timeout\"}";

#[test]
fn a_client_certificate_cn_mapped_to_a_tenant_stores_for_that_tenant() {
    meniscus_tests::install_peers(); // the openssl CLI
    let pki = Pki::generate();
    let meniscus = Meniscus::start_with_listeners(&listener(&pki), TENANTS);
    // CN only, no SAN: the mapping must come from the subject.
    let client = pki.client("device", "device-cn-1", &[]);
    let lines = numbered_lines("tls-cn", 20);
    let mut sent: Vec<String> = lines.iter().map(TestLine::rfc5424).collect();
    // Credentials naming another tenant than the certificate's are refused (before the last
    // line, so once that is stored the refusal has been counted).
    sent.insert(
        10,
        "<13>1 2026-11-25T10:00:00Z dev app - - [meniscus@32473 tenant=\"other\" token=\"other-token\"] tls-cn for another tenant"
            .into(),
    );
    send(&meniscus, &pki, &client, &sent);
    assert_stored_over_tls(&meniscus, &lines, "acme", "acme-token");
    assert_eq!(
        meniscus.metric(TLS_MISMATCH),
        1,
        "the line naming another tenant is refused"
    );
    assert_eq!(meniscus.count("acme", "acme-token", ""), lines.len() as u64);
    assert_eq!(meniscus.count("other", "other-token", ""), 0);
}

#[test]
fn a_client_certificate_dns_san_mapped_to_a_tenant_stores_for_that_tenant() {
    meniscus_tests::install_peers();
    let pki = Pki::generate();
    let meniscus = Meniscus::start_with_listeners(&listener(&pki), TENANTS);
    // The CN maps to nothing; the DNS SAN maps to `other`.
    let client = pki.client("sensor", "unmapped-device", &["sensor-12.example.net"]);
    let lines = numbered_lines("tls-san", 20);
    send_lines(&meniscus, &pki, &client, &lines);
    assert_stored_over_tls(&meniscus, &lines, "other", "other-token");
    assert_eq!(
        meniscus.count("other", "other-token", ""),
        lines.len() as u64
    );
    assert_eq!(meniscus.count("acme", "acme-token", ""), 0);
}

#[test]
fn an_unmapped_certificate_without_credentials_is_refused_and_counted() {
    meniscus_tests::install_peers();
    let pki = Pki::generate();
    let meniscus = Meniscus::start_with_listeners(&listener(&pki), TENANTS);
    let client = pki.client("stranger", "stranger", &["stranger.example.net"]);
    let refused = numbered_lines("tls-unmapped", 3);
    let mut sent: Vec<String> = refused.iter().map(TestLine::rfc5424).collect();
    // Valid credentials still work over the same connection; sent last, so once stored the
    // refused lines before it have been handled.
    let with_credentials = format!(
        "<13>1 {} stranger app 7 - [meniscus@32473 tenant=\"acme\" token=\"acme-token\"] tls-unmapped with credentials",
        chrono::Utc::now().to_rfc3339()
    );
    sent.push(with_credentials);
    send(&meniscus, &pki, &client, &sent);
    assert_eq!(
        meniscus.wait_for_count(
            "acme",
            "acme-token",
            "msg = 'tls-unmapped with credentials'",
            1
        ),
        1,
        "the line with credentials is stored"
    );
    assert_eq!(
        meniscus.metric(TLS_NO_TENANT),
        3,
        "each line without a tenant is counted"
    );
    assert_eq!(
        meniscus.count("acme", "acme-token", ""),
        1,
        "only the line with credentials is stored"
    );
    assert_eq!(meniscus.count("other", "other-token", ""), 0);
}

/// Open while the server keeps the connection; false once it closed or reset it.
fn still_open(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true, // an alert on its way; the close follows
        Err(error) => matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn a_client_that_never_finishes_its_handshake_does_not_block_others() {
    meniscus_tests::install_peers();
    let pki = Pki::generate();
    let meniscus = Meniscus::start_with_listeners(&listener(&pki), TENANTS);
    // One connection says nothing; one sends the start of a ClientHello (a handshake record
    // announcing 512 bytes) and stops.
    let mut silent = TcpStream::connect(meniscus.syslog_addr()).unwrap();
    let mut partial = TcpStream::connect(meniscus.syslog_addr()).unwrap();
    partial
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .unwrap();

    let client = pki.client("device", "device-cn-1", &[]);
    let lines = numbered_lines("tls-while-stalled", 20);
    send_lines(&meniscus, &pki, &client, &lines);
    assert_stored_over_tls(&meniscus, &lines, "acme", "acme-token");
    // Served while the stalled handshakes were still pending (not after they timed out).
    assert_eq!(
        meniscus.metric(TLS_HANDSHAKE_TIMEOUT),
        0,
        "a stalled handshake timed out before the good client was served"
    );
    assert!(
        still_open(&mut silent) && still_open(&mut partial),
        "the stalled connections are still pending"
    );

    // And the stalled ones are dropped eventually (the handshake timeout), not kept forever.
    wait_for_metric(&meniscus, TLS_HANDSHAKE_TIMEOUT, 90, |value| value == 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while still_open(&mut silent) || still_open(&mut partial) {
        assert!(
            Instant::now() < deadline,
            "the server did not close the timed-out connections"
        );
    }
    assert_eq!(meniscus.count("acme", "acme-token", ""), lines.len() as u64);
}

/// `meniscus_ingest_rejected_messages_total` is documented as "refused for a reason other than
/// authentication": a frame refused for its tenant must be counted once, under
/// `meniscus_ingest_auth_failures_total`, not in both families (a dashboard adding them up would see
/// every refusal twice).
#[test]
fn a_frame_refused_for_its_tenant_is_counted_once() {
    meniscus_tests::install_peers();
    let pki = Pki::generate();
    let meniscus = Meniscus::start_with_listeners(&listener(&pki), TENANTS);
    let client = pki.client("stranger", "stranger", &[]);
    let marker = format!(
        "<13>1 {} stranger app 7 - [meniscus@32473 tenant=\"acme\" token=\"acme-token\"] counted-once marker",
        chrono::Utc::now().to_rfc3339()
    );
    let refused = [
        "<13>1 2026-11-25T10:00:00Z stranger app - - - no tenant".to_string(),
        "<13>1 2026-11-25T10:00:00Z stranger app - - [meniscus@32473 tenant=\"acme\" token=\"wrong\"] bad token".to_string(),
    ];
    send(
        &meniscus,
        &pki,
        &client,
        &[refused[0].clone(), refused[1].clone(), marker],
    );
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg = 'counted-once marker'", 1),
        1
    );
    assert_eq!(meniscus.metric(TLS_NO_TENANT), 1);
    assert_eq!(
        meniscus.metric(
            "meniscus_ingest_auth_failures_total{transport=\"tls\",reason=\"invalid_token\"}"
        ),
        1
    );
    let metrics = meniscus
        .client
        .get(meniscus.ops_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let double: Vec<&str> = metrics
        .lines()
        .filter(|line| {
            line.starts_with("meniscus_ingest_rejected_messages_total{transport=\"tls\"")
        })
        .filter(|line| line.contains("no_tenant") || line.contains("invalid_token"))
        .collect();
    assert!(
        double.is_empty(),
        "auth refusals counted again as rejected messages: {double:?}"
    );
}

/// A tenant's own `tlsClientIdentities` on a listener that verifies client certificates but
/// does not require them: a device with a listed certificate sends without a token, a client
/// without a certificate sends with one, a certificate from another CA is refused, and moving
/// the identity to another tenant takes a SIGHUP, no restart.
#[test]
fn a_tenants_client_identity_names_its_tenant_and_clients_without_certificates_use_tokens() {
    meniscus_tests::install_peers();
    let pki = Pki::generate();
    let (cert, key) = pki.server();
    let listener = format!(
        "  - {{protocol: tls, address: \"127.0.0.1:{{syslog_port}}\", tls: {{certFile: \"{}\", keyFile: \"{}\", clientCaFile: \"{}\", clientCertOptional: true}}}}\n",
        cert.display(),
        key.display(),
        pki.ca().display()
    );
    let identities = "    tlsClientIdentities: [gateway-3.acme.example]\n";
    let tenants = format!(
        "tenants:\n  - id: acme\n    tokens: [{{value: acme-token}}]\n{identities}  - id: other\n    tokens: [{{value: other-token}}]\n"
    );
    let meniscus = Meniscus::start_with_listeners(&listener, &tenants);
    let gateway = pki.client("gateway", "gateway-3.acme.example", &[]);
    let lines = numbered_lines("tls-identity", 10);
    send_lines(&meniscus, &pki, &gateway, &lines);
    assert_stored_over_tls(&meniscus, &lines, "acme", "acme-token");

    // No certificate: let in, and the line's own credentials name its tenant.
    let with_token = format!(
        "<13>1 {} host app 7 - [meniscus@32473 tenant=\"other\" token=\"other-token\"] tls without a certificate\n",
        chrono::Utc::now().to_rfc3339()
    );
    let outcome = openssl_send(meniscus.syslog_port, &pki.ca(), None, &with_token);
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(
        meniscus.wait_for_count(
            "other",
            "other-token",
            "msg = 'tls without a certificate'",
            1
        ),
        1
    );

    // A certificate of another CA, with the same name: the handshake fails, nothing stored.
    let stranger_pki = Pki::generate();
    let impostor = stranger_pki.client("impostor", "gateway-3.acme.example", &[]);
    let impostor_line = format!(
        "<13>1 {} host app 7 - - tls from an impostor\n",
        chrono::Utc::now().to_rfc3339()
    );
    openssl_send(
        meniscus.syslog_port,
        &pki.ca(),
        Some((&impostor.0, &impostor.1)),
        &impostor_line,
    );
    wait_for_metric(
        &meniscus,
        "meniscus_ingest_rejected_messages_total{transport=\"tls\",reason=\"handshake_failed\"}",
        30,
        |failed| failed >= 1,
    );

    // The identity moves to `other` with the tenants (SIGHUP), no restart.
    let config = std::fs::read_to_string(meniscus.config_path()).unwrap();
    let moved = config.replace(identities, "").replace(
        "    tokens: [{value: other-token}]\n",
        &format!("    tokens: [{{value: other-token}}]\n{identities}"),
    );
    assert_ne!(moved, config);
    std::fs::write(meniscus.config_path(), moved).unwrap();
    // SAFETY: sends a signal to the child process this test started.
    assert_eq!(
        unsafe { libc::kill(meniscus.pid() as i32, libc::SIGHUP) },
        0
    );
    wait_for_metric(
        &meniscus,
        "meniscus_config_reloads_total{result=\"ok\"}",
        30,
        |reloads| reloads == 1,
    );
    let after = format!(
        "<13>1 {} host app 7 - - tls identity moved\n",
        chrono::Utc::now().to_rfc3339()
    );
    send(&meniscus, &pki, &gateway, &[after.trim_end().to_string()]);
    assert_eq!(
        meniscus.wait_for_count("other", "other-token", "msg = 'tls identity moved'", 1),
        1
    );
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg LIKE 'tls%'"),
        lines.len() as u64,
        "acme has its gateway's lines and nothing else: {:?}",
        meniscus.count("acme", "acme-token", "")
    );
}
