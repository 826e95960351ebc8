//! Tenants change while Meniscus runs: rewrite the configuration file and send SIGHUP. A new
//! tenant can send at once, a rotated token replaces the old one, and a broken file changes
//! nothing but is counted and explained.

use std::time::{Duration, Instant};

use meniscus_tests::Meniscus;
use serde_json::json;

const BEFORE: &str = r#"
tenants:
  - id: acme
    tokens: [{value: acme-token}]
"#;

const AFTER: &str = r#"
tenants:
  - id: acme
    tokens: [{value: acme-token-2}]
  - id: beta
    tokens: [{value: beta-token}]
"#;

fn publish(meniscus: &Meniscus, tenant: &str, token: &str) -> u16 {
    meniscus
        .publish_json(
            tenant,
            token,
            &json!({"host": "h", "pname": "app", "msg": "reload check"}),
        )
        .0
}

fn hang_up(meniscus: &Meniscus) {
    // SAFETY: sends a signal to the child process this test started.
    assert_eq!(
        unsafe { libc::kill(meniscus.pid() as i32, libc::SIGHUP) },
        0
    );
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_reloads_tenants_and_a_broken_file_changes_nothing() {
    let meniscus = Meniscus::start(BEFORE);
    assert_eq!(publish(&meniscus, "acme", "acme-token"), 204);
    assert_eq!(
        publish(&meniscus, "beta", "beta-token"),
        401,
        "not a tenant yet"
    );

    let config = std::fs::read_to_string(meniscus.config_path()).unwrap();
    assert!(config.contains(BEFORE.trim()));
    std::fs::write(
        meniscus.config_path(),
        config.replace(BEFORE.trim(), AFTER.trim()),
    )
    .unwrap();
    hang_up(&meniscus);
    wait_until("the new tenant is accepted", || {
        publish(&meniscus, "beta", "beta-token") == 204
    });
    assert_eq!(
        meniscus.metric("meniscus_config_reloads_total{result=\"ok\"}"),
        1
    );
    assert_eq!(
        publish(&meniscus, "acme", "acme-token"),
        401,
        "the old token is gone"
    );
    assert_eq!(publish(&meniscus, "acme", "acme-token-2"), 204);

    // A file that does not parse: counted, logged, and the tenants in force stay.
    std::fs::write(meniscus.config_path(), "tenants: [this is not {yaml").unwrap();
    hang_up(&meniscus);
    wait_until("the failed reload is counted", || {
        meniscus.metric("meniscus_config_reloads_total{result=\"error\"}") == 1
    });
    assert!(meniscus.log().contains("tenants not reloaded"));
    assert_eq!(publish(&meniscus, "beta", "beta-token"), 204);
    assert_eq!(publish(&meniscus, "acme", "acme-token-2"), 204);
    // Every accepted event is stored, under its own tenant.
    assert_eq!(
        meniscus.wait_for_count("beta", "beta-token", "msg = 'reload check'", 2),
        2
    );
}
