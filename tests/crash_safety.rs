//! Durability under `kill -9`: every event acknowledged with 202 + `job_id` for a durable
//! producer survives a SIGKILL at any moment (before and after flushes to Parquet, across
//! repeated restarts and a torn write-ahead-log tail), exactly once.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use meniscus_tests::{Meniscus, StartOptions, TENANTS};
use serde_json::json;

const EXTRA: &str = "limits: {maxResultRows: 1000000}\n";

/// One acknowledged publish: the messages it carried and its job id.
#[derive(Clone, Debug)]
struct Ack {
    msgs: Vec<String>,
    job_id: String,
}

/// Client threads publishing distinct durable messages until stopped (or the server dies).
struct Publishers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Ack>>>,
    ack_count: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<usize>>,
}

impl Publishers {
    /// `threads` clients, each sending `per_request` messages per request, named
    /// `{label}-t{thread}-{seq}`.
    fn start(meniscus: &Meniscus, label: &str, threads: usize, per_request: usize) -> Publishers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let ack_count = Arc::new(AtomicUsize::new(0));
        let url = meniscus.url("/v1/tenant/acme/publish");
        let handles = (0..threads)
            .map(|thread| {
                let (stop, acked, ack_count, url, label) = (stop.clone(), acked.clone(), ack_count.clone(), url.clone(), label.to_string());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
                    let mut seq = 0;
                    let mut failures = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let msgs: Vec<String> = (0..per_request)
                            .map(|_| {
                                seq += 1;
                                format!("{label}-t{thread}-{seq}")
                            })
                            .collect();
                        let body: Vec<_> = msgs.iter().map(|msg| json!({"log_message": {"pname": "web", "host": "h", "msg": msg}})).collect();
                        let body = if per_request == 1 { body[0].clone() } else { json!(body) };
                        let response = client.post(&url).header("MESSAGE-TOKEN", "acme-token").json(&body).send();
                        match response {
                            Ok(response) if response.status().as_u16() == 202 => {
                                let answer: serde_json::Value = response.json().expect("a 202 carries JSON");
                                let job_id = answer["job_id"].as_str().expect("a 202 carries a job_id").to_string();
                                assert_eq!(answer["job_status_uri"], format!("/v1/tenant/acme/jobs/{job_id}"));
                                acked.lock().unwrap().push(Ack { msgs, job_id });
                                ack_count.fetch_add(1, Ordering::Relaxed);
                            }
                            // Killed mid-request, or refused (503 backpressure): not acknowledged,
                            // so it may or may not be stored, but never twice.
                            Ok(_) | Err(_) => {
                                failures += 1;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    failures
                })
            })
            .collect();
        Publishers {
            stop,
            acked,
            ack_count,
            threads: handles,
        }
    }

    fn acks(&self) -> usize {
        self.ack_count.load(Ordering::Relaxed)
    }

    fn wait_for_acks(&self, at_least: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while self.acks() < at_least {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {at_least} publishes acknowledged within 90s",
                self.acks()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the clients; returns what was acknowledged and how many requests were in flight or
    /// refused (their messages may be stored, or not).
    fn finish(self) -> (Vec<Ack>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let unacknowledged = self
            .threads
            .into_iter()
            .map(|thread| thread.join().expect("publisher thread"))
            .sum();
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (acked, unacknowledged)
    }
}

fn flushes(meniscus: &Meniscus) -> u64 {
    meniscus.metric("meniscus_hot_flushes_total")
}

/// Every acknowledged message is stored exactly once with its job id, no message is stored
/// twice, and at most `unacknowledged` messages beyond the acknowledged ones exist. Jobs answer
/// `stored` with their event count: every job from `acked[recent..]` (the round just killed) and
/// every 10th older one (all of them were checked after their own round).
fn verify(
    meniscus: &Meniscus,
    acked: &[Ack],
    recent: usize,
    unacknowledged_messages: usize,
    context: &str,
) {
    let duplicates = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT msg, count(*) AS n FROM events GROUP BY msg HAVING count(*) > 1 ORDER BY msg LIMIT 20",
    );
    assert!(
        duplicates.is_empty(),
        "{context}: messages stored more than once: {duplicates:?}"
    );
    let rows = meniscus.sql("acme", "acme-token", "SELECT msg, job_id FROM events");
    let stored: HashMap<String, Option<String>> = rows
        .iter()
        .map(|row| {
            (
                row["msg"].as_str().unwrap().to_string(),
                row.get("job_id")
                    .and_then(|id| id.as_str())
                    .map(String::from),
            )
        })
        .collect();
    let mut missing = Vec::new();
    let mut acked_msgs = HashSet::new();
    for ack in acked {
        for msg in &ack.msgs {
            acked_msgs.insert(msg.clone());
            match stored.get(msg) {
                None => missing.push(msg.clone()),
                Some(job) => assert_eq!(
                    job.as_deref(),
                    Some(ack.job_id.as_str()),
                    "{context}: {msg} stored under another job"
                ),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{context}: {} of {} acknowledged messages are lost after kill -9, e.g. {:?}",
        missing.len(),
        acked_msgs.len(),
        &missing[..missing.len().min(10)]
    );
    let extra = stored.len() - acked_msgs.len();
    assert!(
        extra <= unacknowledged_messages,
        "{context}: {extra} messages stored that were never acknowledged, but at most {unacknowledged_messages} were in flight"
    );
    eprintln!(
        "{context}: {} acknowledged messages in {} jobs, {} stored",
        acked_msgs.len(),
        acked.len(),
        stored.len()
    );
    let mut not_stored = Vec::new();
    for ack in acked[..recent].iter().step_by(10).chain(&acked[recent..]) {
        let (status, body) = meniscus.get(
            &format!("/v1/tenant/acme/jobs/{}", ack.job_id),
            "acme-token",
        );
        if status != 200 || body["status"] != "stored" || body["events"] != ack.msgs.len() {
            not_stored.push((ack.job_id.clone(), status, body));
        }
    }
    assert!(
        not_stored.is_empty(),
        "{context}: {} acknowledged jobs do not answer `stored`, e.g. {:?}",
        not_stored.len(),
        &not_stored[..not_stored.len().min(5)]
    );
}

fn start(storage: &str) -> Meniscus {
    let extra = format!("{TENANTS}{EXTRA}");
    Meniscus::start_with_options(StartOptions {
        storage,
        extra: &extra,
        ..Default::default()
    })
}

#[test]
fn acknowledged_publishes_survive_kill9_before_during_and_after_flushes() {
    let mut meniscus = start("storage: {flushEvents: 1000, flushInterval: 60s}");
    let mut acked = Vec::new();
    let mut unacknowledged = 0;

    // Kill point 1: everything is in memory and the write-ahead log only.
    let publishers = Publishers::start(&meniscus, "before-flush", 3, 1);
    publishers.wait_for_acks(150);
    assert_eq!(
        flushes(&meniscus),
        0,
        "kill point 1 is meant to be before any flush (flushEvents 1000)"
    );
    meniscus.kill9();
    let (round, failed) = publishers.finish();
    let recent = acked.len();
    acked.extend(round);
    unacknowledged += failed;
    meniscus.restart();
    verify(
        &meniscus,
        &acked,
        recent,
        unacknowledged,
        "kill before any flush",
    );

    // Kill point 2: after flushes to Parquet, with more events in memory and the WAL.
    let publishers = Publishers::start(&meniscus, "after-flush", 3, 4);
    let baseline = publishers.acks();
    meniscus.wait_until(120, "two flushes to Parquet", || flushes(&meniscus) >= 2);
    publishers.wait_for_acks(baseline + 50);
    assert!(
        !meniscus.data_files(".parquet").is_empty(),
        "flushes wrote no Parquet file"
    );
    meniscus.kill9();
    let (round, failed) = publishers.finish();
    let recent = acked.len();
    acked.extend(round);
    unacknowledged += failed * 4;
    meniscus.restart();
    verify(
        &meniscus,
        &acked,
        recent,
        unacknowledged,
        "kill after flushes",
    );

    // Kill point 3: the moment a flush is reported (WAL segments being deleted, next memtable
    // filling).
    let publishers = Publishers::start(&meniscus, "at-flush", 3, 4);
    let before = flushes(&meniscus);
    meniscus.wait_until(120, "another flush", || flushes(&meniscus) > before);
    meniscus.kill9();
    let (round, failed) = publishers.finish();
    let recent = acked.len();
    acked.extend(round);
    unacknowledged += failed * 4;
    meniscus.restart();
    verify(&meniscus, &acked, recent, unacknowledged, "kill at a flush");

    // Kill points 4..: after varying amounts of traffic, wherever the flush cycle happens to be
    // (flushEvents 1000 with 4 events per request: a flush every ~250 requests).
    for (round, acks) in [37, 211, 97].into_iter().enumerate() {
        let publishers = Publishers::start(&meniscus, &format!("varying-{round}"), 3, 4);
        publishers.wait_for_acks(acks);
        meniscus.kill9();
        let (round_acked, failed) = publishers.finish();
        let recent = acked.len();
        acked.extend(round_acked);
        unacknowledged += failed * 4;
        meniscus.restart();
        verify(
            &meniscus,
            &acked,
            recent,
            unacknowledged,
            &format!("kill after {acks} more publishes"),
        );
    }

    // And the restarted server keeps taking durable publishes.
    let (status, answer) = meniscus.publish_json(
        "acme",
        "acme-token",
        &json!({"pname": "web", "host": "h", "msg": "after the kills"}),
    );
    assert_eq!(status, 202, "{answer}");
}

#[test]
fn restarting_twice_without_traffic_keeps_counts_identical() {
    let mut meniscus = start("storage: {flushEvents: 1000, flushInterval: 60s}");
    let mut acked = Vec::new();
    for request in 0..150 {
        let msgs: Vec<String> = (0..10)
            .map(|index| format!("quiet-{request}-{index}"))
            .collect();
        let body: Vec<_> = msgs
            .iter()
            .map(|msg| json!({"pname": "web", "host": "h", "msg": msg}))
            .collect();
        let (status, text) = meniscus.publish_messages("acme", "acme-token", &body);
        assert_eq!(status, 202, "publish {request}: {text}");
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
        acked.push(Ack {
            msgs,
            job_id: answer["job_id"].as_str().unwrap().to_string(),
        });
    }
    // 1500 events with flushEvents 1000: part in Parquet, part only in memory and the WAL.
    meniscus.wait_until(60, "a flush to Parquet", || flushes(&meniscus) >= 1);
    assert_eq!(meniscus.count("acme", "acme-token", ""), 1500);

    let mut counts = Vec::new();
    for restart in 1..=2 {
        meniscus.kill9();
        meniscus.restart();
        counts.push(meniscus.count("acme", "acme-token", ""));
        verify(
            &meniscus,
            &acked,
            0,
            0,
            &format!("restart {restart} without traffic"),
        );
    }
    assert_eq!(
        counts,
        [1500, 1500],
        "replay must neither lose nor duplicate events"
    );

    // The graceful path too: SIGTERM flushes, the next start replays nothing twice.
    meniscus.stop();
    meniscus.restart();
    assert_eq!(meniscus.count("acme", "acme-token", ""), 1500);
    verify(&meniscus, &acked, 0, 0, "restart after SIGTERM");
}

fn newest_wal_segment(meniscus: &Meniscus) -> std::path::PathBuf {
    let segments = meniscus.data_files(".wal");
    segments.last().cloned().unwrap_or_else(|| {
        panic!(
            "no write-ahead log segment under {}",
            meniscus.data_dir().display()
        )
    })
}

fn publish_batch(meniscus: &Meniscus, label: &str, requests: usize) -> Vec<Ack> {
    (0..requests)
        .map(|request| {
            let msg = format!("{label}-{request}");
            let (status, answer) = meniscus.publish_json(
                "acme",
                "acme-token",
                &json!({"pname": "web", "host": "h", "msg": msg}),
            );
            assert_eq!(status, 202, "{answer}");
            Ack {
                msgs: vec![msg],
                job_id: answer["job_id"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn a_torn_wal_tail_is_cut_and_everything_acknowledged_survives() {
    let mut meniscus = start("storage: {flushInterval: 60s}");
    let mut acked = publish_batch(&meniscus, "torn-a", 200);
    meniscus.kill9();

    // A torn write: the first bytes of a real record (header and part of its payload).
    let segment = newest_wal_segment(&meniscus);
    let bytes = std::fs::read(&segment).unwrap();
    assert!(
        bytes.len() > 64,
        "the newest segment {} holds no records",
        segment.display()
    );
    let whole_length = bytes.len() as u64;
    append(&segment, &bytes[..40]);
    meniscus.restart();
    assert!(
        meniscus.log().contains("tail cut"),
        "the torn tail was not reported; log:\n{}",
        meniscus.log()
    );
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        whole_length,
        "the torn tail must be cut off the file"
    );
    assert_eq!(meniscus.count("acme", "acme-token", ""), 200);
    verify(&meniscus, &acked, 0, 0, "torn record tail");

    // Plain garbage after whole records of the newest segment.
    acked.extend(publish_batch(&meniscus, "torn-b", 100));
    meniscus.kill9();
    let segment = newest_wal_segment(&meniscus);
    assert!(
        std::fs::metadata(&segment).unwrap().len() > 0,
        "{} is empty",
        segment.display()
    );
    append(
        &segment,
        b"\xde\xad\xbe\xef garbage after the last record \x00\x01\x02\xff",
    );
    meniscus.restart();
    assert_eq!(
        meniscus.count("acme", "acme-token", ""),
        300,
        "garbage must not become events, and nothing may be lost"
    );
    verify(&meniscus, &acked, 0, 0, "garbage tail");

    // Writing goes on in a fresh segment, and that survives a further kill too.
    acked.extend(publish_batch(&meniscus, "torn-c", 50));
    meniscus.kill9();
    meniscus.restart();
    assert_eq!(meniscus.count("acme", "acme-token", ""), 350);
    verify(&meniscus, &acked, 0, 0, "after the repaired segments");
}
