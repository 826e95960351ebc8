//! Agents ship unchanged: the real client libraries of OpenTelemetry (OTLP/HTTP), Elasticsearch
//! (`helpers.bulk`) and Loki (`python-logging-loki`, and a protobuf + snappy push built from
//! Loki's wire format) send to Meniscus, and every line is stored once, for the right tenant,
//! with its fields mapped. The clients live in a virtualenv in the cache
//! (`dev/peers/python-clients.sh`, which `dev/test` runs); the scripts in `tests/agents/`.
//!
//! Also, without a client library: each protocol's error shape for a wrong token, an item of a
//! bulk request that cannot be taken while the others are stored, gzip bodies, and OTLP/JSON.
//!
//! And the OpenTelemetry Collector itself (built from Go modules by `tools/otelcol/build.sh`,
//! which `dev/test` runs): its filelog receiver tails a file and ships every line with the
//! `otlphttp` exporter, and with the `syslog` exporter (RFC 5424 over TCP, newline-terminated and
//! octet-counted) to tenant-bound syslog listeners.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meniscus_tests::{free_port, repo_root, Meniscus, StartOptions};
use serde_json::{json, Value};

const TENANTS: &str = r#"
tenants:
  - id: acme
    tokens: [{value: acme-token}]
  - id: other
    tokens: [{value: other-token}]
"#;

/// `${MENISCUS_CACHE:-$HOME/.cache/meniscus}`, where dev/test puts the clients and tools.
fn cache_dir() -> PathBuf {
    std::env::var_os("MENISCUS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/meniscus"))
}

/// The virtualenv's python; the test fails (never skips) without it.
fn python() -> PathBuf {
    let python = cache_dir().join("venv-agents/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run dev/peers/python-clients.sh (dev/test does)",
        python.display()
    );
    python
}

/// Runs `tests/agents/SCRIPT` against `meniscus` as `tenant` with `token`; its exit status
/// and output.
fn client(
    meniscus: &Meniscus,
    script: &str,
    tenant: &str,
    token: &str,
    prefix: &str,
    count: usize,
) -> (bool, String) {
    let output = Command::new(python())
        .arg(repo_root().join("tests/agents").join(script))
        .args(["--url", &meniscus.url("")])
        .args(["--tenant", tenant, "--token", token, "--prefix", prefix])
        .args(["--count", &count.to_string()])
        .output()
        .expect("run the client script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every line `{prefix}-{i}` stored exactly once for acme, none for the other tenant.
fn assert_stored_once(meniscus: &Meniscus, prefix: &str, count: usize) {
    let filter = format!("msg LIKE '{prefix}-%'");
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", &filter, count as u64),
        count as u64,
        "{prefix}: every line stored"
    );
    let distinct = meniscus.sql(
        "acme",
        "acme-token",
        &format!("SELECT count(DISTINCT msg) AS n FROM events WHERE {filter}"),
    );
    assert_eq!(distinct[0]["n"], json!(count), "{prefix}: each line once");
    assert_eq!(meniscus.count("other", "other-token", &filter), 0);
}

fn first_row(meniscus: &Meniscus, prefix: &str) -> serde_json::Map<String, Value> {
    meniscus
        .sql(
            "acme",
            "acme-token",
            &format!(
                "SELECT host, pname, severity, transport, native FROM events \
                 WHERE msg = '{prefix}-0'"
            ),
        )
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{prefix}-0 not found"))
}

#[test]
fn the_opentelemetry_sdk_ships_over_otlp_http() {
    let meniscus = Meniscus::start(TENANTS);
    let (ok, output) = client(&meniscus, "otlp_http.py", "acme", "acme-token", "otlp", 300);
    assert!(ok, "{output}");
    assert_stored_once(&meniscus, "otlp", 300);
    let row = first_row(&meniscus, "otlp");
    assert_eq!(row["host"], "otel-host");
    assert_eq!(row["pname"], "otel-app");
    assert_eq!(row["transport"], "otlp");
    assert_eq!(row["severity"], 4, "WARN is syslog warning: {row:?}");
    let native: Value = serde_json::from_str(row["native"].as_str().unwrap()).unwrap();
    assert_eq!(native["attributes"]["seq"], 0, "{native}");
    assert_eq!(native["resource"]["service.name"], "otel-app");

    let (ok, output) = client(
        &meniscus,
        "otlp_http.py",
        "acme",
        "wrong-token",
        "otlp-bad",
        5,
    );
    assert!(!ok, "a wrong token must fail the export: {output}");
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg LIKE 'otlp-bad-%'"),
        0
    );
}

#[test]
fn the_elasticsearch_client_ships_with_helpers_bulk() {
    let meniscus = Meniscus::start(TENANTS);
    let (ok, output) = client(
        &meniscus,
        "elastic_bulk.py",
        "acme",
        "acme-token",
        "es",
        300,
    );
    assert!(ok, "{output}");
    assert_stored_once(&meniscus, "es", 300);
    let row = first_row(&meniscus, "es");
    assert_eq!(row["host"], "es-host");
    assert_eq!(row["pname"], "es-app");
    assert_eq!(row["transport"], "elastic");
    assert_eq!(row["severity"], 3, "log.level error: {row:?}");
    let native: Value = serde_json::from_str(row["native"].as_str().unwrap()).unwrap();
    assert_eq!(native["_index"], "logs-app");
    assert_eq!(native["document"]["seq"], 0, "{native}");

    let (ok, output) = client(
        &meniscus,
        "elastic_bulk.py",
        "acme",
        "wrong-token",
        "es-bad",
        5,
    );
    assert!(!ok, "a wrong token must fail the bulk: {output}");
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg LIKE 'es-bad-%'"),
        0
    );
}

#[test]
fn loki_clients_push_json_and_snappy_protobuf() {
    let meniscus = Meniscus::start(TENANTS);
    let (ok, output) = client(
        &meniscus,
        "loki_json.py",
        "acme",
        "acme-token",
        "lokij",
        200,
    );
    assert!(ok, "{output}");
    assert_stored_once(&meniscus, "lokij", 200);
    let row = first_row(&meniscus, "lokij");
    assert_eq!(row["host"], "loki-host");
    assert_eq!(row["pname"], "loki-app");
    assert_eq!(row["transport"], "loki");

    let (ok, output) = client(
        &meniscus,
        "loki_proto.py",
        "acme",
        "acme-token",
        "lokip",
        300,
    );
    assert!(ok, "{output}");
    assert_stored_once(&meniscus, "lokip", 300);
    let row = first_row(&meniscus, "lokip");
    assert_eq!(row["pname"], "loki-proto");
    let native: Value = serde_json::from_str(row["native"].as_str().unwrap()).unwrap();
    assert_eq!(
        native["structured_metadata"]["trace_id"], "abc0",
        "{native}"
    );
    assert_eq!(native["labels"]["host"], "loki-host");

    let (ok, output) = client(
        &meniscus,
        "loki_proto.py",
        "acme",
        "wrong-token",
        "lokip-bad",
        5,
    );
    assert!(!ok, "a wrong token must fail the push: {output}");
    assert_eq!(
        meniscus.count("acme", "acme-token", "msg LIKE 'lokip-bad-%'"),
        0
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn each_protocol_answers_in_its_own_shape() {
    let meniscus = Meniscus::start(TENANTS);
    let http = reqwest::blocking::Client::new();

    // Loki: JSON with gzip, tenant by X-Scope-OrgID, token by Basic auth's password.
    let push = json!({"streams": [{
        "stream": {"app": "checkout", "hostname": "node-3", "level": "error"},
        "values": [["1700000000000000000", "loki-gzip-0"], ["1700000000000000001", "loki-gzip-1", {"trace_id": "t1"}]]
    }]});
    let response = http
        .post(meniscus.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .header("X-Scope-OrgID", "acme")
        .basic_auth("acme", Some("acme-token"))
        .body(gzip(push.to_string().as_bytes()))
        .send()
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        204,
        "{}",
        response.text().unwrap()
    );
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'loki-gzip-%'", 2),
        2
    );
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT host, pname, severity, ts FROM events WHERE msg = 'loki-gzip-0'",
    );
    assert_eq!(rows[0]["host"], "node-3");
    assert_eq!(rows[0]["pname"], "checkout");
    assert_eq!(rows[0]["severity"], 3);
    assert!(
        rows[0]["ts"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-14T22:13:20"),
        "{rows:?}"
    );
    // Loki's error shape: the status and plain text.
    let response = http
        .post(meniscus.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", "acme")
        .bearer_auth("wrong")
        .body(push.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // No tenant named at all.
    let response = http
        .post(meniscus.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .bearer_auth("acme-token")
        .body(push.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.text().unwrap().contains("X-Scope-OrgID"));
    let response = http
        .post(meniscus.url("/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", "acme")
        .bearer_auth("acme-token")
        .body(r#"{"streams": [{"stream": {}, "values": [["soon", "x"]]}]}"#)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.text().unwrap().contains("values[0]"));

    // Elasticsearch: the handshake, then a bulk where one item cannot be taken.
    let response = http.get(meniscus.url("/")).send().unwrap();
    assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
    let info: Value = response.json().unwrap();
    assert!(info["version"]["number"]
        .as_str()
        .unwrap()
        .starts_with("8."));
    let bulk = [
        json!({"create": {}}).to_string(),
        json!({"@timestamp": "2026-12-01T10:00:00Z", "message": "es-item-0", "host.name": "h1", "log": {"level": "warning"}}).to_string(),
        json!({"delete": {"_id": "x"}}).to_string(),
        json!({"index": {"_id": "mine"}}).to_string(),
        json!({"message": "es-item-1", "service.name": "billing"}).to_string(),
        json!({"create": {}}).to_string(),
        "[1, 2]".to_string(),
    ]
    .join("\n")
        + "\n";
    let response = http
        .post(meniscus.url("/app-logs/_bulk"))
        .header("Content-Type", "application/x-ndjson")
        .header(
            "Authorization",
            format!("ApiKey {}", base64_of("acme:acme-token")),
        )
        .body(bulk)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["errors"], true, "{answer}");
    let statuses: Vec<u64> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item.as_object().unwrap().values().next().unwrap()["status"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, [201, 400, 201, 400], "{answer}");
    assert_eq!(answer["items"][2]["index"]["_id"], "mine");
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE 'es-item-%'", 2),
        2
    );
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT pname, severity FROM events WHERE msg LIKE 'es-item-%' ORDER BY msg",
    );
    assert_eq!(rows[0]["pname"], "app-logs", "no service.name: the index");
    assert_eq!(rows[0]["severity"], 4);
    assert_eq!(rows[1]["pname"], "billing");
    let response = http
        .post(meniscus.url("/_bulk"))
        .header("Content-Type", "application/x-ndjson")
        .basic_auth("acme", Some("wrong"))
        .body("{\"create\":{\"_index\":\"x\"}}\n{\"message\":\"no\"}\n")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["error"]["type"], "security_exception", "{answer}");
    assert_eq!(answer["status"], 401);

    // OTLP/JSON, and its error shape (google.rpc.Status as JSON).
    let logs = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": "1700000000000000000",
            "severityNumber": 21,
            "body": {"kvlistValue": {"values": [{"key": "event", "value": {"stringValue": "otlp-json-0"}}]}}
        }]}]
    }]});
    let response = http
        .post(meniscus.url("/v1/logs"))
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", "acme")
        .bearer_auth("acme-token")
        .body(logs.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "msg LIKE '%otlp-json-0%'", 1),
        1
    );
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT pname, severity, msg FROM events WHERE msg LIKE '%otlp-json-0%'",
    );
    assert_eq!(rows[0]["pname"], "cart");
    assert_eq!(rows[0]["severity"], 2, "FATAL is critical");
    assert_eq!(
        rows[0]["msg"], r#"{"event":"otlp-json-0"}"#,
        "a structured body as JSON text"
    );
    let response = http
        .post(meniscus.url("/v1/logs"))
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", "acme")
        .bearer_auth("wrong")
        .body(logs.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let status: Value = response.json().unwrap();
    assert_eq!(status["code"], 16, "UNAUTHENTICATED: {status}");

    // Every refusal above was counted per transport.
    for transport in ["loki", "elastic", "otlp"] {
        assert!(
            meniscus.metric(&format!(
                "meniscus_ingest_auth_failures_total{{transport=\"{transport}\",reason=\"invalid_token\"}}"
            )) >= 1,
            "{transport} auth failure counted"
        );
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

// ---------------------------------------------------------------------------------------------
// The OpenTelemetry Collector (tools/otelcol): filelog receiver -> otlphttp / syslog exporters.
// ---------------------------------------------------------------------------------------------

/// The collector `tools/otelcol/build.sh` builds, at the release in `tools/otelcol/versions.env`;
/// the test fails (never skips) without it.
fn otelcol_binary() -> PathBuf {
    let versions = std::fs::read_to_string(repo_root().join("tools/otelcol/versions.env"))
        .expect("read tools/otelcol/versions.env");
    let version = versions
        .lines()
        .find_map(|line| line.strip_prefix("OTELCOL_VERSION="))
        .expect("OTELCOL_VERSION in tools/otelcol/versions.env")
        .trim();
    let binary = cache_dir()
        .join("otelcol")
        .join(version)
        .join("otelcol-meniscus");
    assert!(
        binary.is_file(),
        "{} is missing: run tools/otelcol/build.sh (dev/test does)",
        binary.display()
    );
    binary
}

/// A running collector with a folder of its own (config, its log, the files it tails).
/// Dropping it kills the collector, and prints its log when the test failed.
struct Collector {
    child: Child,
    dir: tempfile::TempDir,
}

impl Collector {
    /// Runs the collector with `config` (YAML; `{dir}` is replaced by its folder). Its own
    /// telemetry is off in every config here (`metrics: {level: none}`), so it binds no port.
    fn start(dir: tempfile::TempDir, config: &str) -> Collector {
        let binary = otelcol_binary();
        let config_path = dir.path().join("otelcol.yaml");
        std::fs::write(
            &config_path,
            config.replace("{dir}", &dir.path().display().to_string()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("otelcol.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config=file:{}", config_path.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the collector");
        Collector { child, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("otelcol.log")).unwrap_or_default()
    }

    /// Panics with the collector's log when it has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the collector exited with {status}:\n{}", self.log());
        }
    }

    /// Waits (up to 120 s) until `count(filter)` for acme reaches `expected`, checking all the
    /// while that the collector still runs; then a moment more, so that a line delivered twice
    /// (a retry) has time to show.
    fn wait_until_stored(&mut self, meniscus: &Meniscus, filter: &str, expected: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.assert_running();
            let count = meniscus.count("acme", "acme-token", filter);
            if count >= expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{filter}: {count} of {expected} stored after 120s; collector log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(2));
        self.assert_running();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- otelcol log ---\n{}", self.log());
        }
    }
}

/// Appends `lines` to `path` in chunks of 100 whole lines (one write each), pausing between
/// chunks, as an application logging to a file does.
fn append_lines(path: &Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for chunk in lines.chunks(100) {
        let mut text = chunk.join("\n");
        text.push('\n');
        file.write_all(text.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_opentelemetry_collector_tails_a_file_to_otlp_http() {
    let meniscus = Meniscus::start(TENANTS);
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
receivers:
  filelog:
    include: ["{dir}/app.log"]
    start_at: beginning
exporters:
  # The otlphttp exporter; `otlp_http` is its name at this release (`otlphttp` still works, with
  # a deprecation warning).
  otlp_http:
    endpoint: "{url}"
    headers:
      X-Scope-OrgID: acme
      Authorization: Bearer acme-token
  debug:
    verbosity: basic
service:
  telemetry:
    metrics: {level: none}
    logs: {level: info}
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [otlp_http, debug]
"#
    .replace("{url}", &meniscus.url(""));
    const COUNT: usize = 2000;
    let lines: Vec<String> = (0..COUNT).map(|i| format!("otelcol-{i}")).collect();
    // Half is in the file before the collector starts (start_at: beginning), half is written
    // while it tails the file.
    append_lines(&dir.path().join("app.log"), &lines[..COUNT / 2]);
    let mut collector = Collector::start(dir, &config);
    append_lines(&collector.path("app.log"), &lines[COUNT / 2..]);
    collector.wait_until_stored(&meniscus, "msg LIKE 'otelcol-%'", COUNT as u64);
    assert_stored_once(&meniscus, "otelcol", COUNT);

    let row = first_row(&meniscus, "otelcol");
    assert_eq!(row["transport"], "otlp");
    let native: Value = serde_json::from_str(row["native"].as_str().unwrap()).unwrap();
    assert_eq!(native["attributes"]["log.file.name"], "app.log", "{native}");
}

#[test]
fn the_opentelemetry_collector_tails_a_file_to_syslog_rfc5424_over_tcp() {
    // The syslog exporter writes one RFC 5424 message per record, ending in LF; with
    // `enable_octet_counting` each is prefixed with its length (which counts that LF). One
    // tenant-bound listener per framing.
    let octet_port = free_port();
    let listeners = format!(
        "  - {{protocol: tcp, address: \"127.0.0.1:{{syslog_port}}\", tenant: acme}}\n  \
         - {{protocol: tcp, address: \"127.0.0.1:{octet_port}\", tenant: acme, framing: octet-counting}}\n"
    );
    let meniscus = Meniscus::start_with_options(StartOptions {
        listeners: &listeners,
        extra: TENANTS,
        ..StartOptions::default()
    });
    // The exporter takes the message, host and app name from record attributes (not the body):
    // the filelog receiver's operators put them there, and the time at the start of each line
    // becomes the record's time (without one the exporter writes 1970-01-01T00:00:00Z, and
    // retention drops such events at its next check). The exporter speaks TLS unless told
    // `tls: {insecure: true}`; it opens a connection per batch.
    let receiver = |name: &str| {
        format!(
            r#"
  filelog/{name}:
    include: ["{{dir}}/{name}.log"]
    start_at: beginning
    operators:
      - type: regex_parser
        regex: '^(?P<time>\S+) (?P<message>.*)$'
        timestamp:
          parse_from: attributes.time
          layout_type: gotime
          layout: '2006-01-02T15:04:05.999999999Z07:00'
      - {{type: remove, field: attributes.time}}
      - {{type: add, field: attributes.hostname, value: otel-host}}
      - {{type: add, field: attributes.appname, value: otel-app}}"#
        )
    };
    let config = format!(
        r#"
receivers:{lf_receiver}{octet_receiver}
exporters:
  syslog/lf:
    endpoint: 127.0.0.1
    port: {lf_port}
    network: tcp
    protocol: rfc5424
    tls: {{insecure: true}}
  syslog/octet:
    endpoint: 127.0.0.1
    port: {octet_port}
    network: tcp
    protocol: rfc5424
    enable_octet_counting: true
    tls: {{insecure: true}}
  debug:
    verbosity: basic
service:
  telemetry:
    metrics: {{level: none}}
    logs: {{level: info}}
  pipelines:
    logs/lf:
      receivers: [filelog/lf]
      exporters: [syslog/lf, debug]
    logs/octet:
      receivers: [filelog/octet]
      exporters: [syslog/octet, debug]
"#,
        lf_receiver = receiver("lf"),
        octet_receiver = receiver("octet"),
        lf_port = meniscus.syslog_port,
    );
    const COUNT: usize = 2000;
    let stamp = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let lines = |prefix: &str, range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("{} {prefix}-{i}", stamp())).collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let first_lf = lines("sys-lf", 0..COUNT / 2);
    let first_octet = lines("sys-oc", 0..COUNT / 2);
    append_lines(&dir.path().join("lf.log"), &first_lf);
    append_lines(&dir.path().join("octet.log"), &first_octet);
    let mut collector = Collector::start(dir, &config);
    append_lines(
        &collector.path("lf.log"),
        &lines("sys-lf", COUNT / 2..COUNT),
    );
    append_lines(
        &collector.path("octet.log"),
        &lines("sys-oc", COUNT / 2..COUNT),
    );

    for (prefix, first_line) in [("sys-lf", &first_lf[0]), ("sys-oc", &first_octet[0])] {
        collector.wait_until_stored(&meniscus, &format!("msg LIKE '{prefix}-%'"), COUNT as u64);
        assert_stored_once(&meniscus, prefix, COUNT);
        // Exactly the line's text (no LF left over from either framing), with the exporter's
        // header fields and the line's own time.
        let rows = meniscus.sql(
            "acme",
            "acme-token",
            &format!(
                "SELECT host, pname, severity, facility, transport, parse_error, ts FROM events \
                 WHERE msg = '{prefix}-0'"
            ),
        );
        assert_eq!(
            rows.len(),
            1,
            "{prefix}-0 stored as the line's text: {rows:?}"
        );
        let row = &rows[0];
        assert_eq!(row["host"], "otel-host", "{row:?}");
        assert_eq!(row["pname"], "otel-app");
        assert_eq!(row["transport"], "tcp");
        assert!(row.get("parse_error").is_none_or(Value::is_null), "{row:?}");
        // The exporter's default PRI 165: local4.notice.
        assert_eq!(row["facility"], 20, "{row:?}");
        assert_eq!(row["severity"], 5, "{row:?}");
        let written = &first_line[..19]; // YYYY-MM-DDTHH:MM:SS
        assert!(
            row["ts"].as_str().unwrap().starts_with(written),
            "the line's time {written}: {row:?}"
        );
    }
}
