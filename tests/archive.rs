//! The long-term archive against a real S3-compatible server (SeaweedFS on loopback, built by
//! tools/seaweedfs/build.sh) and real `meniscus` processes: hours leave the hot store only once
//! archived, queries read archived hours transparently, nothing is stored in plain text, faults
//! of the server and of Meniscus lose and duplicate nothing, retention reaches every tier, and
//! keys rotate without rewriting objects.
//!
//! Events are sent with timestamps hours in the past, so their hours are closed at once; the
//! tenants keep one hour hot (`shortTerm: 1h`), compaction waits one second, uploads and
//! retention passes run every second.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use meniscus_store::archive::crypto::{sidecar_key_id, CHUNKED_MAGIC, OBJECT_MAGIC};
use meniscus_store::hot::sealed::{key_id_of, SEALED_MAGIC};
use meniscus_tests::azurite::Azurite;
use meniscus_tests::gcs::FakeGcs;
use meniscus_tests::s3::SeaweedFs;
use meniscus_tests::{files_under, meniscus_binary, run, Meniscus, StartOptions};
use serde_json::Value;

const STORAGE: &str =
    "storage: {flushInterval: 1s, compactionGrace: 1s, retentionCheckInterval: 1s}";

fn tenants(long_term: &str) -> String {
    format!(
        r#"
tenants:
  - id: acme
    tokens: [{{value: acme-token}}]
    producers: [{{name: web, durable: true}}]
    retention: {{shortTerm: 1h, longTerm: {long_term}}}
  - id: other
    tokens: [{{value: other-token}}]
    retention: {{shortTerm: 1h, longTerm: {long_term}}}
"#
    )
}

fn start(archive: &str, long_term: &str) -> Meniscus {
    Meniscus::start_with_options(StartOptions {
        storage: STORAGE,
        extra: &format!("{archive}{}", tenants(long_term)),
        ..StartOptions::default()
    })
}

/// Sends `count` lines to `tenant`, stamped `hours` before now (minute 30 of that hour, so
/// every line of a call falls in one hourly window), with texts `{text} {i}`.
fn send_hours_ago(meniscus: &Meniscus, tenant: &str, hours: i64, count: usize, text: &str) {
    let stamp = (Utc::now() - chrono::Duration::hours(hours))
        .with_minute(30)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ");
    let mut stream = TcpStream::connect(meniscus.syslog_addr()).unwrap();
    let mut batch = String::new();
    for index in 0..count {
        batch.push_str(&format!(
            "<38>1 {stamp} host app 1 - [meniscus tenant=\"{tenant}\" token=\"{tenant}-token\"] {text} {index}\n"
        ));
    }
    stream.write_all(batch.as_bytes()).unwrap();
}

/// Publishes one durable event to acme over HTTP, stamped `hours` before now (minute 10);
/// returns its job id.
fn publish_durable(meniscus: &Meniscus, hours: i64, text: &str) -> String {
    let stamp = (Utc::now() - chrono::Duration::hours(hours))
        .with_minute(10)
        .unwrap()
        .to_rfc3339();
    let (status, answer) = meniscus.publish_json(
        "acme",
        "acme-token",
        &serde_json::json!({"pname": "web", "host": "h", "time": stamp, "msg": text}),
    );
    assert_eq!(status, 202, "{answer}");
    answer["job_id"].as_str().unwrap().to_string()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn read_json(path: std::path::PathBuf) -> Value {
    std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// Windows of `tenant` in the hot store's manifest that started more than an hour ago.
fn old_hot_windows(meniscus: &Meniscus, tenant: &str) -> usize {
    let manifest = read_json(meniscus.data_dir().join("hot/MANIFEST.json"));
    let hour_ago = Utc::now().timestamp() - 3600;
    manifest["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter(|file| {
                    file["tenant"] == tenant
                        && file["window"].as_i64().unwrap_or(0) < hour_ago - 3600
                })
                .count()
        })
        .unwrap_or(0)
}

/// Windows of `tenant` with an archived object, per the archive's manifest.
fn archived_windows(meniscus: &Meniscus, tenant: &str) -> std::collections::BTreeSet<i64> {
    let manifest = read_json(meniscus.data_dir().join("archive/ARCHIVE.json"));
    manifest["objects"]
        .as_array()
        .map(|objects| {
            objects
                .iter()
                .filter(|object| object["tenant"] == tenant)
                .filter_map(|object| object["window"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `windows` hours of `tenant` are archived and none older than an hour is hot.
fn wait_archived_and_expired(meniscus: &Meniscus, tenant: &str, windows: usize) {
    wait_until(
        &format!("{windows} archived hours of {tenant} and their hot copies gone"),
        Duration::from_secs(90),
        || {
            archived_windows(meniscus, tenant).len() >= windows
                && old_hot_windows(meniscus, tenant) == 0
        },
    );
}

fn count_and_distinct(meniscus: &Meniscus, tenant: &str, filter: &str) -> (u64, u64) {
    let rows = meniscus.sql(
        tenant,
        &format!("{tenant}-token"),
        &format!("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events WHERE {filter}"),
    );
    (
        rows[0]["n"].as_u64().unwrap(),
        rows[0]["d"].as_u64().unwrap(),
    )
}

/// acme's events counted per minute and severity (a query that reads two small columns).
fn count_per_minute_and_severity(meniscus: &Meniscus) -> u64 {
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT date_trunc('minute', ts) AS m, severity, count(*) AS n FROM events GROUP BY 1, 2",
    );
    rows.iter().map(|row| row["n"].as_u64().unwrap()).sum()
}

/// Events a search (`q`, URL-encoded) finds for acme, up to 100.
fn search_count(meniscus: &Meniscus, q: &str) -> usize {
    let (status, page) = meniscus.get(
        &format!("/v1/tenant/acme/events?q={q}&limit=100"),
        "acme-token",
    );
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().len()
}

/// Archived objects fetched from the target so far (not found in the local cache).
fn fetch_misses(meniscus: &Meniscus) -> u64 {
    meniscus.metric("meniscus_archive_fetches_total{result=\"miss\"}")
}

fn fetch_hits(meniscus: &Meniscus) -> u64 {
    meniscus.metric("meniscus_archive_fetches_total{result=\"hit\"}")
}

fn readyz(meniscus: &Meniscus) -> (u16, String) {
    let response = meniscus.client.get(meniscus.url("/readyz")).send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn archived_hours_answer_queries_once_the_hot_copy_is_gone_and_hold_no_plain_text() {
    let s3 = SeaweedFs::start("archive");
    let meniscus = start(&s3.archive_config("meniscus"), "10h");
    for hours in [2, 3, 4] {
        send_hours_ago(
            &meniscus,
            "acme",
            hours,
            50,
            &format!("archive-needle hour{hours} line"),
        );
    }
    send_hours_ago(&meniscus, "acme", 0, 20, "fresh line");
    send_hours_ago(&meniscus, "other", 3, 10, "other-secret line");
    // A durable publish into an old hour: its job goes from stored to archived.
    let job_id = publish_durable(&meniscus, 3, "archive-needle durable job");

    wait_archived_and_expired(&meniscus, "acme", 3);
    wait_archived_and_expired(&meniscus, "other", 1);

    // A search for text only one archived hour holds fetches only that hour's object: the
    // skip indexes kept with the archive rule the others out.
    // (Several of the text's 4-grams are missing from the other hours, so a false positive of
    // their filters, each a few percent likely per 4-gram, cannot make this flaky.)
    assert_eq!(search_count(&meniscus, "hour4%20line"), 50);
    assert_eq!(
        fetch_misses(&meniscus),
        1,
        "only hour 4's object is fetched"
    );
    // SQL too: the statement is planned first to find the text it requires.
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "msg LIKE '%hour3 line%'"),
        (50, 50)
    );
    assert_eq!(
        fetch_misses(&meniscus),
        2,
        "hour 3's object is fetched, hour 2's is not"
    );
    // A statement that scans events twice (a self-join) whose every scan requires text
    // fetches only the hours that may hold one scan's text: still not hour 2's object.
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT count(*) AS n FROM events a JOIN events b \
         ON split_part(a.msg, ' ', 4) = split_part(b.msg, ' ', 4) \
         WHERE a.msg LIKE '%hour3 line%' AND b.msg LIKE '%hour4 line%'",
    );
    assert_eq!(rows[0]["n"].as_u64(), Some(50), "{rows:?}");
    assert_eq!(
        fetch_misses(&meniscus),
        2,
        "hour 2's object is not fetched for the self-join"
    );
    // The skip indexes are kept with the objects too: with the local copies gone (a lost data
    // directory), they are fetched back from the bucket and still spare hour 2's object.
    let local_indexes = meniscus.data_dir().join("archive/skip");
    // Sealed with the tenant's key, as the objects are: no Bloom filter rests in clear.
    let sealed_copies = |dir: &std::path::Path| {
        let copies = files_under(dir, ".skip");
        assert!(!copies.is_empty(), "{}", dir.display());
        for copy in copies {
            let bytes = std::fs::read(&copy).unwrap();
            assert!(bytes.starts_with(SEALED_MAGIC), "{}", copy.display());
            assert!(!bytes.windows(8).any(|window| window == b"MNSKIP01"));
        }
    };
    sealed_copies(&local_indexes);
    std::fs::remove_dir_all(&local_indexes).unwrap();
    assert_eq!(search_count(&meniscus, "hour4%20line"), 50);
    assert_eq!(
        fetch_misses(&meniscus),
        2,
        "hour 2's object is still not fetched"
    );
    assert!(local_indexes.exists(), "the fetched indexes are kept again");
    sealed_copies(&local_indexes);

    // SQL opens only the archived hours its filters on `ts` allow: from the start of hour 2,
    // hour 2's object is fetched, and hours 3 and 4 (cached) are not even looked up.
    let hour2 = (Utc::now() - chrono::Duration::hours(2))
        .with_minute(0)
        .and_then(|time| time.with_second(0))
        .unwrap();
    let (hits, misses) = (fetch_hits(&meniscus), fetch_misses(&meniscus));
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        &format!(
            "SELECT count(*) AS n FROM events WHERE ts >= TIMESTAMP '{}'",
            hour2.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    );
    assert_eq!(
        rows[0]["n"].as_u64(),
        Some(70),
        "hour 2's 50 and 20 fresh: {rows:?}"
    );
    assert_eq!(fetch_misses(&meniscus), misses + 1, "hour 2's object");
    assert_eq!(fetch_hits(&meniscus), hits, "no other hour looked up");
    // A statement that reads no row of events (a client's health check) opens no hour.
    assert_eq!(
        meniscus.sql("acme", "acme-token", "SELECT 1 AS one")[0]["one"],
        1
    );
    assert_eq!(
        fetch_misses(&meniscus) + fetch_hits(&meniscus),
        misses + 1 + hits
    );

    // Every event, once, though three of acme's hours now live only in the archive.
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (171, 171));
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "msg LIKE 'archive-needle hour3%'"),
        (50, 50)
    );
    let (status, page) = meniscus.get("/v1/tenant/acme/events?q=hour4&limit=100", "acme-token");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 50, "{page}");
    assert!(page.get("unreadable").is_none(), "{page}");
    // LogQL over the same hours.
    let query = "sum(count_over_time({host=\"host\"} |= \"archive-needle\" [5h]))";
    let response = meniscus
        .client
        .get(
            reqwest::Url::parse_with_params(
                &meniscus.url("/loki/api/v1/query"),
                &[
                    ("query", query.to_string()),
                    ("time", Utc::now().timestamp().to_string()),
                ],
            )
            .unwrap(),
        )
        .header("X-Scope-OrgID", "acme")
        .header("Authorization", "Bearer acme-token")
        .send()
        .unwrap();
    let loki: Value = response.json().unwrap();
    assert_eq!(loki["data"]["result"][0]["value"][1], "150", "{loki}");
    // The job's events are in the archive.
    let (status, job) = meniscus.get(&format!("/v1/tenant/acme/jobs/{job_id}"), "acme-token");
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("archived")),
        "{job}"
    );
    // Tenants stay apart.
    assert_eq!(count_and_distinct(&meniscus, "other", "true"), (10, 10));
    assert_eq!(
        count_and_distinct(&meniscus, "other", "msg LIKE '%needle%'"),
        (0, 0)
    );
    assert!(meniscus.metric("meniscus_archive_fetches_total{result=\"miss\"}") >= 4);

    // At rest: objects by tenant and hour, sealed, no message text, no Parquet footer in clear.
    let keys = s3.list("meniscus");
    let objects: Vec<&String> = keys
        .iter()
        .filter(|key| key.ends_with(".events.enc"))
        .collect();
    assert!(objects.len() >= 4, "{keys:?}");
    // Each object's skip index is stored with it, sealed too.
    for key in &objects {
        let index = format!("{}.skip.enc", key.strip_suffix(".events.enc").unwrap());
        assert!(keys.contains(&index), "{key} has its skip index: {keys:?}");
        let bytes = s3.get(&index);
        assert!(bytes.starts_with(OBJECT_MAGIC), "{index}");
        assert!(
            !bytes.windows(6).any(|window| window == b"MNSKIP"),
            "{index} in clear"
        );
    }
    for key in &objects {
        let tenant = key.split('/').nth(1).unwrap();
        assert!(["acme", "other"].contains(&tenant), "{key}");
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 7, "PREFIX/TENANT/YYYY/MM/DD/HH/NAME: {key}");
        assert!(
            keys.contains(&format!("{key}.key")),
            "{key} has its key sidecar"
        );
        let bytes = s3.get(key);
        assert!(bytes.starts_with(CHUNKED_MAGIC), "{key}");
        for text in [
            &b"archive-needle"[..],
            b"other-secret",
            b"MNEV",
            b"PAR1",
            b"host",
        ] {
            assert!(
                !bytes.windows(text.len()).any(|window| window == text),
                "{key} holds {:?} in clear",
                String::from_utf8_lossy(text)
            );
        }
    }

    // Tenant B's key cannot open tenant A's object: put acme's object and sidecar where
    // other's hour is. other's query then reports the hour unreadable and shows nothing of
    // acme's.
    let other_key = objects
        .iter()
        .find(|key| key.contains("/other/"))
        .unwrap()
        .to_string();
    let hour = &other_key.split('/').collect::<Vec<_>>()[2..6].join("/");
    let acme_key = objects
        .iter()
        .find(|key| key.contains("/acme/") && key.contains(hour.as_str()))
        .unwrap()
        .to_string();
    s3.put(&other_key, s3.get(&acme_key));
    s3.put(
        &format!("{other_key}.key"),
        s3.get(&format!("{acme_key}.key")),
    );
    let mut meniscus = meniscus;
    meniscus.restart(); // an empty local cache: objects are fetched again
    let (status, body) = meniscus.sql_raw("other", "other-token", "SELECT msg FROM events");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 0, "{body}");
    let reason = body["unreadable"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("could not be read"), "{body}");
    assert!(meniscus.metric("meniscus_archive_fetches_total{result=\"error\"}") >= 1);
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (171, 171));
}

#[test]
fn a_dead_s3_server_keeps_data_hot_and_uploads_resume_without_loss_or_duplicates() {
    let mut s3 = SeaweedFs::start("archive");
    s3.kill9();
    let mut meniscus = start(&s3.archive_config("meniscus"), "30h");
    send_hours_ago(&meniscus, "acme", 2, 100, "early line");
    send_hours_ago(&meniscus, "acme", 3, 100, "early line");
    wait_until("failed uploads to show", Duration::from_secs(60), || {
        readyz(&meniscus)
            .1
            .contains("archive: uploads to s3://archive/meniscus fail")
    });
    let (status, text) = readyz(&meniscus);
    assert_eq!(status, 200, "ingest and queries still work: {text}");
    assert_eq!(meniscus.metric("meniscus_archive_healthy"), 0);
    assert!(meniscus.metric("meniscus_archive_uploads_total{result=\"error\"}") >= 1);
    // Past their short-term retention, yet kept hot: nothing is archived.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(old_hot_windows(&meniscus, "acme"), 2);
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (200, 200));

    s3.restart();
    wait_archived_and_expired(&meniscus, "acme", 2);
    assert_eq!(readyz(&meniscus), (200, "ready\n".to_string()));
    assert_eq!(meniscus.metric("meniscus_archive_healthy"), 1);
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (200, 200));

    // The server dies in the middle of a run of uploads, then Meniscus is killed -9 in the
    // middle of the next one: every event is still there exactly once when both are back.
    for hours in 5..=12 {
        send_hours_ago(
            &meniscus,
            "acme",
            hours,
            200,
            &format!("batch line h{hours}"),
        );
    }
    wait_until(
        "the first upload of the run",
        Duration::from_secs(60),
        || archived_windows(&meniscus, "acme").len() > 2,
    );
    s3.kill9();
    std::thread::sleep(Duration::from_secs(2));
    // Hours not yet archived are still hot and answer; hours already archived whose hot copy
    // is gone (and not in the local cache) cannot be fetched now, and the answer says which.
    let (status, body) = meniscus.sql_raw("acme", "acme-token", "SELECT count(*) AS n FROM events");
    assert_eq!(status, 200, "{body}");
    let answered = body["rows"][0]["n"].as_u64().unwrap();
    let unreadable = body["unreadable"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(answered + 200 * unreadable, 1800, "{body}");
    s3.restart();
    wait_until("another upload", Duration::from_secs(60), || {
        archived_windows(&meniscus, "acme").len() > 4
    });
    meniscus.kill9();
    meniscus.restart();
    wait_archived_and_expired(&meniscus, "acme", 10);
    let (status, body) = meniscus.sql_raw(
        "acme",
        "acme-token",
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["rows"][0]["n"].as_u64(), body["rows"][0]["d"].as_u64()),
        (Some(1800), Some(1800)),
        "{body}"
    );
    for hours in 5..=12 {
        let filter = format!("msg LIKE 'batch line h{hours} %'");
        assert_eq!(
            count_and_distinct(&meniscus, "acme", &filter),
            (200, 200),
            "hour {hours}"
        );
    }
    // One object per archived file: none twice under two names.
    let objects: Vec<String> = s3
        .list("meniscus/acme")
        .into_iter()
        .filter(|key| key.ends_with(".events.enc"))
        .collect();
    let manifest = read_json(meniscus.data_dir().join("archive/ARCHIVE.json"));
    assert_eq!(
        objects.len(),
        manifest["objects"].as_array().unwrap().len(),
        "{objects:?}"
    );
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_explained_and_lose_nothing() {
    let s3 = SeaweedFs::start("archive");
    let cases = [
        (
            "a wrong secret",
            s3.archive_config("m")
                .replace("meniscus-test-secret-key", "wrong-secret"),
        ),
        (
            "a missing bucket",
            s3.archive_config("m")
                .replace("s3://archive/", "s3://no-such-bucket/"),
        ),
    ];
    for (case, archive) in cases {
        let meniscus = start(&archive, "30h");
        send_hours_ago(&meniscus, "acme", 2, 10, "kept line");
        wait_until(
            &format!("{case} to show in /readyz"),
            Duration::from_secs(60),
            || readyz(&meniscus).1.contains("archive: uploads to s3://"),
        );
        let (status, text) = readyz(&meniscus);
        eprintln!("{case}: /readyz says {text:?}");
        assert_eq!(status, 200, "{case}: {text}");
        // The server's own words, one line.
        let explained = match case {
            "a wrong secret" => text.contains("403 Forbidden: SignatureDoesNotMatch"),
            _ => text.contains("404 Not Found: NoSuchBucket: The specified bucket does not exist"),
        };
        assert!(explained, "{case}: {text}");
        let log = std::fs::read_to_string(meniscus.log_path()).unwrap();
        assert!(log.contains("archive upload failed"), "{case}: logged");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(old_hot_windows(&meniscus, "acme"), 1, "{case}: kept hot");
        assert_eq!(
            count_and_distinct(&meniscus, "acme", "true"),
            (10, 10),
            "{case}"
        );
    }
}

#[test]
fn retention_removes_hours_from_the_hot_store_the_archive_and_every_answer() {
    let s3 = SeaweedFs::start("archive");
    let mut meniscus = start(&s3.archive_config("meniscus"), "4h");
    send_hours_ago(&meniscus, "acme", 2, 30, "kept line");
    // Past the long-term retention already: never archived, never answered.
    send_hours_ago(&meniscus, "acme", 6, 30, "expired line");
    send_hours_ago(&meniscus, "acme", 0, 5, "fresh line");
    wait_archived_and_expired(&meniscus, "acme", 1);
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (35, 35));
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "msg LIKE 'expired%'"),
        (0, 0)
    );
    assert_eq!(archived_windows(&meniscus, "acme").len(), 1);
    let archived_keys = s3.list("meniscus/acme");
    assert_eq!(
        archived_keys.len(),
        3,
        "one object, its sidecar and its skip index: {archived_keys:?}"
    );

    // The tenant's long-term retention shrinks to one hour: the archived hour goes from the
    // answers, the archive's manifest and the bucket.
    let config_path = meniscus.dir.path().join("meniscus.yaml");
    let config = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("longTerm: 4h", "longTerm: 1h");
    std::fs::write(&config_path, config).unwrap();
    meniscus.restart();
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (5, 5));
    wait_until("expired objects deleted", Duration::from_secs(60), || {
        s3.list("meniscus/acme").is_empty()
    });
    assert!(archived_windows(&meniscus, "acme").is_empty());
    assert_eq!(
        meniscus.metric("meniscus_archive_expired_objects_total{tenant=\"acme\"}"),
        1
    );

    // A range wholly before the retention is an empty answer, not an error.
    let day = 86_400_i64;
    let now = Utc::now().timestamp();
    let response = meniscus
        .client
        .get(
            reqwest::Url::parse_with_params(
                &meniscus.url("/loki/api/v1/query_range"),
                &[
                    ("query", "{host=\"host\"}".to_string()),
                    ("start", (now - 400 * day).to_string()),
                    ("end", (now - 380 * day).to_string()),
                ],
            )
            .unwrap(),
        )
        .header("X-Scope-OrgID", "acme")
        .header("Authorization", "Bearer acme-token")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body["data"]["result"], serde_json::json!([]), "{body}");
}

#[test]
fn key_rotation_rewraps_every_object_and_old_and_new_hours_stay_readable() {
    let s3 = SeaweedFs::start("archive");
    let mut meniscus = start(&s3.archive_config("meniscus"), "30h");
    send_hours_ago(&meniscus, "acme", 3, 20, "before rotation");
    // A durable publish into the same hour, looked up at the end.
    let job_id = publish_durable(&meniscus, 3, "a durable job");
    wait_archived_and_expired(&meniscus, "acme", 1);
    let key_file = meniscus.data_dir().join("keys/acme.json");
    let first = read_json(key_file.clone())["current"]
        .as_str()
        .unwrap()
        .to_string();
    let config = meniscus.dir.path().join("meniscus.yaml");
    let rotate = |extra: &[&str]| {
        run(std::process::Command::new(meniscus_binary())
            .args(["keys", "rotate", "acme", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(meniscus.data_dir())
            .args(extra))
    };
    let output = rotate(&[]);
    assert!(output.contains("1 object key(s) re-wrapped"), "{output}");
    let keys = read_json(key_file.clone());
    let second = keys["current"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        keys["keys"].as_object().unwrap().len(),
        2,
        "the old key is kept: {keys}"
    );

    send_hours_ago(&meniscus, "acme", 2, 20, "after rotation");
    wait_archived_and_expired(&meniscus, "acme", 2);
    let sidecars = |s3: &SeaweedFs| -> Vec<String> {
        s3.list("meniscus/acme")
            .into_iter()
            .filter(|key| key.ends_with(".key"))
            .map(|key| sidecar_key_id(&s3.get(&key)).unwrap())
            .collect()
    };
    assert_eq!(sidecars(&s3), vec![second.clone(), second.clone()]);

    let output = rotate(&["--retire-old"]);
    assert!(
        output.contains("2 object key(s) re-wrapped; old keys dropped"),
        "{output}"
    );
    let keys = read_json(key_file);
    let third = keys["current"].as_str().unwrap().to_string();
    assert_eq!(
        keys["keys"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec![&third]
    );
    assert_eq!(sidecars(&s3), vec![third.clone(), third.clone()]);
    // The local copies of the objects' skip indexes (kept under the target's prefix) are
    // re-wrapped too: sealed under the newest key, they need no fetch to open.
    let copies = files_under(
        &meniscus.data_dir().join("archive/skip/meniscus/acme"),
        ".skip",
    );
    assert_eq!(copies.len(), 2, "{copies:?}");
    for copy in &copies {
        assert_eq!(
            key_id_of(copy).unwrap(),
            Some(third.clone()),
            "{}",
            copy.display()
        );
    }
    // Fetched afresh (the cache starts empty) with only the newest key: both hours read.
    meniscus.restart();
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "msg LIKE 'before rotation%'"),
        (20, 20)
    );
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "msg LIKE 'after rotation%'"),
        (20, 20)
    );

    // A query that would fetch more archived bytes than the local cache holds is refused
    // with the figures; one that needs no archived hour still answers. The cache holds the
    // larger hour, not both.
    let manifest = read_json(meniscus.data_dir().join("archive/ARCHIVE.json"));
    let largest = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["plainBytes"].as_u64().unwrap())
        .max()
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let limited = text.replace(
        "  uploadInterval: 1s\n",
        &format!("  uploadInterval: 1s\n  cacheBytes: {largest}\n"),
    );
    assert_ne!(text, limited);
    std::fs::write(&config, limited).unwrap();
    meniscus.restart();
    let (status, body) = meniscus.sql_raw("acme", "acme-token", "SELECT count(*) AS n FROM events");
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("archive.cacheBytes") && message.contains("narrow its time range"),
        "{body}"
    );
    let (status, page) = meniscus.get("/v1/tenant/acme/events?from=30m", "acme-token");
    assert_eq!(status, 200, "{page}");
    // A job lookup must read every hour (a job's events may carry any time; after the
    // restart the job is no longer remembered): it reads them in turns that fit the cache.
    let (status, job) = meniscus.get(&format!("/v1/tenant/acme/jobs/{job_id}"), "acme-token");
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["events"], 1, "{job}");
    assert_eq!(job["status"], "archived", "{job}");
}

/// Sends 40 lines (`{needle} hourN line i`) to each of two closed hours of acme, waits until
/// both live only in the archive, and reads them back through SQL and search, fetching objects
/// from the target.
fn archive_two_hours_and_read_them_back(meniscus: &Meniscus, needle: &str) {
    for hours in [2, 3] {
        send_hours_ago(
            meniscus,
            "acme",
            hours,
            40,
            &format!("{needle} hour{hours} line"),
        );
    }
    wait_archived_and_expired(meniscus, "acme", 2);
    assert_eq!(count_and_distinct(meniscus, "acme", "true"), (80, 80));
    assert_eq!(search_count(meniscus, "hour3%20line"), 40);
    assert!(fetch_misses(meniscus) >= 1);
}

#[test]
fn azure_blob_storage_archives_and_answers_as_s3_does() {
    let azurite = Azurite::start("archive");
    let meniscus = start(&azurite.archive_config("archive", "meniscus"), "10h");
    archive_two_hours_and_read_them_back(&meniscus, "azure-needle");
    // At rest in the emulator's own files: sealed, none of the text.
    let mut stack = vec![azurite.dir.path().to_path_buf()];
    let mut blob_bytes = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            blob_bytes += bytes.len();
            assert!(
                !bytes.windows(12).any(|window| window == b"azure-needle"),
                "{} holds message text in clear",
                path.display()
            );
        }
    }
    assert!(
        blob_bytes > 2_000,
        "the objects reached the emulator's storage"
    );
}

#[test]
fn google_cloud_storage_archives_and_answers_as_s3_does() {
    let gcs = FakeGcs::start("archive");
    let meniscus = start(&gcs.archive_config("meniscus"), "10h");
    archive_two_hours_and_read_them_back(&meniscus, "gcs-needle");
    // Under the tenant's prefix, each object with its key sidecar; sealed, none of the text.
    let names = gcs.list("meniscus/acme/").expect("a listing");
    let objects: Vec<&String> = names
        .iter()
        .filter(|name| name.ends_with(".events.enc"))
        .collect();
    assert_eq!(objects.len(), 2, "{names:?}");
    for object in objects {
        assert!(names.contains(&format!("{object}.key")), "{names:?}");
        let bytes = gcs.get(object);
        assert!(bytes.starts_with(CHUNKED_MAGIC), "{object} is not sealed");
        assert!(
            !bytes.windows(10).any(|window| window == b"gcs-needle"),
            "{object} holds message text in clear"
        );
    }
    let (status, body) = readyz(&meniscus);
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("archive:"), "{body}");
}

#[test]
fn purge_deletes_one_tenants_hot_and_archived_data_and_keys_and_refuses_while_meniscus_runs() {
    let s3 = SeaweedFs::start("archive");
    let mut meniscus = start(&s3.archive_config("meniscus"), "10h");
    send_hours_ago(&meniscus, "acme", 3, 20, "old acme");
    send_hours_ago(&meniscus, "other", 3, 20, "old other");
    wait_archived_and_expired(&meniscus, "acme", 1);
    wait_archived_and_expired(&meniscus, "other", 1);
    // A later hour, hot or being archived as the purge comes.
    send_hours_ago(&meniscus, "acme", 1, 10, "fresh acme");
    wait_until("the fresh events", Duration::from_secs(30), || {
        count_and_distinct(&meniscus, "acme", "msg LIKE 'fresh acme%'") == (10, 10)
    });
    assert!(!s3.list("meniscus/acme").is_empty());
    let config = meniscus.dir.path().join("meniscus.yaml");
    let data_dir = meniscus.data_dir().to_path_buf();
    let purge_of = |tenant: &str| {
        std::process::Command::new(meniscus_binary())
            .args(["purge", tenant, "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap()
    };
    let purge = || purge_of("acme");

    // While Meniscus runs, the data directory is locked: refused, with the reason, and
    // nothing deleted.
    let refused = purge();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another Meniscus process"),
        "{stderr}"
    );
    assert!(!s3.list("meniscus/acme").is_empty());
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "msg LIKE 'fresh acme%'"),
        (10, 10)
    );

    // Stopped the hard way (the fresh events may be only in the write-ahead log). A name that
    // is not a tenant id (a path, capitals) is refused before anything is opened; a tenant
    // with nothing stored purges nothing, and says so.
    meniscus.kill9();
    for invalid in ["../acme", "ACME", ""] {
        let refused = purge_of(invalid);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{invalid:?}: {stderr}");
        assert!(
            stderr.contains("is not a tenant id"),
            "{invalid:?}: {stderr}"
        );
    }
    let nobody = purge_of("nobody");
    let stdout = String::from_utf8_lossy(&nobody.stdout);
    assert!(nobody.status.success(), "{stdout}");
    assert!(
        stdout.contains("purged 0 hot-store file(s) and 0 archived object(s)"),
        "{stdout}"
    );
    assert!(!s3.list("meniscus/acme").is_empty(), "acme untouched");
    let purged = purge();
    let stdout = String::from_utf8_lossy(&purged.stdout);
    assert!(
        purged.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&purged.stderr)
    );
    assert!(stdout.contains("archived object(s)"), "{stdout}");
    assert_eq!(s3.list("meniscus/acme"), Vec::<String>::new());
    assert!(!meniscus.data_dir().join("keys/acme.json").exists());
    assert!(meniscus.data_dir().join("keys/other.json").exists());
    assert_eq!(archived_windows(&meniscus, "acme").len(), 0);

    // Started again (acme still configured): none of acme's events come back, from the hot
    // store, the log or the archive; the other tenant's are all there.
    meniscus.restart();
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (0, 0));
    assert_eq!(count_and_distinct(&meniscus, "other", "true"), (20, 20));
    let log = meniscus.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// The data directory lost (keys kept apart, as `keyDir` advises): `meniscus archive rebuild`
/// records the archive's objects again from a listing of the bucket, and every archived event
/// is found once more, exactly once. A second rebuild records nothing twice.
#[test]
fn a_lost_data_directory_reads_its_archive_again_after_a_rebuild_from_a_listing() {
    let s3 = SeaweedFs::start("archive");
    let keys = tempfile::tempdir().unwrap();
    let archive = format!(
        "{}  keyDir: {}\n",
        s3.archive_config("meniscus"),
        keys.path().display()
    );
    let mut meniscus = start(&archive, "10h");
    archive_two_hours_and_read_them_back(&meniscus, "rebuild-needle");
    send_hours_ago(&meniscus, "other", 3, 15, "other line");
    wait_archived_and_expired(&meniscus, "other", 1);
    assert_eq!(count_and_distinct(&meniscus, "other", "true"), (15, 15));

    meniscus.kill9();
    std::fs::remove_dir_all(meniscus.data_dir()).unwrap();
    let config = meniscus.dir.path().join("meniscus.yaml");
    let rebuild = || {
        run(std::process::Command::new(meniscus_binary())
            .args(["archive", "rebuild", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(meniscus.data_dir()))
    };
    let output = rebuild();
    assert!(
        output.contains("3 object(s) recorded (95 rows)"),
        "{output}"
    );
    let output = rebuild();
    assert!(
        output.contains("0 object(s) recorded (0 rows)") && output.contains("3 already recorded"),
        "{output}"
    );

    meniscus.restart();
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (80, 80));
    assert_eq!(search_count(&meniscus, "hour3%20line"), 40);
    assert_eq!(count_and_distinct(&meniscus, "other", "true"), (15, 15));
    // New hours go up under the new data directory's own origin, beside the old objects.
    send_hours_ago(&meniscus, "acme", 4, 10, "after the rebuild");
    wait_until("the new hour archived", Duration::from_secs(90), || {
        archived_windows(&meniscus, "acme").len() == 3 && old_hot_windows(&meniscus, "acme") == 0
    });
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), (90, 90));
    let log = meniscus.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// Lines [`send_one_large_hour`] sends.
const LARGE_HOUR_LINES: usize = 120_000;

/// Sends [`LARGE_HOUR_LINES`] lines of text that compresses little (6 bits a character) to
/// one closed hour of acme: about 14 MiB of Parquet, more than one upload part.
fn send_one_large_hour(meniscus: &Meniscus) {
    let alphabet: Vec<char> = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain(['+', '/'])
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = String::with_capacity(150);
    let stamp = (Utc::now() - chrono::Duration::hours(3))
        .with_minute(30)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ");
    let mut stream = TcpStream::connect(meniscus.syslog_addr()).unwrap();
    let mut batch = String::new();
    for index in 0..LARGE_HOUR_LINES {
        noise.clear();
        for _ in 0..150 {
            // xorshift64: enough entropy that zstd cannot shrink it much.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            noise.push(alphabet[(state % 64) as usize]);
        }
        batch.push_str(&format!(
            "<38>1 {stamp} host app 1 - [meniscus tenant=\"acme\" token=\"acme-token\"] big {index} {noise}\n"
        ));
        if batch.len() > 1 << 20 {
            stream.write_all(batch.as_bytes()).unwrap();
            batch.clear();
        }
    }
    stream.write_all(batch.as_bytes()).unwrap();
}

/// Waits until the large hour lives only in the archive; its object's key and stored size,
/// checked to be over one part.
fn large_object_archived(meniscus: &Meniscus) -> (String, u64) {
    wait_archived_and_expired(meniscus, "acme", 1);
    let manifest = read_json(meniscus.data_dir().join("archive/ARCHIVE.json"));
    let stored = manifest["objects"][0]["storedBytes"].as_u64().unwrap();
    assert!(
        stored > meniscus_store::archive::MULTIPART_BYTES as u64,
        "the object ({stored} bytes) is larger than one part"
    );
    let key = manifest["objects"][0]["key"].as_str().unwrap().to_string();
    // A busy hour stays Parquet: its pages let a count fetch a fraction of it.
    assert!(key.ends_with(".parquet.enc"), "{key}");
    assert_eq!(manifest["objects"][0]["format"], "parquet");
    (key, stored)
}

/// The large hour uploaded in parts to Azure Blob Storage (Azurite: blocks) and to GCS
/// (fake-gcs-server: the XML API's multipart upload), and every line read back from each.
#[test]
fn a_large_object_goes_up_in_parts_to_azure_and_gcs_too() {
    let all = (LARGE_HOUR_LINES as u64, LARGE_HOUR_LINES as u64);
    let azurite = Azurite::start("archive");
    let meniscus = start(&azurite.archive_config("archive", "meniscus"), "10h");
    send_one_large_hour(&meniscus);
    large_object_archived(&meniscus);
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), all);
    drop(meniscus);

    let gcs = FakeGcs::start("archive");
    let meniscus = start(&gcs.archive_config("meniscus"), "10h");
    send_one_large_hour(&meniscus);
    let (key, stored) = large_object_archived(&meniscus);
    assert_eq!(gcs.get(&key).len() as u64, stored, "{key} reads back whole");
    assert_eq!(count_and_distinct(&meniscus, "acme", "true"), all);
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "msg LIKE 'big 119999 %'"),
        (1, 1)
    );
}

/// An hour whose object is larger than one part (`MULTIPART_BYTES`, 8 MiB) goes up to the
/// real server in parts and reads back whole; a count reads only its columns by range.
#[test]
fn an_object_larger_than_one_part_goes_up_in_parts_and_a_count_fetches_only_its_columns() {
    let mut s3 = SeaweedFs::start("archive");
    let meniscus = start(&s3.archive_config("meniscus"), "10h");
    send_one_large_hour(&meniscus);
    let (key, stored) = large_object_archived(&meniscus);
    assert_eq!(s3.get(&key).len() as u64, stored, "{key} reads back whole");
    // A count per minute and severity reads two small columns of the hour: only the chunks
    // holding them and the footer are fetched (ranged GETs), not the messages.
    assert_eq!(
        count_per_minute_and_severity(&meniscus),
        LARGE_HOUR_LINES as u64
    );
    let fetched = meniscus.metric("meniscus_archive_fetched_bytes_total");
    assert!(
        fetched > 0 && fetched * 20 < stored,
        "a count fetched {fetched} bytes of a {stored}-byte object"
    );
    assert!(meniscus.metric("meniscus_archive_range_reads_total") >= 1);
    // Asked again, it is answered from the chunks kept in the local cache.
    count_per_minute_and_severity(&meniscus);
    assert_eq!(
        meniscus.metric("meniscus_archive_fetched_bytes_total"),
        fetched
    );
    // The S3 server dies with the messages' chunks not fetched yet: a query that needs them
    // fails with 503 and says why (never an answer with rows missing), while the count, whose
    // chunks are kept, still answers; once the server is back the query answers in full.
    s3.kill9();
    let needle = "SELECT count(*) AS n FROM events WHERE msg LIKE 'big 119999 %'";
    let (status, body) = meniscus.sql_raw("acme", "acme-token", needle);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string()
            .contains("an archived hour could not be read"),
        "{body}"
    );
    assert_eq!(
        count_per_minute_and_severity(&meniscus),
        LARGE_HOUR_LINES as u64
    );
    s3.restart();
    let reads_before = meniscus.metric("meniscus_archive_range_reads_total");
    assert_eq!(meniscus.sql("acme", "acme-token", needle)[0]["n"], 1);
    assert!(
        meniscus.metric("meniscus_archive_range_reads_total") > reads_before,
        "the messages' chunks were fetched by range"
    );
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "true"),
        (LARGE_HOUR_LINES as u64, LARGE_HOUR_LINES as u64)
    );
    assert_eq!(
        count_and_distinct(&meniscus, "acme", "msg LIKE 'big 119999 %'"),
        (1, 1)
    );
}
