//! The hot store: recent events per tenant and hourly window, in memory (queryable at once)
//! and in Parquet files on local disk, with a manifest that says which files are live.
//!
//! - [`memtable`]: what is in memory, and the event ids storage dedupes on;
//! - [`manifest`]: the live files and the WAL position they cover (the source of truth);
//! - [`parquet`]: how files are written, durably.
//!
//! A live file that has gone missing from disk (deleted by hand, a lost volume) is reported
//! once, and queries say which windows they could not read instead of failing outright.

pub mod manifest;
pub mod memtable;
pub mod parquet;
pub mod sealed;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::array::new_null_array;
use datafusion::arrow::array::{
    Array, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::{
    concat, filter_record_batch, interleave_record_batch, lexsort_to_indices, SortColumn,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::file::reader::ChunkReader;
use meniscus_record::columnar::{batch_bytes, conform, event_keys, schema, TenantBatch};
use parking_lot::RwLock;

use crate::archive::crypto::{Keyring, SealingGuard, TenantKey};
use crate::compaction::CompactionOptions;
use crate::disk::{replace_file, Disk};
use crate::msg_tokens::{self, stored_schema};
use crate::skip_index;
pub use manifest::FileEntry;
use manifest::Manifest;
use memtable::{sorted_keys, IdSet, MemTable};
pub use memtable::{Frozen, Inserted};
pub use meniscus_record::columnar::event_key;
use parquet::{write_parquet, FileKind};
use sealed::{holds_encrypted_rows, HotFile};

/// Events are grouped into windows of this many seconds: the unit of time pruning and
/// retention.
pub const WINDOW_SECONDS: i64 = 3600;

pub fn window_of(time: DateTime<Utc>) -> i64 {
    time.timestamp().div_euclid(WINDOW_SECONDS) * WINDOW_SECONDS
}

pub(crate) fn window_dir_name(window: i64) -> String {
    match Utc.timestamp_opt(window, 0).single() {
        Some(start) => start.format("%Y%m%dT%H").to_string(),
        None => format!("w{window}"),
    }
}

/// The window a directory name stands for (the inverse of `window_dir_name`).
fn window_from_dir_name(name: &str) -> Option<i64> {
    if let Some(seconds) = name.strip_prefix('w') {
        return seconds.parse().ok();
    }
    chrono::NaiveDateTime::parse_from_str(&format!("{name}0000"), "%Y%m%dT%H%M%S")
        .ok()
        .map(|start| start.and_utc().timestamp())
}

/// Most event ids of flushed files kept for dedupe (16 bytes each: 64 MiB), whether read
/// back at start or kept from this run's flushes. At high rates this, not the dedupe window,
/// bounds how late a redelivery is still caught.
const MAX_FLUSHED_IDS_KEPT: usize = 4_000_000;

struct State {
    active: MemTable,
    frozen: Vec<Arc<Frozen>>,
    /// Ids of the generations flushed within the dedupe window (and, after a start, of
    /// recently written files), oldest first, with when they were flushed: a redelivery
    /// after a flush or a restart is still caught. A sender retries for as long as a link
    /// is down, so "the last flush" is not enough.
    recently_flushed: VecDeque<(Instant, Arc<IdSet>)>,
    dedupe_window: Duration,
    files: BTreeMap<String, BTreeMap<i64, Vec<FileEntry>>>,
    manifest: Manifest,
    /// Files replaced by compaction, deleted once queries that listed them are done.
    retired: Vec<(PathBuf, Instant)>,
    /// Live files found missing from disk (relative paths), each reported once.
    missing: HashSet<String>,
    /// Live files compaction must leave alone (relative paths): the archive holds them as
    /// objects of their own, so their rows must never move into another file.
    pinned: HashSet<String>,
    /// Live files of compaction groups the flusher set aside after repeated failures
    /// (relative paths): the archive takes them as they are rather than wait for a
    /// compaction that may never come.
    set_aside: HashSet<String>,
}

/// Rows gathered into one sorted slice when a compacted file is written.
const COMPACTION_SLICE_ROWS: usize = 64 * 1024;

/// How long a file replaced by compaction stays on disk: longer than any query may run.
const RETIRED_FILE_LIFETIME: Duration = Duration::from_secs(300);

pub struct HotStore {
    root: PathBuf,
    disk: Arc<dyn Disk>,
    /// Tenant keys: files holding rows of `encrypted` producers are sealed with them.
    keyring: Arc<Keyring>,
    state: RwLock<State>,
}

/// A window a query could not read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// Window start, seconds since the epoch.
    pub window: i64,
    pub reason: String,
    /// The hot-store file that could not be read, if it was one (an archived copy may stand
    /// in for it).
    pub source: Option<String>,
}

/// What a query over one tenant reads: in-memory batches and Parquet files.
pub struct Snapshot {
    pub batches: Vec<RecordBatch>,
    /// Files that store `msg` whole.
    pub files: Vec<PathBuf>,
    /// Files that store `msg` as tokens.
    pub token_files: Vec<PathBuf>,
    /// Which of those files are sealed (read through `hot::sealed`).
    pub sealed: HashSet<PathBuf>,
    /// Windows with a live file missing from disk: the query answers without them.
    pub unreadable: Vec<Unreadable>,
    /// The readable live files above, as paths relative to the hot-store root (what the
    /// archive names its objects' sources by).
    pub live: HashSet<String>,
}

impl HotStore {
    /// Opens the store, deleting Parquet files the manifest does not list (an interrupted
    /// flush). Refuses to open when the manifest is missing but Parquet files exist. Event
    /// ids of files written within `dedupe_window` are read back, so a batch redelivered
    /// after a restart is stored once. Returns the store and the WAL segment up to which
    /// events are already in Parquet.
    pub fn open(
        root: &Path,
        disk: Arc<dyn Disk>,
        dedupe_window: Duration,
        keyring: Arc<Keyring>,
    ) -> io::Result<(HotStore, u64)> {
        fs::create_dir_all(root)?;
        let manifest = manifest::read(root)?;
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
        let recent_ids = recent_event_ids(root, &manifest.files, dedupe_window, &keyring);
        let mut recently_flushed = VecDeque::new();
        if !recent_ids.is_empty() {
            recently_flushed.push_back((Instant::now(), Arc::new(recent_ids)));
        }
        let flushed_through = manifest.wal_flushed_through;
        let state = State {
            active: MemTable::default(),
            frozen: Vec::new(),
            recently_flushed,
            dedupe_window,
            files,
            manifest,
            retired: Vec::new(),
            missing: HashSet::new(),
            set_aside: HashSet::new(),
            pinned: HashSet::new(),
        };
        Ok((
            HotStore {
                root: root.to_path_buf(),
                disk,
                keyring,
                state: RwLock::new(state),
            },
            flushed_through,
        ))
    }

    /// Adds batches to memory, skipping events whose `event_id` is already held (at-least-once
    /// delivery upstream becomes exactly-once here).
    pub fn insert(&self, groups: Vec<TenantBatch>) -> Inserted {
        let mut inserted = Inserted::default();
        // Work out keys and windows before taking the lock: ingest threads insert while
        // queries take snapshots.
        type Prepared = (
            TenantBatch,
            Arc<[u128]>,
            Vec<i64>,
            Vec<(u128, usize)>,
            Vec<bool>,
        );
        let prepared: Vec<Prepared> = groups
            .into_iter()
            .filter(|group| group.batch.num_rows() > 0)
            .map(|group| {
                let keys = group.keys();
                let windows = windows(&group.batch);
                let mut duplicate = vec![false; keys.len()];
                let sorted = sorted_keys(&keys, &mut duplicate);
                (group, keys, windows, sorted, duplicate)
            })
            .collect();
        let mut state = self.state.write();
        let State {
            active,
            frozen,
            recently_flushed,
            ..
        } = &mut *state;
        for (group, keys, windows, sorted, mut duplicate) in prepared {
            for held in recently_flushed
                .iter()
                .map(|(_, ids)| ids)
                .chain(frozen.iter().map(|frozen| &frozen.event_ids))
            {
                held.mark_held(&sorted, &mut duplicate);
            }
            active.event_ids.mark_held(&sorted, &mut duplicate);
            active.event_ids.insert_run(&sorted, &duplicate);
            let keep: Vec<bool> = duplicate.iter().map(|duplicate| !duplicate).collect();
            debug_assert_eq!(keep.len(), keys.len());
            let new_events = keep.iter().filter(|keep| **keep).count();
            inserted.duplicates += (keep.len() - new_events) as u64;
            if new_events == 0 {
                continue;
            }
            let tenant = group.tenant.as_str().to_string();
            count_jobs(&group.batch, &keep, &tenant, &mut inserted.jobs);
            let first_window = windows[0];
            let single_window = windows.iter().all(|window| *window == first_window);
            let mut pieces = Vec::new();
            if single_window && new_events == keep.len() {
                pieces.push((first_window, group.batch));
            } else {
                let mut distinct: Vec<i64> = windows.clone();
                distinct.sort_unstable();
                distinct.dedup();
                for window in distinct {
                    let mask: BooleanArray = keep
                        .iter()
                        .zip(&windows)
                        .map(|(keep, row_window)| Some(*keep && *row_window == window))
                        .collect();
                    match filter_record_batch(&group.batch, &mask) {
                        Ok(piece) if piece.num_rows() > 0 => pieces.push((window, piece)),
                        Ok(_) => {}
                        // Filtering our own batch with a mask of its length cannot fail.
                        Err(error) => tracing::error!(%error, "cannot split a batch by window"),
                    }
                }
            }
            for (window, piece) in pieces {
                active.bytes += batch_bytes(&piece);
                active
                    .partitions
                    .entry((tenant.clone(), window))
                    .or_default()
                    .push(piece);
            }
            active.events += new_events;
            active.started.get_or_insert_with(Instant::now);
            match inserted.per_tenant.last_mut() {
                Some((last, count)) if *last == tenant => *count += new_events as u64,
                _ => inserted.per_tenant.push((tenant, new_events as u64)),
            }
        }
        inserted
    }

    /// Events and bytes in memory not yet frozen, and how long ago the first of them arrived.
    pub fn active_size(&self) -> (usize, usize, Option<std::time::Duration>) {
        let state = self.state.read();
        (
            state.active.events,
            state.active.bytes,
            state.active.started.map(|started| started.elapsed()),
        )
    }

    /// The hot store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every (tenant, window) with events in memory, not yet in a file.
    pub fn memory_windows(&self) -> Vec<(String, i64)> {
        let state = self.state.read();
        let mut windows: HashSet<(String, i64)> = state.active.partitions.keys().cloned().collect();
        for frozen in &state.frozen {
            windows.extend(frozen.partitions.iter().map(|(key, _)| key.clone()));
        }
        windows.into_iter().collect()
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
        let active = std::mem::take(&mut state.active);
        let partitions = active.partitions.into_iter().collect();
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
            let sealed = batches.iter().any(holds_encrypted_rows);
            let (_sealing, key) = self.sealing_key(tenant, sealed)?;
            let bytes = write_parquet(
                self.disk.as_ref(),
                &self.root,
                &relative,
                schema(),
                batches.iter().map(|batch| Ok(batch.clone())),
                FileKind::Flush,
                key.as_ref().map(|key| (tenant.as_str(), key)),
            )?;
            let rows = batches.iter().map(|batch| batch.num_rows() as u64).sum();
            entries.push(FileEntry {
                tenant: tenant.clone(),
                window: *window,
                path: relative,
                rows,
                bytes,
                compacted: false,
                created: Utc::now().timestamp(),
                msg_tokens: false,
                sealed,
            });
        }
        let mut state = self.state.write();
        let mut manifest = state.manifest.clone();
        manifest.files.extend(entries.iter().cloned());
        manifest.wal_flushed_through = manifest.wal_flushed_through.max(frozen.wal_seq);
        manifest.next_flush_seq = flush_seq + 1;
        manifest::write(self.disk.as_ref(), &self.root, &manifest)?;
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
        state
            .recently_flushed
            .push_back((Instant::now(), frozen.event_ids.clone()));
        let window = state.dedupe_window;
        forget_old_ids(&mut state.recently_flushed, window);
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
        if first_window > last_window {
            // An empty range (a query wholly before the retention, say): nothing to read.
            return Snapshot {
                batches: Vec::new(),
                files: Vec::new(),
                token_files: Vec::new(),
                sealed: HashSet::new(),
                unreadable: Vec::new(),
                live: HashSet::new(),
            };
        }
        let in_range = |window: i64| window >= first_window && window <= last_window;
        let (mut newly_missing, mut found_again) = (Vec::new(), Vec::new());
        let snapshot = {
            let state = self.state.read();
            let mut batches = Vec::new();
            for ((partition_tenant, window), partition) in &state.active.partitions {
                if partition_tenant == tenant && in_range(*window) {
                    batches.extend(partition.iter().cloned());
                }
            }
            for frozen in &state.frozen {
                for ((partition_tenant, window), frozen_batches) in &frozen.partitions {
                    if partition_tenant == tenant && in_range(*window) {
                        batches.extend(frozen_batches.iter().cloned());
                    }
                }
            }
            let (mut files, mut token_files, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
            let (mut live, mut sealed) = (HashSet::new(), HashSet::new());
            if let Some(windows) = state.files.get(tenant) {
                for entry in windows
                    .range(first_window..=last_window)
                    .flat_map(|(_, entries)| entries)
                {
                    let path = self.root.join(&entry.path);
                    // One stat per file: a missing file would fail the whole query.
                    if let Err(error) = std::fs::symlink_metadata(&path) {
                        let reason = if error.kind() == io::ErrorKind::NotFound {
                            newly_missing.push(entry.path.clone());
                            format!("hot-store file {} is missing from disk", entry.path)
                        } else {
                            format!("hot-store file {} cannot be read: {error}", entry.path)
                        };
                        unreadable.push(Unreadable {
                            window: entry.window,
                            reason,
                            source: Some(entry.path.clone()),
                        });
                        continue;
                    }
                    if state.missing.contains(&entry.path) {
                        found_again.push(entry.path.clone());
                    }
                    live.insert(entry.path.clone());
                    if entry.sealed {
                        sealed.insert(path.clone());
                    }
                    if entry.msg_tokens {
                        token_files.push(path);
                    } else {
                        files.push(path);
                    }
                }
            }
            Snapshot {
                batches,
                files,
                token_files,
                sealed,
                unreadable,
                live,
            }
        };
        self.note_missing(newly_missing, found_again);
        snapshot
    }

    /// Records the files `missing` from disk that are still live (each reported once), and
    /// forgets the files `found` on disk again (restored by hand, say).
    fn note_missing(&self, missing: Vec<String>, found: Vec<String>) {
        if missing.is_empty() && found.is_empty() {
            return;
        }
        let mut state = self.state.write();
        for path in found {
            if state.missing.remove(&path) {
                tracing::info!(path = %self.root.join(&path).display(), "a hot-store file missing from disk is back");
            }
        }
        for path in missing {
            // One that retention or compaction took out meanwhile is simply gone.
            let live = state
                .manifest
                .files
                .iter()
                .any(|candidate| candidate.path == path);
            if live && state.missing.insert(path.clone()) {
                tracing::error!(
                    path = %self.root.join(&path).display(),
                    "a live hot-store file is missing from disk; queries answer without its window and say so (restore the file, or let retention remove its entry)"
                );
            }
        }
    }

    /// Whether the file `path` (relative) is certainly not on disk: an error other than "not
    /// found" (a permission slip, say) does not count, so such a file is never given up on.
    fn absent(&self, path: &str) -> bool {
        matches!(
            std::fs::symlink_metadata(self.root.join(path)),
            Err(error) if error.kind() == io::ErrorKind::NotFound
        )
    }

    /// Live files found missing from disk so far.
    pub fn missing_files(&self) -> usize {
        self.state.read().missing.len()
    }

    /// Live files missing from disk (relative paths), checked on disk again now: one that
    /// is back (restored by hand) is not among them, and is no longer reported.
    pub fn missing_paths(&self) -> HashSet<String> {
        let recorded = self.state.read().missing.clone();
        let (missing, found): (HashSet<String>, HashSet<String>) =
            recorded.into_iter().partition(|path| self.absent(path));
        self.note_missing(Vec::new(), found.into_iter().collect());
        missing
    }

    /// Whether a file is not on disk: a live one is then recorded (and reported once) as
    /// missing, and forgotten once it is back.
    pub fn is_missing(&self, entry: &FileEntry) -> bool {
        let absent = self.absent(&entry.path);
        let recorded = self.state.read().missing.contains(&entry.path);
        match (absent, recorded) {
            (true, false) => self.note_missing(vec![entry.path.clone()], Vec::new()),
            (false, true) => self.note_missing(Vec::new(), vec![entry.path.clone()]),
            _ => {}
        }
        absent
    }

    /// Every live Parquet file.
    pub fn file_entries(&self) -> Vec<FileEntry> {
        self.state.read().manifest.files.clone()
    }

    /// Live files compaction may rewrite: every one not pinned by the archive.
    pub fn compactable_entries(&self) -> Vec<FileEntry> {
        let state = self.state.read();
        state
            .manifest
            .files
            .iter()
            .filter(|entry| !state.pinned.contains(&entry.path))
            .cloned()
            .collect()
    }

    /// Records the files of the compaction groups set aside now (replacing the last record).
    pub fn set_aside(&self, paths: HashSet<String>) {
        self.state.write().set_aside = paths;
    }

    /// Whether the live file `path` belongs to a compaction group set aside.
    pub fn is_set_aside(&self, path: &str) -> bool {
        self.state.read().set_aside.contains(path)
    }

    /// Keeps compaction off the live file `path` from now on, so its rows stay exactly where
    /// an archived copy says they are. False when the file is no longer live (compaction or
    /// retention replaced it meanwhile): then it must not be archived.
    pub fn pin(&self, path: &str) -> bool {
        let mut state = self.state.write();
        let live = state.manifest.files.iter().any(|entry| entry.path == path);
        if live {
            state.pinned.insert(path.to_string());
        }
        live
    }

    /// The rows of the live file `entry`, with the hot-store schema (messages joined).
    pub fn read_file(&self, entry: &FileEntry) -> io::Result<Vec<RecordBatch>> {
        read_batches_of(self.open_file(entry)?)
    }

    /// The live file `entry`, opened for reading (unsealed when it is sealed).
    pub fn open_file(&self, entry: &FileEntry) -> io::Result<HotFile> {
        HotFile::open(&self.root.join(&entry.path), &entry.tenant, &self.keyring)
    }

    /// Every byte of the live file `entry` as plain Parquet (what the archive uploads, sealed
    /// under an object key of its own).
    pub fn read_plain(&self, entry: &FileEntry) -> io::Result<bytes::Bytes> {
        self.open_file(entry)?.read_all()
    }

    /// For a file of `tenant` to be sealed: its key, with the guard to hold until the file is
    /// in place (a key rotation's `--retire-old` waits for it); nothing for a plain file.
    fn sealing_key(
        &self,
        tenant: &str,
        sealed: bool,
    ) -> io::Result<(Option<SealingGuard>, Option<TenantKey>)> {
        if !sealed {
            return Ok((None, None));
        }
        let (guard, key) = self.keyring.current_for_sealing(tenant)?;
        Ok((Some(guard), Some(key)))
    }

    /// The tenant keys files are sealed with.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// Takes one live file out at once (manifest first, then the file): its rows are held
    /// elsewhere now (a storage worker handed them off). False when it was not live.
    pub fn release(&self, path: &str) -> io::Result<bool> {
        let removed = self.expire(
            DateTime::<Utc>::MAX_UTC,
            |_| Some(chrono::Duration::zero()),
            |entry| entry.path != path,
        )?;
        let live = !removed.is_empty();
        if live {
            let full = self.root.join(path);
            self.delete_retired_or(|candidate| candidate == full);
        }
        Ok(live)
    }

    /// Whether the live file `path` is pinned.
    pub fn is_pinned(&self, path: &str) -> bool {
        self.state.read().pinned.contains(path)
    }

    /// Rewrites `group` (files of one tenant and window) as one file sorted by `pname`, `ts`
    /// at the options' zstd level, messages split if they say so, and swaps it in. Returns the
    /// new entry, or `None` when the group changed meanwhile (retention removed a file) and
    /// nothing was swapped.
    pub fn compact(
        &self,
        group: &[FileEntry],
        options: &CompactionOptions,
    ) -> io::Result<Option<FileEntry>> {
        let Some(first) = group.first() else {
            return Ok(None);
        };
        let mut batches = Vec::new();
        for entry in group {
            batches.extend(self.read_file(entry)?);
        }
        let sealed = batches.iter().any(holds_encrypted_rows);
        let (_sealing, key) = self.sealing_key(&first.tenant, sealed)?;
        // Only the sort keys are concatenated; rows are then gathered from the batches as
        // read, one output slice at a time, so memory holds the input once plus one slice.
        let order = compaction_order(&batches)?;
        let flush_seq = {
            let mut state = self.state.write();
            let seq = state.manifest.next_flush_seq;
            state.manifest.next_flush_seq += 1;
            seq
        };
        let relative = format!(
            "{}/{}/{flush_seq:012}-compacted.parquet",
            first.tenant,
            window_dir_name(first.window)
        );
        let inputs: Vec<&RecordBatch> = batches.iter().collect();
        // The skip index sees the rows whole, in the order they are written, before any split.
        let mut skip_index = skip_index::Builder::default();
        let slices = order.chunks(COMPACTION_SLICE_ROWS).map(|slice| {
            let rows = interleave_record_batch(&inputs, slice).map_err(io::Error::other)?;
            skip_index.add(&rows)?;
            if options.split_messages {
                msg_tokens::split(&rows).map_err(io::Error::other)
            } else {
                Ok(rows)
            }
        });
        let file_schema = if options.split_messages {
            stored_schema()
        } else {
            schema()
        };
        let bytes = write_parquet(
            self.disk.as_ref(),
            &self.root,
            &relative,
            file_schema,
            slices,
            FileKind::Compacted {
                zstd_level: options.zstd_level,
            },
            key.as_ref().map(|key| (first.tenant.as_str(), key)),
        )?;
        // Durable before the manifest names the file; a crash before that leaves both orphans.
        let sidecar = skip_index::sidecar_path(&self.root.join(&relative));
        let index = skip_index.finish().encode();
        let index = match &key {
            Some(key) => skip_index::seal(&index, &sidecar, &first.tenant, key)?,
            None => index,
        };
        replace_file(self.disk.as_ref(), &sidecar, &index)?;
        let rows = order.len();
        drop(batches);
        let entry = FileEntry {
            tenant: first.tenant.clone(),
            window: first.window,
            path: relative,
            rows: rows as u64,
            bytes,
            compacted: true,
            created: Utc::now().timestamp(),
            msg_tokens: options.split_messages,
            sealed,
        };
        let mut state = self.state.write();
        // Pinned meanwhile (the archiver took a file of the group) counts as changed too.
        let still_live = group.iter().all(|old| {
            !state.pinned.contains(&old.path)
                && state
                    .manifest
                    .files
                    .iter()
                    .any(|live| live.path == old.path)
        });
        if !still_live {
            drop(state);
            let path = self.root.join(&entry.path);
            let _ = self.disk.remove_file(&skip_index::sidecar_path(&path));
            let _ = self.disk.remove_file(&path);
            return Ok(None);
        }
        let replaced = |candidate: &FileEntry| group.iter().any(|old| old.path == candidate.path);
        let mut manifest = state.manifest.clone();
        manifest.files.retain(|candidate| !replaced(candidate));
        manifest.files.push(entry.clone());
        manifest::write(self.disk.as_ref(), &self.root, &manifest)?;
        state.manifest = manifest;
        if let Some(entries) = state
            .files
            .get_mut(&entry.tenant)
            .and_then(|windows| windows.get_mut(&entry.window))
        {
            entries.retain(|candidate| !replaced(candidate));
            entries.push(entry.clone());
        }
        let now = Instant::now();
        for old in group {
            state.retired.push((self.root.join(&old.path), now));
        }
        Ok(Some(entry))
    }

    /// Deletes files replaced by compaction long enough ago.
    pub fn delete_retired(&self) {
        self.delete_retired_or(|_| false);
    }

    /// Deletes files replaced long enough ago, and those `now` picks at once.
    fn delete_retired_or(&self, now: impl Fn(&Path) -> bool) {
        let due: Vec<PathBuf> = {
            let mut state = self.state.write();
            let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut state.retired)
                .into_iter()
                .partition(|(path, retired)| {
                    retired.elapsed() >= RETIRED_FILE_LIFETIME || now(path)
                });
            state.retired = keep;
            due.into_iter().map(|(path, _)| path).collect()
        };
        for path in due {
            // The sidecar first: a file left without one is merely read in full.
            let _ = self.disk.remove_file(&skip_index::sidecar_path(&path));
            if let Err(error) = self.disk.remove_file(&path) {
                if error.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %error, "cannot delete a compacted-away or expired file; it is deleted at the next start");
                }
            }
            if let Some(window_dir) = path.parent() {
                // Only succeeds once the window's directory is empty, which is what we want.
                let _ = fs::remove_dir(window_dir);
            }
        }
    }

    /// Deletes the files of every window that ended before `now - retention(tenant)`, except
    /// those `keep` holds back (not yet archived). Returns the removed entries. Tenants for
    /// which `retention` gives `None` are kept.
    pub fn expire(
        &self,
        now: DateTime<Utc>,
        retention: impl Fn(&str) -> Option<chrono::Duration>,
        keep: impl Fn(&FileEntry) -> bool,
    ) -> io::Result<Vec<FileEntry>> {
        let mut state = self.state.write();
        let expired = |entry: &FileEntry| match retention(&entry.tenant) {
            Some(period) => {
                entry.window + WINDOW_SECONDS <= (now - period).timestamp() && !keep(entry)
            }
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
        manifest::write(self.disk.as_ref(), &self.root, &manifest)?;
        state.manifest = manifest;
        for entry in &removed {
            state.missing.remove(&entry.path);
            state.pinned.remove(&entry.path);
            if let Some(windows) = state.files.get_mut(&entry.tenant) {
                if let Some(entries) = windows.get_mut(&entry.window) {
                    entries.retain(|candidate| candidate.path != entry.path);
                    if entries.is_empty() {
                        windows.remove(&entry.window);
                    }
                }
                if windows.is_empty() {
                    state.files.remove(&entry.tenant);
                }
            }
        }
        // Deleted a few minutes later, as compacted-away files are: a query that listed them
        // (and is still fetching archived hours before it opens them) finishes first.
        let now = Instant::now();
        for entry in &removed {
            state.retired.push((self.root.join(&entry.path), now));
        }
        Ok(removed)
    }

    /// Deletes every file of `tenant` at once (manifest first, as [`HotStore::expire`]
    /// does, but without the delay that lets running queries finish: the tenant is gone);
    /// what is still in memory is not touched: flush first. Returns how many files went.
    pub fn purge(&self, tenant: &str) -> io::Result<usize> {
        let removed = self.expire(
            DateTime::<Utc>::MAX_UTC,
            |candidate| (candidate == tenant).then(chrono::Duration::zero),
            |_| false,
        )?;
        let dir = self.root.join(tenant);
        self.delete_retired_or(|path| path.starts_with(&dir));
        let _ = fs::remove_dir(&dir);
        Ok(removed.len())
    }

    /// Bytes of Parquet files per tenant.
    pub fn bytes_by_tenant(&self) -> BTreeMap<String, u64> {
        let mut bytes = BTreeMap::new();
        for entry in &self.state.read().manifest.files {
            *bytes.entry(entry.tenant.clone()).or_default() += entry.bytes;
        }
        bytes
    }
}

/// Reads a hot-store Parquet file (or a decrypted archived copy of one) with the hot-store
/// schema: messages stored as tokens are joined, and files of older versions, which may lack
/// columns or hold ones since replaced, are conformed.
pub fn read_batches(path: &Path) -> io::Result<Vec<RecordBatch>> {
    read_batches_of(fs::File::open(path)?)
}

/// [`read_batches`] of a file already open (a sealed one, say).
pub fn read_batches_of<T: ChunkReader + 'static>(file: T) -> io::Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.with_batch_size(64 * 1024).build())
        .map_err(io::Error::other)?;
    reader
        .map(|batch| {
            msg_tokens::join(&batch.map_err(io::Error::other)?)
                .and_then(|batch| conform(&batch))
                .map_err(io::Error::other)
        })
        .collect()
}

/// Rebuilds a lost manifest from the Parquet files under `root`: every file counts as live.
/// For `meniscus recover-manifest`; refuses when a manifest exists.
pub fn rebuild_manifest(root: &Path, disk: &dyn Disk, keyring: &Keyring) -> io::Result<usize> {
    let manifest_path = root.join(manifest::MANIFEST);
    if manifest_path.exists() {
        return Err(io::Error::other(format!(
            "{} exists; move it away first if it is really wrong",
            manifest_path.display()
        )));
    }
    let mut rebuilt = Manifest {
        version: 1,
        ..Manifest::default()
    };
    for path in manifest::parquet_files(root)? {
        let relative = path
            .strip_prefix(root)
            .map_err(io::Error::other)?
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = relative.split('/').collect();
        let [tenant, window_dir, name] = parts.as_slice() else {
            tracing::warn!(path = %path.display(), "not a hot-store file path; left out");
            continue;
        };
        let (Ok(tenant), Some(window)) = (
            meniscus_grid::TenantId::parse(tenant),
            window_from_dir_name(window_dir),
        ) else {
            tracing::warn!(path = %path.display(), "not a hot-store file path; left out");
            continue;
        };
        let file = HotFile::open(&path, tenant.as_str(), keyring)?;
        let sealed = file.is_sealed();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|error| io::Error::other(format!("{}: {error}", path.display())))?;
        let rows = reader.metadata().file_metadata().num_rows().max(0) as u64;
        let msg_tokens = reader.schema().field_with_name("msg_t0").is_ok();
        let seq: u64 = name
            .split(['-', '.'])
            .next()
            .and_then(|seq| seq.parse().ok())
            .unwrap_or(0);
        rebuilt.next_flush_seq = rebuilt.next_flush_seq.max(seq + 1);
        let metadata = fs::metadata(&path)?;
        let created = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |age| age.as_secs() as i64);
        rebuilt.files.push(FileEntry {
            tenant: tenant.as_str().to_string(),
            window,
            path: relative.clone(),
            rows,
            bytes: metadata.len(),
            compacted: name.ends_with("-compacted.parquet"),
            created,
            msg_tokens,
            sealed,
        });
    }
    // A compacted file holds every flushed file of its window that existed when it was
    // written; those inputs stay on disk for a few minutes after the swap (or after a crash
    // before it). Listing both would show their events twice, so flushed files no newer than
    // the window's newest compacted file are left out (the next start deletes them).
    let mut newest_compacted: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for entry in rebuilt.files.iter().filter(|entry| entry.compacted) {
        let newest = newest_compacted
            .entry((entry.tenant.clone(), entry.window))
            .or_insert(i64::MIN);
        *newest = (*newest).max(entry.created);
    }
    rebuilt.files.retain(|entry| {
        let replaced = !entry.compacted
            && newest_compacted
                .get(&(entry.tenant.clone(), entry.window))
                .is_some_and(|compacted| entry.created <= *compacted);
        if replaced {
            tracing::warn!(path = %entry.path, "left out: an input of a later compaction");
        }
        !replaced
    });
    let count = rebuilt.files.len();
    manifest::write(disk, root, &rebuilt)?;
    Ok(count)
}

/// Drops the oldest flushed generations' ids once they are older than `window` or there are
/// more than [`MAX_FLUSHED_IDS_KEPT`] (the newest generation always stays).
fn forget_old_ids(generations: &mut VecDeque<(Instant, Arc<IdSet>)>, window: Duration) {
    let mut kept: usize = generations.iter().map(|(_, ids)| ids.len()).sum();
    while generations.len() > 1 {
        let (flushed_at, ids) = &generations[0];
        if flushed_at.elapsed() <= window && kept <= MAX_FLUSHED_IDS_KEPT {
            break;
        }
        kept -= ids.len();
        generations.pop_front();
    }
}

/// Event ids of files written in the last `window`, at most [`MAX_FLUSHED_IDS_KEPT`].
fn recent_event_ids(
    root: &Path,
    files: &[FileEntry],
    window: Duration,
    keyring: &Keyring,
) -> IdSet {
    let since = Utc::now().timestamp() - window.as_secs() as i64;
    let mut recent: Vec<&FileEntry> = files
        .iter()
        .filter(|entry| entry.created >= since)
        .collect();
    recent.sort_by_key(|entry| std::cmp::Reverse(entry.created));
    let mut keys = Vec::new();
    for entry in recent {
        if keys.len() >= MAX_FLUSHED_IDS_KEPT {
            break;
        }
        let path = root.join(&entry.path);
        let mut read = || -> Result<(), Box<dyn std::error::Error>> {
            let file = HotFile::open(&path, &entry.tenant, keyring)?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
            let mask = ProjectionMask::columns(builder.parquet_schema(), ["event_id"]);
            for batch in builder.with_projection(mask).build()? {
                keys.extend(event_keys(&batch?));
            }
            Ok(())
        };
        if let Err(error) = read() {
            tracing::warn!(path = %path.display(), %error, "cannot read event ids of a recent file; redeliveries of its events would be stored twice");
        }
    }
    let mut ids = IdSet::default();
    let mut duplicate = vec![false; keys.len()];
    let sorted = sorted_keys(&keys, &mut duplicate);
    ids.insert_run(&sorted, &duplicate);
    ids
}

/// Adds the kept rows' job ids (runs of one job counted together) to `jobs`.
fn count_jobs(
    batch: &RecordBatch,
    keep: &[bool],
    tenant: &str,
    jobs: &mut Vec<(String, String, u64)>,
) {
    let Some(job_ids) = batch
        .column_by_name("job_id")
        .and_then(|array| array.as_any().downcast_ref::<StringArray>())
    else {
        return;
    };
    if job_ids.null_count() == job_ids.len() {
        return;
    }
    for (row, kept) in keep.iter().enumerate() {
        if !kept || job_ids.is_null(row) {
            continue;
        }
        let job_id = job_ids.value(row);
        match jobs.last_mut() {
            Some((job_tenant, last, count)) if job_tenant == tenant && last == job_id => {
                *count += 1
            }
            _ => jobs.push((tenant.to_string(), job_id.to_string(), 1)),
        }
    }
}

/// The window of every row, from `ts`.
fn windows(batch: &RecordBatch) -> Vec<i64> {
    let micros_per_window = WINDOW_SECONDS * 1_000_000;
    match batch
        .column_by_name("ts")
        .and_then(|array| array.as_any().downcast_ref::<TimestampMicrosecondArray>())
    {
        Some(ts) => ts
            .values()
            .iter()
            .map(|micros| micros.div_euclid(micros_per_window) * WINDOW_SECONDS)
            .collect(),
        None => vec![0; batch.num_rows()],
    }
}

/// Rows of a compacted file, as (batch, row) pairs: ordered by `pname`, then `ts`, so a
/// program's messages sit together, in time order.
fn compaction_order(batches: &[RecordBatch]) -> io::Result<Vec<(usize, usize)>> {
    let keys = |name: &str| -> io::Result<ArrayRef> {
        let columns: Vec<&dyn Array> = batches
            .iter()
            .map(|batch| {
                batch
                    .column_by_name(name)
                    .map(|column| column.as_ref())
                    .ok_or_else(|| io::Error::other(format!("no column {name}")))
            })
            .collect::<io::Result<_>>()?;
        if columns.is_empty() {
            return Ok(new_null_array(&DataType::Null, 0));
        }
        concat(&columns).map_err(io::Error::other)
    };
    let sort_columns = vec![
        SortColumn {
            values: keys("pname")?,
            options: None,
        },
        SortColumn {
            values: keys("ts")?,
            options: None,
        },
    ];
    let mut location = Vec::new();
    for (batch_index, batch) in batches.iter().enumerate() {
        location.extend((0..batch.num_rows()).map(|row| (batch_index, row)));
    }
    if location.is_empty() {
        return Ok(location);
    }
    // Rows of the same program and time keep the order they came in (the sort is not
    // stable, and many logs stamp whole seconds): a second's lines stay in the order they
    // were logged, next to the lines they compress against.
    let mut sort_columns = sort_columns;
    sort_columns.push(SortColumn {
        values: Arc::new(UInt32Array::from_iter_values(0..location.len() as u32)),
        options: None,
    });
    let indices = lexsort_to_indices(&sort_columns, None).map_err(io::Error::other)?;
    Ok(indices
        .values()
        .iter()
        .map(|index| location[*index as usize])
        .collect())
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
                || (name.ends_with(".skip") && !live.contains(&path.with_extension("parquet")))
                || name.ends_with(".parquet.tmp")
                || name.ends_with(".skip.tmp");
            if orphan {
                tracing::warn!(path = %path.display(), "deleting a hot-store file left by an interrupted flush");
                fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::LocalDisk;
    use meniscus_grid::{Correlation, Event, Producer, Transport};

    /// Tenant keys beside a test's hot store (its root holds only tenant directories and
    /// the manifest, so keys go next to it).
    fn keyring(root: &Path) -> Arc<Keyring> {
        let dir = root.with_extension("keys");
        Arc::new(Keyring::open(&dir).unwrap())
    }
    use meniscus_record::columnar::{batch_to_events, tenant_batches};

    fn open(root: &Path) -> HotStore {
        HotStore::open(
            root,
            Arc::new(LocalDisk),
            Duration::from_secs(600),
            keyring(root),
        )
        .unwrap()
        .0
    }

    fn event(pname: &str, time: DateTime<Utc>) -> Event {
        let producer = Producer::plain("default");
        let correlation = Correlation::new("acme", &producer, Transport::Tcp, Utc::now());
        let mut event = Event::from_message(format!("{pname} at {time}"), correlation);
        event.time = Some(time.fixed_offset());
        event.host = Some("h".into());
        event.pname = Some(pname.into());
        event.pri = Some(13);
        event.ver = Some(1);
        event
    }

    fn stored(store: &HotStore) -> Vec<Event> {
        let snapshot = store.snapshot("acme", None, None);
        let mut events: Vec<Event> = snapshot
            .batches
            .iter()
            .flat_map(|batch| batch_to_events(batch, "acme"))
            .collect();
        for path in snapshot.files.into_iter().chain(snapshot.token_files) {
            let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = msg_tokens::join(&batch.unwrap()).unwrap();
                events.extend(batch_to_events(&batch, "acme"));
            }
        }
        events
    }

    #[test]
    fn redelivered_events_are_stored_once_and_windows_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        let events = vec![event("a", hour_ago), event("b", Utc::now())];
        let first = store.insert(tenant_batches(&events).unwrap());
        assert_eq!(first.per_tenant, vec![("acme".to_string(), 2)]);
        // The same events again (a redelivery), with one new one.
        let mut again = events.clone();
        again.push(event("c", Utc::now()));
        let second = store.insert(tenant_batches(&again).unwrap());
        assert_eq!(second.per_tenant, vec![("acme".to_string(), 1)]);
        assert_eq!(second.duplicates, 2);
        assert_eq!(stored(&store).len(), 3);
        // Still caught after the first generation was flushed, and after many flushes of
        // other events since (a sender retrying through a long outage).
        let frozen = store.freeze(1).unwrap();
        store.flush(&frozen).unwrap();
        assert_eq!(store.insert(tenant_batches(&events).unwrap()).duplicates, 2);
        for generation in 2..10 {
            store.insert(tenant_batches(&[event("d", Utc::now())]).unwrap());
            let frozen = store.freeze(generation).unwrap();
            store.flush(&frozen).unwrap();
        }
        assert_eq!(store.insert(tenant_batches(&events).unwrap()).duplicates, 2);
        let windows: HashSet<i64> = store
            .file_entries()
            .iter()
            .map(|entry| entry.window)
            .collect();
        assert_eq!(windows.len(), 2, "one file per hourly window");
    }

    #[test]
    fn flushed_ids_are_forgotten_after_the_dedupe_window_but_the_newest_generation_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = HotStore::open(
            dir.path(),
            Arc::new(LocalDisk),
            Duration::from_millis(300),
            keyring(dir.path()),
        )
        .unwrap();
        let old = vec![event("old", Utc::now())];
        store.insert(tenant_batches(&old).unwrap());
        store.flush(&store.freeze(1).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let newer = vec![event("newer", Utc::now())];
        store.insert(tenant_batches(&newer).unwrap());
        store.flush(&store.freeze(2).unwrap()).unwrap();
        // Past the window, and not the newest generation: forgotten, stored again.
        assert_eq!(store.insert(tenant_batches(&old).unwrap()).duplicates, 0);
        assert_eq!(store.insert(tenant_batches(&newer).unwrap()).duplicates, 1);
    }

    #[test]
    fn a_purge_deletes_one_tenants_files_at_once_and_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut other = event("b", Utc::now());
        other.meniscus.tenant = "globex".into();
        let two_hours = vec![
            event("a", Utc::now() - chrono::Duration::hours(2)),
            event("a", Utc::now()),
        ];
        store.insert(tenant_batches(&two_hours).unwrap());
        store.insert(tenant_batches(&[other]).unwrap());
        store.flush(&store.freeze(1).unwrap()).unwrap();
        assert_eq!(store.bytes_by_tenant().len(), 2);
        assert_eq!(store.purge("acme").unwrap(), 2);
        assert!(stored(&store).is_empty());
        assert!(!dir.path().join("acme").exists(), "the files are gone now");
        assert_eq!(
            store.bytes_by_tenant().keys().collect::<Vec<_>>(),
            ["globex"]
        );
        drop(store);
        let store = open(dir.path());
        assert!(stored(&store).is_empty(), "not back after a restart");
        assert_eq!(store.snapshot("globex", None, None).files.len(), 1);
    }

    /// What the archive relies on: a pinned file is never compacted into another (planned
    /// before the pin or after it), and retention keeps what `keep` holds back.
    #[test]
    fn pinned_files_stay_whole_and_expiry_waits_for_keep() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let start = Utc
            .timestamp_opt(window_of(Utc::now()) - 3 * WINDOW_SECONDS, 0)
            .unwrap();
        for flush in 0..2 {
            let events: Vec<Event> = (0..10)
                .map(|index| {
                    event(
                        "app",
                        start + chrono::Duration::seconds(flush * 100 + index),
                    )
                })
                .collect();
            store.insert(tenant_batches(&events).unwrap());
            let frozen = store.freeze(flush as u64 + 1).unwrap();
            store.flush(&frozen).unwrap();
        }
        let files = store.file_entries();
        let later = Utc::now().timestamp() + 600;
        let groups = crate::compaction::plan(&files, later, &CompactionOptions::default());
        assert_eq!(groups.len(), 1);
        // Pinned after the plan was made: the swap refuses, nothing changes.
        assert!(store.pin(&files[0].path));
        assert!(store.is_pinned(&files[0].path));
        assert_eq!(
            store
                .compact(&groups[0], &CompactionOptions::default())
                .unwrap(),
            None
        );
        assert_eq!(store.file_entries(), files);
        // And later plans leave it out: only the other file is compacted (alone).
        let compactable = store.compactable_entries();
        assert_eq!(compactable, vec![files[1].clone()]);
        let groups = crate::compaction::plan(&compactable, later, &CompactionOptions::default());
        let compacted = store
            .compact(&groups[0], &CompactionOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(compacted.rows, 10);
        assert!(store.file_entries().contains(&files[0]));
        // A file that is no longer live cannot be pinned.
        assert!(!store.pin(&files[1].path));
        assert_eq!(stored(&store).len(), 20);

        // Retention: past a one-hour retention, but `keep` holds the pinned file back.
        let hour = chrono::Duration::hours(1);
        let removed = store
            .expire(
                Utc::now(),
                |_| Some(hour),
                |entry| entry.path == files[0].path,
            )
            .unwrap();
        assert_eq!(removed, vec![compacted]);
        assert_eq!(store.file_entries(), vec![files[0].clone()]);
        assert_eq!(stored(&store).len(), 10, "the kept file still answers");
        let removed = store.expire(Utc::now(), |_| Some(hour), |_| false).unwrap();
        assert_eq!(removed, vec![files[0].clone()]);
        assert!(!store.is_pinned(&files[0].path), "its pin went with it");
        assert!(stored(&store).is_empty());
    }

    #[test]
    fn compaction_merges_sorts_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let start = Utc
            .timestamp_opt(window_of(Utc::now()) - 3 * WINDOW_SECONDS, 0)
            .unwrap();
        let mut sent = Vec::new();
        for flush in 0..3 {
            let events: Vec<Event> = (0..50)
                .map(|index| {
                    let pname = ["zeta", "alpha", "mid"][index % 3];
                    event(
                        pname,
                        start + chrono::Duration::seconds(flush * 100 + index as i64),
                    )
                })
                .collect();
            sent.extend(events.iter().map(|event| event.meniscus.event_id.clone()));
            store.insert(tenant_batches(&events).unwrap());
            let frozen = store.freeze(flush as u64 + 1).unwrap();
            store.flush(&frozen).unwrap();
        }
        let before = store.file_entries();
        assert_eq!(before.len(), 3);
        // Planned after the window has been quiet for the grace.
        let groups = crate::compaction::plan(
            &before,
            Utc::now().timestamp() + 600,
            &CompactionOptions::default(),
        );
        assert_eq!(groups.len(), 1);
        let options = CompactionOptions {
            split_messages: true,
            ..CompactionOptions::default()
        };
        let entry = store.compact(&groups[0], &options).unwrap().unwrap();
        assert!(entry.compacted);
        assert_eq!(entry.rows, 150);
        assert_eq!(store.file_entries(), vec![entry.clone()]);

        let events = stored(&store);
        let pnames: Vec<&str> = events
            .iter()
            .filter_map(|event| event.pname.as_deref())
            .collect();
        let mut sorted = pnames.clone();
        sorted.sort();
        assert_eq!(pnames, sorted, "rows are ordered by pname");
        let mut ids: Vec<String> = events
            .iter()
            .map(|event| event.meniscus.event_id.clone())
            .collect();
        ids.sort();
        sent.sort();
        assert_eq!(ids, sent, "every event once");

        // The replaced files wait for running queries; a restart deletes them as orphans.
        assert!(before.iter().all(|old| dir.path().join(&old.path).exists()));
        drop(store);
        let reopened = open(dir.path());
        assert!(before
            .iter()
            .all(|old| !dir.path().join(&old.path).exists()));
        assert_eq!(stored(&reopened).len(), 150);

        // A late file joins the small split file in a compaction with splitting off: the
        // messages come back whole from both kinds of input.
        let late: Vec<Event> = (0..5)
            .map(|index| event("late", start + chrono::Duration::seconds(index)))
            .collect();
        reopened.insert(tenant_batches(&late).unwrap());
        let frozen = reopened.freeze(10).unwrap();
        reopened.flush(&frozen).unwrap();
        let messages = |store: &HotStore| {
            let mut messages: Vec<String> =
                stored(store).into_iter().map(|event| event.msg).collect();
            messages.sort();
            messages
        };
        let expected = messages(&reopened);
        assert_eq!(expected.len(), 155);
        let groups = crate::compaction::plan(
            &reopened.file_entries(),
            Utc::now().timestamp() + 600,
            &CompactionOptions::default(),
        );
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].len(), 2, "the split file is absorbed: {groups:?}");
        let merged = reopened
            .compact(&groups[0], &CompactionOptions::default())
            .unwrap()
            .unwrap();
        assert!(!merged.msg_tokens);
        assert_eq!(messages(&reopened), expected);
    }
}
