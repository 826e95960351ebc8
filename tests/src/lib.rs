//! The end-to-end test harness: start real `meniscus standalone` processes on free loopback
//! ports, talk to them over HTTP, send with real syslog peers, kill them with SIGKILL and
//! restart them on the same data.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod azurite;
pub mod gcs;
pub mod grid;
pub mod pki;
pub mod s3;

/// The `meniscus` command line under test: `MENISCUS_BIN` when set, else the `meniscus-e2e`
/// binary this package builds next to its test executables (`target/<profile>/`), so the tests
/// always run the code they were built with.
pub fn meniscus_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MENISCUS_BIN") {
        return PathBuf::from(path);
    }
    let test_executable = std::env::current_exe().expect("the test's own path");
    let profile_dir = test_executable
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let binary = profile_dir.join("meniscus-e2e");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test -p meniscus-tests` (it builds the binary) or set MENISCUS_BIN",
        binary.display()
    );
    binary
}

/// A TCP connection to `port` on 127.0.0.1 from the loopback address `from` (127.0.0.2,
/// 127.0.0.3, …): a stranger with an address of its own.
pub fn connect_from(from: std::net::Ipv4Addr, port: u16) -> std::io::Result<std::net::TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((from, 0)).into())?;
    socket.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    Ok(socket.into())
}

/// Makes `command`'s child start with an open-file limit of `open_files` (soft and hard).
pub fn limit_open_files(command: &mut Command, open_files: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: open_files,
                rlim_max: open_files,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Raises this process's open-file limit to its hard limit (tests that hold many sockets).
pub fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed, nothing else.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    limit.rlim_cur
}

/// A port that was free a moment ago. TCP and UDP are checked together so one port serves a
/// TCP and a UDP listener. Never the same port twice in one test process: the kernel may hand
/// a just-released port out again, and a grid worker given it for two of its listeners failed
/// to start ("Address already in use").
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && GIVEN
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(port)
        {
            return port;
        }
    }
}

pub struct Meniscus {
    pub dir: tempfile::TempDir,
    pub syslog_port: u16,
    pub http_port: u16,
    /// The operators' listener (`/metrics` with every series).
    pub ops_port: u16,
    config_path: PathBuf,
    data_dir: PathBuf,
    open_files: Option<u64>,
    /// More arguments for `meniscus standalone`.
    args: Vec<String>,
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
        Meniscus::start_with_listeners(DEFAULT_LISTENERS, extra)
    }

    pub fn start_with_listeners(listeners: &str, extra: &str) -> Meniscus {
        Meniscus::start_with_options(StartOptions {
            listeners,
            extra,
            ..StartOptions::default()
        })
    }

    /// The configuration file it runs with (rewrite it and send SIGHUP to reload tenants).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("meniscus.log")
    }

    fn spawn(&mut self) {
        if let Err(exited) = self.try_spawn() {
            panic!("{exited}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(meniscus_binary());
        command
            .arg("standalone")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(open_files) = self.open_files {
            limit_open_files(&mut command, open_files);
        }
        let child = command.spawn().expect("start meniscus");
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits for `/readyz`; an `Err` (with the log) when the process exited during start.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "meniscus exited during start with {status}; log:\n{}",
                        self.log()
                    ));
                }
            }
            if let Ok(response) = self.client.get(self.url("/readyz")).send() {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            assert!(
                Instant::now() < deadline,
                "meniscus not ready within 60s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// CPU time the server has used so far (user + system).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name (which may hold spaces, inside parentheses).
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    /// A `/proc/PID/status` field in kilobytes (`VmRSS`, `VmHWM`).
    pub fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
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
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_object().unwrap().clone())
            .collect()
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
        let response = self
            .client
            .get(self.url(path))
            .header("MESSAGE-TOKEN", token)
            .send()
            .expect("get");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// A URL on the operators' listener.
    pub fn ops_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ops_port)
    }

    /// A Prometheus sample's value (0 when absent), e.g.
    /// `meniscus_ingest_auth_failures_total{transport="tcp",reason="invalid_token"}`, from the
    /// operators' listener (the public `/metrics` leaves tenant series out).
    pub fn metric(&self, sample: &str) -> u64 {
        let text = self
            .client
            .get(self.ops_url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.trim().parse::<u64>().ok())
            })
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
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// Runs a command, panicking with its output when it fails.
/// Every file under `dir` (at any depth) whose name ends in `suffix`, sorted; none when `dir`
/// does not exist.
pub fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, suffix: &str, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, suffix, found);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, suffix, &mut found);
    found.sort();
    found
}

pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The repository root (for dev/peers scripts). From the run-time `CARGO_MANIFEST_DIR` that
/// `cargo test` sets: the compile-time value names whichever clone last compiled this file,
/// since clones share one cached target directory.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Lines of a child's stdout, for scripts that print `key=value`.
pub fn key_values(text: &str) -> std::collections::HashMap<String, String> {
    BufReader::new(text.as_bytes())
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            line.split_once('=')
                .map(|(key, value)| (key.to_string(), value.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers for crash_safety.rs, isolation.rs and bad_input.rs (appended block; keep together).
// ---------------------------------------------------------------------------------------------

/// Everything `start_with_options` can vary. `storage` is the whole `storage:` line (e.g.
/// `storage: {flushEvents: 1000}`), replacing the default `storage: {flushInterval: 5s}`;
/// `data_dir` puts the data directory somewhere else than the temp dir (a small tmpfs, say).
pub struct StartOptions<'a> {
    pub listeners: &'a str,
    pub storage: &'a str,
    pub extra: &'a str,
    pub data_dir: Option<PathBuf>,
    /// The server's open-file limit (soft and hard), as a small machine would have it.
    pub open_files: Option<u64>,
    /// More arguments for `meniscus standalone`; `{dir}` is replaced.
    pub args: &'a [&'a str],
}

/// The listeners of `Meniscus::start`: TCP and UDP on `{syslog_port}`, tenant-less, framing auto.
pub const DEFAULT_LISTENERS: &str =
    "  - {protocol: tcp, address: \"127.0.0.1:{syslog_port}\"}\n  - {protocol: udp, address: \"127.0.0.1:{syslog_port}\"}\n";

impl<'a> Default for StartOptions<'a> {
    fn default() -> Self {
        StartOptions {
            listeners: DEFAULT_LISTENERS,
            storage: "storage: {flushInterval: 5s}",
            open_files: None,
            extra: "",
            data_dir: None,
            args: &[],
        }
    }
}

impl Meniscus {
    /// Like `start_with_listeners`, with the storage section and data dir chosen by the caller.
    pub fn start_with_options(options: StartOptions<'_>) -> Meniscus {
        // The ports are free when chosen, but tests running alongside (thousands of outgoing
        // connections take ephemeral ports from the same range) may take one before the
        // process binds it: then it is started again on new ports.
        for attempt in 1.. {
            let (meniscus, started) = Meniscus::start_once(&options);
            match started {
                Ok(()) => return meniscus,
                // Dropped: the exited process is reaped, its folder removed.
                Err(exited) if attempt < 5 && exited.contains("in use") => drop(meniscus),
                Err(exited) => panic!("{exited}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn start_once(options: &StartOptions<'_>) -> (Meniscus, Result<(), String>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let syslog_port = free_port();
        let http_port = free_port();
        let ops_port = free_port();
        let fill = |text: &str| {
            text.replace("{syslog_port}", &syslog_port.to_string())
                .replace("{dir}", &dir.path().display().to_string())
        };
        let config = format!(
            "listeners:\n{}http: {{address: \"127.0.0.1:{http_port}\"}}\nops: {{address: \"127.0.0.1:{ops_port}\"}}\n{}\n{}",
            fill(options.listeners),
            fill(options.storage),
            fill(options.extra)
        );
        let args: Vec<String> = options.args.iter().map(|arg| fill(arg)).collect();
        let config_path = dir.path().join("meniscus.yaml");
        std::fs::write(&config_path, config).unwrap();
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut meniscus = Meniscus {
            dir,
            syslog_port,
            http_port,
            ops_port,
            config_path,
            data_dir,
            open_files: options.open_files,
            args,
            child: None,
            client,
        };
        let started = meniscus.try_spawn();
        (meniscus, started)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(
            self.child.as_mut().map(|child| child.try_wait()),
            Some(Ok(None))
        )
    }

    /// POSTs `body` to `/v1/tenant/{tenant}/publish` with the token (when given) and extra
    /// headers; returns the status and the body as text.
    pub fn publish_raw(
        &self,
        tenant: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut request = self
            .client
            .post(self.url(&format!("/v1/tenant/{tenant}/publish")))
            .body(body);
        if let Some(token) = token {
            request = request.header("MESSAGE-TOKEN", token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().expect("publish request");
        let status = response.status().as_u16();
        (status, response.text().unwrap_or_default())
    }

    /// Publishes one `{"log_message": ...}` as JSON; returns the status and the JSON answer.
    pub fn publish_json(&self, tenant: &str, token: &str, message: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(&serde_json::json!({ "log_message": message })).unwrap();
        let (status, text) = self.publish_raw(
            tenant,
            Some(token),
            &[("Content-Type", "application/json")],
            body,
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Publishes several messages as one JSON array of `{"log_message": ...}`; returns the status
    /// and the answer's text.
    pub fn publish_messages(&self, tenant: &str, token: &str, messages: &[Value]) -> (u16, String) {
        self.publish_raw(
            tenant,
            Some(token),
            &[("Content-Type", "application/json")],
            log_messages_body(messages),
        )
    }

    /// Every file under the data dir whose name ends in `suffix`, sorted.
    pub fn data_files(&self, suffix: &str) -> Vec<PathBuf> {
        files_under(&self.data_dir, suffix)
    }

    /// Polls `condition` every 100 ms until it holds; panics with `what` after `seconds`.
    pub fn wait_until(&self, seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while !condition() {
            assert!(
                Instant::now() < deadline,
                "timed out after {seconds}s waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// SQL string literal.
pub fn sql_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
// --- end of the crash_safety/isolation/bad_input block -----------------------------------------

// ---------------------------------------------------------------------------------------------
// Helpers for rsyslog.rs, syslog_ng.rs and tls.rs: real peers from dev/peers, numbered test
// lines, TLS clients through the `openssl` CLI (appended block; keep together).
// ---------------------------------------------------------------------------------------------

/// Runs `dev/peers/install.sh` once per test binary (idempotent; ~0.1 s when installed).
pub fn install_peers() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        run(&mut Command::new(repo_root().join("dev/peers/install.sh")));
        let version = run(Command::new("openssl").arg("version"));
        assert!(
            version.starts_with("OpenSSL 3") || version.starts_with("OpenSSL 1.1"),
            "unexpected openssl: {version}"
        );
    });
}

/// Environment variables the peer scripts read; cleared so the caller's shell cannot leak in.
const PEER_ENV: &[&str] = &[
    "TENANT",
    "TOKEN",
    "SD_ID",
    "TLS_CERT",
    "TLS_KEY",
    "TLS_AUTH",
    "TLS_PEER",
    "TLS_VERIFY",
    "INPUT",
    "IN_FORMAT",
    "IN_PORT",
    "PEER_HOSTNAME",
    "FILE_TAG",
];

/// A running rsyslogd or syslog-ng started by a `dev/peers/*-forward.sh` script. Dropping it
/// stops the daemon (TERM, then KILL) even when the test panics, then removes its work dir.
pub struct Peer {
    pub name: String,
    pub pid: u32,
    pub input_port: u16,
    pub log: PathBuf,
    pub work_dir: tempfile::TempDir,
}

impl Peer {
    /// `dev/peers/<script> WD 127.0.0.1 <target_port> <mode> [tls <ca>]` with only `env` set
    /// of the variables the scripts read.
    pub fn start(
        script: &str,
        target_port: u16,
        mode: &str,
        tls_ca: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Peer {
        install_peers();
        let work_dir = tempfile::tempdir().expect("peer work dir");
        let mut command = Command::new(repo_root().join("dev/peers").join(script));
        command
            .arg(work_dir.path())
            .arg("127.0.0.1")
            .arg(target_port.to_string())
            .arg(mode);
        if let Some(ca) = tls_ca {
            command.arg("tls").arg(ca);
        }
        for name in PEER_ENV {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let output = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {script}: {error}"));
        let values = key_values(&String::from_utf8_lossy(&output.stdout));
        let pid = values.get("pid").and_then(|pid| pid.parse::<u32>().ok());
        let name = format!(
            "{script} {mode}{}",
            if tls_ca.is_some() { " tls" } else { "" }
        );
        if !output.status.success() || pid.is_none() {
            // The script may have started the daemon before it failed.
            if let Some(pid) = pid {
                stop_process(pid);
            }
            panic!(
                "{name} failed with {}:\nstdout: {}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let input_port = values
            .get("input_port")
            .and_then(|port| port.parse().ok())
            .expect("input_port");
        let log = PathBuf::from(values.get("log").cloned().unwrap_or_default());
        Peer {
            name,
            pid: pid.unwrap(),
            input_port,
            log,
            work_dir,
        }
    }

    /// Sends `lines` to the peer's TCP input, one LF-terminated line each, on one connection.
    pub fn send_lines(&self, lines: &[String]) {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.input_port))
            .unwrap_or_else(|error| {
                panic!(
                    "{}: cannot connect to its input port {}: {error}",
                    self.name, self.input_port
                )
            });
        let mut text = lines.join("\n");
        text.push('\n');
        stream
            .write_all(text.as_bytes())
            .expect("write to the peer");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("close the peer connection");
    }

    /// The daemon's own log and stderr (for failure messages).
    pub fn diagnostics(&self) -> String {
        let mut text = String::new();
        let mut files = vec![self.log.clone()];
        if let Ok(entries) = std::fs::read_dir(self.work_dir.path()) {
            files.extend(entries.flatten().map(|entry| entry.path()).filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "stderr" || extension == "conf")
            }));
        }
        for file in files {
            if let Ok(content) = std::fs::read_to_string(&file) {
                let tail: Vec<&str> = content
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                text.push_str(&format!(
                    "--- {} ---\n{}\n",
                    file.display(),
                    tail.join("\n")
                ));
            }
        }
        text
    }

    pub fn is_running(&self) -> bool {
        process_alive(self.pid)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- peer {} (pid {}) ---\n{}",
                self.name,
                self.pid,
                self.diagnostics()
            );
        }
        stop_process(self.pid);
    }
}

/// Alive and not a zombie (the daemon is not our child: init reaps it, or nobody does).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// TERM, up to 10 s to exit, then KILL.
fn stop_process(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if process_alive(pid) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    }
}

/// `dev/peers/make-certs.sh DIR CN`: ca.pem, server.pem/.key (localhost, 127.0.0.1),
/// client.pem/.key (CN and DNS SAN = `client_cn`).
pub fn make_certs(dir: &Path, client_cn: &str) -> PathBuf {
    install_peers();
    run(Command::new(repo_root().join("dev/peers/make-certs.sh"))
        .arg(dir)
        .arg(client_cn));
    for file in [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ] {
        assert!(
            dir.join(file).is_file(),
            "make-certs.sh did not write {file} in {}",
            dir.display()
        );
    }
    dir.to_path_buf()
}

/// What an `openssl s_client` run saw.
#[derive(Debug)]
pub struct OpensslOutcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Sends `payload` over TLS to 127.0.0.1:`port` with `openssl s_client`, verifying the server
/// against `ca`, optionally with a client certificate; s_client closes the connection at the
/// end of its input. Bounded by a 60 s `timeout`.
pub fn openssl_send(
    port: u16,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    payload: &str,
) -> OpensslOutcome {
    use std::io::Write;
    install_peers();
    let mut command = Command::new("timeout");
    command
        .args(["60", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"));
    command
        .args([
            "-quiet",
            "-no_ign_eof",
            "-nocommands",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca);
    if let Some((cert, key)) = client {
        command.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl s_client");
    // A refused client may see its stdin closed early: ignore write errors.
    let _ = child.stdin.take().unwrap().write_all(payload.as_bytes());
    let output = child.wait_with_output().expect("wait for openssl s_client");
    OpensslOutcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One numbered test line with everything a peer may forward.
#[derive(Clone, Debug)]
pub struct TestLine {
    pub n: usize,
    pub host: String,
    pub pname: String,
    pub pid: Option<String>,
    pub facility: u8,
    pub severity: u8,
    pub msg: String,
}

impl TestLine {
    /// RFC 5424 (no framing), with `[seq@32473 n="N"]` as its own structured data.
    pub fn rfc5424(&self) -> String {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        format!(
            "<{}>1 {time} {} {} {} ID{} [seq@32473 n=\"{}\"] {}",
            u32::from(self.facility) * 8 + u32::from(self.severity),
            self.host,
            self.pname,
            self.pid.as_deref().unwrap_or("-"),
            self.n % 10,
            self.n,
            self.msg
        )
    }
}

/// `count` distinct lines `"{prefix} line NNNN"` with varying host, app, pid (every fifth has
/// none), facility (user, daemon, local0, local7) and severity (0..=7).
pub fn numbered_lines(prefix: &str, count: usize) -> Vec<TestLine> {
    (0..count)
        .map(|n| TestLine {
            n,
            host: format!("host-{}", n % 3),
            pname: format!("app{}", n % 4),
            pid: (n % 5 != 0).then(|| (1000 + n).to_string()),
            facility: [1, 3, 16, 23][n % 4],
            severity: (n % 8) as u8,
            msg: format!("{prefix} line {n:04}"),
        })
        .collect()
}

/// What to expect of the stored copies of `TestLine`s.
pub struct Expect<'a> {
    pub tenant: &'a str,
    pub token: &'a str,
    pub transport: &'a str,
    /// The sender kept the line's own `[seq@32473 n=..]` element (RFC 5424 all the way).
    pub native_seq: bool,
}

/// Waits (bounded) until all `lines` are stored for the tenant, then checks that each is
/// stored exactly once with its host, pname, pid, facility, severity, transport, and that
/// `native` holds no credentials (and the line's own SD when `native_seq`).
pub fn assert_each_stored_once(meniscus: &Meniscus, lines: &[TestLine], expect: &Expect<'_>) {
    let prefix = lines[0]
        .msg
        .rsplit_once(" line ")
        .expect("numbered line")
        .0
        .to_string();
    let filter = format!("msg LIKE '{prefix} line %'");
    let total = lines.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut count = 0;
    while Instant::now() < deadline {
        count = meniscus.count(expect.tenant, expect.token, &filter);
        if count >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = meniscus.sql(
        expect.tenant,
        expect.token,
        &format!("SELECT msg, host, pname, pid, facility, severity, transport, native, parse_error FROM events WHERE {filter}"),
    );
    let mut by_msg: std::collections::HashMap<String, Vec<&serde_json::Map<String, Value>>> =
        Default::default();
    for row in &rows {
        by_msg
            .entry(
                row.get("msg")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_default()
            .push(row);
    }
    let missing: Vec<&str> = lines
        .iter()
        .filter(|line| !by_msg.contains_key(&line.msg))
        .map(|line| line.msg.as_str())
        .collect();
    let duplicated: Vec<(&String, usize)> = by_msg
        .iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|(msg, copies)| (msg, copies.len()))
        .collect();
    let known: std::collections::HashSet<&str> =
        lines.iter().map(|line| line.msg.as_str()).collect();
    let unexpected: Vec<&String> = by_msg
        .keys()
        .filter(|msg| !known.contains(msg.as_str()))
        .collect();
    assert!(
        missing.is_empty() && duplicated.is_empty() && unexpected.is_empty() && rows.len() == lines.len(),
        "tenant {}: {} of {} lines stored (count {count}); missing {}: {:?}; duplicated {:?}; unexpected {:?}",
        expect.tenant,
        rows.len(),
        lines.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        duplicated,
        unexpected
    );
    for line in lines {
        let row = by_msg[&line.msg][0];
        let context = format!("line {line:?}\nstored {row:?}");
        assert_eq!(
            row.get("host").and_then(Value::as_str),
            Some(line.host.as_str()),
            "host; {context}"
        );
        assert_eq!(
            row.get("pname").and_then(Value::as_str),
            Some(line.pname.as_str()),
            "pname; {context}"
        );
        assert_eq!(
            row.get("pid").and_then(Value::as_str),
            line.pid.as_deref(),
            "pid; {context}"
        );
        assert_eq!(
            row.get("facility").and_then(Value::as_u64),
            Some(u64::from(line.facility)),
            "facility; {context}"
        );
        assert_eq!(
            row.get("severity").and_then(Value::as_u64),
            Some(u64::from(line.severity)),
            "severity; {context}"
        );
        assert_eq!(
            row.get("transport").and_then(Value::as_str),
            Some(expect.transport),
            "transport; {context}"
        );
        assert!(
            row.get("parse_error").is_none_or(Value::is_null),
            "parse_error; {context}"
        );
        let native = row.get("native").and_then(Value::as_str).unwrap_or("");
        assert!(
            !native.contains("meniscus")
                && !native.contains("token")
                && !native.contains(expect.token),
            "credentials must be stripped from native; {context}"
        );
        if expect.native_seq {
            let parsed: Value = serde_json::from_str(native)
                .unwrap_or_else(|error| panic!("native is not JSON ({error}); {context}"));
            assert_eq!(
                parsed,
                serde_json::json!({"seq@32473": {"n": line.n.to_string()}}),
                "native; {context}"
            );
        }
    }
}

/// Polls a Prometheus sample until `condition(value)` holds; panics after `seconds`.
pub fn wait_for_metric(
    meniscus: &Meniscus,
    sample: &str,
    seconds: u64,
    condition: impl Fn(u64) -> bool,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let value = meniscus.metric(sample);
        if condition(value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{sample} is still {value} after {seconds}s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
// --- end of the rsyslog/syslog_ng/tls block ----------------------------------------------------

/// A publish body: the messages as a JSON array of `{"log_message": ...}`.
pub fn log_messages_body(messages: &[Value]) -> Vec<u8> {
    let body: Vec<Value> = messages
        .iter()
        .map(|message| serde_json::json!({ "log_message": message }))
        .collect();
    serde_json::to_vec(&body).unwrap()
}

/// Opens Loki's `/loki/api/v1/tail?query=QUERY` (`query` URL-encoded, more parameters may
/// follow) on loopback `port` as `tenant` with `token`: the socket, or the status its
/// handshake was refused with.
/// The next message of a Loki tail, parsed; `None` when none came within the socket's read
/// timeout (or the frame was not text). Panics on a broken socket.
pub fn read_tail_message(
    socket: &mut tungstenite::WebSocket<std::net::TcpStream>,
) -> Option<serde_json::Value> {
    match socket.read() {
        Ok(tungstenite::Message::Text(text)) => Some(serde_json::from_str(&text).unwrap()),
        Ok(_) => None,
        Err(tungstenite::Error::Io(error))
            if matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(error) => panic!("tail: {error}"),
    }
}

pub fn open_loki_tail(
    port: u16,
    query: &str,
    tenant: &str,
    token: &str,
) -> Result<tungstenite::WebSocket<std::net::TcpStream>, u16> {
    use tungstenite::client::IntoClientRequest;
    let url = format!("ws://127.0.0.1:{port}/loki/api/v1/tail?query={query}");
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("X-Scope-OrgID", tenant.parse().unwrap());
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    match tungstenite::client::client(request, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("tail handshake: {error}"),
    }
}
