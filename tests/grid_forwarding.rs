//! The grid's data plane as real processes on loopback: a coordinator, two storage workers
//! (`storage,tenant-api`) and a correlator (`correlator,normalizer`) fed by HTTP publishers
//! and util-linux `logger`. Durable events are acknowledged once the correlator's link spool
//! has them fsynced; a storage worker killed with `kill -9` mid-stream and started again
//! later costs nothing and duplicates nothing; a stranger on a link is turned away.

use std::collections::HashMap;

use meniscus_tests::grid::{
    assert_exactly_once, get_json, holder_of, logger_tcp, put_acme, search_all, stored, wait_until,
    write_secrets, Coordinator, GridWorker, Publishers, TOKEN,
};
use meniscus_tests::{free_port, open_loki_tail, read_tail_message};
use serde_json::{json, Value};

#[test]
fn a_storage_worker_killed_mid_stream_and_restarted_costs_no_event_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let coordinator = Coordinator::start(dir.path(), free_port());
    put_acme(&coordinator, json!([{"name": "web", "durable": true}]));
    let mut storage = [
        GridWorker::start(
            dir.path(),
            "storage-a",
            "storage,tenant-api",
            &coordinator,
            "[]",
        ),
        GridWorker::start(
            dir.path(),
            "storage-b",
            "storage,tenant-api",
            &coordinator,
            "[]",
        ),
    ];
    let correlator = GridWorker::start(
        dir.path(),
        "correlator",
        "correlator,normalizer",
        &coordinator,
        "[{protocol: tcp, address: \"127.0.0.1:{syslog}\"}]",
    );
    let tenant_api = GridWorker::start(dir.path(), "tenant-api", "tenant-api", &coordinator, "[]");

    // The correlator takes acme's events once the coordinator's tenants and both storage
    // workers reached it (before that: 401, or 503 with no storage worker to send to).
    let client = reqwest::blocking::Client::new();
    let mut expected = vec!["first".to_string()];
    wait_until("the correlator takes a durable publish", 60, || {
        client
            .post(correlator.url("/v1/tenant/acme/publish"))
            .header("MESSAGE-TOKEN", TOKEN)
            .json(&json!({"log_message": {"pname": "web", "host": "h", "msg": "first"}}))
            .send()
            .is_ok_and(|response| response.status() == 202)
    });
    wait_until("all four workers are online", 30, || {
        coordinator.online() == 4
    });

    // Which storage worker takes acme's records: the one "first" went to.
    let taker = holder_of(&storage, "first");

    let publishers = Publishers::start(&correlator, "http", 2);
    publishers.wait_for_more(200);
    // The correlator's heartbeats carry the p99 of its link records' hand-off times (the
    // autoscaler's input), and its /metrics the histogram.
    wait_until("the correlator reports its hand-off time", 30, || {
        coordinator.workers().iter().any(|worker| {
            worker["personas"][0] == "correlator"
                && worker["load"]["handoffP99Seconds"].as_f64() > Some(0.0)
        })
    });
    assert!(correlator.metric("meniscus_link_handoff_seconds_count") > 0.0);
    storage[taker].kill9();
    // The correlator keeps acknowledging: its spool holds what the killed worker has not
    // acknowledged, and new batches go to the other storage worker meanwhile.
    publishers.wait_for_more(300);
    for n in 0..20 {
        let message = format!("logger-during-outage-{n}");
        logger_tcp(&correlator, &message);
        expected.push(message);
    }
    publishers.wait_for_more(200);
    storage[taker].restart();
    publishers.wait_for_more(200);
    let (acknowledged, not_acknowledged) = publishers.finish();
    expected.extend(acknowledged);

    wait_until("the correlator's spools are empty", 90, || {
        correlator.metric("meniscus_link_spool_bytes") == 0.0
            && correlator.metric("meniscus_link_events_acknowledged_total")
                >= correlator.metric("meniscus_link_events_spooled_total")
    });
    // Flushed within a second of arriving (flushInterval: 1s).
    eprintln!("killed worker {taker}");
    let (holdings, total) = assert_exactly_once(&storage, &expected, not_acknowledged);
    // Both storage workers took part: the survivor held the tenant while the other was down.
    assert!(
        holdings.iter().all(|counts| !counts.is_empty()),
        "one storage worker took nothing: {:?}",
        holdings.iter().map(HashMap::len).collect::<Vec<_>>()
    );
    assert!(
        correlator.metric("meniscus_link_records_sent_total{outcome=\"unreachable\"}") > 0.0,
        "the killed worker was never found unreachable"
    );

    // A stranger, or a worker id with a forged credential, is turned away before its record
    // is opened.
    let some_worker = coordinator.workers()[0]["id"].as_str().unwrap().to_string();
    for headers in [
        vec![],
        vec![
            ("x-meniscus-worker", some_worker.as_str()),
            ("authorization", "Bearer forged"),
        ],
    ] {
        let mut request = client
            .post(storage[taker].grid_url("/v1/link/records"))
            .body(b"MNR2 not a record".to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        assert_eq!(request.send().unwrap().status(), 401);
    }
    assert_eq!(
        storage[taker].metric("meniscus_link_records_received_total{outcome=\"unauthorized\"}"),
        2.0
    );

    // The tenant API persona answers for both storage workers: search pages through every
    // event once, counts add up, and SQL covers both.
    let paged = search_all(&tenant_api);
    assert_eq!(paged.len(), total.len(), "search through the tenant API");
    assert!(paged.values().all(|n| *n == 1), "an event on two pages");
    let counts = get_json(&tenant_api.url("/v1/tenant/acme/metrics?from=1h&bucket=1h"));
    let counted: u64 = counts["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, total.len(), "{counts}");
    // SQL runs once over what both storage workers send for it: aggregates that cannot be
    // merged from per-worker answers (a distinct count, an average) come out as one store
    // would give them, a filter finds its one event, and an ordering spans both workers.
    let sql = |statement: &str| tenant_api.sql("acme", TOKEN, statement);
    let n = |rows: Vec<serde_json::Map<String, Value>>| rows[0]["n"].as_u64().unwrap();
    assert_eq!(
        n(sql("SELECT count(*) AS n FROM events")),
        total.len() as u64
    );
    assert_eq!(
        n(sql("SELECT count(DISTINCT msg) AS n FROM events")),
        total.len() as u64
    );
    let lengths: Vec<f64> = total.keys().map(|msg| msg.len() as f64).collect();
    let average = sql("SELECT avg(length(msg)) AS a FROM events")[0]["a"]
        .as_f64()
        .unwrap();
    let expected_average = lengths.iter().sum::<f64>() / lengths.len() as f64;
    assert!(
        (average - expected_average).abs() < 1e-9,
        "{average} != {expected_average}"
    );
    let one = sql("SELECT msg FROM events WHERE msg = 'logger-during-outage-7'");
    assert_eq!(one.len(), 1, "{one:?}");
    let newest = sql("SELECT msg, ts FROM events ORDER BY ts DESC, event_id LIMIT 3");
    assert_eq!(newest.len(), 3);
    let logged = sql("SELECT count(*) AS n FROM events WHERE msg LIKE 'logger-%'");
    assert_eq!(n(logged), 20);
    // A statement that never yields (a cross join of generators, planned and run in the
    // tenant API) stops at its deadline (queryTimeout: 10s) on query threads of its own, and
    // the tenant API answers the next statement.
    let answer: Value = client
        .post(tenant_api.url("/v1/tenant/acme/sql"))
        .header("MESSAGE-TOKEN", TOKEN)
        .json(&json!({"sql": "SELECT count(*) AS n FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b WHERE (a.value * b.value) % 7 = 3"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        matches!(
            answer["error"]["code"].as_str(),
            Some("query_timeout" | "query_memory")
        ),
        "{answer}"
    );
    assert_eq!(
        n(sql("SELECT count(*) AS n FROM events")),
        total.len() as u64
    );
    // A statement the workers refuse is refused as they refuse it.
    let answer = client
        .post(tenant_api.url("/v1/tenant/acme/sql"))
        .header("MESSAGE-TOKEN", TOKEN)
        .json(&json!({"sql": "SELECT no_such_column FROM events"}))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 400);
    // The Loki query API through the tenant API: lines from both storage workers, newest
    // first and each once; a count that adds up across them; one that does not, refused.
    let loki = |path: &str, query: &[(&str, &str)]| -> (u16, String) {
        let url = reqwest::Url::parse_with_params(&tenant_api.url(path), query).unwrap();
        let response = client
            .get(url)
            .header("X-Scope-OrgID", "acme")
            .header("Authorization", format!("Bearer {TOKEN}"))
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    let (status, body) = loki(
        "/loki/api/v1/query_range",
        &[("query", r#"{pname="web"}"#), ("limit", "5000")],
    );
    assert_eq!(status, 200, "{body}");
    let lines: Value = serde_json::from_str(&body).unwrap();
    let mut times_and_lines: Vec<(i128, String)> = Vec::new();
    for stream in lines["data"]["result"].as_array().unwrap() {
        let values: Vec<(i128, String)> = stream["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry[0].as_str().unwrap().parse().unwrap(),
                    entry[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            values.windows(2).all(|pair| pair[0].0 >= pair[1].0),
            "a stream's lines are newest first"
        );
        times_and_lines.extend(values);
    }
    assert_eq!(times_and_lines.len(), total.len().min(5000), "{body:.300}");
    times_and_lines.sort();
    times_and_lines.dedup();
    assert_eq!(times_and_lines.len(), total.len().min(5000), "a line twice");
    let (status, body) = loki(
        "/loki/api/v1/query",
        &[("query", r#"sum(count_over_time({pname="web"}[1h]))"#)],
    );
    assert_eq!(status, 200, "{body}");
    let counted: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        counted["data"]["result"][0]["value"][1],
        total.len().to_string(),
        "{body}"
    );
    // Aggregations that do not add up across workers (max, count, avg, topk) are computed
    // here over the per-stream counts summed across both: they agree with those counts.
    let instant = |query: &str| -> Vec<(Value, f64)> {
        let (status, body) = loki("/loki/api/v1/query", &[("query", query)]);
        assert_eq!(status, 200, "{query}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|one| {
                let value = one["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                (one["metric"].clone(), value)
            })
            .collect()
    };
    let per_stream = instant(r#"count_over_time({pname="web"}[1h])"#);
    let counts: Vec<f64> = per_stream.iter().map(|(_, value)| *value).collect();
    eprintln!("per-stream counts across both workers: {counts:?}");
    assert_eq!(counts.iter().sum::<f64>() as usize, total.len());
    let max = counts.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(
        instant(r#"max(count_over_time({pname="web"}[1h]))"#)[0].1,
        max
    );
    assert_eq!(
        instant(r#"count(count_over_time({pname="web"}[1h]))"#)[0].1,
        counts.len() as f64
    );
    let average = instant(r#"avg(count_over_time({pname="web"}[1h]))"#)[0].1;
    assert!((average - total.len() as f64 / counts.len() as f64).abs() < 1e-9);
    let top = instant(r#"topk(1, count_over_time({pname="web"}[1h]))"#);
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].1, max);
    assert!(per_stream
        .iter()
        .any(|(metric, value)| *metric == top[0].0 && *value == max));
    let (status, body) = loki("/loki/api/v1/labels", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"pname\"") && body.contains("\"host\""),
        "{body}"
    );
    // Live tail through the tenant API: fed by both storage workers' tails, it gets an event
    // published after it opened, whichever worker stores it. A plain GET (not a WebSocket)
    // and a caller without credentials are refused.
    assert_eq!(
        loki(
            "/loki/api/v1/tail",
            &[("query", r#"rate({pname="web"}[1m])"#)]
        )
        .0,
        400
    );
    assert_eq!(
        client
            .get(tenant_api.url("/loki/api/v1/tail?query=%7Bpname%3D%22web%22%7D"))
            .send()
            .unwrap()
            .status(),
        401
    );
    // A WebSocket tail the storage workers refuse (a metric query) gets their 400.
    assert_eq!(
        open_loki_tail(
            tenant_api.http,
            "rate(%7Bpname%3D%22web%22%7D%5B1m%5D)",
            "acme",
            TOKEN
        )
        .err(),
        Some(400)
    );
    let lines = tail_while_publishing(&tenant_api, &client, &correlator, "tailed-after-open");
    assert!(
        lines.iter().any(|line| line == "tailed-after-open"),
        "the tail never got the new event: {lines:?}"
    );

    // A wrong token is refused by the tenant API itself, on its Loki API too, and by a
    // correlator asked about a job on its grid address.
    let refused = client
        .get(tenant_api.url("/v1/tenant/acme/events"))
        .header("MESSAGE-TOKEN", "wrong")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);
    let refused = client
        .get(tenant_api.url("/loki/api/v1/labels"))
        .header("X-Scope-OrgID", "acme")
        .header("Authorization", "Bearer wrong")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);
    let refused = client
        .get(correlator.grid_url("/v1/tenant/acme/jobs/01KBWJ2M3N4P5Q6R7S8T9V0W1X"))
        .header("MESSAGE-TOKEN", "wrong")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);
    // With the right token, a job it never acknowledged is unknown there.
    let unknown = client
        .get(correlator.grid_url("/v1/tenant/acme/jobs/01KBWJ2M3N4P5Q6R7S8T9V0W1X"))
        .header("MESSAGE-TOKEN", TOKEN)
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[test]
fn a_correlator_killed_with_a_full_spool_sends_it_after_restart_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let coordinator = Coordinator::start(dir.path(), free_port());
    put_acme(&coordinator, json!([{"name": "web", "durable": true}]));
    let mut storage = [GridWorker::start(
        dir.path(),
        "storage",
        "storage,tenant-api",
        &coordinator,
        "[]",
    )];
    let mut correlator = GridWorker::start(
        dir.path(),
        "correlator",
        "correlator",
        &coordinator,
        "[{protocol: tcp, address: \"127.0.0.1:{syslog}\"}]",
    );
    let tenant_api = GridWorker::start(dir.path(), "tenant-api", "tenant-api", &coordinator, "[]");
    let client = reqwest::blocking::Client::new();
    let publish = |correlator: &GridWorker, msgs: &[String]| {
        let body: Vec<Value> = msgs
            .iter()
            .map(|msg| json!({"log_message": {"pname": "web", "host": "h", "msg": msg}}))
            .collect();
        client
            .post(correlator.url("/v1/tenant/acme/publish"))
            .header("MESSAGE-TOKEN", TOKEN)
            .json(&body)
            .send()
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    };
    let mut expected = vec!["first".to_string()];
    wait_until("the correlator takes a durable publish", 60, || {
        publish(&correlator, &expected) == 202
    });
    wait_until("the first event is stored", 30, || {
        stored(&storage)[0].contains_key("first")
    });

    // The storage worker goes; the correlator acknowledges what its spool holds (even once
    // the coordinator took the only storage worker out of the routes), up to its quota.
    storage[0].kill9();
    for request in 0..20 {
        let msgs: Vec<String> = (0..5).map(|n| format!("spooled-{request}-{n}")).collect();
        match publish(&correlator, &msgs) {
            202 => expected.extend(msgs),
            503 => break,
            other => panic!("publish answered {other}"),
        }
    }
    assert!(expected.len() > 1, "nothing was spooled");
    assert!(correlator.metric("meniscus_link_spool_bytes") > 0.0);

    // A durable job acknowledged while no storage worker can take it is `accepted`: the
    // correlator that acknowledged it says so through the tenant API.
    let pending = client
        .post(correlator.url("/v1/tenant/acme/publish"))
        .header("MESSAGE-TOKEN", TOKEN)
        .json(&json!([
            {"log_message": {"pname": "web", "host": "h", "msg": "pending-1"}},
            {"log_message": {"pname": "web", "host": "h", "msg": "pending-2"}},
        ]))
        .send()
        .unwrap();
    assert_eq!(pending.status(), 202);
    let pending: Value = pending.json().unwrap();
    expected.extend(["pending-1".to_string(), "pending-2".to_string()]);
    let pending_url = tenant_api.url(&format!(
        "/v1/tenant/acme/jobs/{}",
        pending["job_id"].as_str().unwrap()
    ));
    let job = get_json(&pending_url);
    assert_eq!(job["status"], "accepted", "{job}");
    assert_eq!(job["events"], 2, "{job}");
    assert!(
        job["incomplete"].is_array(),
        "the dead storage worker: {job}"
    );

    // The spool is on disk: a kill -9 of the correlator loses none of it.
    correlator.restart();
    assert!(
        correlator.metric("meniscus_link_spool_bytes") > 0.0,
        "the restarted correlator reopened an empty spool"
    );
    storage[0].restart();
    wait_until("the correlator's spool is empty", 60, || {
        correlator.metric("meniscus_link_spool_bytes") == 0.0
    });
    let mut holdings = Vec::new();
    wait_until("every acknowledged event is queryable", 60, || {
        holdings = stored(&storage);
        expected.iter().all(|msg| holdings[0].contains_key(msg))
    });
    let duplicated: Vec<_> = holdings[0].iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "stored more than once: {duplicated:?}"
    );
    assert_eq!(holdings[0].len(), expected.len());
    let job = get_json(&pending_url);
    assert_eq!(job["status"], "stored", "{job}");
    // One storage worker holds the tenant: the tenant API runs SQL there.
    let wait_for_sql = || {
        let response = client
            .post(tenant_api.url("/v1/tenant/acme/sql"))
            .header("MESSAGE-TOKEN", TOKEN)
            .json(&json!({"sql": "SELECT count(*) AS n FROM events"}))
            .send()
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().unwrap_or(Value::Null);
        (status, answer)
    };
    let mut answer = Value::Null;
    wait_until("the tenant API answers SQL", 30, || {
        let (status, body) = wait_for_sql();
        answer = body;
        status == 200
    });
    assert_eq!(answer["rows"][0]["n"], expected.len(), "{answer}");
    // Job status through the tenant API: the job's events, once stored; an unknown job 404.
    let published: Value = client
        .post(correlator.url("/v1/tenant/acme/publish"))
        .header("MESSAGE-TOKEN", TOKEN)
        .json(&json!([
            {"log_message": {"pname": "web", "host": "h", "msg": "job-1"}},
            {"log_message": {"pname": "web", "host": "h", "msg": "job-2"}},
        ]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let job_url = tenant_api.url(&format!(
        "/v1/tenant/acme/jobs/{}",
        published["job_id"].as_str().unwrap()
    ));
    let mut job = Value::Null;
    // `accepted` (the correlator has it) until the storage worker has it: then `stored`.
    wait_until("the job is stored", 30, || {
        let response = client
            .get(&job_url)
            .header("MESSAGE-TOKEN", TOKEN)
            .send()
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "a job acknowledged with 202 is known"
        );
        job = response.json().unwrap_or(Value::Null);
        assert!(
            job["status"] == "accepted" || job["status"] == "stored",
            "{job}"
        );
        job["status"] == "stored"
    });
    assert_eq!(job["status"], "stored", "{job}");
    assert_eq!(job["events"], 2, "{job}");
    let unknown = client
        .get(tenant_api.url("/v1/tenant/acme/jobs/01KBWJ2M3N4P5Q6R7S8T9V0W1X"))
        .header("MESSAGE-TOKEN", TOKEN)
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
    expected.extend(["job-1".to_string(), "job-2".to_string()]);

    // SIGTERM: the correlator stops taking, sends what it holds, and exits cleanly.
    let last: Vec<String> = (0..5).map(|n| format!("before-sigterm-{n}")).collect();
    assert_eq!(publish(&correlator, &last), 202);
    let status = correlator.terminate();
    assert!(status.success(), "the correlator exited with {status}");
    wait_until("what was spooled before SIGTERM is stored", 30, || {
        let holdings = stored(&storage);
        last.iter().all(|msg| holdings[0].contains_key(msg))
    });
}

#[test]
fn a_storage_worker_removed_from_the_grid_has_its_spool_moved_to_the_others() {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let coordinator = Coordinator::start(dir.path(), free_port());
    put_acme(&coordinator, json!([{"name": "web", "durable": true}]));
    let mut storage = [
        GridWorker::start(dir.path(), "storage-a", "storage", &coordinator, "[]"),
        GridWorker::start(dir.path(), "storage-b", "storage", &coordinator, "[]"),
    ];
    let correlator = GridWorker::start(dir.path(), "correlator", "correlator", &coordinator, "[]");
    let client = reqwest::blocking::Client::new();
    let publish = |msg: &str| {
        client
            .post(correlator.url("/v1/tenant/acme/publish"))
            .header("MESSAGE-TOKEN", TOKEN)
            .json(&json!({"log_message": {"pname": "web", "host": "h", "msg": msg}}))
            .send()
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    };
    wait_until("the correlator takes a durable publish", 60, || {
        publish("first") == 202
    });
    wait_until("all three workers are online", 30, || {
        coordinator.online() == 3
    });
    let taker = holder_of(&storage, "first");
    let other = 1 - taker;
    let address = storage[taker]
        .grid_url("")
        .trim_start_matches("http://")
        .to_string();
    let taker_id = coordinator
        .workers()
        .iter()
        .find(|worker| worker["address"] == address.as_str())
        .map(|worker| worker["id"].as_str().unwrap().to_string())
        .expect("the taker in the coordinator's list");

    // The taker stops answering; what the correlator acknowledges meanwhile waits in its
    // spool for it. Then its machine is gone for good (kill -9 while stopped) and an
    // administrator removes it from the grid.
    storage[taker].signal("STOP");
    let stranded: Vec<String> = (0..40).map(|n| format!("stranded-{n}")).collect();
    for msg in &stranded {
        assert_eq!(publish(msg), 202, "{msg}");
    }
    assert!(correlator.metric("meniscus_link_spool_bytes") > 0.0);
    storage[taker].kill9();
    let bearer = format!("Bearer {}", meniscus_tests::grid::ADMIN_CREDENTIAL);
    let remove = |credential: &str| {
        coordinator
            .call(
                "DELETE",
                &format!("/v1/admin/workers/{taker_id}"),
                &[("Authorization", credential)],
                None,
            )
            .0
    };
    assert_eq!(remove("Bearer wrong"), 401);
    assert_eq!(remove(&bearer), 204);
    assert_eq!(remove(&bearer), 404, "removed twice");

    // The correlator moves the stranded records to the storage worker left, which stores
    // each once.
    wait_until(
        "the spool for the removed worker is moved and sent",
        60,
        || correlator.metric("meniscus_link_spool_bytes") == 0.0,
    );
    assert!(correlator.metric("meniscus_link_records_moved_total") > 0.0);
    let held = &stored(&storage[other..=other])[0];
    for msg in &stranded {
        assert_eq!(
            held.get(msg),
            Some(&1),
            "{msg} on the storage worker left: {held:?}"
        );
    }
    // New publishes go to it too.
    assert_eq!(publish("after-removal"), 202);
    wait_until("a new publish is stored", 30, || {
        stored(&storage[other..=other])[0].contains_key("after-removal")
    });
}

/// Opens a Loki tail of acme's `pname="web"` lines on the tenant API (from now on), publishes
/// `msg` through the correlator, and returns the lines the tail got within 15 s (stopping
/// early once `msg` arrived).
fn tail_while_publishing(
    tenant_api: &GridWorker,
    client: &reqwest::blocking::Client,
    correlator: &GridWorker,
    msg: &str,
) -> Vec<String> {
    use std::time::{Duration, Instant};
    let start = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let mut socket = open_loki_tail(
        tenant_api.http,
        &format!("%7Bpname%3D%22web%22%7D&start={start}"),
        "acme",
        TOKEN,
    )
    .unwrap();
    socket
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // The workers' tails take their starting point; then the event is published.
    std::thread::sleep(Duration::from_millis(500));
    let published = client
        .post(correlator.url("/v1/tenant/acme/publish"))
        .header("MESSAGE-TOKEN", TOKEN)
        .json(&json!({"log_message": {"pname": "web", "host": "h", "msg": msg}}))
        .send()
        .unwrap();
    assert_eq!(published.status().as_u16(), 202);
    let began = Instant::now();
    let mut lines = Vec::new();
    while began.elapsed() < Duration::from_secs(15) && !lines.iter().any(|line| line == msg) {
        if let Some(message) = read_tail_message(&mut socket) {
            for stream in message["streams"].as_array().unwrap() {
                for value in stream["values"].as_array().unwrap() {
                    lines.push(value[1].as_str().unwrap().to_string());
                }
            }
        }
    }
    let _ = socket.close(None);
    lines
}
