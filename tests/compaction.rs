//! Compaction through the real binary: an ended hour written by several flushes becomes one
//! compacted file (messages whole, or split into tokens when configured), every event stays
//! queryable exactly once and byte for byte, and after `kill -9` and a restart the replaced
//! files are gone from disk.

use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use meniscus_tests::{Meniscus, StartOptions, TENANTS};
use serde_json::{json, Value};

/// The manifest's live files (none before the first flush writes the manifest).
fn live_files(meniscus: &Meniscus) -> Vec<Value> {
    let Ok(manifest) = std::fs::read(meniscus.data_dir().join("hot/MANIFEST.json")) else {
        return Vec::new();
    };
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    manifest["files"].as_array().cloned().unwrap_or_default()
}

/// Messages of the events a search for `text` finds.
fn search(meniscus: &Meniscus, text: &str) -> Vec<String> {
    let query = text.replace(' ', "%20");
    let (status, body) = meniscus.get(&format!("/v1/tenant/other/events?q={query}"), "other-token");
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["msg"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_ended_hour_is_compacted_once_quiet_and_survives_kill_9() {
    compact_an_ended_hour(
        "storage: {flushEvents: 10, flushInterval: 1s, compactionGrace: 1s}",
        false,
    );
}

#[test]
fn split_messages_come_back_byte_for_byte_after_compaction() {
    compact_an_ended_hour(
        "storage: {flushEvents: 10, flushInterval: 1s, compactionGrace: 1s, compactionSplitMessages: true}",
        true,
    );
}

/// Three flushes into one past hour, compaction with `storage`, then every check, before and
/// after `kill -9` and a restart. `split`: whether compacted files store message tokens.
fn compact_an_ended_hour(storage: &'static str, split: bool) {
    let mut meniscus = Meniscus::start_with_options(StartOptions {
        storage,
        extra: TENANTS,
        ..Default::default()
    });
    // Three flushes of ten events, all stamped in the same hour three hours ago.
    let hour_ago_3 = chrono::Utc::now() - chrono::Duration::hours(3);
    let stamp = |minute: u32| {
        let base = hour_ago_3.format("%Y-%m-%dT%H").to_string();
        format!("{base}:{minute:02}:00Z")
    };
    // Split files store a message's first words in columns of their own; these messages have
    // fewer and more words than there are columns, and doubled, trailing and non-ASCII
    // spacing, all of which must come back byte for byte.
    let message = |flush: usize, index: usize| match index % 3 {
        0 => format!("old {flush}-{index}"),
        1 => format!(
            "old {flush}-{index} GET /x 200 a b c d e f g  h i j k needle-{flush}-{index} end "
        ),
        _ => format!("old {flush}-{index}  ünï\tcödé ☃ "),
    };
    let mut sent = Vec::new();
    for flush in 0..3 {
        let body: Vec<Value> = (0..10)
            .map(|index| {
                let app = ["zeta", "alpha", "mid"][index % 3];
                sent.push(message(flush, index));
                json!({"host": "h", "pname": app, "time": stamp((flush * 10 + index) as u32), "msg": message(flush, index)})
            })
            .collect();
        let (status, text) = meniscus.publish_messages("other", "other-token", &body);
        assert_eq!(status, 204, "{text}");
        meniscus.wait_until(30, "the flush of this request", || {
            live_files(&meniscus).len() > flush
                || meniscus.metric("meniscus_hot_compactions_total") > 0
        });
        // Flushed files keep messages whole; search finds text in them just the same.
        assert_eq!(
            search(&meniscus, &format!("needle-{flush}-4")),
            [message(flush, 4)]
        );
    }
    meniscus.wait_until(60, "compaction of the ended hour", || {
        meniscus.metric("meniscus_hot_compactions_total") >= 1
            && meniscus.metric("meniscus_hot_compaction_backlog_files") == 0
    });
    let files = live_files(&meniscus);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["compacted"], true);
    assert_eq!(
        files[0]["msg_tokens"].as_bool().unwrap_or(false),
        split,
        "{files:?}"
    );
    assert_eq!(files[0]["rows"], 30);
    assert_eq!(
        meniscus.count("other", "other-token", "msg LIKE 'old %'"),
        30
    );
    let distinct = meniscus.sql(
        "other",
        "other-token",
        "SELECT count(DISTINCT event_id) AS n FROM events",
    );
    assert_eq!(distinct[0]["n"], 30);
    sent.sort();
    let stored_messages = |meniscus: &Meniscus| -> Vec<String> {
        meniscus
            .sql(
                "other",
                "other-token",
                "SELECT msg FROM events ORDER BY msg",
            )
            .iter()
            .map(|row| row["msg"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(stored_messages(&meniscus), sent);
    // Text beyond the token columns, and text across several of them, is found by search
    // and by SQL alike.
    assert_eq!(search(&meniscus, "needle-2-4"), [message(2, 4)]);
    assert_eq!(search(&meniscus, "k needle-1-7 e"), [message(1, 7)]);
    assert_eq!(search(&meniscus, "0-0"), [message(0, 0)]);
    assert_eq!(
        meniscus.count("other", "other-token", "msg LIKE '%g  h i j k needle%'"),
        9
    );
    assert_eq!(meniscus.count("other", "other-token", "msg LIKE '% ☃ '"), 9);

    // The replaced files wait on disk for running queries; a crash and a restart removes them.
    assert!(meniscus.data_files(".parquet").len() > 1);
    meniscus.kill9();
    meniscus.restart();
    assert_eq!(
        meniscus.wait_for_count("other", "other-token", "msg LIKE 'old %'", 30),
        30
    );
    assert_eq!(meniscus.data_files(".parquet").len(), 1);
    assert_eq!(live_files(&meniscus).len(), 1);
    assert_eq!(stored_messages(&meniscus), sent);
    let file = std::fs::File::open(&meniscus.data_files(".parquet")[0]).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let columns: Vec<&str> = schema
        .columns()
        .iter()
        .map(|column| column.name())
        .collect();
    assert_eq!(
        columns.contains(&"msg_t0") && columns.contains(&"msg_t11"),
        split,
        "token columns in the compacted file: {columns:?}"
    );
}
