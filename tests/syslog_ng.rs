//! A real syslog-ng as a tenant's relay in front of Meniscus: `network()` (RFC 3164, LF framing,
//! no structured data, so the listener is bound to the tenant) and `syslog()` (RFC 5424,
//! octet-counted, tenant and token in structured data), each into a listener with `framing:
//! auto` and one with the explicit framing the driver uses. Every line pushed into syslog-ng
//! must be stored exactly once with its fields.

use meniscus_tests::{
    assert_each_stored_once, free_port, numbered_lines, Expect, Meniscus, Peer, TestLine, TENANTS,
};

/// Lines pushed through each peer.
const LINES: usize = 200;

fn rfc5424(lines: &[TestLine]) -> Vec<String> {
    lines.iter().map(TestLine::rfc5424).collect()
}

/// Two TCP listeners: framing auto on `{syslog_port}`, `explicit` framing on `second_port`,
/// both with `binding` (e.g. `, tenant: acme`).
fn listeners(explicit: &str, second_port: u16, binding: &str) -> String {
    format!(
        "  - {{protocol: tcp, address: \"127.0.0.1:{{syslog_port}}\", framing: auto{binding}}}\n  - {{protocol: tcp, address: \"127.0.0.1:{second_port}\", framing: {explicit}{binding}}}\n"
    )
}

/// Starts one syslog-ng per listener, pushes distinct numbered lines through each and checks
/// both sets.
fn forward_through_both(
    driver: &str,
    explicit_framing: &str,
    binding: &str,
    env: &[(&str, &str)],
    native_seq: bool,
) {
    let second_port = free_port();
    let meniscus =
        Meniscus::start_with_listeners(&listeners(explicit_framing, second_port, binding), TENANTS);
    let targets = [
        ("auto", meniscus.syslog_port),
        (explicit_framing, second_port),
    ];
    let peers: Vec<Peer> = targets
        .iter()
        .map(|(_, port)| Peer::start("syslog-ng-forward.sh", *port, driver, None, env))
        .collect();
    let mut all = Vec::new();
    for ((framing, _), peer) in targets.iter().zip(&peers) {
        let lines = numbered_lines(&format!("syslog-ng-{driver}-{framing}"), LINES);
        peer.send_lines(&rfc5424(&lines));
        all.push((framing, lines));
    }
    let expect = Expect {
        tenant: "acme",
        token: "acme-token",
        transport: "tcp",
        native_seq,
    };
    for (framing, lines) in &all {
        eprintln!("checking syslog-ng {driver}() into the framing {framing} listener");
        assert_each_stored_once(&meniscus, lines, &expect);
    }
    assert_eq!(
        meniscus.count("acme", "acme-token", ""),
        2 * LINES as u64,
        "nothing but the forwarded lines"
    );
    assert_eq!(
        meniscus.count("other", "other-token", ""),
        0,
        "nothing leaks to another tenant"
    );
    for peer in &peers {
        assert!(peer.is_running(), "syslog-ng died:\n{}", peer.diagnostics());
    }
}

/// RFC 3164 carries no structured data: the listener's `tenant: acme` is the only credential.
/// PROCID survives as `app[pid]:`, MSGID and SD are lost on the way.
#[test]
fn syslog_ng_network_rfc3164_into_listeners_bound_to_the_tenant() {
    forward_through_both("network", "lf", ", tenant: acme", &[], false);
}

#[test]
fn syslog_ng_syslog_rfc5424_octet_counted_with_the_tenant_in_structured_data() {
    forward_through_both(
        "syslog",
        "octet-counting",
        "",
        &[("TENANT", "acme"), ("TOKEN", "acme-token")],
        true,
    );
}
