//! The hot store: recent events per tenant and hourly window, in memory (queryable at once)
//! and in Parquet files on local disk, with a manifest that says which files are live.
//!
//! The manifest is the single source of truth: a Parquet file that is not in it (left by a
//! crash mid-flush) is deleted at start, and the manifest records up to which write-ahead-log
//! segment events are in Parquet, so replay neither loses nor duplicates a flushed event.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use meniscus_grid::Event;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::schema::{events_to_batch, schema};
use super::wal::sync_dir;

/// Events are grouped into windows of this many seconds: the unit of time pruning and
/// retention.
pub const WINDOW_SECONDS: i64 = 3600;
/// Pending events are turned into an Arrow batch once a partition has this many.
const BATCH_ROWS: usize = 8192;
const MANIFEST: &str = "MANIFEST.json";

pub fn window_of(time: DateTime<Utc>) -> i64 {
    time.timestamp().div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS
}

fn window_dir_name(window: i64) -> String {
    match Utc.timestamp_opt(window, 0).single() {
        Some(start) => start.format("%Y%m%dT%H").to_string(),
        None => format!("w{window}"),
    }
}

/// One live Parquet file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub tenant: String,
    /// Window start, seconds since the epoch.
    pub window: i64,
    /// Path relative to the hot-store root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    /// Every WAL segment up to this number is fully in Parquet.
    wal_flushed_through: u64,
    next_flush_seq: u64,
    files: Vec<FileEntry>,
}

#[derive(Default)]
struct Partition {
    batches: Vec<RecordBatch>,
    pending: Vec<Event>,
}

impl Partition {
    fn seal_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match events_to_batch(&self.pending) {
            Ok(batch) => self.batches.push(batch),
            // Our own builders always match our schema; if that ever broke, keeping the events
            // pending (still in the WAL) beats losing them.
            Err(error) => {
                tracing::error!(%error, "cannot build an arrow batch from pending events");
                return;
            }
        }
        self.pending.clear();
    }

    fn snapshot(&self) -> Vec<RecordBatch> {
        let mut batches = self.batches.clone();
        if !self.pending.is_empty() {
            if let Ok(batch) = events_to_batch(&self.pending) {
                batches.push(batch);
            }
        }
        batches
    }
}

/// Events not yet in Parquet.
#[derive(Default)]
struct MemTable {
    partitions: HashMap<(String, i64), Partition>,
    event_ids: HashSet<String>,
    events: usize,
    started: Option<Instant>,
}

/// A memtable being written to Parquet: still queryable until its files are live.
pub struct Frozen {
    partitions: Vec<((String, i64), Vec<RecordBatch>)>,
    event_ids: Arc<HashSet<String>>,
    /// The WAL segment that held the last of these events.
    pub wal_seq: u64,
}

impl Frozen {
    pub fn events(&self) -> usize {
        self.event_ids.len()
    }
}

struct State {
    active: MemTable,
    frozen: Vec<Arc<Frozen>>,
    /// Ids of the last flushed generation, so a redelivery right after a flush is still caught.
    recently_flushed: Arc<HashSet<String>>,
    files: BTreeMap<String, BTreeMap<i64, Vec<FileEntry>>>,
    manifest: Manifest,
}

pub struct HotStore {
    root: PathBuf,
    state: RwLock<State>,
}

/// What a query over one tenant reads: in-memory batches and Parquet files.
pub struct Snapshot {
    pub batches: Vec<RecordBatch>,
    pub files: Vec<PathBuf>,
}

impl HotStore {
    /// Opens the store, deleting files the manifest does not list. Returns the store and the
    /// WAL segment up to which events are already in Parquet.
    pub fn open(root: &Path) -> io::Result<(HotStore, u64)> {
        fs::create_dir_all(root)?;
        let manifest: Manifest = match fs::read(root.join(MANIFEST)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "corrupt hot-store manifest {}: {error}",
                        root.join(MANIFEST).display()
                    ),
                )
            })?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Manifest {
                version: 1,
                ..Manifest::default()
            },
            Err(error) => return Err(error),
        };
        let live: HashSet<PathBuf> = manifest
            .files
            .iter()
            .map(|entry| root.join(&entry.path))
            .collect();
        remove_orphans(root, &live)?;
        let mut files: BTreeMap<String, BTreeMap<i64, Vec<FileEntry>>> = BTreeMap::new();
        for entry in &manifest.files {
            files
                .entry(entry.tenant.clone())
                .or_default()
                .entry(entry.window)
                .or_default()
                .push(entry.clone());
        }
        let flushed_through = manifest.wal_flushed_through;
        let state = State {
            active: MemTable::default(),
            frozen: Vec::new(),
            recently_flushed: Arc::default(),
            files,
            manifest,
        };
        Ok((
            HotStore {
                root: root.to_path_buf(),
                state: RwLock::new(state),
            },
            flushed_through,
        ))
    }

    /// Adds events to memory, skipping any whose `event_id` is already held (at-least-once
    /// delivery upstream becomes exactly-once here). Returns how many were new.
    pub fn insert(&self, events: Vec<Event>) -> usize {
        let mut state = self.state.write();
        let State {
            active,
            frozen,
            recently_flushed,
            ..
        } = &mut *state;
        let mut inserted = 0;
        for event in events {
            let id = &event.meniscus.event_id;
            let duplicate = active.event_ids.contains(id)
                || recently_flushed.contains(id)
                || frozen.iter().any(|frozen| frozen.event_ids.contains(id));
            if duplicate {
                continue;
            }
            active.event_ids.insert(id.clone());
            let key = (
                event.meniscus.tenant.clone(),
                window_of(event.effective_time()),
            );
            let partition = active.partitions.entry(key).or_default();
            partition.pending.push(event);
            if partition.pending.len() >= BATCH_ROWS {
                partition.seal_pending();
            }
            inserted += 1;
        }
        if inserted > 0 {
            active.events += inserted;
            active.started.get_or_insert_with(Instant::now);
        }
        inserted
    }

    /// Events in memory not yet frozen, and how long ago the first of them arrived.
    pub fn active_size(&self) -> (usize, Option<std::time::Duration>) {
        let state = self.state.read();
        (
            state.active.events,
            state.active.started.map(|started| started.elapsed()),
        )
    }

    pub fn frozen_count(&self) -> usize {
        self.state.read().frozen.len()
    }

    /// Moves the active memtable aside for flushing; it stays queryable.
    pub fn freeze(&self, wal_seq: u64) -> Option<Arc<Frozen>> {
        let mut state = self.state.write();
        if state.active.events == 0 {
            return None;
        }
        let mut active = std::mem::take(&mut state.active);
        let partitions = active
            .partitions
            .drain()
            .map(|(key, mut partition)| {
                partition.seal_pending();
                (key, partition.batches)
            })
            .collect();
        let frozen = Arc::new(Frozen {
            partitions,
            event_ids: Arc::new(active.event_ids),
            wal_seq,
        });
        state.frozen.push(frozen.clone());
        Some(frozen)
    }

    /// Writes a frozen memtable to Parquet and makes the files live. Runs on the flusher
    /// thread; ingest continues meanwhile.
    pub fn flush(&self, frozen: &Arc<Frozen>) -> io::Result<Vec<FileEntry>> {
        let flush_seq = self.state.read().manifest.next_flush_seq;
        let mut entries = Vec::new();
        for (index, ((tenant, window), batches)) in frozen.partitions.iter().enumerate() {
            if batches.iter().all(|batch| batch.num_rows() == 0) {
                continue;
            }
            let relative = format!(
                "{tenant}/{}/{flush_seq:012}-{index:05}.parquet",
                window_dir_name(*window)
            );
            let bytes = write_parquet(&self.root.join(&relative), batches)?;
            let rows = batches.iter().map(|batch| batch.num_rows() as u64).sum();
            entries.push(FileEntry {
                tenant: tenant.clone(),
                window: *window,
                path: relative,
                rows,
                bytes,
            });
        }
        let mut state = self.state.write();
        let mut manifest = state.manifest.clone();
        manifest.files.extend(entries.iter().cloned());
        manifest.wal_flushed_through = manifest.wal_flushed_through.max(frozen.wal_seq);
        manifest.next_flush_seq = flush_seq + 1;
        write_manifest(&self.root, &manifest)?;
        state.manifest = manifest;
        for entry in &entries {
            state
                .files
                .entry(entry.tenant.clone())
                .or_default()
                .entry(entry.window)
                .or_default()
                .push(entry.clone());
        }
        state
            .frozen
            .retain(|candidate| !Arc::ptr_eq(candidate, frozen));
        // Shared, not copied: copying half a million ids under the write lock stalled ingest.
        state.recently_flushed = frozen.event_ids.clone();
        Ok(entries)
    }

    /// What a query over `tenant` between `from` and `to` (window starts, inclusive) reads.
    pub fn snapshot(
        &self,
        tenant: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Snapshot {
        let first_window = from.map(window_of).unwrap_or(i64::MIN);
        let last_window = to.map(window_of).unwrap_or(i64::MAX);
        let in_range = |window: i64| window >= first_window && window <= last_window;
        let state = self.state.read();
        let mut batches = Vec::new();
        for ((partition_tenant, window), partition) in &state.active.partitions {
            if partition_tenant == tenant && in_range(*window) {
                batches.extend(partition.snapshot());
            }
        }
        for frozen in &state.frozen {
            for ((partition_tenant, window), frozen_batches) in &frozen.partitions {
                if partition_tenant == tenant && in_range(*window) {
                    batches.extend(frozen_batches.iter().cloned());
                }
            }
        }
        let files = state
            .files
            .get(tenant)
            .map(|windows| {
                windows
                    .range(first_window..=last_window)
                    .flat_map(|(_, entries)| {
                        entries.iter().map(|entry| self.root.join(&entry.path))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Snapshot { batches, files }
    }

    /// Deletes the files of every window that ended before `now - retention(tenant)`.
    /// Returns the removed entries. Tenants for which `retention` gives `None` are kept.
    pub fn expire(
        &self,
        now: DateTime<Utc>,
        retention: impl Fn(&str) -> Option<chrono::Duration>,
    ) -> io::Result<Vec<FileEntry>> {
        let mut state = self.state.write();
        let expired = |entry: &FileEntry| match retention(&entry.tenant) {
            Some(keep) => entry.window + WINDOW_SECONDS <= (now - keep).timestamp(),
            None => false,
        };
        let removed: Vec<FileEntry> = state
            .manifest
            .files
            .iter()
            .filter(|entry| expired(entry))
            .cloned()
            .collect();
        if removed.is_empty() {
            return Ok(removed);
        }
        let mut manifest = state.manifest.clone();
        manifest.files.retain(|entry| !expired(entry));
        // The manifest goes first: a crash after it leaves orphans that the next start deletes,
        // never a manifest that names a missing file.
        write_manifest(&self.root, &manifest)?;
        state.manifest = manifest;
        for entry in &removed {
            if let Some(windows) = state.files.get_mut(&entry.tenant) {
                windows.remove(&entry.window);
                if windows.is_empty() {
                    state.files.remove(&entry.tenant);
                }
            }
        }
        drop(state);
        for entry in &removed {
            let path = self.root.join(&entry.path);
            if let Err(error) = fs::remove_file(&path) {
                if error.kind() != io::ErrorKind::NotFound {
                    return Err(error);
                }
            }
            if let Some(window_dir) = path.parent() {
                // Only succeeds once the window's directory is empty, which is what we want.
                let _ = fs::remove_dir(window_dir);
            }
        }
        Ok(removed)
    }
}

fn write_manifest(root: &Path, manifest: &Manifest) -> io::Result<()> {
    let temporary = root.join(format!("{MANIFEST}.tmp"));
    let bytes = serde_json::to_vec(manifest).map_err(io::Error::other)?;
    {
        let mut file = fs::File::create(&temporary)?;
        io::Write::write_all(&mut file, &bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, root.join(MANIFEST))?;
    sync_dir(root)
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(256 * 1024))
        // A job lookup reads only files that may hold the job id.
        .set_column_bloom_filter_enabled(ColumnPath::from("job_id"), true)
        .build()
}

/// Writes batches to one Parquet file (via a temporary name, fsynced) and returns its size.
fn write_parquet(path: &Path, batches: &[RecordBatch]) -> io::Result<u64> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("parquet path has no parent"))?;
    fs::create_dir_all(dir)?;
    let temporary = path.with_extension("parquet.tmp");
    let file = fs::File::create(&temporary)?;
    let mut writer = ArrowWriter::try_new(file, schema(), Some(writer_properties()))
        .map_err(io::Error::other)?;
    for batch in batches {
        writer.write(batch).map_err(io::Error::other)?;
    }
    let file = writer.into_inner().map_err(io::Error::other)?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    fs::rename(&temporary, path)?;
    sync_dir(dir)?;
    Ok(bytes)
}

/// Deletes Parquet files (and temporaries) under `root` that are not live.
fn remove_orphans(root: &Path, live: &HashSet<PathBuf>) -> io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            let orphan = (name.ends_with(".parquet") && !live.contains(&path))
                || name.ends_with(".parquet.tmp");
            if orphan {
                tracing::warn!(path = %path.display(), "deleting a hot-store file left by an interrupted flush");
                fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}
