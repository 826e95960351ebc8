//! The store under I/O faults: each test injects a failure the way a real disk fails (through
//! [`FaultyDisk`]) or damages files on disk, and checks that nothing acknowledged is lost,
//! nothing is acknowledged that is not durable, and the store recovers without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use meniscus_grid::{Correlation, Event, Producer, Transport};
use meniscus_metrics::Registry;
use meniscus_record::columnar::{batch_to_events, decode_payload, encode_payload};
use meniscus_record::{Batch, Stage, StageError, WhenFull};

use crate::compaction::CompactionOptions;
use crate::disk::faults::{FaultyDisk, Op};
use crate::hot::{FileEntry, WINDOW_SECONDS};
use crate::query::{QueryEngine, QueryLimits};
use crate::{record_chunks, Store, StoreOptions};

fn event(msg: &str, durable: bool, time: chrono::DateTime<Utc>) -> Event {
    let mut producer = Producer::plain("default");
    producer.durable = durable;
    let correlation = Correlation::new("acme", &producer, Transport::Http, Utc::now());
    let mut event = Event::from_message(msg.to_string(), correlation);
    event.time = Some(time.fixed_offset());
    event.pri = Some(13);
    event
}

fn events(prefix: &str, count: usize, durable: bool) -> Vec<Event> {
    (0..count)
        .map(|index| event(&format!("{prefix}-{index}"), durable, Utc::now()))
        .collect()
}

fn batch(prefix: &str, count: usize, durable: bool) -> Batch {
    Batch::from_events(&events(prefix, count, durable)).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options() -> StoreOptions {
    StoreOptions {
        // Compaction stays out of the way unless a test asks for it.
        compaction: CompactionOptions {
            zstd_level: 0,
            ..CompactionOptions::default()
        },
        ..StoreOptions::default()
    }
}

fn open(dir: &Path, disk: &FaultyDisk, options: StoreOptions) -> anyhow::Result<Arc<Store>> {
    Store::open_on(dir, options, &Registry::new(), Arc::new(disk.clone()))
}

/// Every message the store holds for `acme`, memory and files, sorted.
fn messages(store: &Store) -> Vec<String> {
    let snapshot = store.hot.snapshot("acme", None, None);
    let mut messages: Vec<String> = snapshot
        .batches
        .iter()
        .flat_map(|batch| batch_to_events(batch, "acme"))
        .map(|event| event.msg)
        .collect();
    for path in snapshot.files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            messages.extend(
                batch_to_events(&batch.unwrap(), "acme")
                    .into_iter()
                    .map(|event| event.msg),
            );
        }
    }
    messages.sort();
    messages
}

fn hand_on(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<Store>,
    batch: Batch,
    when_full: WhenFull,
) -> Result<(), StageError> {
    runtime
        .block_on(store.clone().hand_on(batch, when_full))
        .map(|_| ())
}

fn wait_until(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn names(batch: &Batch) -> Vec<String> {
    batch
        .tenants
        .iter()
        .flat_map(|group| batch_to_events(&group.batch, "acme"))
        .map(|event| event.msg)
        .collect()
}

#[test]
fn a_failed_fsync_refuses_its_batch_retires_the_segment_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let (first, last) = (batch("first", 3, true), batch("last", 3, true));
    {
        let runtime = runtime();
        let _guard = runtime.enter();
        let store = open(dir.path(), &disk, options()).unwrap();
        hand_on(&runtime, &store, first.clone(), WhenFull::Refuse).unwrap();

        disk.fail(Op::SyncFile, 1, Some(".wal"));
        let refused = hand_on(&runtime, &store, batch("failed", 3, true), WhenFull::Refuse);
        assert!(
            matches!(&refused, Err(StageError::Unavailable { reason }) if reason.contains("fsync")),
            "a batch whose fsync failed is not acknowledged: {refused:?}"
        );
        let unhealthy = store
            .unhealthy()
            .expect("durable writes stop after a failed fsync");
        assert!(unhealthy.contains("fsync"), "{unhealthy}");
        assert_eq!(store.metrics.wal_writable.get(), 0);
        // While stopped, a request is refused at once instead of queueing behind the disk.
        assert!(matches!(
            hand_on(
                &runtime,
                &store,
                batch("meanwhile", 1, true),
                WhenFull::Refuse
            ),
            Err(StageError::Unavailable { .. })
        ));

        // The probe (a new segment, an empty record, an fsync) works again: writable.
        wait_until("the store to recover", 10, || store.unhealthy().is_none());
        assert_eq!(store.metrics.wal_writable.get(), 1);
        hand_on(&runtime, &store, last.clone(), WhenFull::Refuse).unwrap();
        assert_eq!(store.metrics.wal_failures.get(&["fsync"]), 1);
    }
    let segments = crate::wal::list_segments(&dir.path().join("wal")).unwrap();
    assert!(
        segments.len() >= 2,
        "the segment whose fsync failed was never written again: {segments:?}"
    );
    let first_segment = std::fs::read(&segments[0].1).unwrap();
    let last_id = batch_to_events(&last.tenants[0].batch, "acme")[0]
        .meniscus
        .event_id
        .clone();
    let last_name = last_id.as_bytes();
    assert!(
        !first_segment
            .windows(last_name.len())
            .any(|window| window == last_name),
        "a batch acknowledged after the failure must not be in the failed segment"
    );

    // After a restart every acknowledged event is there, once.
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open(dir.path(), &FaultyDisk::default(), options()).unwrap();
    let stored = messages(&store);
    for name in names(&first).iter().chain(&names(&last)) {
        assert_eq!(
            stored.iter().filter(|stored| *stored == name).count(),
            1,
            "{name} in {stored:?}"
        );
    }
    assert!(!stored.iter().any(|name| name.starts_with("meanwhile")));
}

#[test]
fn a_segment_that_cannot_be_created_stops_intake_until_it_can_and_waiting_readers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open(dir.path(), &disk, options()).unwrap();
    hand_on(&runtime, &store, batch("before", 2, true), WhenFull::Refuse).unwrap();

    // The rotation of a flush closes the segment; the next cannot be created.
    disk.fail(Op::Create, u32::MAX, Some(".wal"));
    let _ = runtime.block_on(store.flush());
    wait_until("the gate to close", 5, || store.unhealthy().is_some());
    let reason = store.unhealthy().unwrap();
    assert!(reason.contains("open failed"), "{reason}");

    assert!(matches!(
        hand_on(
            &runtime,
            &store,
            batch("refused", 1, true),
            WhenFull::Refuse
        ),
        Err(StageError::Unavailable { .. })
    ));
    // A syslog reader waits instead (its socket slows the sender down).
    let waiting = runtime.spawn(
        store
            .clone()
            .hand_on(batch("waited", 2, true), WhenFull::Wait),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !waiting.is_finished(),
        "a reader waits while the log cannot be written"
    );

    disk.heal();
    let outcome = runtime.block_on(waiting).unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(store.unhealthy().is_none());
    let stored = messages(&store);
    assert!(stored.contains(&"waited-0".to_string()), "{stored:?}");
    assert!(stored.contains(&"before-1".to_string()), "{stored:?}");
    assert!(!stored.iter().any(|name| name.starts_with("refused")));
}

#[test]
fn when_flushes_cannot_keep_up_memory_stops_growing_and_requests_get_full() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open(
        dir.path(),
        &disk,
        StoreOptions {
            flush_events: 10,
            ..options()
        },
    )
    .unwrap();
    // Parquet files cannot be written: flushes fail and are retried.
    disk.fail(Op::Create, u32::MAX, Some(".parquet"));
    let mut refused = None;
    for round in 0..40 {
        match hand_on(
            &runtime,
            &store,
            batch(&format!("r{round}"), 10, false),
            WhenFull::Refuse,
        ) {
            Ok(()) => std::thread::sleep(Duration::from_millis(300)),
            Err(error) => {
                refused = Some((round, error));
                break;
            }
        }
    }
    let (round, error) = refused.expect("memory must stop taking batches at its cap");
    assert_eq!(error, StageError::Full);
    assert!(round <= 10, "refused only after {round} rounds");
    let (events, _, _) = store.hot.active_size();
    assert!(events <= 40, "memory bounded: {events} events held");

    disk.heal();
    wait_until("flushes to catch up", 15, || {
        hand_on(&runtime, &store, batch("after", 1, false), WhenFull::Refuse).is_ok()
    });
    assert!(store.metrics.hot_flush_failures.get() >= 1);
}

#[test]
fn a_missing_file_is_reported_queries_answer_without_its_window_and_the_rest_is_archived() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let now = crate::hot::window_of(Utc::now());
    let hour = |hours_ago: i64| {
        Utc.timestamp_opt(now - hours_ago * WINDOW_SECONDS, 0)
            .unwrap()
    };
    {
        let runtime = runtime();
        let _guard = runtime.enter();
        let store = two_windows_of_two_files(dir.path(), &disk, &runtime, now, false);
        let gone = file_of_window(&store, now - 3 * WINDOW_SECONDS);
        std::fs::remove_file(dir.path().join("hot").join(&gone.path)).unwrap();
    }
    // Started again with compaction on.
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open_compacting(dir.path(), &disk);
    let engine = QueryEngine::new(
        store.hot.clone(),
        QueryLimits {
            memory_bytes: 64 << 20,
            max_rows: 100,
            ..QueryLimits::default()
        },
        store.metrics.clone(),
    );
    let tenant = meniscus_grid::TenantId::parse("acme").unwrap();
    let result = runtime
        .block_on(engine.sql(&tenant, "SELECT count(*) AS n FROM events"))
        .unwrap();
    assert_eq!(result.rows[0]["n"], 15, "the other files still answer");
    assert_eq!(result.unreadable.len(), 1, "{:?}", result.unreadable);
    assert!(result.unreadable[0].reason.contains("missing"));
    assert_eq!(
        result.unreadable[0].window,
        hour(3).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    // The group holding the missing file is set aside; the other window is compacted, and
    // flushes go on.
    wait_until("compaction to set the group aside", 10, || {
        store.metrics.hot_compaction_set_aside.get() == 1
            && store.metrics.hot_compactions.get() == 1
    });
    assert_eq!(store.metrics.hot_missing_files.get(), 1);
    let compactions = store.metrics.hot_compactions.get();
    hand_on(&runtime, &store, batch("later", 3, true), WhenFull::Refuse).unwrap();
    runtime.block_on(store.flush()).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        store.metrics.hot_compactions.get(),
        compactions,
        "no retry loop on the set-aside group"
    );
    assert_eq!(store.metrics.hot_compaction_failures.get(), 0);

    // The archive takes the set-aside group's file still on disk as it is, rather than wait
    // for a compaction that will not come (keeping the hour hot past short-term retention);
    // the missing file it cannot take.
    let gone_window = now - 3 * WINDOW_SECONDS;
    let set_aside: Vec<FileEntry> = store
        .hot
        .file_entries()
        .into_iter()
        .filter(|entry| entry.window == gone_window)
        .collect();
    assert_eq!(set_aside.len(), 2, "{set_aside:?}");
    assert!(set_aside
        .iter()
        .all(|entry| store.hot.is_set_aside(&entry.path)));
    let archive = archive_in(dir.path());
    // Hour 2's compacted file, and hour 3's file that is still there.
    assert_eq!(upload_pass(&runtime, &archive, &store), 2);
    let archived: Vec<bool> = set_aside
        .iter()
        .map(|entry| archive.object_of(&entry.path).is_some())
        .collect();
    let on_disk: Vec<bool> = set_aside
        .iter()
        .map(|entry| !store.hot.is_missing(entry))
        .collect();
    assert_eq!(archived, on_disk);
    assert_eq!(
        upload_pass(&runtime, &archive, &store),
        0,
        "nothing more, and no failure over the missing file"
    );
}

/// Compaction as soon as a window has ended.
fn compacting() -> CompactionOptions {
    CompactionOptions {
        zstd_level: 3,
        grace: Duration::ZERO,
        ..CompactionOptions::default()
    }
}

/// An archive of the data directory `dir` to a local target beside it.
fn archive_in(dir: &Path) -> Arc<crate::archive::Archive> {
    crate::archive::test_support::open(dir, &dir.join("objects"), &dir.join("keys"))
}

/// How many files one upload pass archives (compaction on, as [`compacting`]).
fn upload_pass(
    runtime: &tokio::runtime::Runtime,
    archive: &Arc<crate::archive::Archive>,
    store: &Store,
) -> usize {
    runtime
        .block_on(archive.upload_pass(&store.hot, &compacting()))
        .unwrap()
}

/// The store opened again with compaction on.
fn open_compacting(dir: &Path, disk: &FaultyDisk) -> Arc<Store> {
    let options = StoreOptions {
        compaction: compacting(),
        ..StoreOptions::default()
    };
    open(dir, disk, options).unwrap()
}

/// The first live file of `window`.
fn file_of_window(store: &Store, window: i64) -> FileEntry {
    let files = store.hot.file_entries();
    files
        .into_iter()
        .find(|entry| entry.window == window)
        .unwrap()
}

/// A store (compaction off) holding two files in each of the windows of 3 and 2 hours
/// before `now` (a window start), so compaction has a group to make of each; sealed files
/// when `encrypted` (the events are of an `encrypted` producer).
fn two_windows_of_two_files(
    dir: &Path,
    disk: &FaultyDisk,
    runtime: &tokio::runtime::Runtime,
    now: i64,
    encrypted: bool,
) -> Arc<Store> {
    let store = open(dir, disk, options()).unwrap();
    for (hours_ago, name) in [(3, "gone"), (2, "kept")] {
        let time = Utc
            .timestamp_opt(now - hours_ago * WINDOW_SECONDS, 0)
            .unwrap();
        for part in 0..2 {
            let events: Vec<Event> = (0..5)
                .map(|index| {
                    let mut event = event(&format!("{name}-{part}-{index}"), true, time);
                    event.meniscus.encrypted = encrypted;
                    event
                })
                .collect();
            let batch = Batch::from_events(&events).unwrap();
            hand_on(runtime, &store, batch, WhenFull::Refuse).unwrap();
            runtime.block_on(store.flush()).unwrap();
        }
    }
    store
}

/// A compacted file lost from disk can never be archived. The uploads of its tenant go on
/// past it, and retention lets its entry go at short-term retention: with the archive on it
/// waited for an upload that could not happen, and every query over its hour said it was
/// missing, for as long as the long-term retention.
#[test]
fn a_compacted_file_lost_from_disk_holds_up_no_upload_and_leaves_at_short_term_retention() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let now = crate::hot::window_of(Utc::now());
    {
        let runtime = runtime();
        let _guard = runtime.enter();
        two_windows_of_two_files(dir.path(), &disk, &runtime, now, false);
    }
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open_compacting(dir.path(), &disk);
    wait_until("both windows compacted", 10, || {
        let files = store.hot.file_entries();
        files.len() == 2 && files.iter().all(|entry| entry.compacted)
    });
    let lost = file_of_window(&store, now - 3 * WINDOW_SECONDS);
    let lost_path = dir.path().join("hot").join(&lost.path);
    let kept_aside = dir.path().join("kept-aside.parquet");
    std::fs::rename(&lost_path, &kept_aside).unwrap();

    let archive = archive_in(dir.path());
    assert_eq!(
        upload_pass(&runtime, &archive, &store),
        1,
        "hour 2's file is archived, past the older lost one"
    );
    assert_eq!(store.hot.missing_files(), 1);
    let expire = || -> Vec<String> {
        let removed = crate::retention::expire_hot(&store.hot, Some(&archive), Utc::now(), |_| {
            Some(Duration::from_secs(60))
        })
        .unwrap();
        removed.into_iter().map(|entry| entry.path).collect()
    };
    // Restored by hand before retention looks: it is not given up on (nor deleted, as it is
    // not archived), and no longer reported missing.
    std::fs::rename(&kept_aside, &lost_path).unwrap();
    assert_eq!(expire(), archive.sources().into_iter().collect::<Vec<_>>());
    assert_eq!(store.hot.missing_files(), 0);
    assert!(lost_path.exists());
    // Lost again: its entry goes at the next pass.
    std::fs::remove_file(&lost_path).unwrap();
    assert!(store.hot.is_missing(&lost));
    assert_eq!(expire(), vec![lost.path.clone()]);
    assert_eq!(store.hot.missing_files(), 0);
    assert!(store.hot.file_entries().is_empty());
}

/// A file of a compaction group set aside may be one nothing can read (a damaged sealed
/// file): its upload fails, but must not hold up the tenant's later hours pass after pass.
#[test]
fn an_unreadable_file_set_aside_holds_up_no_later_upload() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let now = crate::hot::window_of(Utc::now());
    let damaged = {
        let runtime = runtime();
        let _guard = runtime.enter();
        let store = two_windows_of_two_files(dir.path(), &disk, &runtime, now, true);
        file_of_window(&store, now - 3 * WINDOW_SECONDS)
    };
    let path = dir.path().join("hot").join(&damaged.path);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(crate::hot::sealed::SEALED_MAGIC));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open_compacting(dir.path(), &disk);
    wait_until(
        "the damaged hour set aside, the other compacted",
        30,
        || {
            store.metrics.hot_compaction_set_aside.get() == 1
                && store.metrics.hot_compactions.get() == 1
        },
    );
    let archive = archive_in(dir.path());
    let error = runtime
        .block_on(archive.upload_pass(&store.hot, &compacting()))
        .unwrap_err();
    assert!(format!("{error:#}").contains(&damaged.path), "{error:#}");
    // The damaged file is not archived; the other file of its hour and the later hour are.
    let files = store.hot.file_entries();
    assert_eq!(files.len(), 3, "{files:?}");
    for file in &files {
        assert_eq!(
            archive.object_of(&file.path).is_some(),
            file.path != damaged.path,
            "{}",
            file.path
        );
    }
}

#[test]
fn a_missing_manifest_next_to_parquet_files_refuses_to_start_and_can_be_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let sent = batch("kept", 4, true);
    {
        let runtime = runtime();
        let _guard = runtime.enter();
        let store = open(dir.path(), &disk, options()).unwrap();
        hand_on(&runtime, &store, sent.clone(), WhenFull::Refuse).unwrap();
        runtime.block_on(store.flush()).unwrap();
    }
    let manifest = dir.path().join("hot").join(crate::hot::manifest::MANIFEST);
    std::fs::remove_file(&manifest).unwrap();
    let files = crate::hot::manifest::parquet_files(&dir.path().join("hot")).unwrap();
    assert_eq!(files.len(), 1);

    let runtime = runtime();
    let _guard = runtime.enter();
    let error = open(dir.path(), &disk, options()).err().unwrap();
    let text = format!("{error:#}");
    assert!(text.contains("MANIFEST.json is missing"), "{text}");
    assert!(text.contains("meniscus recover-manifest"), "{text}");
    assert!(files[0].exists(), "nothing is deleted");

    let keyring = crate::archive::crypto::Keyring::open(&dir.path().join("keys")).unwrap();
    let count = crate::hot::rebuild_manifest(&dir.path().join("hot"), &disk, &keyring).unwrap();
    assert_eq!(count, 1);
    let store = open(dir.path(), &disk, options()).unwrap();
    assert_eq!(messages(&store), names(&sent));
}

#[test]
fn new_directories_are_synced_in_their_parents_before_the_manifest_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open(dir.path(), &disk, options()).unwrap();
    hand_on(&runtime, &store, batch("x", 2, true), WhenFull::Refuse).unwrap();
    runtime.block_on(store.flush()).unwrap();
    let log = disk.log();
    let hot = dir.path().join("hot");
    let position = |op: Op, path: &Path| {
        log.iter()
            .position(|(logged, logged_path, ok)| *logged == op && logged_path == path && *ok)
            .unwrap_or_else(|| panic!("no {op:?} of {}: {log:?}", path.display()))
    };
    let tenant_dir = hot.join("acme");
    let window_dir = std::fs::read_dir(&tenant_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest = position(Op::Rename, &hot.join("MANIFEST.json"));
    for (created, parent) in [(&tenant_dir, &hot), (&window_dir, &tenant_dir)] {
        let made = position(Op::CreateDir, created);
        let synced = log
            .iter()
            .enumerate()
            .skip(made)
            .find(|(_, (op, path, ok))| *op == Op::SyncDir && path == parent && *ok)
            .map(|(index, _)| index)
            .unwrap_or_else(|| {
                panic!(
                    "{} not synced after creating {}",
                    parent.display(),
                    created.display()
                )
            });
        assert!(
            synced < manifest,
            "{} synced after the manifest named it",
            parent.display()
        );
    }
}

#[test]
fn a_batch_redelivered_after_a_restart_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let sent = batch("once", 5, true);
    {
        let runtime = runtime();
        let _guard = runtime.enter();
        let store = open(dir.path(), &disk, options()).unwrap();
        hand_on(&runtime, &store, sent.clone(), WhenFull::Refuse).unwrap();
        // In Parquet, out of memory and out of the WAL before the restart.
        runtime.block_on(store.flush()).unwrap();
    }
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open(dir.path(), &disk, options()).unwrap();
    // The sender did not get its acknowledgement and delivers the same events again.
    hand_on(&runtime, &store, sent.clone(), WhenFull::Refuse).unwrap();
    assert_eq!(messages(&store), names(&sent));
    assert_eq!(store.metrics.duplicate_events.get(), 5);
}

#[test]
fn a_batch_too_large_for_one_record_is_cut_into_records_that_hold_every_event() {
    let sent = batch("big", 1000, true);
    let batches = sent.tenants.clone();
    let total = meniscus_record::columnar::batch_bytes(&batches[0].batch);
    let chunks = record_chunks(&batches, total / 4);
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    let mut back = Vec::new();
    for chunk in &chunks {
        let payload = encode_payload(chunk).unwrap();
        assert!(
            payload.len() < total,
            "a record carries its slice, not the whole batch"
        );
        for group in decode_payload(&payload).unwrap() {
            back.extend(
                batch_to_events(&group.batch, "acme")
                    .into_iter()
                    .map(|event| event.msg),
            );
        }
    }
    assert_eq!(back, names(&sent));
    // Small batches stay one record.
    assert_eq!(record_chunks(&batches, total).len(), 1);
}

#[test]
fn a_record_received_on_a_link_is_logged_as_it_is_and_replayed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::default();
    let sent = batch("linked", 50, true);
    let mut record = vec![0u8; meniscus_record::frame::HEADER_LEN];
    meniscus_record::columnar::encode_payload_into(&sent.tenants, &mut record).unwrap();
    let record = meniscus_record::RecordCodec::plain()
        .seal_prefixed(meniscus_record::PayloadFormat::ArrowIpc, record)
        .unwrap();
    {
        let runtime = runtime();
        let _guard = runtime.enter();
        let store = open(dir.path(), &disk, options()).unwrap();
        let received = sent.clone().with_sealed_record(record.clone().into());
        hand_on(&runtime, &store, received, WhenFull::Refuse).unwrap();
        let logged: Vec<u8> = crate::wal::list_segments(&dir.path().join("wal"))
            .unwrap()
            .iter()
            .flat_map(|(_, path)| std::fs::read(path).unwrap())
            .collect();
        assert!(
            logged
                .windows(record.len())
                .any(|window| window == record.as_slice()),
            "the log does not hold the received record byte for byte"
        );
    }
    // Not flushed: the events come back from the log alone.
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open(dir.path(), &disk, options()).unwrap();
    assert_eq!(messages(&store), {
        let mut names = names(&sent);
        names.sort();
        names
    });
}

/// A tenant key that cannot be made or read makes that tenant's `encrypted` events wait (503,
/// with the reason) when they arrive: it never reaches a flush, where it would fail every
/// tenant's flush and hold them all back.
#[test]
fn a_tenant_key_that_cannot_be_made_holds_back_only_that_tenants_encrypted_events() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where acme's key file would be: it can be neither read nor written.
    std::fs::create_dir_all(dir.path().join("keys/acme.json")).unwrap();
    let disk = FaultyDisk::default();
    let runtime = runtime();
    let _guard = runtime.enter();
    let store = open(dir.path(), &disk, options()).unwrap();
    let encrypted = |tenant: &str, msg: &str| {
        let mut producer = Producer::plain("vault");
        producer.encrypted = true;
        let correlation = Correlation::new(tenant, &producer, Transport::Http, Utc::now());
        let mut event = Event::from_message(msg.to_string(), correlation);
        event.time = Some(Utc::now().fixed_offset());
        event.pri = Some(13);
        Batch::from_events(&[event]).unwrap()
    };
    let held = hand_on(
        &runtime,
        &store,
        encrypted("acme", "sealed?"),
        WhenFull::Refuse,
    );
    assert!(
        matches!(&held, Err(StageError::Unavailable { reason }) if reason.contains("cannot be sealed")),
        "{held:?}"
    );
    // Another tenant's encrypted events, and acme's plain ones, are taken and flushed.
    hand_on(
        &runtime,
        &store,
        encrypted("beta", "sealed"),
        WhenFull::Refuse,
    )
    .unwrap();
    hand_on(&runtime, &store, batch("plain", 3, false), WhenFull::Refuse).unwrap();
    runtime.block_on(store.flush()).unwrap();
    let files = store.hot.file_entries();
    assert!(
        files
            .iter()
            .any(|file| file.tenant == "beta" && file.sealed),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|file| file.tenant == "acme" && !file.sealed),
        "{files:?}"
    );
    assert_eq!(store.metrics.hot_flush_failures.get(), 0);
    assert_eq!(messages(&store).len(), 3);
}
