//! Test support: start real `meniscus standalone` processes on free loopback ports, talk to
//! them over HTTP, kill them with SIGKILL and restart them on the same data.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A port that was free a moment ago. TCP and UDP are checked together so one port serves a
/// TCP and a UDP listener.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct Meniscus {
    pub dir: tempfile::TempDir,
    pub syslog_port: u16,
    pub http_port: u16,
    config_path: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    pub client: reqwest::blocking::Client,
}

/// Default tenants for tests: `acme` (token `acme-token`, producer `web` durable) and `other`.
pub const TENANTS: &str = r#"
tenants:
  - id: acme
    tokens: [{value: acme-token}]
    producers:
      - {name: web, durable: true}
      - {name: sshd, pattern: sshd}
  - id: other
    tokens: [{value: other-token}]
"#;

impl Meniscus {
    /// Starts Meniscus with TCP+UDP syslog listeners on one port, HTTP on another, and the
    /// given extra YAML (tenants, limits, more listeners). `{syslog_port}` and `{dir}` in
    /// `extra` are replaced.
    pub fn start(extra: &str) -> Meniscus {
        Meniscus::start_with_listeners(
            "  - {protocol: tcp, address: \"127.0.0.1:{syslog_port}\"}\n  - {protocol: udp, address: \"127.0.0.1:{syslog_port}\"}\n",
            extra,
        )
    }

    pub fn start_with_listeners(listeners: &str, extra: &str) -> Meniscus {
        let dir = tempfile::tempdir().expect("temp dir");
        let syslog_port = free_port();
        let http_port = free_port();
        let fill = |text: &str| {
            text.replace("{syslog_port}", &syslog_port.to_string()).replace("{dir}", &dir.path().display().to_string())
        };
        let config = format!(
            "listeners:\n{}http: {{address: \"127.0.0.1:{http_port}\"}}\nstorage: {{flushInterval: 5s}}\n{}",
            fill(listeners),
            fill(extra)
        );
        let config_path = dir.path().join("meniscus.yaml");
        std::fs::write(&config_path, config).unwrap();
        let data_dir = dir.path().join("data");
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut meniscus = Meniscus { dir, syslog_port, http_port, config_path, data_dir, child: None, client };
        meniscus.spawn();
        meniscus
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("meniscus.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_meniscus"))
            .arg("standalone")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start meniscus");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("meniscus exited during start with {status}; log:\n{}", self.log());
                }
            }
            if let Ok(response) = self.client.get(self.url("/readyz")).send() {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "meniscus not ready within 60s; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_free_sigterm(child.id());
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn syslog_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.syslog_port))
    }

    /// Runs SQL as `tenant`; panics on a non-200 answer.
    pub fn sql(&self, tenant: &str, token: &str, sql: &str) -> Vec<serde_json::Map<String, Value>> {
        let (status, body) = self.sql_raw(tenant, token, sql);
        assert_eq!(status, 200, "sql {sql:?} failed: {body}");
        body["rows"].as_array().unwrap().iter().map(|row| row.as_object().unwrap().clone()).collect()
    }

    pub fn sql_raw(&self, tenant: &str, token: &str, sql: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/v1/tenant/{tenant}/sql")))
            .header("MESSAGE-TOKEN", token)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .expect("sql request");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn count(&self, tenant: &str, token: &str, filter: &str) -> u64 {
        let sql = if filter.is_empty() {
            "SELECT count(*) AS n FROM events".to_string()
        } else {
            format!("SELECT count(*) AS n FROM events WHERE {filter}")
        };
        self.sql(tenant, token, &sql)[0]["n"].as_u64().unwrap()
    }

    /// Waits until `count(filter)` reaches `expected` (then checks it does not overshoot).
    pub fn wait_for_count(&self, tenant: &str, token: &str, filter: &str, expected: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let count = self.count(tenant, token, filter);
            if count >= expected || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).header("MESSAGE-TOKEN", token).send().expect("get");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// A Prometheus sample's value (0 when absent), e.g. `meniscus_auth_failures_total{transport="tcp",reason="invalid_token"}`.
    pub fn metric(&self, sample: &str) -> u64 {
        let text = self.client.get(self.url("/metrics")).send().unwrap().text().unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.trim().parse::<u64>().ok()))
            .unwrap_or(0)
    }
}

impl Drop for Meniscus {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- meniscus log ---\n{}", self.log());
        }
    }
}

fn unsafe_free_sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

/// Runs a command, panicking with its output when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The repository root (for dev/peers scripts).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Lines of a child's stdout, for scripts that print `key=value`.
pub fn key_values(text: &str) -> std::collections::HashMap<String, String> {
    BufReader::new(text.as_bytes())
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.split_once('=').map(|(key, value)| (key.to_string(), value.to_string())))
        .collect()
}
