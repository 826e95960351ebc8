//! Agents ship unchanged: the real client libraries of OpenTelemetry (OTLP/HTTP), Elasticsearch
//! (`helpers.bulk`) and Loki (`python-logging-loki`, and a protobuf + snappy push built from
//! Loki's wire format) send to Meniscus, and every line is stored once, for the right tenant,
//! with its fields mapped. The clients live in a virtualenv in the cache
//! (`dev/peers/python-clients.sh`, which `dev/test` runs); the scripts in `tests/agents/`.
//!
//! Also, without a client library: each protocol's error shape for a wrong token, an item of a
//! bulk request that cannot be taken while the others are stored, gzip bodies, and OTLP/JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use meniscus_tests::{repo_root, Meniscus};
use serde_json::{json, Value};

const TENANTS: &str = r#"
tenants:
  - id: acme
    tokens: [{value: acme-token}]
  - id: other
    tokens: [{value: other-token}]
"#;

/// The virtualenv's python; the test fails (never skips) without it.
fn python() -> PathBuf {
    let cache = std::env::var_os("MENISCUS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/meniscus")
        });
    let python = cache.join("venv-agents/bin/python");
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
