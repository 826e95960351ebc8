//! Producers marked `encrypted`: their events rest sealed wherever Meniscus keeps them (the
//! write-ahead log, the hot store's flushed and compacted Parquet files, the archive), every
//! query still reads them, and a key rotation re-wraps sealed files in place. Tenants without
//! such producers keep plain files. Real `meniscus` processes, `kill -9` included.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use chrono::{Timelike, Utc};
use meniscus_tests::{files_under, meniscus_binary, run, Meniscus, StartOptions};
use serde_json::Value;

const SEALED_MAGIC: &[u8] = b"MNSHOT1\n";

/// Phase one: nothing flushed on its own, compacted or archived, so the log holds it all.
const STORAGE: &str =
    "storage: {flushInterval: 1h, compactionGrace: 1h, retentionCheckInterval: 1s}";

const TENANTS: &str = r#"
archive: {enabled: false, uploadInterval: 1s}
tenants:
  - id: acme
    tokens: [{value: acme-token}]
    producers: [{name: vault, encrypted: true, durable: true}, {name: web, durable: true}]
    retention: {shortTerm: 10h, longTerm: 30h}
  - id: other
    tokens: [{value: other-token}]
    retention: {shortTerm: 10h, longTerm: 30h}
"#;

fn start() -> Meniscus {
    Meniscus::start_with_options(StartOptions {
        storage: STORAGE,
        extra: TENANTS,
        ..StartOptions::default()
    })
}

/// Sends `count` lines `{text} {i}` from APP-NAME `app` to `tenant` over one connection,
/// stamped `hours` before now (minute 30, so a call fills one hourly window).
fn send(meniscus: &Meniscus, tenant: &str, app: &str, hours: i64, count: usize, text: &str) {
    let stamp = (Utc::now() - chrono::Duration::hours(hours))
        .with_minute(30)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ");
    let mut batch = String::new();
    for index in 0..count {
        batch.push_str(&format!(
            "<38>1 {stamp} host {app} 1 - [meniscus tenant=\"{tenant}\" token=\"{tenant}-token\"] {text} {index}\n"
        ));
    }
    let mut stream = TcpStream::connect(meniscus.syslog_addr()).unwrap();
    stream.write_all(batch.as_bytes()).unwrap();
}

fn count(meniscus: &Meniscus, tenant: &str, filter: &str) -> u64 {
    meniscus.count(tenant, &format!("{tenant}-token"), filter)
}

fn holds(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path)
        .unwrap()
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The live hot-store files of `tenant` per the manifest: (path, entry).
fn hot_entries(meniscus: &Meniscus, tenant: &str) -> Vec<(PathBuf, Value)> {
    let hot = meniscus.data_dir().join("hot");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(hot.join("MANIFEST.json")).unwrap()).unwrap();
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["tenant"] == tenant)
        .map(|entry| (hot.join(entry["path"].as_str().unwrap()), entry.clone()))
        .collect()
}

fn starts_sealed(path: &Path) -> bool {
    std::fs::read(path).unwrap().starts_with(SEALED_MAGIC)
}

/// The tenant key id in a sealed file's header (its length byte at 12, then the id).
fn sealed_key_id(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let length = usize::from(bytes[12]);
    String::from_utf8(bytes[13..13 + length].to_vec()).unwrap()
}

fn search_count(meniscus: &Meniscus, tenant: &str, q: &str) -> usize {
    let (status, page) = meniscus.get(
        &format!("/v1/tenant/{tenant}/events?q={q}&limit=1000&from=30h"),
        &format!("{tenant}-token"),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.get("unreadable").is_none(), "{page}");
    page["events"].as_array().unwrap().len()
}

/// Starts `meniscus standalone` on the test's configuration and data directory and waits (up
/// to 30 s) for it to exit on its own: its exit code and output.
fn start_and_wait_for_exit(meniscus: &Meniscus) -> (i32, String) {
    let mut child = std::process::Command::new(meniscus_binary())
        .arg("standalone")
        .arg("--config")
        .arg(meniscus.config_path())
        .arg("--data-dir")
        .arg(meniscus.data_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "meniscus did not refuse to start:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Edits the running configuration (`from` must be in it) and starts Meniscus again with it.
fn reconfigure(meniscus: &mut Meniscus, edits: &[(&str, &str)]) {
    meniscus.stop();
    let path = meniscus.config_path().to_path_buf();
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} not in:\n{text}");
        text = text.replace(from, to);
    }
    std::fs::write(&path, text).unwrap();
    meniscus.restart();
}

#[test]
fn an_encrypted_producers_events_rest_sealed_in_the_log_the_hot_store_and_the_archive() {
    let mut meniscus = start();
    // Separate connections, each waited for, so no log record mixes the two producers.
    send(&meniscus, "acme", "vault", 2, 40, "vault-secret-needle");
    meniscus.wait_for_count("acme", "acme-token", "true", 40);
    send(&meniscus, "acme", "web", 2, 40, "web-plain-needle");
    meniscus.wait_for_count("acme", "acme-token", "true", 80);
    send(&meniscus, "other", "app", 2, 30, "other-plain-needle");
    meniscus.wait_for_count("other", "other-token", "true", 30);

    // The write-ahead log: the vault lines are in no segment, while the plain producers'
    // lines are (so the scan looks where the events are).
    let segments = files_under(&meniscus.data_dir().join("wal"), ".wal");
    assert!(!segments.is_empty());
    assert!(segments
        .iter()
        .all(|segment| !holds(segment, b"vault-secret-needle")));
    assert!(segments
        .iter()
        .any(|segment| holds(segment, b"web-plain-needle")));
    assert!(segments
        .iter()
        .any(|segment| holds(segment, b"other-plain-needle")));
    let wal_key = meniscus.data_dir().join("keys/wal.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&wal_key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // kill -9, then a start without the log's key: refused, saying which key to restore, and
    // nothing is cut from the log (the sealed records are whole, only their key is missing).
    meniscus.kill9();
    let sizes = |segments: &[PathBuf]| -> Vec<u64> {
        segments
            .iter()
            .map(|segment| std::fs::metadata(segment).unwrap().len())
            .collect()
    };
    let before = sizes(&segments);
    let kept = meniscus.dir.path().join("wal.key.kept");
    std::fs::rename(&wal_key, &kept).unwrap();
    let (code, log) = start_and_wait_for_exit(&meniscus);
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("does not open") && log.contains("wal.key"),
        "{log}"
    );
    assert_eq!(sizes(&segments), before, "nothing cut from the log");
    std::fs::remove_file(&wal_key).ok(); // the key the refused start made
    std::fs::rename(&kept, &wal_key).unwrap();

    // With its key back, the sealed records are replayed like the others.
    meniscus.restart();
    assert_eq!(
        count(&meniscus, "acme", "msg LIKE 'vault-secret-needle%'"),
        40
    );
    assert_eq!(count(&meniscus, "acme", "true"), 80);

    // A graceful stop flushes memory to Parquet: acme's file holds vault rows, so it is
    // sealed whole; other's is plain Parquet.
    meniscus.stop();
    meniscus.restart();
    let acme = hot_entries(&meniscus, "acme");
    assert_eq!(acme.len(), 1, "{acme:?}");
    assert!(starts_sealed(&acme[0].0), "{}", acme[0].0.display());
    assert_eq!(acme[0].1["sealed"], true, "{:?}", acme[0].1);
    assert!(!std::fs::read(&acme[0].0).unwrap().ends_with(b"PAR1"));
    let other = hot_entries(&meniscus, "other");
    assert_eq!(other.len(), 1);
    assert!(std::fs::read(&other[0].0).unwrap().starts_with(b"PAR1"));
    assert!(other[0].1.get("sealed").is_none(), "{:?}", other[0].1);

    // Every way of asking reads the sealed file.
    assert_eq!(search_count(&meniscus, "acme", "vault-secret-needle"), 40);
    assert_eq!(
        count(&meniscus, "acme", "msg LIKE 'vault-secret-needle%'"),
        40
    );
    let rows = meniscus.sql(
        "acme",
        "acme-token",
        "SELECT pname, count(*) AS n, count(DISTINCT msg) AS d FROM events GROUP BY pname ORDER BY pname",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (
            rows[0]["pname"].as_str(),
            rows[0]["n"].as_u64(),
            rows[0]["d"].as_u64()
        ),
        (Some("vault"), Some(40), Some(40))
    );
    assert_eq!(
        (rows[1]["pname"].as_str(), rows[1]["n"].as_u64()),
        (Some("web"), Some(40))
    );
    assert_eq!(count(&meniscus, "other", "true"), 30);
    // The sealed file opens for its own tenant only: other's credentials see none of it.
    assert_eq!(count(&meniscus, "other", "msg LIKE 'vault%'"), 0);

    // Compaction writes the hour again: sealed too.
    reconfigure(
        &mut meniscus,
        &[("compactionGrace: 1h", "compactionGrace: 1s")],
    );
    meniscus.wait_until(60, "acme's hour compacted", || {
        let entries = hot_entries(&meniscus, "acme");
        entries.len() == 1 && entries[0].1["compacted"] == true
    });
    let acme = hot_entries(&meniscus, "acme");
    assert!(starts_sealed(&acme[0].0));
    assert_eq!(acme[0].1["sealed"], true);
    // Its skip index is sealed as the file is: a Bloom filter in clear would let anyone test
    // a guessed text against it.
    let sidecar = acme[0].0.with_extension("skip");
    assert!(starts_sealed(&sidecar), "{}", sidecar.display());
    assert!(!holds(&sidecar, b"MNSKIP01"));
    assert_eq!(search_count(&meniscus, "acme", "vault-secret-needle"), 40);
    assert_eq!(
        search_count(&meniscus, "acme", "no-such-needle-anywhere"),
        0
    );

    // The archive: the hour goes up, its hot copy leaves (shortTerm 1h), and queries read the
    // object, which holds no plain text either.
    reconfigure(
        &mut meniscus,
        &[
            ("enabled: false", "enabled: true"),
            (
                "retention: {shortTerm: 10h, longTerm: 30h}\n  - id: other",
                "retention: {shortTerm: 1h, longTerm: 30h}\n  - id: other",
            ),
        ],
    );
    meniscus.wait_until(
        90,
        "acme's hour archived and gone from the hot store",
        || hot_entries(&meniscus, "acme").is_empty(),
    );
    let objects = files_under(
        &meniscus.data_dir().join("archive-objects/acme"),
        ".events.enc",
    );
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(!holds(&objects[0], b"vault-secret-needle"));
    assert_eq!(search_count(&meniscus, "acme", "vault-secret-needle"), 40);
    assert_eq!(count(&meniscus, "acme", "true"), 80);
    // The chunks those queries fetched rest in the local cache as they were stored: sealed
    // (a decrypted copy would hold the archive format's `MNEV` mark and the lines).
    let cached: Vec<PathBuf> = files_under(&meniscus.data_dir().join("archive/cache"), "")
        .into_iter()
        .filter(|file| file.extension().is_none_or(|extension| extension != "skip"))
        .collect();
    assert!(!cached.is_empty());
    // The archive's local copy of the object's skip index is sealed too.
    let local_indexes = files_under(&meniscus.data_dir().join("archive/skip/acme"), ".skip");
    assert_eq!(local_indexes.len(), 1, "{local_indexes:?}");
    assert!(starts_sealed(&local_indexes[0]));
    // Every sealed index opened: none was set aside as unreadable (the file read in full).
    assert!(!meniscus.log().contains("skip index"), "{}", meniscus.log());
    for file in &cached {
        assert!(
            !holds(file, b"MNEV") && !holds(file, b"PAR1"),
            "{} holds a plain object",
            file.display()
        );
        assert!(!holds(file, b"vault-secret-needle"), "{}", file.display());
    }
}

#[test]
fn a_key_rotation_rewraps_sealed_hot_files_in_place_and_they_stay_readable() {
    let mut meniscus = start();
    for hours in [2, 3] {
        send(
            &meniscus,
            "acme",
            "vault",
            hours,
            25,
            &format!("rotated-needle hour{hours}"),
        );
    }
    meniscus.wait_for_count("acme", "acme-token", "true", 50);
    // Compacted, so each hour's file has a (sealed) skip index beside it.
    reconfigure(
        &mut meniscus,
        &[("compactionGrace: 1h", "compactionGrace: 1s")],
    );
    meniscus.wait_until(60, "both hours compacted", || {
        let entries = hot_entries(&meniscus, "acme");
        entries.len() == 2 && entries.iter().all(|(_, entry)| entry["compacted"] == true)
    });
    let files: Vec<PathBuf> = hot_entries(&meniscus, "acme")
        .into_iter()
        .flat_map(|(path, _)| [path.with_extension("skip"), path])
        .collect();
    assert_eq!(files.len(), 4, "{files:?}");
    let key_file = meniscus.data_dir().join("keys/acme.json");
    let keys: Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    let first = keys["current"].as_str().unwrap().to_string();
    assert!(files.iter().all(|file| sealed_key_id(file) == first));
    let sizes: Vec<u64> = files
        .iter()
        .map(|file| std::fs::metadata(file).unwrap().len())
        .collect();

    // While Meniscus runs (the archive is off: only hot files to re-wrap).
    let output = run(std::process::Command::new(meniscus_binary())
        .args(["keys", "rotate", "acme", "--retire-old", "--config"])
        .arg(meniscus.config_path())
        .arg("--data-dir")
        .arg(meniscus.data_dir()));
    // The two files and their indexes at least (the flushed files compaction replaced may
    // not be deleted yet).
    let rewrapped: usize = output
        .split("; ")
        .nth(1)
        .and_then(|part| part.split(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("{output}"));
    assert!(rewrapped >= 4, "{output}");
    assert!(
        output.contains("local file key(s) and 0 object key(s) re-wrapped; old keys dropped"),
        "{output}"
    );
    let keys: Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    let second = keys["current"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        keys["keys"].as_object().unwrap().len(),
        1,
        "the old key is gone: {keys}"
    );
    assert!(files.iter().all(|file| sealed_key_id(file) == second));
    let after: Vec<u64> = files
        .iter()
        .map(|file| std::fs::metadata(file).unwrap().len())
        .collect();
    assert_eq!(sizes, after, "re-wrapped in place, not rewritten");

    // Read with the new key alone, by the running process and after a restart.
    assert_eq!(
        count(&meniscus, "acme", "msg LIKE 'rotated-needle hour3%'"),
        25
    );
    meniscus.restart();
    assert_eq!(search_count(&meniscus, "acme", "rotated-needle"), 50);
    assert_eq!(search_count(&meniscus, "acme", "never-sent-needle"), 0);
    // The re-wrapped skip indexes opened with the new key (none was set aside as unreadable).
    assert!(!meniscus.log().contains("skip index"), "{}", meniscus.log());

    // Without the tenant's key nothing opens, and the answer says why rather than leaving
    // the hours out.
    std::fs::remove_file(&key_file).unwrap();
    let (status, body) = meniscus.sql_raw("acme", "acme-token", "SELECT count(*) AS n FROM events");
    assert!(status >= 500, "{status} {body}");
    assert!(body.to_string().contains("no key"), "{body}");
}

/// A tenant whose producers are all plain never gets a key or a sealed file; a purge takes a
/// tenant's key with its files (the archive off: no archive purge does it).
#[test]
fn plain_tenants_get_no_key_and_a_purge_takes_the_key_with_the_files() {
    let mut meniscus = start();
    send(&meniscus, "other", "app", 1, 20, "plain line");
    meniscus.wait_for_count("other", "other-token", "true", 20);
    send(&meniscus, "acme", "vault", 1, 20, "sealed line");
    meniscus.wait_for_count("acme", "acme-token", "true", 20);
    meniscus.stop();
    meniscus.restart();
    let files = hot_entries(&meniscus, "other");
    assert_eq!(files.len(), 1);
    assert!(std::fs::read(&files[0].0).unwrap().starts_with(b"PAR1"));
    assert!(!meniscus.data_dir().join("keys/other.json").exists());
    assert_eq!(count(&meniscus, "other", "true"), 20);

    let key_file = meniscus.data_dir().join("keys/acme.json");
    assert!(key_file.exists());
    meniscus.stop();
    let output = run(std::process::Command::new(meniscus_binary())
        .args(["purge", "acme", "--config"])
        .arg(meniscus.config_path())
        .arg("--data-dir")
        .arg(meniscus.data_dir()));
    assert!(output.contains("purged 1 hot-store file(s)"), "{output}");
    assert!(!key_file.exists(), "the key went with the files");
    meniscus.restart();
    assert_eq!(count(&meniscus, "other", "true"), 20);
}
