//! The normalizer in the running product: built-in and file rulebases, tags, unmatched lines,
//! reload on change, and a broken rulebase that leaves the previous one active.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use meniscus_tests::Meniscus;

const TENANTS: &str = r#"
normalizer: {rulebaseDir: "{dir}/rulebases"}
tenants:
  - id: acme
    tokens: [{value: acme-token}]
    producers:
      - {name: sshd, pattern: sshd}
      - {name: app, pattern: app}
      - {name: sudo, pattern: sudo}
      - {name: su, pattern: su}
      - {name: cron, pattern: cron}
"#;

fn send(meniscus: &Meniscus, app: &str, msg: &str) {
    use std::io::Write;
    let line = format!("<38>1 2026-11-25T10:00:00Z host {app} 1 - [meniscus tenant=\"acme\" token=\"acme-token\"] {msg}\n");
    let mut stream = TcpStream::connect(meniscus.syslog_addr()).unwrap();
    stream.write_all(line.as_bytes()).unwrap();
}

fn normalized_of(meniscus: &Meniscus, msg: &str) -> serde_json::Value {
    let filter = format!("msg = '{msg}'");
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", &filter, 1),
        1,
        "{msg} not stored"
    );
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        &format!("SELECT normalized, tags FROM events WHERE {filter}"),
    );
    // Null columns are absent from a row.
    let column = |name: &str| -> serde_json::Value {
        let text = rows[0]
            .get(name)
            .and_then(|value| value.as_str())
            .unwrap_or("null");
        serde_json::from_str(text).unwrap()
    };
    let (normalized, tags) = (column("normalized"), column("tags"));
    serde_json::json!({ "normalized": normalized, "tags": tags })
}

fn write_rulebase(meniscus: &Meniscus, text: &str) {
    let dir = meniscus.dir.path().join("rulebases");
    std::fs::create_dir_all(&dir).unwrap();
    // Write then rename, as a ConfigMap update does, so the reader never sees half a file.
    let temporary = dir.join(".app.rb.tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(temporary, dir.join("app.rb")).unwrap();
}

#[test]
fn builtin_rulebase_adds_fields_and_tags() {
    let meniscus = Meniscus::start(TENANTS);
    send(
        &meniscus,
        "sshd",
        "Accepted publickey for root from 10.0.0.7 port 52144 ssh2",
    );
    let result = normalized_of(
        &meniscus,
        "Accepted publickey for root from 10.0.0.7 port 52144 ssh2",
    );
    assert_eq!(result["normalized"]["sshd"]["user"], "root", "{result}");
    assert_eq!(result["normalized"]["sshd"]["src_ip"], "10.0.0.7");
    assert_eq!(result["normalized"]["sshd"]["method"], "publickey");
    assert_eq!(
        result["tags"],
        serde_json::json!(["ssh", "auth", "success"])
    );

    send(&meniscus, "sshd", "something sshd never says");
    let result = normalized_of(&meniscus, "something sshd never says");
    assert_eq!(
        result["normalized"]["sshd"]["originalmsg"], "something sshd never says",
        "{result}"
    );
    assert!(
        result["normalized"]["sshd"]["unparsed-data"].is_string(),
        "{result}"
    );
    assert_eq!(
        meniscus.metric("meniscus_normalizer_events_total{pattern=\"sshd\",result=\"unmatched\"}"),
        1
    );
}

#[test]
fn file_rulebases_reload_and_a_broken_one_keeps_the_previous() {
    let meniscus = Meniscus::start(TENANTS);
    write_rulebase(
        &meniscus,
        "version=2\nrule=login:user %user:word% logged in\n",
    );
    send(&meniscus, "app", "user alice logged in");
    assert_eq!(
        normalized_of(&meniscus, "user alice logged in")["normalized"]["app"]["user"],
        "alice"
    );

    // A new version is picked up without a restart.
    write_rulebase(
        &meniscus,
        "version=2\nrule=login:user %name:word% logged in\n",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let msg = format!("user bob{attempt} logged in");
        send(&meniscus, "app", &msg);
        if normalized_of(&meniscus, &msg)["normalized"]["app"]["name"] == format!("bob{attempt}") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the changed rulebase was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A broken version is reported with file, line and column; the previous stays active.
    write_rulebase(
        &meniscus,
        "version=2\nrule=login:user %name:nubmer% logged in\n",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while meniscus.metric("meniscus_normalizer_rulebase_load_errors_total{pattern=\"app\"}") == 0 {
        assert!(
            Instant::now() < deadline,
            "the broken rulebase was not reported"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = meniscus.log();
    assert!(
        log.contains("app.rb:2:"),
        "error must name file and line: {log}"
    );
    assert!(log.contains("nubmer"), "{log}");
    send(&meniscus, "app", "user carol logged in");
    assert_eq!(
        normalized_of(&meniscus, "user carol logged in")["normalized"]["app"]["name"],
        "carol"
    );
}

/// FIELDS.md's promise, through the running product: one query on the shared tags finds the
/// failed logins of sshd, sudo and su alike, `user` names the account in each, and a line
/// that is not a failure (an accepted login, a cron job) stays out.
#[test]
fn one_query_finds_failed_logins_from_sshd_sudo_and_su() {
    let meniscus = Meniscus::start(TENANTS);
    let lines = [
        ("sshd", "Failed password for invalid user admin from 198.51.100.23 port 40112 ssh2"),
        ("sudo", "   carol : 3 incorrect password attempts ; TTY=pts/2 ; PWD=/srv ; USER=root ; COMMAND=/usr/bin/id"),
        ("su", "FAILED SU (to root) bob on pts/0"),
        ("sshd", "Accepted password for dave from 10.0.0.8 port 50022 ssh2"),
        ("cron", "(root) CMD (run-parts /etc/cron.hourly)"),
    ];
    for (app, msg) in lines {
        send(&meniscus, app, msg);
    }
    assert_eq!(meniscus.wait_for_count("acme", "acme-token", "true", 5), 5);
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT pname, normalized FROM events \
         WHERE tags LIKE '%\"auth\"%' AND tags LIKE '%\"failure\"%' ORDER BY pname",
    );
    let found: Vec<(String, String)> = rows
        .iter()
        .map(|row| {
            let program = row["pname"].as_str().unwrap().to_string();
            let normalized: serde_json::Value =
                serde_json::from_str(row["normalized"].as_str().unwrap()).unwrap();
            let user = normalized[&program]["user"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (program, user)
        })
        .collect();
    assert_eq!(
        found,
        [
            ("sshd".to_string(), "admin".to_string()),
            ("su".to_string(), "bob".to_string()),
            ("sudo".to_string(), "carol".to_string()),
        ],
        "{rows:?}"
    );
}
