//! Grid processes for the grid tests: the coordinator (`meniscus worker --persona
//! coordinator`) and data-plane workers (storage, correlator) with their own configuration,
//! data dir and ports.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::meniscus_binary;

/// The pairing secret and admin credential `Coordinator::start` expects in its folder
/// (written by `write_secrets`).
pub const PAIRING_SECRET: &str = "grid-secret";
pub const ADMIN_CREDENTIAL: &str = "admin-secret";

pub fn write_secrets(dir: &Path) {
    std::fs::write(dir.join("pairing-secret"), format!("{PAIRING_SECRET}\n")).unwrap();
    std::fs::write(
        dir.join("admin-credential"),
        format!("{ADMIN_CREDENTIAL}\n"),
    )
    .unwrap();
}

/// A coordinator process on `port`, its state in `dir/data`, secrets read from `dir`; a
/// worker silent for 2 s leaves the routes.
pub struct Coordinator {
    child: Child,
    pub base: String,
    pub client: reqwest::blocking::Client,
}

impl Coordinator {
    pub fn start(dir: &Path, port: u16) -> Coordinator {
        let child = Command::new(meniscus_binary())
            .args(["worker", "--persona", "coordinator", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--pairing-secret-file")
            .arg(dir.join("pairing-secret"))
            .arg("--admin-credential-file")
            .arg(dir.join("admin-credential"))
            .args(["--heartbeat-timeout-seconds", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the coordinator");
        let coordinator = Coordinator {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(40))
                .build()
                .unwrap(),
        };
        coordinator.wait_until("it answers /healthz", || {
            coordinator
                .client
                .get(format!("{}/healthz", coordinator.base))
                .send()
                .is_ok_and(|response| response.status() == 200)
        });
        coordinator
    }

    pub fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("coordinator request");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data-plane worker (`storage,tenant-api` or `correlator,normalizer`) as a process of
/// its own: paired with `coordinator`, its configuration and data dir under `dir/NAME`, its
/// log in `dir/NAME.log` (printed when a test fails). It keeps its ports and data dir across
/// `kill9` and `restart`, as a StatefulSet pod would.
pub struct GridWorker {
    pub name: String,
    personas: String,
    coordinator: String,
    secret_file: std::path::PathBuf,
    pub dir: std::path::PathBuf,
    /// The grid side: links, /healthz, /metrics.
    pub listen: u16,
    /// The tenant side: `http.address` of its configuration.
    pub http: u16,
    /// A syslog TCP listener (correlators only).
    pub syslog: u16,
    child: Option<Child>,
    client: reqwest::blocking::Client,
}

impl GridWorker {
    /// Starts `meniscus worker --persona PERSONAS`; `listeners` is the configuration's
    /// `listeners:` list, where `{syslog}` stands for the worker's syslog port.
    pub fn start(
        dir: &Path,
        name: &str,
        personas: &str,
        coordinator: &Coordinator,
        listeners: &str,
    ) -> GridWorker {
        let worker_dir = dir.join(name);
        std::fs::create_dir_all(&worker_dir).unwrap();
        let (listen, http, syslog) = (crate::free_port(), crate::free_port(), crate::free_port());
        let config = format!(
            "listeners: {}\nhttp: {{address: \"127.0.0.1:{http}\"}}\nstorage: {{flushInterval: 1s}}\nlimits: {{maxResultRows: 1000000}}\n",
            listeners.replace("{syslog}", &syslog.to_string())
        );
        std::fs::write(worker_dir.join("meniscus.yaml"), config).unwrap();
        let mut worker = GridWorker {
            name: name.to_string(),
            personas: personas.to_string(),
            coordinator: coordinator.base.clone(),
            secret_file: dir.join("pairing-secret"),
            dir: worker_dir,
            listen,
            http,
            syslog,
            child: None,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        worker.spawn();
        worker
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(meniscus_binary())
            .args(["worker", "--persona", &self.personas, "--coordinator"])
            .arg(&self.coordinator)
            .arg("--pairing-secret-file")
            .arg(&self.secret_file)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.listen))
            .arg("--config")
            .arg(self.dir.join("meniscus.yaml"))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a grid worker");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited during start with {status}; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            let healthy = self
                .client
                .get(self.grid_url("/healthz"))
                .send()
                .is_ok_and(|response| response.status().is_success());
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not answering within 60s; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit (up to a minute); its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the worker is running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not exit within 60 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same ports and data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.with_extension("log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A URL on the tenant side.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// A URL on the grid side.
    pub fn grid_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listen)
    }

    /// A Prometheus sample's value from the grid side's /metrics (0 when absent).
    pub fn metric(&self, sample: &str) -> f64 {
        let Ok(response) = self.client.get(self.grid_url("/metrics")).send() else {
            return 0.0;
        };
        response
            .text()
            .unwrap_or_default()
            .lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .filter(|rest| rest.starts_with(' '))
                    .and_then(|rest| rest.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    }

    /// Runs SQL on its tenant API; the rows, or panics on anything but 200.
    pub fn sql(&self, tenant: &str, token: &str, sql: &str) -> Vec<serde_json::Map<String, Value>> {
        let response = self
            .client
            .post(self.url(&format!("/v1/tenant/{tenant}/sql")))
            .header("MESSAGE-TOKEN", token)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .expect("sql request");
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or(Value::Null);
        assert_eq!(status, 200, "{}: sql {sql:?} failed: {body}", self.name);
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_object().unwrap().clone())
            .collect()
    }
}

impl Drop for GridWorker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

/// A child process killed when dropped, so a failing test leaves no process behind (one that
/// inherited the test's stderr would also keep `cargo test | tail` waiting for it).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
