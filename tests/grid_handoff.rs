//! A storage worker leaves the grid without losing anything (a storage scale-down), as real
//! processes on loopback: the worker holding tenant `acme` is asked to drain while durable
//! publishers keep going, hands everything it holds to the other storage worker, says so in
//! its heartbeat, and is then stopped and removed. Every acknowledged event must be found
//! exactly once afterwards, through the tenant API and on the worker that stays.

use std::time::{Duration, Instant};

use meniscus_tests::grid::{
    assert_exactly_once, put_acme, search_all, wait_until, write_secrets, Coordinator, GridWorker,
    Publishers, ADMIN_CREDENTIAL, TOKEN,
};
use meniscus_tests::{files_under, free_port};
use serde_json::{json, Value};

/// The coordinator's entry for `worker` (matched by its grid address).
fn entry_of(coordinator: &Coordinator, worker: &GridWorker) -> Value {
    let address = format!("127.0.0.1:{}", worker.listen);
    coordinator
        .workers()
        .into_iter()
        .find(|entry| entry["address"] == *address.as_str())
        .unwrap_or_else(|| panic!("{} is not in the registry", worker.name))
}

fn admin(coordinator: &Coordinator, method: &str, path: &str) -> (u16, Value) {
    let bearer = format!("Bearer {ADMIN_CREDENTIAL}");
    coordinator.call(method, path, &[("Authorization", bearer.as_str())], None)
}

#[test]
fn a_draining_storage_worker_hands_everything_off_and_leaves_without_a_loss() {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let grid = Coordinator::start(dir.path(), free_port());
    put_acme(&grid, json!([{"name": "default", "durable": true}]));
    let _broadcaster = GridWorker::start(dir.path(), "broadcaster", "broadcaster", &grid, "[]");
    let mut storage = vec![
        GridWorker::start(dir.path(), "storage-a", "storage", &grid, "[]"),
        GridWorker::start(dir.path(), "storage-b", "storage", &grid, "[]"),
    ];
    let correlator = GridWorker::start(dir.path(), "correlator", "correlator", &grid, "[]");
    let tenant_api = GridWorker::start(dir.path(), "tenant-api", "tenant-api", &grid, "[]");
    wait_until("all five workers are online", 60, || grid.online() == 5);

    // Enough to be spread over several flushed files before the drain starts.
    let publishers = Publishers::start_paced(&correlator, "before", 2, Duration::from_millis(5));
    publishers.wait_for_more(3000);
    let holding: Vec<f64> = storage
        .iter()
        .map(|worker| worker.metric("meniscus_store_stored_events_total{tenant=\"acme\"}"))
        .collect();
    let leaving = if holding[0] >= holding[1] { 0 } else { 1 };
    let staying = 1 - leaving;
    assert!(
        holding[leaving] > 0.0,
        "acme's events went somewhere: {holding:?}"
    );
    let id = entry_of(&grid, &storage[leaving])["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Unknown workers and callers without the credential are refused.
    assert_eq!(admin(&grid, "PUT", "/v1/admin/workers/w999/drain").0, 404);
    let (status, _) = grid.call("PUT", &format!("/v1/admin/workers/{id}/drain"), &[], None);
    assert_eq!(status, 401);

    let ordered = Instant::now();
    let (status, answer) = admin(&grid, "PUT", &format!("/v1/admin/workers/{id}/drain"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["routesChanged"], true);
    // Publishing goes on while the worker drains: new events go to the other worker, and
    // records already spooled for the draining one wait in the correlator's spool.
    publishers.wait_for_more(2000);
    wait_until("the draining worker reports its hand-off done", 120, || {
        let entry = entry_of(&grid, &storage[leaving]);
        entry["draining"] == true && entry["load"]["handedOff"] == true
    });
    let files = files_under(&storage[leaving].dir.join("data/hot"), ".parquet");
    assert!(files.is_empty(), "it holds no file any more: {files:?}");
    // Its own tenant API takes no publish now: nothing may land after its last pass.
    let direct = reqwest::blocking::Client::new()
        .post(storage[leaving].url("/v1/tenant/acme/publish"))
        .header("MESSAGE-TOKEN", TOKEN)
        .json(&json!({"log_message": {"pname": "web", "host": "h", "msg": "too late"}}))
        .send()
        .unwrap();
    assert_eq!(direct.status().as_u16(), 503);
    let moved = storage[leaving].metric("meniscus_storage_handoff_events_total{tenant=\"acme\"}");
    assert!(moved > 0.0, "it handed acme's events off");
    // A figure for the record, not an assertion (shared machines are noisy).
    eprintln!(
        "hand-off: {moved} events moved; handedOff seen {:.1} s after the drain order",
        ordered.elapsed().as_secs_f64()
    );
    let (acknowledged, not_acknowledged) = publishers.finish();

    // Stopped and removed for good (what the operator does once the StatefulSet shrinks):
    // what correlators still spool for it moves to acme's other storage worker.
    storage[leaving].kill9();
    let (status, answer) = admin(&grid, "DELETE", &format!("/v1/admin/workers/{id}"));
    assert_eq!(status, 204, "{answer}");
    wait_until("the correlator's spool empties", 120, || {
        correlator.metric("meniscus_link_spool_bytes") == 0.0
    });
    let stayed = storage.remove(staying);
    let (_, total) = assert_exactly_once(&[&stayed], &acknowledged, not_acknowledged);
    assert!(total.len() >= acknowledged.len());
    let paged = search_all(&tenant_api);
    assert_eq!(paged.len(), total.len(), "search through the tenant API");
    assert!(paged.values().all(|n| *n == 1), "an event on two pages");
    assert!(
        stayed.metric("meniscus_link_records_received_total{outcome=\"taken\"}") > 0.0,
        "the staying worker took the hand-off over its link"
    );
}
