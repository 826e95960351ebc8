//! The Loki-compatible query API, as Grafana's Loki data source and scripts use it: each
//! endpoint's answer is checked field by field against Loki's documented shapes, every LogQL
//! result against the same question asked in SQL on the same data, a tail gets a line sent
//! after it opened, and another tenant's events never appear.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use meniscus_tests::{open_loki_tail, read_tail_message, Meniscus};
use serde_json::{json, Value};

const TENANTS: &str = r#"
tenants:
  - id: acme
    tokens: [{value: acme-token}]
  - id: other
    tokens: [{value: other-token}]
"#;

/// The data: three minutes-long streams of acme, one of the other tenant with the same
/// labels and a label of its own. Times are 5 s past whole 10-second marks, so no line sits
/// on a window's edge.
struct Data {
    meniscus: Meniscus,
    http: reqwest::blocking::Client,
    /// A whole minute, ten minutes before now: the first line is 5 s after it.
    base_s: i64,
}

const LINES_PER_STREAM: i64 = 60;

fn ns(seconds: i64) -> String {
    format!("{}", seconds as i128 * 1_000_000_000)
}

fn push(http: &reqwest::blocking::Client, meniscus: &Meniscus, tenant: &str, streams: Value) {
    let response = http
        .post(meniscus.url("/loki/api/v1/push"))
        .header("X-Scope-OrgID", tenant)
        .bearer_auth(format!("{tenant}-token"))
        .json(&json!({ "streams": streams }))
        .send()
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        204,
        "{}",
        response.text().unwrap()
    );
}

fn load() -> Data {
    let meniscus = Meniscus::start(TENANTS);
    let http = reqwest::blocking::Client::new();
    let now = chrono::Utc::now().timestamp();
    let base_s = now - now % 60 - 600;
    let web: Vec<Value> = (0..LINES_PER_STREAM)
        .map(|i| {
            let (level, status) = if i % 4 == 0 {
                ("error", 500 + i % 3)
            } else {
                ("info", 200)
            };
            json!([
                ns(base_s + 5 + i * 10),
                format!(r#"{{"level":"{level}","status":{status},"path":"/p{i}","n":{i}}}"#)
            ])
        })
        .collect();
    let api: Vec<Value> = (0..LINES_PER_STREAM)
        .map(|i| {
            let level = if i % 3 == 0 { "warn" } else { "debug" };
            json!([
                ns(base_s + 5 + i * 10),
                format!("level={level} msg=\"call {i}\" took={}", i * 7)
            ])
        })
        .collect();
    // A second host of the same app, fewer lines: topk and sum by have something to rank.
    let web2: Vec<Value> = (0..LINES_PER_STREAM / 3)
        .map(|i| json!([ns(base_s + 5 + i * 30), format!("plain line {i} error")]))
        .collect();
    push(
        &http,
        &meniscus,
        "acme",
        json!([
            {"stream": {"app": "web", "host": "h1", "env": "prod"}, "values": web},
            {"stream": {"app": "api", "host": "h2", "env": "prod", "level": "warn"}, "values": api},
            {"stream": {"app": "web", "host": "h3", "env": "dev"}, "values": web2},
        ]),
    );
    let theirs: Vec<Value> = (0..10)
        .map(|i| json!([ns(base_s + 5 + i * 10), format!("other-secret error {i}")]))
        .collect();
    push(
        &http,
        &meniscus,
        "other",
        json!([{"stream": {"app": "web", "host": "h1", "secret_label": "x"}, "values": theirs}]),
    );
    let total = (LINES_PER_STREAM * 2 + LINES_PER_STREAM / 3) as u64;
    assert_eq!(
        meniscus.wait_for_count("acme", "acme-token", "", total),
        total
    );
    assert_eq!(meniscus.wait_for_count("other", "other-token", "", 10), 10);
    Data {
        meniscus,
        http,
        base_s,
    }
}

impl Data {
    fn get(&self, path: &str, params: &[(&str, String)]) -> (u16, String) {
        self.get_as("acme", "acme-token", path, params)
    }

    fn get_as(
        &self,
        tenant: &str,
        token: &str,
        path: &str,
        params: &[(&str, String)],
    ) -> (u16, String) {
        let response = self
            .http
            .get(with_params(&self.meniscus.url(path), params))
            .header("X-Scope-OrgID", tenant)
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().unwrap())
    }

    /// A successful answer's `data`, after checking the envelope.
    fn data(&self, path: &str, params: &[(&str, String)]) -> Value {
        let (status, body) = self.get(path, params);
        assert_eq!(status, 200, "{path} {params:?}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "success", "{body}");
        body["data"].clone()
    }

    fn range(&self) -> Vec<(&'static str, String)> {
        vec![("start", ns(self.base_s)), ("end", ns(self.base_s + 600))]
    }

    fn sql_count(&self, filter: &str) -> u64 {
        self.meniscus.count("acme", "acme-token", filter)
    }
}

/// Checks Loki's `streams` shape and returns (labels, ns, line) per entry.
fn stream_entries(data: &Value) -> Vec<(BTreeMap<String, String>, i128, String)> {
    assert_eq!(data["resultType"], "streams", "{data}");
    assert!(data["stats"].is_object());
    let mut entries = Vec::new();
    for stream in data["result"].as_array().unwrap() {
        let object = stream.as_object().unwrap();
        assert_eq!(
            object.len(),
            2,
            "a stream has `stream` and `values`: {stream}"
        );
        let labels: BTreeMap<String, String> =
            serde_json::from_value(stream["stream"].clone()).expect("labels are a map of strings");
        for value in stream["values"].as_array().unwrap() {
            let pair = value.as_array().unwrap();
            assert_eq!(pair.len(), 2, "{value}");
            let nanos: i128 = pair[0]
                .as_str()
                .expect("the time is a string")
                .parse()
                .expect("of nanoseconds");
            entries.push((labels.clone(), nanos, pair[1].as_str().unwrap().to_string()));
        }
    }
    entries
}

type Labels = BTreeMap<String, String>;

/// Checks Loki's `matrix` shape: (labels, [(unix seconds, value)]).
fn matrix(data: &Value) -> Vec<(Labels, Vec<(i64, f64)>)> {
    assert_eq!(data["resultType"], "matrix", "{data}");
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| {
            assert_eq!(series.as_object().unwrap().len(), 2, "{series}");
            let labels = serde_json::from_value(series["metric"].clone()).unwrap();
            let points = series["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|point| {
                    let pair = point.as_array().unwrap();
                    assert_eq!(pair.len(), 2);
                    let at = pair[0].as_f64().expect("the time is a number");
                    let value: f64 = pair[1]
                        .as_str()
                        .expect("the value is a string")
                        .parse()
                        .unwrap();
                    (at as i64, value)
                })
                .collect();
            (labels, points)
        })
        .collect()
}

#[test]
fn log_queries_answer_streams_that_match_sql() {
    let data = load();
    let base = data.base_s;
    let mut params = data.range();
    params.push(("query", r#"{app="web"} |= "error""#.into()));
    params.push(("limit", "1000".into()));
    let entries = stream_entries(&data.data("/loki/api/v1/query_range", &params));
    assert_eq!(
        entries.len() as u64,
        data.sql_count("pname = 'web' AND msg LIKE '%error%'")
    );
    assert!(entries.iter().all(|(_, _, line)| line.contains("error")));
    assert!(!entries
        .iter()
        .any(|(_, _, line)| line.contains("other-secret")));
    // Labels: the pushed ones and the event's own fields.
    let (labels, _, _) = entries
        .iter()
        .find(|(labels, _, _)| labels["host"] == "h1")
        .unwrap();
    assert_eq!(labels["app"], "web");
    assert_eq!(labels["env"], "prod");
    assert_eq!(labels["pname"], "web");
    assert_eq!(labels["transport"], "loki");
    // Backward by default: newest first within a stream, at the pushed nanoseconds.
    let h1: Vec<i128> = entries
        .iter()
        .filter(|(labels, _, _)| labels["host"] == "h1")
        .map(|(_, nanos, _)| *nanos)
        .collect();
    assert!(h1.windows(2).all(|pair| pair[0] > pair[1]), "{h1:?}");
    assert_eq!(
        *h1.first().unwrap(),
        (base + 5 + 56 * 10) as i128 * 1_000_000_000
    );

    // The limit and the direction.
    let mut limited = data.range();
    limited.push(("query", r#"{app="api"}"#.into()));
    limited.push(("limit", "5".into()));
    limited.push(("direction", "forward".into()));
    let entries = stream_entries(&data.data("/loki/api/v1/query_range", &limited));
    let times: Vec<i128> = entries.iter().map(|(_, nanos, _)| *nanos).collect();
    let expected: Vec<i128> = (0..5)
        .map(|i| (base + 5 + i * 10) as i128 * 1_000_000_000)
        .collect();
    assert_eq!(times, expected);

    // `| json` and a numeric label filter; the extracted fields become labels.
    let mut parsed = data.range();
    parsed.push((
        "query",
        r#"{app="web", host="h1"} | json | status >= 501 | level="error""#.into(),
    ));
    parsed.push(("limit", "1000".into()));
    let entries = stream_entries(&data.data("/loki/api/v1/query_range", &parsed));
    assert_eq!(
        entries.len() as u64,
        data.sql_count(
            "host = 'h1' AND (msg LIKE '%\"status\":501%' OR msg LIKE '%\"status\":502%')"
        )
    );
    assert!(entries
        .iter()
        .all(|(labels, _, _)| labels["level"] == "error"
            && labels["status"].parse::<i64>().unwrap() >= 501));

    // `| logfmt`, a regex line filter, and a selector regex.
    let mut logfmt = data.range();
    logfmt.push((
        "query",
        r#"{app=~"ap.", env!="dev"} |~ "call [0-9]*5" | logfmt | level="warn""#.into(),
    ));
    logfmt.push(("limit", "1000".into()));
    let entries = stream_entries(&data.data("/loki/api/v1/query_range", &logfmt));
    assert_eq!(
        entries.len() as u64,
        data.sql_count(
            "pname = 'api' AND msg LIKE 'level=warn %' AND regexp_like(msg, 'call [0-9]*5')"
        )
    );
    assert!(!entries.is_empty());

    // Severity as a label, by name: the api stream's Loki `level` label set it.
    let mut severity = data.range();
    severity.push(("query", r#"{severity="warning"} != "call 1""#.into()));
    severity.push(("limit", "1000".into()));
    let warnings = stream_entries(&data.data("/loki/api/v1/query_range", &severity));
    assert_eq!(
        warnings.len() as u64,
        data.sql_count("severity = 4 AND msg NOT LIKE '%call 1%'")
    );
    assert!(!warnings.is_empty());
    assert!(warnings
        .iter()
        .all(|(labels, _, _)| labels["severity"] == "warning"));
}

#[test]
fn metric_queries_answer_matrices_and_vectors_that_match_sql() {
    let data = load();
    let base = data.base_s;
    // Per-minute counts per host: the window of the step at t is (t - 1m, t].
    let mut params = vec![
        ("start", (base + 60).to_string()),
        ("end", (base + 600).to_string()),
        ("step", "60".to_string()),
        (
            "query",
            r#"sum by (host) (count_over_time({env="prod"} |= "" [1m]))"#.to_string(),
        ),
    ];
    let series = matrix(&data.data("/loki/api/v1/query_range", &params));
    let rows = data.meniscus.sql(
        "acme",
        "acme-token",
        "SELECT host, CAST(to_unixtime(date_bin(INTERVAL '60 seconds', ts, TIMESTAMP '1970-01-01T00:00:00Z')) AS BIGINT) + 60 AS t, count(*) AS n \
         FROM events WHERE pname IN ('web', 'api') AND host IN ('h1', 'h2') GROUP BY 1, 2 ORDER BY 1, 2",
    );
    let mut expected: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for row in &rows {
        let t = row["t"].as_i64().unwrap();
        if t > base && t <= base + 600 {
            expected
                .entry(row["host"].as_str().unwrap().to_string())
                .or_default()
                .push((t, row["n"].as_f64().unwrap()));
        }
    }
    let got: BTreeMap<String, Vec<(i64, f64)>> = series
        .iter()
        .map(|(labels, points)| {
            assert_eq!(labels.len(), 1, "sum by (host) keeps host only: {labels:?}");
            (labels["host"].clone(), points.clone())
        })
        .collect();
    assert_eq!(got, expected);

    // rate and bytes_over_time over 5 minutes, stepping by a minute (windows overlap).
    params[3].1 = r#"sum(rate({app="web"}[5m]))"#.into();
    let rate = matrix(&data.data("/loki/api/v1/query_range", &params));
    let bytes_params: Vec<(&str, String)> = params
        .iter()
        .map(|(k, v)| {
            (
                *k,
                if *k == "query" {
                    r#"sum by (app) (bytes_over_time({app="web"}[5m]))"#.to_string()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let bytes = matrix(&data.data("/loki/api/v1/query_range", &bytes_params));
    assert_eq!(rate.len(), 1);
    assert!(rate[0].0.is_empty(), "sum without by has no labels");
    assert_eq!(bytes[0].0["app"], "web");
    for (at, value) in &rate[0].1 {
        let window = format!(
            "pname = 'web' AND ts > to_timestamp_micros({}) AND ts <= to_timestamp_micros({})",
            (at - 300) * 1_000_000,
            at * 1_000_000
        );
        let lines = data.sql_count(&window);
        assert!((value - lines as f64 / 300.0).abs() < 1e-9, "rate at {at}");
        let sum = data.meniscus.sql(
            "acme",
            "acme-token",
            &format!("SELECT sum(octet_length(msg)) AS b FROM events WHERE {window}"),
        )[0]["b"]
            .as_f64()
            .unwrap();
        let point = bytes[0].1.iter().find(|(t, _)| t == at).unwrap();
        assert_eq!(point.1, sum, "bytes at {at}");
    }

    // Per stream (no aggregation) and topk: one series per label set, the largest per step.
    params[3].1 = r#"count_over_time({app="web"}[1m])"#.into();
    let streams = matrix(&data.data("/loki/api/v1/query_range", &params));
    assert_eq!(streams.len(), 2);
    assert!(streams
        .iter()
        .all(|(labels, _)| labels["app"] == "web" && labels.contains_key("host")));
    params[3].1 = r#"topk(1, sum by (host) (count_over_time({app="web"}[1m])))"#.into();
    let top = matrix(&data.data("/loki/api/v1/query_range", &params));
    assert_eq!(top.len(), 1, "h1 has more lines than h3 in every minute");
    assert_eq!(top[0].0["host"], "h1");
    params[3].1 = r#"max by (app) (count_over_time({app="web"}[1m]))"#.into();
    let max = matrix(&data.data("/loki/api/v1/query_range", &params));
    assert_eq!(
        max[0].1,
        got["h1"].iter().map(|(t, _)| (*t, 6.0)).collect::<Vec<_>>()
    );

    // A metric over parsed lines, grouped by an extracted field.
    params[3].1 = r#"sum by (level) (count_over_time({app="web", host="h1"} | json [10m]))"#.into();
    params[0].1 = (base + 600).to_string();
    let levels = matrix(&data.data("/loki/api/v1/query_range", &params));
    let by_level: BTreeMap<String, f64> = levels
        .iter()
        .map(|(labels, points)| (labels["level"].clone(), points[0].1))
        .collect();
    assert_eq!(
        by_level["error"],
        data.sql_count("host = 'h1' AND msg LIKE '%\"level\":\"error\"%'") as f64
    );
    assert_eq!(
        by_level["info"],
        data.sql_count("host = 'h1' AND msg LIKE '%\"level\":\"info\"%'") as f64
    );

    // An instant query: a vector.
    let instant = data.data(
        "/loki/api/v1/query",
        &[
            ("time", (base + 600).to_string()),
            (
                "query",
                r#"sum by (env) (count_over_time({app=~".+"}[10m]))"#.into(),
            ),
        ],
    );
    assert_eq!(instant["resultType"], "vector");
    let result = instant["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{instant}");
    for sample in result {
        let pair = sample["value"].as_array().unwrap();
        assert_eq!(pair[0], json!(base + 600));
        let env = sample["metric"]["env"].as_str().unwrap();
        let hosts = if env == "prod" { "'h1', 'h2'" } else { "'h3'" };
        assert_eq!(
            pair[1].as_str().unwrap().parse::<u64>().unwrap(),
            data.sql_count(&format!("host IN ({hosts})")),
            "{env}"
        );
    }
    // A log query is not an instant query (Loki's answer).
    let (status, body) = data.get("/loki/api/v1/query", &[("query", r#"{app="web"}"#.into())]);
    assert_eq!(status, 400);
    assert!(body.contains("range query"), "{body}");
}

#[test]
fn labels_values_and_series_list_only_the_tenants_own() {
    let data = load();
    let range = data.range();
    let names: Vec<String> =
        serde_json::from_value(data.data("/loki/api/v1/labels", &range)).unwrap();
    for name in [
        "app",
        "env",
        "host",
        "pname",
        "transport",
        "producer",
        "severity",
        "level",
    ] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    assert!(!names.contains(&"secret_label".to_string()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let values: Vec<String> =
        serde_json::from_value(data.data("/loki/api/v1/label/app/values", &range)).unwrap();
    assert_eq!(values, ["api", "web"]);
    let hosts: Vec<String> =
        serde_json::from_value(data.data("/loki/api/v1/label/host/values", &range)).unwrap();
    assert_eq!(hosts, ["h1", "h2", "h3"]);
    let severities: Vec<String> =
        serde_json::from_value(data.data("/loki/api/v1/label/severity/values", &range)).unwrap();
    assert_eq!(severities, ["warning"]);
    let mut scoped = range.clone();
    scoped.push(("query", r#"{env="dev"}"#.into()));
    let dev_hosts: Vec<String> =
        serde_json::from_value(data.data("/loki/api/v1/label/host/values", &scoped)).unwrap();
    assert_eq!(dev_hosts, ["h3"]);
    let theirs = data.get_as(
        "other",
        "other-token",
        "/loki/api/v1/label/secret_label/values",
        &range,
    );
    assert_eq!(theirs.0, 200);
    assert!(
        theirs.1.contains("\"x\""),
        "the other tenant sees its own: {}",
        theirs.1
    );
    let mine: Vec<String> =
        serde_json::from_value(data.data("/loki/api/v1/label/secret_label/values", &range))
            .unwrap();
    assert!(mine.is_empty());

    let mut series_params = range.clone();
    series_params.push(("match[]", r#"{app="web"}"#.into()));
    series_params.push(("match[]", r#"{app="api", env="prod"}"#.into()));
    let series: Vec<BTreeMap<String, String>> =
        serde_json::from_value(data.data("/loki/api/v1/series", &series_params)).unwrap();
    assert_eq!(series.len(), 3, "{series:?}");
    let hosts: Vec<&str> = series
        .iter()
        .map(|labels| labels["host"].as_str())
        .collect();
    assert_eq!(hosts.iter().filter(|host| **host == "h1").count(), 1);
    assert!(series
        .iter()
        .all(|labels| !labels.contains_key("secret_label")));
}

#[test]
fn wrong_credentials_bad_and_unsupported_queries_are_refused_with_loki_errors() {
    let data = load();
    let mut range = data.range();
    range.push(("query", r#"{app="web"}"#.into()));
    let (status, _) = data.get_as("acme", "other-token", "/loki/api/v1/query_range", &range);
    assert_eq!(status, 401);
    let (status, body) = data.get_as("other", "acme-token", "/loki/api/v1/labels", &range);
    assert_eq!(status, 401, "{body}");
    let response = data
        .http
        .get(data.meniscus.url("/loki/api/v1/labels"))
        .bearer_auth("acme-token")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.text().unwrap().contains("X-Scope-OrgID"));

    for (query, named) in [
        (r#"{app="web"} | line_format "{{.level}}""#, "line_format"),
        (r#"sum(rate({app="web"}[1m])) / 2"#, "`/`"),
        (
            r#"quantile_over_time(0.9, {app="web"} | json | unwrap n [1m])"#,
            "quantile_over_time",
        ),
        (r#"count_over_time({app="web"} | json [1m])"#, "sum by"),
        (r#"rate({app="web"}[1m] offset 5m)"#, "offset"),
    ] {
        let mut params = data.range();
        params.push(("query", query.into()));
        let (status, body) = data.get("/loki/api/v1/query_range", &params);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains("unsupported"), "{query}: {body}");
        assert!(body.contains(named), "{query}: {body}");
    }
    for (query, fragment) in [
        (r#"{app="web""#, "parse error"),
        (r#"{app=~".*"}"#, "at least one"),
        (r#"rate({app="web"})"#, "range"),
    ] {
        let mut params = data.range();
        params.push(("query", query.into()));
        let (status, body) = data.get("/loki/api/v1/query_range", &params);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(fragment), "{query}: {body}");
    }
    for (name, value, fragment) in [
        ("start", "yesterday", "invalid start"),
        ("limit", "100000", "max entries limit"),
        ("step", "0", "invalid step"),
        ("direction", "sideways", "direction"),
    ] {
        let mut params = vec![("query", r#"count_over_time({app="web"}[1m])"#.to_string())];
        params.push((name, value.into()));
        let (status, body) = data.get("/loki/api/v1/query_range", &params);
        assert_eq!(status, 400, "{name}={value}: {body}");
        assert!(body.contains(fragment), "{name}={value}: {body}");
    }
    // Too fine a step over too long a range: Loki's resolution limit.
    let (status, body) = data.get(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"count_over_time({app="web"}[1m])"#.into()),
            ("start", "0".into()),
            ("step", "1".into()),
        ],
    );
    assert_eq!(status, 400);
    assert!(body.contains("11000 points"), "{body}");
    assert!(data
        .meniscus
        .log()
        .lines()
        .all(|line| !line.contains("panicked")));
}

#[test]
fn a_tail_gets_lines_sent_after_it_opened_and_nothing_of_another_tenant() {
    let meniscus = Meniscus::start(TENANTS);
    let http = reqwest::blocking::Client::new();
    let query = r#"{app="tailed"} != "skip""#;
    let mut socket =
        open_loki_tail(meniscus.http_port, &urlencode(query), "acme", "acme-token").unwrap();
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Give the tail a moment to take its starting point, then send: the other tenant's line
    // with the same labels first, a line the filter drops, then acme's.
    std::thread::sleep(Duration::from_millis(300));
    let now_ns = || {
        chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap()
            .to_string()
    };
    push(
        &http,
        &meniscus,
        "other",
        json!([{"stream": {"app": "tailed"}, "values": [[now_ns(), "theirs"]]}]),
    );
    push(
        &http,
        &meniscus,
        "acme",
        json!([{"stream": {"app": "tailed"}, "values": [[now_ns(), "skip me"]]}]),
    );
    push(
        &http,
        &meniscus,
        "acme",
        json!([{"stream": {"app": "tailed"}, "values": [[now_ns(), "tailed line"]]}]),
    );
    let stored = Instant::now();
    let mut lines = Vec::new();
    let mut first_after = None;
    while stored.elapsed() < Duration::from_secs(3) {
        if let Some(message) = read_tail_message(&mut socket) {
            assert!(message.get("dropped_entries").is_some(), "{message}");
            for stream in message["streams"].as_array().unwrap() {
                assert_eq!(stream["stream"]["app"], "tailed");
                for value in stream["values"].as_array().unwrap() {
                    assert!(value[0].as_str().unwrap().parse::<i128>().is_ok());
                    lines.push(value[1].as_str().unwrap().to_string());
                    first_after.get_or_insert(stored.elapsed());
                }
            }
        }
    }
    assert_eq!(lines, ["tailed line"]);
    // The issue's bound: a line stored after the socket opened is on it within a second.
    let latency = first_after.unwrap();
    assert!(
        latency < Duration::from_secs(1),
        "delivered after {latency:?}"
    );
    let _ = socket.close(None);

    // A tail without credentials or with a metric query is refused before the upgrade.
    let response = http
        .get(with_params(
            &meniscus.url("/loki/api/v1/tail"),
            &[("query", query.to_string())],
        ))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = http
        .get(with_params(
            &meniscus.url("/loki/api/v1/tail"),
            &[("query", r#"rate({app="x"}[1m])"#.to_string())],
        ))
        .header("X-Scope-OrgID", "acme")
        .bearer_auth("acme-token")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

fn with_params(url: &str, params: &[(&str, String)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(name, value)| format!("{}={}", urlencode(name), urlencode(value)))
        .collect();
    format!("{url}?{}", query.join("&"))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Extreme parameters and hostile queries: every one is answered 200 or 4xx, never a 500 or a
/// crash, and the server keeps answering.
#[test]
fn extreme_parameters_and_hostile_queries_get_an_answer_never_a_500() {
    let data = load();
    let deep_regex = format!("{}a{}", "(".repeat(300), ")".repeat(300));
    let long_alternation = (0..5000)
        .map(|n| format!("v{n}"))
        .collect::<Vec<_>>()
        .join("|");
    let many_matchers = (0..2000)
        .map(|n| format!("l{n}!=\"x\""))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"count_over_time({app="web"}[1m])"#.into()),
                ("start", "0".into()),
                ("end", "9223372036854775807".into()),
            ],
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"count_over_time({app="web"}[1m])"#.into()),
                ("step", "0.000000001".into()),
            ],
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"count_over_time({app="web"}[1m])"#.into()),
                ("step", "1e300".into()),
            ],
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", r#"count_over_time({app="web"}[99999999y])"#.into())],
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"rate({app="web"}[1ms])"#.into()),
                ("start", "1".into()),
                ("end", "2000000000".into()),
                ("step", "86400".into()),
            ],
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"{app="web"}"#.into()),
                ("start", "-9223372036854775808".into()),
            ],
        ),
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"{app="web"}"#.into()),
                ("since", "99999999999999y".into()),
            ],
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", format!("{{app=~\"{deep_regex}\"}}"))],
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", format!("{{app=~\"{long_alternation}\"}}"))],
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", format!("{{app=\"web\",{many_matchers}}}"))],
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", format!("{{app=\"web\"}} |~ \"{deep_regex}\""))],
        ),
        (
            "/loki/api/v1/query_range",
            vec![(
                "query",
                format!(
                    "{}count_over_time({{app=\"web\"}}[1m]){}",
                    "sum(".repeat(40),
                    ")".repeat(40)
                ),
            )],
        ),
        (
            "/loki/api/v1/query_range",
            vec![("query", "{".repeat(17_000))],
        ),
        (
            "/loki/api/v1/query_range",
            vec![(
                "query",
                r#"topk(9999999999, count_over_time({app="web"}[1m]))"#.into(),
            )],
        ),
        (
            "/loki/api/v1/query_range",
            vec![(
                "query",
                "{app=\"\u{0}\u{feff}\u{10ffff}\"} |= \"\u{0}\"".into(),
            )],
        ),
        (
            "/loki/api/v1/query",
            vec![
                ("query", r#"count_over_time({app="web"}[1m])"#.into()),
                ("time", "99999999999999999999999".into()),
            ],
        ),
        (
            "/loki/api/v1/query",
            vec![
                ("query", r#"count_over_time({app="web"}[1m])"#.into()),
                ("time", "1e308".into()),
            ],
        ),
        (
            "/loki/api/v1/labels",
            vec![("start", "9223372036854775807".into()), ("end", "1".into())],
        ),
        ("/loki/api/v1/label/%2e%2e/values", vec![]),
        (
            "/loki/api/v1/series",
            vec![("match[]", r#"count_over_time({a="b"}[1m])"#.into())],
        ),
    ];
    for (path, params) in &cases {
        let (status, body) = data.get(path, params);
        assert!(
            status == 200 || (400..500).contains(&status),
            "{path} {}: {status} {body}",
            params
                .iter()
                .map(|(k, v)| format!("{k}={}", v.chars().take(80).collect::<String>()))
                .collect::<Vec<_>>()
                .join("&")
        );
    }
    let (status, _) = data.get("/loki/api/v1/labels", &data.range());
    assert_eq!(status, 200, "the server still answers");
    let log = data.meniscus.log();
    assert!(!log.contains("panicked"), "{log}");
}
