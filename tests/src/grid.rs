//! Grid processes for the grid tests: the coordinator (`meniscus worker --persona
//! coordinator`) and data-plane workers (storage, correlator, tenant API, broadcaster) with
//! their own configuration, data dir and ports; a [`FaultyProxy`] to cut the network in front
//! of one; and what the tests share: tenant `acme` ([`put_acme`], [`TOKEN`]), HTTP
//! [`Publishers`], `logger`, and the checks that every acknowledged event is stored exactly
//! once ([`assert_exactly_once`]) and found once through the tenant API ([`search_all`]).

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
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

    /// The workers it knows (`GET /v1/admin/workers`): id, address, personas, status, load.
    pub fn workers(&self) -> Vec<Value> {
        let bearer = format!("Bearer {ADMIN_CREDENTIAL}");
        let (status, answer) = self.call(
            "GET",
            "/v1/admin/workers",
            &[("Authorization", bearer.as_str())],
            None,
        );
        assert_eq!(status, 200, "{answer}");
        answer["workers"].as_array().cloned().unwrap_or_default()
    }

    /// How many workers are online.
    pub fn online(&self) -> usize {
        self.workers()
            .iter()
            .filter(|worker| worker["status"] == "online")
            .count()
    }

    /// The route version it serves.
    pub fn route_version(&self) -> f64 {
        self.metrics()
            .lines()
            .find_map(|line| line.strip_prefix("meniscus_coordinator_route_version "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
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
    /// More arguments for `meniscus worker`.
    args: Vec<String>,
    /// Its open-file limit (soft and hard), when not the test's own.
    open_files: Option<u64>,
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
        let mut worker = GridWorker::prepare(dir, name, personas, coordinator, listeners);
        worker.spawn();
        worker
    }

    /// As `start`, with more arguments for `meniscus worker`.
    pub fn start_with_args(
        dir: &Path,
        name: &str,
        personas: &str,
        coordinator: &Coordinator,
        listeners: &str,
        args: &[&str],
    ) -> GridWorker {
        let mut worker = GridWorker::prepare(dir, name, personas, coordinator, listeners);
        worker.args = args.iter().map(|arg| arg.to_string()).collect();
        worker.spawn();
        worker
    }

    /// As `start`, with an open-file limit of `open_files` (soft and hard).
    pub fn start_with_open_files(
        dir: &Path,
        name: &str,
        personas: &str,
        coordinator: &Coordinator,
        listeners: &str,
        open_files: u64,
    ) -> GridWorker {
        let mut worker = GridWorker::prepare(dir, name, personas, coordinator, listeners);
        worker.open_files = Some(open_files);
        worker.spawn();
        worker
    }

    /// As `start`, but other workers reach it only through a [`FaultyProxy`] (its advertised
    /// address), which the test can cut; the coordinator still hears its heartbeats.
    pub fn start_behind_proxy(
        dir: &Path,
        name: &str,
        personas: &str,
        coordinator: &Coordinator,
        listeners: &str,
    ) -> (GridWorker, FaultyProxy) {
        let mut worker = GridWorker::prepare(dir, name, personas, coordinator, listeners);
        let proxy = FaultyProxy::start(worker.listen);
        worker.args = vec!["--advertise".into(), format!("127.0.0.1:{}", proxy.port)];
        worker.spawn();
        (worker, proxy)
    }

    /// Its configuration, ports and folder, not started yet.
    fn prepare(
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
            "listeners: {}\nhttp: {{address: \"127.0.0.1:{http}\"}}\nstorage: {{flushInterval: 1s}}\nlimits: {{maxResultRows: 1000000, queryTimeout: 10s}}\n",
            listeners.replace("{syslog}", &syslog.to_string())
        );
        std::fs::write(worker_dir.join("meniscus.yaml"), config).unwrap();
        GridWorker {
            name: name.to_string(),
            personas: personas.to_string(),
            coordinator: coordinator.base.clone(),
            secret_file: dir.join("pairing-secret"),
            dir: worker_dir,
            listen,
            http,
            syslog,
            args: Vec::new(),
            open_files: None,
            child: None,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(meniscus_binary());
        if let Some(open_files) = self.open_files {
            crate::limit_open_files(&mut command, open_files);
        }
        let child = command
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
            .args(&self.args)
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

    /// Sends `signal` (`STOP`, `CONT`, …) to the process: SIGSTOP makes a worker that is
    /// alive but answers nothing, the slowest a worker can be.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the worker is running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the worker is running").id()
    }

    /// Resident memory of the process, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
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

/// The token of tenant `acme` in the grid tests (see [`put_acme`]).
pub const TOKEN: &str = "acme-token";

/// Creates (or replaces) tenant `acme` with `TOKEN` and `producers` through the
/// coordinator's admin API.
pub fn put_acme(coordinator: &Coordinator, producers: Value) {
    let bearer = format!("Bearer {ADMIN_CREDENTIAL}");
    let (status, answer) = coordinator.call(
        "PUT",
        "/v1/admin/tenants/acme",
        &[("Authorization", bearer.as_str())],
        Some(serde_json::json!({
            "id": "acme",
            "tokens": [{"value": TOKEN}],
            "producers": producers,
        })),
    );
    assert_eq!(status, 200, "{answer}");
}

/// HTTP clients publishing distinct durable messages (`{label}-t{thread}-{seq}`, five per
/// request) to the correlator until stopped; what was acknowledged with 202, and how many
/// requests were not (refused or cut: their messages may be stored, or not, but never twice).
pub struct Publishers {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<usize>>,
}

impl Publishers {
    pub fn start(correlator: &GridWorker, label: &str, threads: usize) -> Publishers {
        Publishers::start_paced(correlator, label, threads, Duration::ZERO)
    }

    /// As `start`, each thread waiting `pause` after each request: a steady trickle for tests
    /// that run for minutes, where full speed would pile up more than they are about.
    pub fn start_paced(
        correlator: &GridWorker,
        label: &str,
        threads: usize,
        pause: Duration,
    ) -> Publishers {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let url = correlator.url("/v1/tenant/acme/publish");
        let threads = (0..threads)
            .map(|thread| {
                let (stop, acknowledged, requests, url, label) = (
                    stop.clone(),
                    acknowledged.clone(),
                    requests.clone(),
                    url.clone(),
                    label.to_string(),
                );
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(20))
                        .build()
                        .unwrap();
                    let (mut seq, mut not_acknowledged) = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let msgs: Vec<String> = (0..5)
                            .map(|_| {
                                seq += 1;
                                format!("{label}-t{thread}-{seq}")
                            })
                            .collect();
                        let body: Vec<Value> = msgs
                            .iter()
                            .map(|msg| serde_json::json!({"log_message": {"pname": "web", "host": "h", "msg": msg}}))
                            .collect();
                        let response = client
                            .post(&url)
                            .header("MESSAGE-TOKEN", TOKEN)
                            .json(&body)
                            .send();
                        requests.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(pause);
                        match response {
                            Ok(response) if response.status() == 202 => {
                                acknowledged.lock().unwrap().extend(msgs)
                            }
                            _ => {
                                not_acknowledged += msgs.len();
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    not_acknowledged
                })
            })
            .collect();
        Publishers {
            stop,
            acknowledged,
            requests,
            threads,
        }
    }

    pub fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Waits until `more` further messages are acknowledged.
    pub fn wait_for_more(&self, more: usize) {
        let target = self.acknowledged() + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acknowledged() < target {
            assert!(
                Instant::now() < deadline,
                "only {} of {target} messages acknowledged within 60 s ({} requests)",
                self.acknowledged(),
                self.requests.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn finish(self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let not_acknowledged = self
            .threads
            .into_iter()
            .map(|thread| thread.join().expect("publisher thread"))
            .sum();
        let acknowledged = std::mem::take(&mut *self.acknowledged.lock().unwrap());
        (acknowledged, not_acknowledged)
    }
}

pub fn logger_tcp(correlator: &GridWorker, message: &str) {
    crate::run(
        Command::new("logger")
            .args(["--server", "127.0.0.1", "--tcp", "--port"])
            .arg(correlator.syslog.to_string())
            .args(["--rfc5424", "--sd-id", "meniscus@32473"])
            .args(["--sd-param", "tenant=\"acme\"", "--sd-param"])
            .arg(format!("token=\"{TOKEN}\""))
            .args(["--tag", "web"])
            .arg(message),
    );
}

/// Every message each storage worker holds for acme, with how often.
pub fn stored<W: std::borrow::Borrow<GridWorker>>(storage: &[W]) -> Vec<HashMap<String, usize>> {
    storage
        .iter()
        .map(|worker| {
            let worker = worker.borrow();
            let mut counts = HashMap::new();
            for row in worker.sql("acme", TOKEN, "SELECT msg FROM events") {
                *counts
                    .entry(row["msg"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
            }
            counts
        })
        .collect()
}

/// Waits until one of `storage` holds `msg` (acme's), and says which.
pub fn holder_of<W: std::borrow::Borrow<GridWorker>>(storage: &[W], msg: &str) -> usize {
    let mut holder = None;
    wait_until(&format!("{msg:?} is stored"), 30, || {
        holder = stored(storage)
            .iter()
            .position(|counts| counts.contains_key(msg));
        holder.is_some()
    });
    holder.unwrap()
}

pub fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every `expected` message is queryable on one of the `storage` workers, then
/// adds up what each holds; panics on a message stored twice, or on more unexpected ones
/// than went unacknowledged. What each worker holds, and the sum.
pub fn assert_exactly_once<W: std::borrow::Borrow<GridWorker>>(
    storage: &[W],
    expected: &[String],
    not_acknowledged: usize,
) -> (Vec<HashMap<String, usize>>, HashMap<String, usize>) {
    let mut holdings = Vec::new();
    wait_until("every acknowledged event is queryable", 90, || {
        holdings = stored(storage);
        expected
            .iter()
            .all(|msg| holdings.iter().any(|counts| counts.contains_key(msg)))
    });
    let mut total: HashMap<String, usize> = HashMap::new();
    for counts in &holdings {
        for (msg, n) in counts {
            *total.entry(msg.clone()).or_insert(0) += n;
        }
    }
    eprintln!(
        "expected {} (+{not_acknowledged} not acknowledged); stored per worker {:?}",
        expected.len(),
        holdings.iter().map(HashMap::len).collect::<Vec<_>>()
    );
    let duplicated: Vec<_> = total.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "stored more than once: {duplicated:?}"
    );
    let extra = total.len() - expected.len();
    assert!(
        extra <= not_acknowledged,
        "{extra} stored events were never sent (only {not_acknowledged} went unacknowledged)"
    );
    (holdings, total)
}

/// Every acme event the tenant API persona `tenant_api` returns, paging through its search
/// with the cursor, with how often each message came back; panics if a page says it is
/// `incomplete` (a storage worker did not answer).
pub fn search_all(tenant_api: &GridWorker) -> HashMap<String, usize> {
    let mut paged: HashMap<String, usize> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = tenant_api.url("/v1/tenant/acme/events?limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = get_json(&url);
        for event in page["events"].as_array().unwrap() {
            *paged
                .entry(event["msg"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        assert!(page.get("incomplete").is_none(), "{page}");
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return paged,
        }
    }
}

/// GET `url` with acme's token; the JSON answer, or panics on anything but 200.
pub fn get_json(url: &str) -> Value {
    let response = reqwest::blocking::Client::new()
        .get(url)
        .header("MESSAGE-TOKEN", TOKEN)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap();
    let status = response.status();
    let body = response.text().unwrap_or_default();
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
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

/// A TCP proxy on loopback in front of one worker, which the test can cut and restore: while
/// cut, open connections are shut down and new ones are accepted and then left unanswered (a
/// network that drops packets, not one that refuses them), so a sender meets both a reset and
/// a silent peer.
pub struct FaultyProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Connections taken while cut, held open and unanswered until restored.
    held: Arc<Mutex<Vec<TcpStream>>>,
    /// Both ends of every forwarded connection, to shut down on a cut.
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepter: Option<std::thread::JoinHandle<()>>,
}

impl FaultyProxy {
    /// Forwards `127.0.0.1:PORT` (a free port) to `127.0.0.1:to`.
    pub fn start(to: u16) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(Mutex::new(Vec::new()));
        let accepter = {
            let (cut, stop, held, open) = (cut.clone(), stop.clone(), held.clone(), open.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    client.set_nonblocking(false).unwrap();
                    if cut.load(Ordering::Relaxed) {
                        held.lock().unwrap().push(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                        continue; // the worker is down: the client sees its connection close
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    {
                        let mut open = open.lock().unwrap();
                        open.push(client.try_clone().unwrap());
                        open.push(server.try_clone().unwrap());
                    }
                    pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                    pump(server, client);
                }
            })
        };
        FaultyProxy {
            port,
            cut,
            stop,
            held,
            open,
            accepter: Some(accepter),
        }
    }

    /// The network between senders and the worker fails.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// The network is back: connections held while cut are closed (their senders retry).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::Relaxed);
        for stream in self.held.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either end closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        self.restore();
        if let Some(accepter) = self.accepter.take() {
            let _ = accepter.join();
        }
    }
}
