//! What the archive's tests share: a hot store with one flushed file, an archive on a local
//! directory target, and what a target holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use meniscus_grid::{Correlation, Event, Producer, Transport};
use meniscus_metrics::Registry;
use meniscus_record::columnar::{batch_to_events, tenant_batches};

use super::manifest::ArchivedObject;
use super::{Archive, ArchiveOptions};
use crate::compaction::CompactionOptions;
use crate::disk::LocalDisk;
use crate::hot::HotStore;

pub fn no_grace() -> CompactionOptions {
    CompactionOptions {
        zstd_level: 0,
        grace: Duration::ZERO,
        ..CompactionOptions::default()
    }
}

pub fn options(objects: &Path, keys: &Path) -> ArchiveOptions {
    ArchiveOptions {
        url: url::Url::from_directory_path(objects).unwrap().to_string(),
        credentials_file: None,
        options: BTreeMap::new(),
        key_dir: keys.to_path_buf(),
        upload_interval: Duration::from_secs(60),
        cache_bytes: 1 << 20,
    }
}

pub fn open(root: &Path, objects: &Path, keys: &Path) -> Arc<Archive> {
    Archive::open(
        root,
        options(objects, keys),
        &Registry::new(),
        Arc::new(|_| None),
    )
    .unwrap()
}

/// A hot store under `root` with one flushed file of two hours ago holding `message`.
pub fn hot_with(root: &Path, message: &str) -> Arc<HotStore> {
    let hot = Arc::new(
        HotStore::open(
            &root.join("hot"),
            Arc::new(LocalDisk),
            Duration::from_secs(600),
            Arc::new(crate::archive::crypto::Keyring::open(&root.join("keys")).unwrap()),
        )
        .unwrap()
        .0,
    );
    add_file(&hot, message, 2);
    hot
}

/// Flushes one file to `hot` holding `message`, of acme, `hours_ago`.
pub fn add_file(hot: &HotStore, message: &str, hours_ago: i64) {
    let correlation = Correlation::new(
        "acme",
        &Producer::plain("default"),
        Transport::Tcp,
        Utc::now(),
    );
    let mut event = Event::from_message(message.to_string(), correlation);
    event.time = Some((Utc::now() - chrono::Duration::hours(hours_ago)).fixed_offset());
    hot.insert(tenant_batches(&[event]).unwrap());
    let frozen = hot.freeze(1).unwrap();
    hot.flush(&frozen).unwrap();
}

/// An archive of `dir/data` to `dir/objects` holding one object: [`hot_with`]'s file,
/// uploaded.
pub async fn one_object(dir: &Path) -> (Arc<Archive>, ArchivedObject) {
    let root = dir.join("data");
    let hot = hot_with(&root, "one");
    let archive = open(&root, &dir.join("objects"), &root.join("keys"));
    assert_eq!(archive.upload_pass(&hot, &no_grace()).await.unwrap(), 1);
    let object = archive.manifest.lock().objects[0].clone();
    (archive, object)
}

/// Every key in the archive's target.
pub async fn keys_in(archive: &Archive) -> Vec<String> {
    archive
        .target
        .store
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// The archived objects in the archive's target (no sidecars or skip indexes).
pub async fn objects_in(archive: &Archive) -> Vec<String> {
    let mut keys = keys_in(archive).await;
    keys.retain(|key| super::manifest::ObjectFormat::of_key(key).is_some());
    keys
}

pub async fn messages(archive: &Arc<Archive>, object: &ArchivedObject) -> Vec<String> {
    archive
        .read_object(object)
        .await
        .unwrap()
        .iter()
        .flat_map(|batch| batch_to_events(batch, "acme"))
        .map(|event| event.msg)
        .collect()
}

/// Rows in the event schema holding `messages`, one each.
pub fn event_batch(messages: &[&str]) -> datafusion::arrow::array::RecordBatch {
    let events: Vec<Event> = messages
        .iter()
        .map(|message| {
            let correlation = Correlation::new(
                "acme",
                &Producer::plain("default"),
                Transport::Tcp,
                Utc::now(),
            );
            Event::from_message(message.to_string(), correlation)
        })
        .collect();
    meniscus_record::columnar::events_to_batch(&events).unwrap()
}
