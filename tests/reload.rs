//! Tenants change while Meniscus runs: rewrite the configuration file and send SIGHUP. A new
//! tenant can send at once, a rotated token replaces the old one, and a broken file changes
//! nothing but is counted and explained. Or, with an admin credential, through the tenant
//! admin API on the ops address: tenants added, rotated and removed, kept across a restart,
//! the file's own tenants left to the file.

use std::time::{Duration, Instant};

use meniscus_tests::{Meniscus, StartOptions};
use serde_json::{json, Value};

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

const ADMIN_CREDENTIAL: &str = "an-administrators-credential";

/// An admin API call on the ops address with `credential`; the status and the JSON answer.
fn admin(
    meniscus: &Meniscus,
    method: reqwest::Method,
    path: &str,
    credential: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = meniscus
        .client
        .request(method, meniscus.ops_url(path))
        .bearer_auth(credential);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().expect("admin call");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn the_admin_api_adds_rotates_and_removes_tenants_while_running_and_they_survive_a_restart() {
    use reqwest::Method;
    let secrets = tempfile::tempdir().unwrap();
    let credential_file = secrets.path().join("admin");
    std::fs::write(&credential_file, format!("{ADMIN_CREDENTIAL}\n")).unwrap();
    let credential_path = credential_file.display().to_string();
    let mut meniscus = Meniscus::start_with_options(StartOptions {
        extra: BEFORE,
        args: &["--admin-credential-file", &credential_path],
        ..StartOptions::default()
    });
    let beta = json!({
        "id": "beta",
        "tokens": [{"value": "beta-token"}],
        "producers": [{"name": "app", "durable": true}],
    });

    // Only an administrator: no credential or a wrong one is 401, and nothing changes.
    for wrong in ["", "not-the-credential"] {
        let (status, _) = admin(
            &meniscus,
            Method::PUT,
            "/v1/admin/tenants/beta",
            wrong,
            Some(beta.clone()),
        );
        assert_eq!(status, 401);
    }
    assert_eq!(publish(&meniscus, "beta", "beta-token"), 401);

    // Added while running: it can send at once, durable as its producer says.
    let (status, answer) = admin(
        &meniscus,
        Method::PUT,
        "/v1/admin/tenants/beta",
        ADMIN_CREDENTIAL,
        Some(beta),
    );
    assert_eq!(status, 200, "{answer}");
    wait_until("the new tenant is accepted", || {
        publish(&meniscus, "beta", "beta-token") == 202
    });
    // The file's tenant is the file's.
    let (status, answer) = admin(
        &meniscus,
        Method::PUT,
        "/v1/admin/tenants/acme",
        ADMIN_CREDENTIAL,
        Some(json!({"id": "acme", "tokens": [{"value": "stolen"}]})),
    );
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("configuration file"));
    assert_eq!(publish(&meniscus, "acme", "stolen"), 401);
    assert_eq!(publish(&meniscus, "acme", "acme-token"), 204);

    // A rotation with no grace: the new token works, the old one stops.
    let (status, answer) = admin(
        &meniscus,
        Method::POST,
        "/v1/admin/tenants/beta/rotate-token",
        ADMIN_CREDENTIAL,
        Some(json!({"graceSeconds": 0})),
    );
    assert_eq!(status, 200, "{answer}");
    let rotated = answer["token"].as_str().unwrap().to_string();
    wait_until("the rotated token is accepted", || {
        publish(&meniscus, "beta", &rotated) == 202
    });
    wait_until("the old token is refused", || {
        publish(&meniscus, "beta", "beta-token") == 401
    });

    // Kept in the data dir: a restart (even kill -9) has the same tenants.
    meniscus.restart();
    assert_eq!(publish(&meniscus, "beta", &rotated), 202);
    assert_eq!(publish(&meniscus, "acme", "acme-token"), 204);
    let (status, listed) = admin(
        &meniscus,
        Method::GET,
        "/v1/admin/tenants",
        ADMIN_CREDENTIAL,
        None,
    );
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["specs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|spec| spec["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["beta"], "{listed}");

    // Removed: its token stops working; its stored events stay until retention.
    let (status, _) = admin(
        &meniscus,
        Method::DELETE,
        "/v1/admin/tenants/beta",
        ADMIN_CREDENTIAL,
        None,
    );
    assert_eq!(status, 204);
    wait_until("the removed tenant is refused", || {
        publish(&meniscus, "beta", &rotated) == 401
    });
    assert_eq!(publish(&meniscus, "acme", "acme-token"), 204);
}

#[test]
fn without_an_admin_credential_there_is_no_admin_api() {
    let meniscus = Meniscus::start(BEFORE);
    let (status, _) = admin(
        &meniscus,
        reqwest::Method::GET,
        "/v1/admin/tenants",
        "anything",
        None,
    );
    assert_eq!(status, 404);
}
