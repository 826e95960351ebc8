//! The long-term archive: closed, compacted hot-store files copied to object storage, each
//! encrypted with a key of its own wrapped by its tenant's key, and read back by queries once
//! the hot copy is gone.
//!
//! - **What is archived**: a hot-store file whose window has ended and been quiet for the
//!   compaction grace and that compaction will not rewrite again (or whose compaction group
//!   the flusher set aside after repeated failures: taken as it is). Before the upload the file is
//!   *pinned*: compaction leaves it alone from then on (late events of its hour are compacted
//!   into files of their own), so an object always holds exactly the rows of one file.
//! - **How**: re-encoded in the archive's own format ([`format`]), about half the bytes of
//!   the Parquet file, checked to decode back to the same rows before the upload (rows that do
//!   not fit it go up as the Parquet file, as every object did before the format).
//! - **Where**: `PREFIX/TENANT/YYYY/MM/DD/HH/ORIGIN-NAME.events.enc` (ORIGIN: the archive's
//!   own id, since a grid's storage workers share a target) plus its key sidecar (`….key`), so
//!   a time range is a prefix listing and no tenant shares a prefix with another.
//!   Uploads over [`MULTIPART_BYTES`] go in parts. A retried upload writes the same name, so a
//!   crash mid-upload leaves no duplicate.
//! - **Crashes**: an upload is named in the manifest before it starts, so what a crash leaves
//!   half done is finished or deleted at the next pass (`recovery`); the target then holds
//!   nothing the manifest does not account for, and `meniscus archive rebuild` can make a
//!   lost manifest again from a listing.
//! - **Queries** read an object only while its source file is not live in the hot store (it
//!   expired, or went missing from disk): never both copies. They read it by range
//!   ([`ranged`]): its header (a Parquet object's footer), then the chunks holding the
//!   streams (column chunks) they read.
//! - **Retention**: the hot copy of a file is deleted at the tenant's short-term retention only
//!   once it is archived; objects are deleted at the long-term retention, and no query reads
//!   past it.

pub mod cache;
pub mod crypto;
pub mod format;
pub mod manifest;
pub mod ranged;
pub mod recovery;
pub mod rotation;
pub mod target;
#[cfg(test)]
pub(crate) mod test_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use futures::{StreamExt, TryStreamExt};
use meniscus_metrics::{Counter, Family, Gauge, Registry};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use parking_lot::Mutex;

use crate::compaction::{self, CompactionOptions};
use crate::disk::{create_dirs_durably, replace_file, Disk, LocalDisk};
use crate::hot::{FileEntry, HotStore, WINDOW_SECONDS};
use crate::skip_index::{self, sidecar_path, SkipIndex};
use cache::{CachedFile, ObjectCache};
use crypto::Keyring;
use manifest::{
    skip_index_key, ArchiveManifest, ArchivedObject, ObjectFormat, Upload, SIDECAR_SUFFIX,
};
use meniscus_record::columnar::schema;

/// Hot-store files up to this size are archived in the archive's own format ([`format`]);
/// larger ones as the Parquet file they are. Where the archive format pays: an hour of a
/// quiet tenant (most tenant-hours of a shared service), where Parquet's per-column metadata
/// is a tenth of the file and the object halves (loghub's 2,000-line hours: 0.098 -> 0.050 of
/// raw). Where it does not yet: a busy hour, which a query decodes whole, while Parquet's
/// pages let the skip index and a count read a fraction of it; `bench/archive` measured
/// 6 MB hours in the archive format 0.28x smaller (0.174 -> 0.125 of raw) but a count 6x and
/// a rare-token search 25x slower cold than hot (2.8x and 2.7x as Parquet), and Brotli took
/// 0.4 MB of Parquet per CPU-second where sealing Parquet takes ~300.
pub const EVENTS_MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Objects larger than this are uploaded in parts.
pub const MULTIPART_BYTES: usize = 8 * 1024 * 1024;
/// Objects fetched at once by one query.
const FETCH_CONCURRENCY: usize = 4;
/// Under the archive's directory: local copies of objects' skip indexes, by object key.
const LOCAL_SKIP_DIR: &str = "skip";

/// Where queries opening one object from the target take turns.
#[derive(Default)]
struct Gate {
    turn: tokio::sync::Mutex<()>,
    /// The last failure to open the object, and when.
    failure: Mutex<Option<(Instant, String)>>,
}

/// A query's place at an object's [`Gate`]; the gate leaves the map with its last query,
/// also when that query is cancelled (a timeout) while it waits or opens.
struct OpeningGate<'a> {
    gates: &'a Mutex<HashMap<String, Arc<Gate>>>,
    key: String,
    gate: Arc<Gate>,
}

impl<'a> OpeningGate<'a> {
    fn enter(gates: &'a Mutex<HashMap<String, Arc<Gate>>>, key: &str) -> OpeningGate<'a> {
        let gate = gates.lock().entry(key.to_string()).or_default().clone();
        OpeningGate {
            gates,
            key: key.to_string(),
            gate,
        }
    }
}

impl Drop for OpeningGate<'_> {
    fn drop(&mut self) {
        let mut gates = self.gates.lock();
        // The map's and this one's: no other query is at this gate.
        if Arc::strong_count(&self.gate) == 2 {
            gates.remove(&self.key);
        }
    }
}

/// From and to (either open) of a query's time.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// What one scan of `events` in a query needs of the archive: the hours its rows may lie in
/// and the text each of them contains (none: any row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanNeeds {
    /// Window starts (seconds since the epoch), inclusive.
    pub windows: std::ops::RangeInclusive<i64>,
    pub needles: Vec<Vec<u8>>,
}

/// Where the archive of the data directory `data_dir` keeps its local copies of objects' skip
/// indexes (sealed with the tenant keys; `meniscus keys rotate` re-wraps them).
pub fn local_skip_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("archive").join(LOCAL_SKIP_DIR)
}

/// A tenant's long-term retention (`None`: keep forever).
pub type RetentionFn = Arc<dyn Fn(&str) -> Option<Duration> + Send + Sync>;

#[derive(Clone, Debug)]
pub struct ArchiveOptions {
    /// `s3://bucket/prefix`, `gs://…`, `az://…` or `file:///dir`.
    pub url: String,
    /// `KEY=VALUE` lines of target settings (credentials); see [`target`].
    pub credentials_file: Option<PathBuf>,
    /// Target settings by `object_store` configuration key.
    pub options: BTreeMap<String, String>,
    /// Where tenant keys are kept.
    pub key_dir: PathBuf,
    /// How often the uploader looks for files to archive.
    pub upload_interval: Duration,
    /// Bytes of fetched objects (their plain size) kept on local disk for queries.
    pub cache_bytes: u64,
}

pub struct ArchiveMetrics {
    pub uploads: Family<Counter>,
    pub uploaded_bytes: Counter,
    pub objects: Gauge,
    pub stored_bytes: Gauge,
    pub unarchived_seconds: Family<Gauge>,
    pub fetches: Family<Counter>,
    pub range_reads: Counter,
    pub fetched_bytes: Counter,
    pub cache_bytes: Gauge,
    pub expired_objects: Family<Counter>,
    pub healthy: Gauge,
}

impl ArchiveMetrics {
    fn register(registry: &Registry) -> ArchiveMetrics {
        ArchiveMetrics {
            uploads: registry.counters("meniscus_archive_uploads_total", "Hot-store files uploaded to the archive, by result (an error is retried at the next pass; the data stays hot).", &["result"]),
            uploaded_bytes: registry.counter("meniscus_archive_uploaded_bytes_total", "Bytes of objects uploaded to the archive."),
            objects: registry.gauge("meniscus_archive_objects", "Objects the archive holds."),
            stored_bytes: registry.gauge("meniscus_archive_stored_bytes", "Bytes of the objects the archive holds."),
            unarchived_seconds: registry.gauges("meniscus_archive_unarchived_seconds", "Per tenant: seconds from the start of the oldest hour with events not yet archived to now — what a lost local disk could cost.", &["tenant"]),
            fetches: registry.counters("meniscus_archive_fetches_total", "Archived objects a query needed, by result (hit: in the local cache; miss: opened from the target, whole or, for range reads, its key and footer; error: could not be fetched or opened).", &["result"]),
            range_reads: registry.counter("meniscus_archive_range_reads_total", "Runs of archived objects' chunks fetched by queries (ranged GETs; object_store may merge runs less than 1 MiB apart into one request)."),
            fetched_bytes: registry.counter("meniscus_archive_fetched_bytes_total", "Bytes of archived objects fetched by queries."),
            cache_bytes: registry.gauge("meniscus_archive_cache_bytes", "Bytes of fetched objects (plain size) in the local query cache."),
            expired_objects: registry.counters("meniscus_archive_expired_objects_total", "Archived objects deleted by long-term retention.", &["tenant"]),
            healthy: registry.gauge("meniscus_archive_healthy", "1 while the last upload pass worked, 0 while uploads fail (see /readyz and the logs)."),
        }
    }
}

/// An archived hour a query could not read, and why.
#[derive(Clone, Debug)]
pub struct FetchFailure {
    pub window: i64,
    pub reason: String,
}

pub struct Archive {
    dir: PathBuf,
    /// This archive's name for itself, in every object key it makes: storage workers of a
    /// grid share the target, and their hot-store file names (flush sequence numbers) repeat
    /// across workers, so without it one worker's upload would overwrite another's object.
    origin: String,
    target: target::Target,
    keyring: Arc<Keyring>,
    cache: ObjectCache,
    /// One gate per object being opened from the target: queries that miss the same object
    /// at the same moment wait for the first to open it, rather than each fetch it.
    opening: Mutex<HashMap<String, Arc<Gate>>>,
    manifest: Mutex<ArchiveManifest>,
    /// Serializes manifest writes (uploads, retention, purges).
    writes: tokio::sync::Mutex<()>,
    disk: Arc<dyn Disk>,
    pub metrics: ArchiveMetrics,
    last_error: Mutex<Option<String>>,
    /// Tenants given an `unarchived_seconds` series (set to 0 once all is archived).
    reported_tenants: Mutex<HashSet<String>>,
    long_term: RetentionFn,
    pub options: ArchiveOptions,
    /// Uploads objects as the hot-store Parquet files they copy, as versions before the
    /// archive format did: tests read such objects beside events objects.
    #[cfg(test)]
    pub(crate) parquet_uploads: std::sync::atomic::AtomicBool,
}

impl Archive {
    /// Opens the archive kept under `data_dir/archive` (manifest and query cache) for the
    /// target in `options`.
    pub fn open(
        data_dir: &Path,
        options: ArchiveOptions,
        registry: &Registry,
        long_term: RetentionFn,
    ) -> anyhow::Result<Arc<Archive>> {
        Archive::open_on(data_dir, options, registry, long_term, Arc::new(LocalDisk))
    }

    /// [`Archive::open`], writing through `disk` (tests make its writes fail).
    pub(crate) fn open_on(
        data_dir: &Path,
        options: ArchiveOptions,
        registry: &Registry,
        long_term: RetentionFn,
        disk: Arc<dyn Disk>,
    ) -> anyhow::Result<Arc<Archive>> {
        let dir = data_dir.join("archive");
        std::fs::create_dir_all(local_skip_dir(data_dir))?;
        let target = target::build(
            &options.url,
            options.credentials_file.as_deref(),
            &options.options,
        )?;
        let keyring = Keyring::open(&options.key_dir).map_err(|error| {
            anyhow::anyhow!(
                "cannot open the archive key directory {}: {error}",
                options.key_dir.display()
            )
        })?;
        let cache = ObjectCache::open(&dir.join("cache"), options.cache_bytes)?;
        let manifest = manifest::read(&dir)?;
        let origin = read_or_make_origin(&dir)?;
        let metrics = ArchiveMetrics::register(registry);
        metrics.healthy.set(1);
        let archive = Archive {
            dir,
            origin,
            target,
            keyring: Arc::new(keyring),
            cache,
            opening: Mutex::new(HashMap::new()),
            manifest: Mutex::new(manifest),
            writes: tokio::sync::Mutex::new(()),
            disk,
            metrics,
            last_error: Mutex::new(None),
            reported_tenants: Mutex::new(HashSet::new()),
            long_term,
            options,
            #[cfg(test)]
            parquet_uploads: Default::default(),
        };
        archive.update_gauges();
        tracing::info!(target = %archive.target.display, objects = archive.manifest.lock().objects.len(), "archive open");
        Ok(Arc::new(archive))
    }

    /// Pins every live hot-store file that is already archived, or whose upload a crash
    /// interrupted (it is uploaded again under the same name), so compaction leaves them be.
    pub fn attach(&self, hot: &HotStore) {
        let manifest = self.manifest.lock();
        for object in &manifest.objects {
            hot.pin(&object.source);
        }
        for upload in &manifest.uploading {
            hot.pin(&upload.source);
        }
    }

    /// Why uploads are failing, if they are (for `/readyz`).
    pub fn problem(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Bytes stored in the archive per tenant (objects as stored, encrypted).
    pub fn bytes_by_tenant(&self) -> std::collections::BTreeMap<String, u64> {
        let mut bytes = std::collections::BTreeMap::new();
        for object in &self.manifest.lock().objects {
            *bytes.entry(object.tenant.clone()).or_default() += object.stored_bytes;
        }
        bytes
    }

    /// The hot-store files with an archived copy.
    pub fn sources(&self) -> HashSet<String> {
        self.manifest
            .lock()
            .objects
            .iter()
            .map(|object| object.source.clone())
            .collect()
    }

    /// The oldest instant of `tenant`'s events any query may return at `now` (its long-term
    /// retention); `None` when nothing bounds it.
    pub fn retention_cutoff(&self, tenant: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let keep = chrono::Duration::from_std((self.long_term)(tenant)?).ok()?;
        // A retention longer than the calendar reaches back bounds nothing.
        now.checked_sub_signed(keep)
    }

    /// The earliest window start a query of `tenant` may read at `now`: a window is readable
    /// while it has not wholly passed the retention (its rows are cut at the instant).
    pub fn first_readable_window(&self, tenant: &str, now: DateTime<Utc>) -> i64 {
        match self.retention_cutoff(tenant, now) {
            Some(cutoff) => cutoff.timestamp() - WINDOW_SECONDS + 1,
            None => i64::MIN,
        }
    }

    /// Most bytes of archived objects one query may fetch: the local cache's size, so a query
    /// over years of archive is refused with a reason instead of filling the disk.
    pub fn query_fetch_limit(&self) -> u64 {
        self.options.cache_bytes
    }

    /// `tenant`'s hours cut into turns of consecutive hours whose archived objects hold at
    /// most `limit` bytes together (an hour that alone holds more is a turn of its own), as
    /// `(from, to)` window starts (inclusive; `None`: open), covering all time: a query that
    /// must read every hour reads them turn by turn within the local cache.
    pub fn window_turns(&self, tenant: &str, limit: u64) -> Vec<TimeRange> {
        let mut windows: BTreeMap<i64, u64> = BTreeMap::new();
        for object in self.manifest.lock().objects.iter() {
            if object.tenant == tenant {
                *windows.entry(object.window).or_default() += object.plain_bytes;
            }
        }
        let at = |window: i64| Utc.timestamp_opt(window, 0).single();
        let (mut turns, mut from, mut bytes) = (Vec::new(), None, 0u64);
        for (window, size) in windows {
            if bytes > 0 && bytes.saturating_add(size) > limit {
                turns.push((from, at(window - WINDOW_SECONDS)));
                (from, bytes) = (at(window), 0);
            }
            bytes = bytes.saturating_add(size);
        }
        turns.push((from, None));
        turns
    }

    /// Whether a hot-store file is past its tenant's long-term retention too (then it is
    /// deleted without being archived).
    pub fn past_long_term(&self, entry: &FileEntry, now: DateTime<Utc>) -> bool {
        entry.window < self.first_readable_window(&entry.tenant, now)
    }

    /// Archived objects of `tenant` that some scan of a query needs (`scans`: an object is
    /// needed when its window is in a scan's range and, if that scan requires text, its skip
    /// index may hold it), whose source file is not in `live` (the hot-store files the same
    /// query reads) and that retention still allows. Objects no scan needs are not fetched.
    pub async fn objects_for_query(
        self: &Arc<Self>,
        tenant: &str,
        live: &HashSet<String>,
        scans: &[ScanNeeds],
    ) -> Vec<ArchivedObject> {
        let first_window = self.first_readable_window(tenant, Utc::now());
        let scans_of = |object: &ArchivedObject| -> Vec<&ScanNeeds> {
            scans
                .iter()
                .filter(|scan| scan.windows.contains(&object.window))
                .collect()
        };
        let candidates: Vec<ArchivedObject> = self
            .manifest
            .lock()
            .objects
            .iter()
            .filter(|object| {
                object.tenant == tenant
                    && object.window >= first_window
                    && !live.contains(&object.source)
                    && !scans_of(object).is_empty()
            })
            .cloned()
            .collect();
        let kept: Vec<Option<ArchivedObject>> = futures::stream::iter(candidates)
            .map(|object| async move {
                let scans = scans_of(&object);
                if scans.iter().any(|scan| scan.needles.is_empty()) {
                    return Some(object);
                }
                let may_match = self.skip_index_of(&object).await.is_none_or(|index| {
                    scans.iter().any(|scan| {
                        index
                            .granules_to_read(&scan.needles)
                            .iter()
                            .any(|(_, read)| *read)
                    })
                });
                may_match.then_some(object)
            })
            .buffered(FETCH_CONCURRENCY)
            .collect()
            .await;
        kept.into_iter().flatten().collect()
    }

    /// Where the archive keeps the skip index of the object `key`: a local copy of the hot
    /// file's, made when the object was uploaded. Without it (a lost data directory) the
    /// object is fetched and read in full: slower, never wrong.
    fn skip_index_path(&self, key: &str) -> PathBuf {
        sidecar_path(&self.skip_index_of_key(key))
    }

    /// Local copies of `objects`, fetched where not cached. Objects that cannot be
    /// fetched or opened are returned as failures (the query answers without their hours and
    /// says so).
    pub async fn fetch(
        self: &Arc<Self>,
        objects: Vec<ArchivedObject>,
    ) -> (Vec<(Arc<CachedFile>, ArchivedObject)>, Vec<FetchFailure>) {
        let results: Vec<_> = futures::stream::iter(objects)
            .map(|object| {
                let archive = self.clone();
                async move {
                    let result = archive.fetch_one(object.clone(), false).await;
                    (object, result)
                }
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect()
            .await;
        let (mut files, mut failures) = (Vec::new(), Vec::new());
        for (object, result) in results {
            match result {
                Ok(file) => files.push((file, object)),
                Err(error) => {
                    self.metrics.fetches.inc(&["error"]);
                    tracing::error!(key = %object.key, %error, "cannot read an archived object");
                    failures.push(FetchFailure {
                        window: object.window,
                        reason: format!(
                            "archived object {} could not be read: {error}",
                            object.key
                        ),
                    });
                }
            }
        }
        self.metrics.cache_bytes.set(self.cache.bytes());
        (files, failures)
    }

    /// The local copy of `object`: for an object sealed in chunks, a sparse copy holding its
    /// Parquet footer (a query reads the rest by range, [`ranged`]), or, with `whole`, all of
    /// it; an object sealed whole is fetched and opened whole.
    async fn fetch_one(
        self: Arc<Self>,
        object: ArchivedObject,
        whole: bool,
    ) -> anyhow::Result<Arc<CachedFile>> {
        if let Some(file) = self.cached(&object, whole).await? {
            return Ok(file);
        }
        let gate = OpeningGate::enter(&self.opening, &object.key);
        let arrived = Instant::now();
        let _opening = gate.gate.turn.lock().await;
        // Another query may have opened it while this one waited, or failed to: a failure
        // while this one waited is this one's too (trying again at once would make each
        // waiter wait out the target in turn); a later query tries afresh.
        if let Some(file) = self.cached(&object, whole).await? {
            return Ok(file);
        }
        if let Some((at, error)) = gate.gate.failure.lock().clone() {
            if at >= arrived {
                anyhow::bail!("{error}");
            }
        }
        let opened = self.clone().open_object(object.clone(), whole).await;
        if let Err(error) = &opened {
            *gate.gate.failure.lock() = Some((Instant::now(), format!("{error:#}")));
        }
        opened
    }

    /// The cached copy of `object` (filled whole if `whole`), counted as a hit.
    async fn cached(
        &self,
        object: &ArchivedObject,
        whole: bool,
    ) -> anyhow::Result<Option<Arc<CachedFile>>> {
        let Some(file) = self.cache.get(&object.key) else {
            return Ok(None);
        };
        self.metrics.fetches.inc(&["hit"]);
        if whole {
            self.fill_all(&object.key, &file).await?;
        }
        Ok(Some(file))
    }

    /// Opens `object` from the target into the cache (see [`Archive::fetch_one`]).
    async fn open_object(
        self: Arc<Self>,
        object: ArchivedObject,
        whole: bool,
    ) -> anyhow::Result<Arc<CachedFile>> {
        let sidecar_location = ObjectPath::from(format!("{}{SIDECAR_SUFFIX}", object.key));
        let location = ObjectPath::from(object.key.as_str());
        // What every read of the object starts with (a Parquet footer, an events header) is
        // fetched beside the sidecar, before the sidecar says the object is sealed in chunks:
        // the first read costs one round trip.
        let first = ranged::first_chunks(&object);
        let (sidecar, first_bytes) = futures::try_join!(
            async {
                self.target
                    .store
                    .get(&sidecar_location)
                    .await?
                    .bytes()
                    .await
            },
            async {
                match &first {
                    Some((layout, chunks)) if !whole => self
                        .target
                        .store
                        .get_range(&location, layout.sealed_range(chunks))
                        .await
                        .map(Some),
                    _ => Ok(None),
                }
            },
        )?;
        let data_key = {
            let (archive, object) = (self.clone(), object.clone());
            tokio::task::spawn_blocking(move || {
                crypto::unwrap(&sidecar, &object.tenant, &object.key, &archive.keyring)
            })
            .await??
        };
        let file = match data_key.chunk_bytes {
            Some(chunk_bytes) => {
                let layout = crypto::ChunkLayout::of_stored(object.stored_bytes, chunk_bytes)?;
                let file = self.cache.insert_chunked(&object.key, layout, data_key)?;
                let first = match (first, first_bytes) {
                    (Some((guessed, chunks)), Some(bytes)) if guessed == layout => {
                        Some((chunks, bytes))
                    }
                    _ => None,
                };
                let filled = if whole {
                    self.fill_all(&object.key, &file).await
                } else {
                    self.open_sparse(&object, &file, first).await
                };
                if let Err(error) = filled {
                    // Not kept: the next query tries again from the start.
                    self.cache.remove(&object.key);
                    return Err(error);
                }
                file
            }
            None => self.fetch_whole(&object, data_key).await?,
        };
        self.copy_skip_index(&object, &file);
        self.metrics.fetches.inc(&["miss"]);
        Ok(file)
    }

    /// Fetches and opens an object sealed whole (archived before chunks) into the cache.
    async fn fetch_whole(
        self: &Arc<Self>,
        object: &ArchivedObject,
        data_key: crypto::DataKey,
    ) -> anyhow::Result<Arc<CachedFile>> {
        let location = ObjectPath::from(object.key.as_str());
        let body = self.target.store.get(&location).await?.bytes().await?;
        self.metrics.fetched_bytes.add(body.len() as u64);
        // Decrypting and writing the plain copy are CPU and disk work: off the async threads.
        let (archive, object) = (self.clone(), object.clone());
        tokio::task::spawn_blocking(move || {
            let plain = crypto::open_whole(&body, &data_key, &object.key)?;
            anyhow::Ok(archive.cache.insert(&object.key, &plain)?)
        })
        .await?
    }

    /// The object's skip index beside its whole cached copy, so a query over the local file
    /// reads only its granules that may match. (Sparse copies are read through
    /// [`ranged::QueryObjects`], which finds the index by object key.)
    /// (Such a copy is plain, from before objects were sealed in chunks, so its index is too.)
    fn copy_skip_index(&self, object: &ArchivedObject, file: &CachedFile) {
        if file.chunked.is_some() {
            return;
        }
        if let Some(index) = self.local_skip_index(&object.tenant, &object.key) {
            let _ = replace_file(
                self.disk.as_ref(),
                &sidecar_path(&file.path),
                &index.encode(),
            );
        }
    }

    /// Where the skip index of the object `key` is kept, as the path of the Parquet file it
    /// indexes ([`SkipIndex::load`] takes that path).
    pub fn skip_index_of_key(&self, key: &str) -> PathBuf {
        // Object keys are `/`-separated names the archive made; mirrored as directories.
        self.dir.join(LOCAL_SKIP_DIR).join(key)
    }

    /// The local copy of the skip index of the object `key` of `tenant`, opened with the
    /// tenant's key; `None` when there is none or it does not open (it is then fetched).
    pub fn local_skip_index(&self, tenant: &str, key: &str) -> Option<SkipIndex> {
        let (index, sealed) =
            SkipIndex::load_noting_sealed(&self.skip_index_of_key(key), tenant, &self.keyring)?;
        if !sealed {
            // Kept in clear by an older version: sealed now.
            if let Err(error) = self.keep_skip_index(tenant, key, &index.encode()) {
                tracing::warn!(key, %error, "cannot seal a local copy of a skip index");
            }
        }
        Some(index)
    }

    /// The archived copy of the hot-store file `source`, if it has one.
    pub fn object_of(&self, source: &str) -> Option<ArchivedObject> {
        self.manifest
            .lock()
            .objects
            .iter()
            .find(|object| object.source == source)
            .cloned()
    }

    /// Archived objects whose source file is not among `live` (the hot copy expired): the
    /// archive holds their only copy.
    pub fn only_archived(&self, live: &HashSet<String>) -> Vec<ArchivedObject> {
        self.manifest
            .lock()
            .objects
            .iter()
            .filter(|object| !live.contains(&object.source))
            .cloned()
            .collect()
    }

    /// The rows of an archived object, with the hot-store schema.
    pub async fn read_object(
        self: &Arc<Self>,
        object: &ArchivedObject,
    ) -> anyhow::Result<Vec<datafusion::arrow::array::RecordBatch>> {
        let file = self.clone().fetch_one(object.clone(), true).await?;
        let (key, object_format) = (object.key.clone(), object.format);
        let batches = tokio::task::spawn_blocking(move || {
            let copy = file.reader(&key)?;
            match object_format {
                ObjectFormat::Parquet => crate::hot::read_batches_of(copy),
                ObjectFormat::Events => {
                    let bytes = datafusion::parquet::file::reader::ChunkReader::get_bytes(
                        &copy,
                        0,
                        datafusion::parquet::file::reader::Length::len(&copy) as usize,
                    )
                    .map_err(std::io::Error::other)?;
                    Ok(vec![format::decode_all(&bytes, &schema())?])
                }
            }
        })
        .await??;
        Ok(batches)
    }

    /// Forgets an object and deletes it (entry first, the key kept in `deleting` until the
    /// object is gone): its rows are held elsewhere now (a storage worker handed them off).
    pub async fn release(&self, key: &str) -> anyhow::Result<()> {
        self.change_manifest(|manifest| {
            manifest.objects.retain(|object| object.key != key);
            manifest.deleting.push(key.to_string());
        })
        .await?;
        self.forget_skip_index(key);
        self.delete_object(key).await?;
        self.change_manifest(|manifest| manifest.deleting.retain(|deleting| deleting != key))
            .await?;
        Ok(())
    }

    /// The format `entry` is uploaded in: the archive format up to [`EVENTS_MAX_FILE_BYTES`],
    /// Parquet above (rows that do not fit the archive format go up as Parquet too).
    fn upload_format(&self, entry: &FileEntry) -> ObjectFormat {
        #[cfg(test)]
        if self
            .parquet_uploads
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return ObjectFormat::Parquet;
        }
        if entry.bytes <= EVENTS_MAX_FILE_BYTES {
            ObjectFormat::Events
        } else {
            ObjectFormat::Parquet
        }
    }

    /// The object key for a hot-store file uploaded in `format`.
    fn object_key(&self, entry: &FileEntry, format: ObjectFormat) -> String {
        let start = Utc
            .timestamp_opt(entry.window, 0)
            .single()
            .unwrap_or_default();
        let name = Path::new(&entry.path)
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let relative = format!(
            "{}/{}/{}-{name}{}",
            entry.tenant,
            start.format("%Y/%m/%d/%H"),
            self.origin,
            format.suffix()
        );
        self.target
            .prefix
            .parts()
            .chain(ObjectPath::from(relative).parts())
            .collect::<ObjectPath>()
            .to_string()
    }

    /// Files the uploader should archive now, oldest hours first: windows that ended and
    /// have been quiet for the compaction grace, files compaction will not rewrite (or whose
    /// compaction group was set aside after failing repeatedly: taken as they are, rather
    /// than kept hot past short-term retention waiting for it), not archived yet, not past
    /// long-term retention.
    pub fn due(&self, hot: &HotStore, compaction_options: &CompactionOptions) -> Vec<FileEntry> {
        let now = Utc::now();
        let seconds = now.timestamp();
        let grace = compaction_options.grace.as_secs() as i64;
        let files = hot.file_entries();
        let planned: HashSet<String> =
            compaction::plan(&hot.compactable_entries(), seconds, compaction_options)
                .into_iter()
                .flatten()
                .map(|entry| entry.path)
                .collect();
        let mut newest: HashMap<(&str, i64), i64> = HashMap::new();
        for entry in &files {
            let created = newest
                .entry((&entry.tenant, entry.window))
                .or_insert(i64::MIN);
            *created = (*created).max(entry.created);
        }
        let archived = self.sources();
        let mut due: Vec<FileEntry> = files
            .iter()
            .filter(|entry| {
                entry.window + WINDOW_SECONDS + grace <= seconds
                    && newest[&(entry.tenant.as_str(), entry.window)] + grace <= seconds
                    && (!planned.contains(&entry.path) || hot.is_set_aside(&entry.path))
                    && !archived.contains(&entry.path)
                    && !self.past_long_term(entry, now)
            })
            .cloned()
            .collect();
        due.sort_by(|a, b| (a.window, &a.path).cmp(&(b.window, &b.path)));
        due
    }

    /// One upload pass: archives every due file, stopping at the first failure (retried at
    /// the next pass). Returns how many files it archived.
    pub async fn upload_pass(
        self: &Arc<Self>,
        hot: &Arc<HotStore>,
        compaction_options: &CompactionOptions,
    ) -> anyhow::Result<usize> {
        let mut uploaded = 0;
        // A failure stops that tenant's uploads for this pass (its later hours wait for the
        // earlier ones), not the other tenants'.
        let mut failed_tenants: HashSet<String> = HashSet::new();
        let mut first_error = None;
        if let Err(error) = self.finish_interrupted(hot).await {
            first_error = Some(error);
        }
        for entry in self.due(hot, compaction_options) {
            if failed_tenants.contains(&entry.tenant) || hot.is_missing(&entry) {
                continue;
            }
            match self.upload(hot, &entry).await {
                Ok(true) => uploaded += 1,
                Ok(false) => {}
                Err(error) => {
                    self.metrics.uploads.inc(&["error"]);
                    // A file of a group set aside may be what compaction could not read:
                    // it must not hold up the tenant's later hours, pass after pass.
                    if !hot.is_set_aside(&entry.path) {
                        failed_tenants.insert(entry.tenant.clone());
                    }
                    first_error.get_or_insert(error);
                }
            }
        }
        let outcome = match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        };
        self.update_unarchived(hot);
        match outcome {
            Ok(()) => {
                if self.last_error.lock().take().is_some() {
                    tracing::info!(target = %self.target.display, "archive uploads work again");
                }
                self.metrics.healthy.set(1);
                Ok(uploaded)
            }
            Err(error) => {
                self.metrics.healthy.set(0);
                let text = format!(
                    "uploads to {} fail: {}",
                    self.target.display,
                    explain(&error)
                );
                let mut last = self.last_error.lock();
                if last.as_deref() != Some(text.as_str()) {
                    tracing::error!(target = %self.target.display, error = %explain(&error), "archive upload failed; the data stays in the hot store and is retried");
                }
                *last = Some(text);
                Err(error)
            }
        }
    }

    /// Archives one file: pin, seal, upload, verify, record. False when the file stopped
    /// being live before it was pinned (compaction or retention replaced it).
    async fn upload(
        self: &Arc<Self>,
        hot: &Arc<HotStore>,
        entry: &FileEntry,
    ) -> anyhow::Result<bool> {
        if !hot.pin(&entry.path) {
            return Ok(false);
        }
        // A sealed hot file is unsealed here: the object is sealed under a key of its own.
        // Its rows are re-encoded in the archive's format (CPU work: off the async threads).
        let wanted_format = self.upload_format(entry);
        let (reader, read) = (hot.clone(), entry.clone());
        let (object_format, plain) = tokio::task::spawn_blocking(move || {
            let parquet = reader.read_plain(&read)?;
            if wanted_format == ObjectFormat::Events {
                match events_object_of(&parquet) {
                    Ok(object) => return Ok((ObjectFormat::Events, bytes::Bytes::from(object))),
                    // Uploaded as it is rather than never (a text column over 2 GiB in one
                    // file, say): the hour must not stay hot for want of a smaller object.
                    Err(error) => {
                        tracing::warn!(path = %read.path, %error, "archived as Parquet: its rows do not fit the archive format")
                    }
                }
            }
            std::io::Result::Ok((ObjectFormat::Parquet, parquet))
        })
        .await?
        .map_err(|error| {
            let path = hot.root().join(&entry.path);
            anyhow::anyhow!("cannot read {}: {error}", path.display())
        })?;
        let key = self.keyring.current(&entry.tenant)?;
        let object_key = self.object_key(entry, object_format);
        let upload = Upload {
            tenant: entry.tenant.clone(),
            source: entry.path.clone(),
            key: object_key.clone(),
        };
        // An upload of this file begun under another name (by a version that archived
        // Parquet) is replaced by this one: its object goes, so no copy is left behind.
        let stale: Vec<Upload> = self
            .manifest
            .lock()
            .uploading
            .iter()
            .filter(|begun| begun.source == upload.source && begun.key != upload.key)
            .cloned()
            .collect();
        for begun in &stale {
            self.delete_object(&begun.key).await?;
        }
        if !stale.is_empty() || !self.manifest.lock().uploading.contains(&upload) {
            self.change_manifest(|manifest| {
                manifest.uploading.retain(|begun| !stale.contains(begun));
                if !manifest.uploading.contains(&upload) {
                    manifest.uploading.push(upload.clone());
                }
            })
            .await?;
        }
        let (tenant, sealed_key) = (entry.tenant.clone(), object_key.clone());
        let plain_bytes = plain.len() as u64;
        let (object, sidecar, data_key) =
            tokio::task::spawn_blocking(move || crypto::seal(&plain, &tenant, &sealed_key, &key))
                .await?;
        let stored_bytes = object.len() as u64;
        let location = ObjectPath::from(object_key.as_str());
        // The sidecar first: an object is never there without the key that opens it.
        let sidecar_location = ObjectPath::from(format!("{object_key}{SIDECAR_SUFFIX}"));
        self.target
            .store
            .put(&sidecar_location, PutPayload::from(sidecar))
            .await?;
        let put = if object.len() > MULTIPART_BYTES {
            let upload = self.target.store.put_multipart(&location).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_BYTES);
            let mut written = Ok(());
            for chunk in object.chunks(MULTIPART_BYTES) {
                written = writer.wait_for_capacity(2).await;
                if written.is_err() {
                    break;
                }
                writer.write(chunk);
            }
            match written {
                Ok(()) => writer.finish().await?,
                Err(error) => {
                    // The parts already sent would otherwise be kept (and billed) by the server.
                    let _ = writer.abort().await;
                    return Err(error.into());
                }
            }
        } else {
            self.target
                .store
                .put(&location, PutPayload::from(object))
                .await?
        };
        // Read back: the size, and the version (ETag) the server named for this PUT, so a
        // server that answers with an older copy is caught before anything is recorded.
        let head = self.target.store.head(&location).await?;
        if let (Some(written), Some(read)) = (&put.e_tag, &head.e_tag) {
            if written != read {
                anyhow::bail!(
                    "object {object_key} reads back as version {read}, {written} was uploaded"
                );
            }
        }
        if head.size != stored_bytes {
            anyhow::bail!(
                "object {object_key} reads back as {} bytes, {stored_bytes} were uploaded",
                head.size
            );
        }
        self.verify_sidecar(&entry.tenant, &object_key, &sidecar_location, &data_key)
            .await?;
        self.make_durable(&[&sidecar_location, &location]).await?;
        // The skip index goes with the object, sealed with its data key: a lost data
        // directory does not lose it (queries fetch it back), and a local copy spares the
        // request.
        let path = hot.root().join(&entry.path);
        let sidecar = skip_index::sidecar_path(&path);
        // An index that does not open or check out stays behind (the object is then read in
        // full, as with a damaged index): it must not hold up the upload.
        let index = match skip_index::read_plain(&sidecar, &entry.tenant, &self.keyring) {
            Ok(index) => match SkipIndex::decode(&index) {
                Ok(_) => Some(index),
                Err(error) => {
                    tracing::warn!(path = %sidecar.display(), %error, "a damaged skip index is not archived; the object is read in full");
                    None
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                tracing::warn!(path = %sidecar.display(), %error, "a skip index that does not open is not archived; the object is read in full");
                None
            }
        };
        let skip_index = match index {
            Some(index) => {
                let companion = skip_index_key(&object_key);
                let sealed = crypto::seal_companion(&index, &data_key, &companion);
                let companion = ObjectPath::from(companion.as_str());
                self.target
                    .store
                    .put(&companion, PutPayload::from(sealed))
                    .await?;
                self.make_durable(&[&companion]).await?;
                self.keep_skip_index(&entry.tenant, &object_key, &index)?;
                true
            }
            None => false,
        };
        let record = ArchivedObject {
            tenant: entry.tenant.clone(),
            window: entry.window,
            source: entry.path.clone(),
            key: object_key,
            rows: entry.rows,
            plain_bytes,
            stored_bytes,
            msg_tokens: object_format == ObjectFormat::Parquet && entry.msg_tokens,
            format: object_format,
            uploaded: Utc::now().timestamp(),
            skip_index,
        };
        self.change_manifest(|manifest| {
            manifest.objects.retain(|object| object.key != record.key);
            manifest.objects.push(record.clone());
            manifest.uploading.retain(|begun| begun.key != record.key);
        })
        .await?;
        self.metrics.uploads.inc(&["ok"]);
        self.metrics.uploaded_bytes.add(stored_bytes);
        tracing::debug!(key = %record.key, rows = record.rows, bytes = stored_bytes, "archived a hot-store file");
        Ok(true)
    }

    /// On a `file://` target, fsyncs the files at `locations` and every directory from
    /// theirs up to the target's (object_store's local store syncs nothing), so an object
    /// recorded in the manifest survives a power loss as a `kill -9`. Object stores need
    /// nothing: a PUT that returned is durable.
    async fn make_durable(&self, locations: &[&ObjectPath]) -> anyhow::Result<()> {
        if self.target.local_dir.is_none() {
            return Ok(());
        }
        let locations: Vec<ObjectPath> =
            locations.iter().map(|&location| location.clone()).collect();
        let (target, disk) = (self.target.clone(), self.disk.clone());
        tokio::task::spawn_blocking(move || {
            let locations: Vec<&ObjectPath> = locations.iter().collect();
            target.sync_local(&locations, disk.as_ref())
        })
        .await?
        .map_err(|error| anyhow::anyhow!("cannot sync an uploaded object to disk: {error}"))
    }

    /// Keeps an object's skip index where queries look for it, durably, sealed with the
    /// tenant's current key.
    fn keep_skip_index(&self, tenant: &str, object_key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let skip_root = self.dir.join(LOCAL_SKIP_DIR);
        // Gone with a lost data directory (or removed by hand) since the archive opened.
        std::fs::create_dir_all(&skip_root)?;
        let path = self.skip_index_path(object_key);
        if let Some(parent) = path.strip_prefix(&skip_root)?.parent() {
            create_dirs_durably(self.disk.as_ref(), &skip_root, parent)?;
        }
        // The key is held from reading it until the copy is in place, so a rotation that
        // retires old keys meanwhile re-wraps or drops it rather than stranding it.
        let (_sealing, key) = self.keyring.current_for_sealing(tenant)?;
        let sealed = skip_index::seal(bytes, &path, tenant, &key)?;
        replace_file(self.disk.as_ref(), &path, &sealed)?;
        Ok(())
    }

    /// An object's skip index: the local copy, or (lost with the data directory) the one
    /// kept with the object in the target, fetched back and kept again. `None` when it has
    /// none or it cannot be had: the object is then read in full.
    async fn skip_index_of(self: &Arc<Self>, object: &ArchivedObject) -> Option<SkipIndex> {
        if let Some(index) = self.local_skip_index(&object.tenant, &object.key) {
            return Some(index);
        }
        if !object.skip_index {
            return None;
        }
        let companion = skip_index_key(&object.key);
        let sidecar = ObjectPath::from(format!("{}{SIDECAR_SUFFIX}", object.key));
        let fetched = async {
            let (sealed, sidecar) = futures::try_join!(
                async {
                    self.target
                        .store
                        .get(&ObjectPath::from(companion.as_str()))
                        .await?
                        .bytes()
                        .await
                },
                async { self.target.store.get(&sidecar).await?.bytes().await },
            )?;
            let index = crypto::open_companion(
                &sealed,
                &sidecar,
                &object.tenant,
                &object.key,
                &companion,
                &self.keyring,
            )?;
            let decoded = SkipIndex::decode(&index)?;
            self.keep_skip_index(&object.tenant, &object.key, &index)?;
            anyhow::Ok(decoded)
        };
        match fetched.await {
            Ok(index) => Some(index),
            Err(error) => {
                tracing::warn!(key = %companion, %error, "cannot fetch an archived skip index; the object is read in full");
                None
            }
        }
    }

    /// Deletes the local skip index of an object no longer archived.
    fn forget_skip_index(&self, key: &str) {
        let _ = std::fs::remove_file(self.skip_index_path(key));
    }

    /// Reads the object's sidecar back and checks that it opens, with a key the tenant still
    /// has, to the object's data key. A key rotation running in another process may have
    /// retired the key it was wrapped with (or re-wrapped a sidecar this upload then replaced):
    /// it is wrapped again with the current key, so no object is recorded that cannot be
    /// opened.
    async fn verify_sidecar(
        &self,
        tenant: &str,
        object_key: &str,
        location: &ObjectPath,
        data_key: &crypto::DataKey,
    ) -> anyhow::Result<()> {
        for _attempt in 0..3 {
            let stored = self.target.store.get(location).await?.bytes().await?;
            if crypto::sidecar_holds(&stored, tenant, object_key, &self.keyring, data_key) {
                return Ok(());
            }
            let current = self.keyring.current(tenant)?;
            let fresh = crypto::wrap_again(data_key, tenant, &current, object_key);
            self.target
                .store
                .put(location, PutPayload::from(fresh))
                .await?;
        }
        anyhow::bail!(
            "the key sidecar of {object_key} keeps changing under the upload (a key rotation \
             running?); retried at the next pass"
        )
    }

    async fn change_manifest(
        &self,
        change: impl FnOnce(&mut ArchiveManifest),
    ) -> std::io::Result<()> {
        let _writing = self.writes.lock().await;
        let mut next = self.manifest.lock().clone();
        change(&mut next);
        let (disk, dir, bytes) = (self.disk.clone(), self.dir.clone(), next.clone());
        tokio::task::spawn_blocking(move || manifest::write(disk.as_ref(), &dir, &bytes))
            .await
            .map_err(std::io::Error::other)??;
        *self.manifest.lock() = next;
        self.update_gauges();
        Ok(())
    }

    fn update_gauges(&self) {
        let manifest = self.manifest.lock();
        self.metrics.objects.set(manifest.objects.len() as u64);
        self.metrics.stored_bytes.set(
            manifest
                .objects
                .iter()
                .map(|object| object.stored_bytes)
                .sum(),
        );
    }

    /// Per tenant: seconds since the start of the oldest hour holding events not archived.
    fn update_unarchived(&self, hot: &HotStore) {
        let now = Utc::now().timestamp();
        let mut oldest: BTreeMap<String, i64> = BTreeMap::new();
        let mut note = |tenant: &str, window: i64| {
            let start = oldest.entry(tenant.to_string()).or_insert(window);
            *start = (*start).min(window);
        };
        let archived = self.sources();
        for entry in hot.file_entries() {
            if !archived.contains(&entry.path) {
                note(&entry.tenant, entry.window);
            }
        }
        for (tenant, window) in hot.memory_windows() {
            note(&tenant, window);
        }
        let mut reported = self.reported_tenants.lock();
        for tenant in reported.iter() {
            if !oldest.contains_key(tenant) {
                self.metrics.unarchived_seconds.set(&[tenant], 0);
            }
        }
        for (tenant, window) in oldest {
            self.metrics
                .unarchived_seconds
                .set(&[&tenant], (now - window).max(0) as u64);
            reported.insert(tenant);
        }
    }

    /// Deletes objects past their tenant's long-term retention (entry first, then the
    /// object). Returns how many it deleted.
    pub async fn expire(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let expired: Vec<ArchivedObject> = self
            .manifest
            .lock()
            .objects
            .iter()
            .filter(|object| object.window < self.first_readable_window(&object.tenant, now))
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        // Objects first (queries already leave expired hours out), then their entries: a
        // failed or interrupted deletion is retried at the next pass instead of leaving an
        // object nothing would ever delete.
        let mut deleted = HashSet::new();
        let mut failure = None;
        for object in &expired {
            match self.delete_object(&object.key).await {
                Ok(()) => {
                    deleted.insert(object.key.clone());
                    self.metrics.expired_objects.inc(&[&object.tenant]);
                }
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        if !deleted.is_empty() {
            self.change_manifest(|manifest| {
                manifest
                    .objects
                    .retain(|object| !deleted.contains(&object.key))
            })
            .await?;
            for key in &deleted {
                self.forget_skip_index(key);
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(deleted.len()),
        }
    }

    /// Deletes an object, its skip index and its sidecar (last: what is left of an
    /// interrupted deletion can still be opened).
    async fn delete_object(&self, key: &str) -> anyhow::Result<()> {
        self.delete_location(&ObjectPath::from(key)).await?;
        self.delete_location(&ObjectPath::from(skip_index_key(key)))
            .await?;
        self.delete_location(&ObjectPath::from(format!("{key}{SIDECAR_SUFFIX}")))
            .await
    }

    /// Deletes one location (and its cached copy); one already gone counts as deleted.
    async fn delete_location(&self, location: &ObjectPath) -> anyhow::Result<()> {
        self.cache.remove(location.as_ref());
        match self.target.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes everything archived for `tenant` (listed objects too, so orphans of
    /// interrupted uploads go as well), then its keys. Returns the objects deleted.
    pub async fn purge(&self, tenant: &str) -> anyhow::Result<usize> {
        let prefix = self.target.tenant_prefix(tenant);
        // The listing below finds interrupted uploads and deletions too.
        self.change_manifest(|manifest| {
            manifest.objects.retain(|object| object.tenant != tenant);
            manifest.uploading.retain(|upload| upload.tenant != tenant);
            manifest
                .deleting
                .retain(|key| !ObjectPath::from(key.as_str()).prefix_matches(&prefix));
        })
        .await?;
        let listed: Vec<ObjectPath> = self
            .target
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let mut deleted = 0;
        for location in &listed {
            self.delete_location(location).await?;
            if ObjectFormat::of_key(location.as_ref()).is_some() {
                deleted += 1;
            }
        }
        self.keyring.purge(tenant)?;
        let _ = std::fs::remove_dir_all(self.dir.join(LOCAL_SKIP_DIR).join(prefix.as_ref()));
        Ok(deleted)
    }
}

/// The rows of a hot-store Parquet file (`parquet`, plain) as an events object, checked to
/// decode back to the very same rows before it is uploaded: the hot copy is deleted on the
/// strength of it.
fn events_object_of(parquet: &bytes::Bytes) -> std::io::Result<Vec<u8>> {
    let batches = crate::hot::read_batches_of(parquet.clone())?;
    let batch = datafusion::arrow::compute::concat_batches(&schema(), &batches)
        .map_err(std::io::Error::other)?;
    let object = format::encode(&batch)?;
    if format::decode_all(&object, &schema())? != batch {
        return Err(std::io::Error::other(
            "its rows do not decode back from the archive format unchanged",
        ));
    }
    Ok(object)
}

/// One line saying why a request failed: an S3 error's XML body is cut down to its code and
/// message (the client repeats it once per error in the chain).
fn explain(error: &anyhow::Error) -> String {
    let text = error.to_string();
    let tag = |name: &str| -> Option<&str> {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(&text[start..end])
    };
    let explained = match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => {
            let head = text.split("<?xml").next().unwrap_or_default();
            format!("{}: {code}: {message}", head.trim_end_matches([':', ' ']))
        }
        _ => text.clone(),
    };
    explained.replace('\n', " ")
}

/// The archive's origin ([`Archive::origin`]): made once, kept beside its manifest.
fn read_or_make_origin(dir: &Path) -> std::io::Result<String> {
    let path = dir.join("ORIGIN");
    match std::fs::read_to_string(&path) {
        Ok(origin) if !origin.trim().is_empty() => Ok(origin.trim().to_string()),
        Ok(_) | Err(_) => {
            let origin = ulid::Ulid::new().to_string().to_lowercase();
            replace_file(&LocalDisk, &path, origin.as_bytes())?;
            Ok(origin)
        }
    }
}

/// Runs upload passes every `options.upload_interval` until the process ends.
pub fn spawn_uploader(
    archive: Arc<Archive>,
    hot: Arc<HotStore>,
    compaction_options: CompactionOptions,
) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(archive.options.upload_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            // Failures are logged, counted and shown by /readyz inside the pass.
            let _ = archive.upload_pass(&hot, &compaction_options).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket archived by versions before the archive format holds Parquet objects: after
    /// an upgrade they answer queries beside the events objects of new uploads, one answer
    /// over both.
    #[tokio::test]
    async fn parquet_objects_of_earlier_versions_and_events_objects_answer_one_query() {
        use crate::query::{QueryEngine, QueryLimits};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let hot = test_support::hot_with(&root, "older hour took 12 ms on host-7");
        let archive = test_support::open(&root, &dir.path().join("objects"), &root.join("keys"));
        archive
            .parquet_uploads
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let no_grace = test_support::no_grace();
        assert_eq!(archive.upload_pass(&hot, &no_grace).await.unwrap(), 1);
        archive
            .parquet_uploads
            .store(false, std::sync::atomic::Ordering::Relaxed);
        test_support::add_file(&hot, "newer hour took 13 ms on host-8", 3);
        assert_eq!(archive.upload_pass(&hot, &no_grace).await.unwrap(), 1);
        let formats: Vec<ObjectFormat> = archive
            .manifest
            .lock()
            .objects
            .iter()
            .map(|object| object.format)
            .collect();
        assert_eq!(formats, [ObjectFormat::Parquet, ObjectFormat::Events]);
        let mut keys = test_support::objects_in(&archive).await;
        keys.sort_by_key(|key| key.ends_with(".parquet.enc"));
        assert!(keys[0].ends_with(".events.enc") && keys[1].ends_with(".parquet.enc"));
        // The hot copies go: only the objects hold the rows now.
        for entry in hot.file_entries() {
            assert!(hot.release(&entry.path).unwrap());
        }
        let engine = QueryEngine::new(
            hot.clone(),
            QueryLimits::default(),
            Arc::new(crate::metrics::StoreMetrics::register(&Registry::new())),
        )
        .with_archive(archive.clone());
        let tenant = meniscus_grid::TenantId::parse("acme").unwrap();
        let rows = |sql: &'static str| {
            let engine = &engine;
            let tenant = &tenant;
            async move { engine.sql(tenant, sql).await.unwrap().rows }
        };
        let messages = rows("SELECT msg, transport FROM events ORDER BY msg").await;
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[0]["msg"], "newer hour took 13 ms on host-8");
        assert_eq!(messages[1]["msg"], "older hour took 12 ms on host-7");
        assert_eq!(messages[0]["transport"], "tcp");
        assert_eq!(messages[1]["transport"], "tcp");
        assert_eq!(
            rows("SELECT count(*) AS n FROM events WHERE msg LIKE '%took 13 ms%'").await[0]["n"],
            1
        );
        let counts = rows("SELECT transport, count(*) AS n FROM events GROUP BY transport").await;
        assert_eq!(counts.len(), 1, "{counts:?}");
        assert_eq!(counts[0]["n"], 2);
    }

    /// An upload begun under a Parquet name by an earlier version, cut short by a crash
    /// before the upgrade, is replaced by the events object: the half-done object is
    /// deleted, so the file's rows end up in one object only.
    #[tokio::test]
    async fn an_upload_begun_under_a_parquet_name_gives_way_to_the_events_object() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let objects = dir.path().join("objects");
        let hot = test_support::hot_with(&root, "one");
        let archive = test_support::open(&root, &objects, &root.join("keys"));
        let entry = hot.file_entries()[0].clone();
        let old_key = archive.object_key(&entry, ObjectFormat::Parquet);
        archive
            .target
            .store
            .put(
                &ObjectPath::from(old_key.as_str()),
                PutPayload::from(b"half".to_vec()),
            )
            .await
            .unwrap();
        archive.manifest.lock().uploading.push(Upload {
            tenant: entry.tenant.clone(),
            source: entry.path.clone(),
            key: old_key.clone(),
        });
        assert_eq!(
            archive
                .upload_pass(&hot, &test_support::no_grace())
                .await
                .unwrap(),
            1
        );
        let keys = test_support::objects_in(&archive).await;
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].ends_with(".events.enc"), "{keys:?}");
        assert!(archive.manifest.lock().uploading.is_empty());
        let object = archive.manifest.lock().objects[0].clone();
        assert_eq!(test_support::messages(&archive, &object).await, ["one"]);
    }

    /// On a `file://` target an object is recorded only once it and the directories naming
    /// it are fsynced: object_store's local store syncs nothing, and a power loss after the
    /// record would otherwise leave the manifest naming an object that is not there.
    #[tokio::test]
    async fn a_local_target_syncs_each_object_before_it_is_recorded() {
        use crate::disk::faults::{FaultyDisk, Op};
        let dir = tempfile::tempdir().unwrap();
        let (root, objects, keys) = (
            dir.path().join("data"),
            dir.path().join("objects"),
            dir.path().join("keys"),
        );
        let hot = test_support::hot_with(&root, "one");
        let disk = FaultyDisk::default();
        let archive = Archive::open_on(
            &root,
            test_support::options(&objects, &keys),
            &Registry::new(),
            Arc::new(|_| None),
            Arc::new(disk.clone()),
        )
        .unwrap();
        disk.fail(Op::SyncFile, 1, Some(".events.enc"));
        let error = archive
            .upload_pass(&hot, &test_support::no_grace())
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains("cannot sync"), "{error:#}");
        assert!(archive.manifest.lock().objects.is_empty(), "not recorded");

        assert_eq!(
            archive
                .upload_pass(&hot, &test_support::no_grace())
                .await
                .unwrap(),
            1
        );
        let recorded = archive.manifest.lock().objects[0].key.clone();
        let object = objects.join(&recorded);
        let log = disk.log();
        let synced = |op: Op, path: &Path| {
            log.iter()
                .any(|(done, at, ok)| *done == op && at == path && *ok)
        };
        assert!(synced(Op::SyncFile, &object));
        assert!(synced(
            Op::SyncFile,
            &objects.join(format!("{recorded}.key"))
        ));
        let mut parent = object.parent().unwrap();
        while parent.starts_with(&objects) {
            assert!(synced(Op::SyncDir, parent), "{} synced", parent.display());
            parent = parent.parent().unwrap();
        }
    }

    /// Queries that miss the same object at the same moment open it from the target once:
    /// the second waits for the first and finds it cached.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_of_one_object_open_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, object) = test_support::one_object(dir.path()).await;
        let (first, second) = tokio::join!(
            archive.fetch(vec![object.clone()]),
            archive.fetch(vec![object.clone()])
        );
        assert!(first.1.is_empty() && second.1.is_empty());
        assert!(
            Arc::ptr_eq(&first.0[0].0, &second.0[0].0),
            "one cached copy"
        );
        assert_eq!(archive.metrics.fetches.get(&["miss"]), 1);
        assert_eq!(archive.metrics.fetches.get(&["hit"]), 1);
        assert!(archive.opening.lock().is_empty(), "no gate left behind");
    }

    /// Queries waiting while another fails to open an object get its failure, rather than
    /// each trying the target again in turn; a query that comes later tries afresh.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_to_open_an_object_is_shared_by_those_waiting_and_retried_later() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, object) = test_support::one_object(dir.path()).await;
        let sidecar = dir
            .path()
            .join("objects")
            .join(format!("{}{SIDECAR_SUFFIX}", object.key));
        let kept = dir.path().join("sidecar.kept");
        std::fs::rename(&sidecar, &kept).unwrap();
        let (first, second) = tokio::join!(
            archive.fetch(vec![object.clone()]),
            archive.fetch(vec![object.clone()])
        );
        assert_eq!(
            (first.1.len(), second.1.len()),
            (1, 1),
            "both answer without it"
        );
        std::fs::rename(&kept, &sidecar).unwrap();
        let later = archive.fetch(vec![object]).await;
        assert!(later.1.is_empty(), "{:?}", later.1);
        assert_eq!(later.0.len(), 1);
        assert!(archive.opening.lock().is_empty(), "no gate left behind");
    }

    /// A query that must read every hour (a job lookup) reads them in turns that each fit the
    /// local cache; an hour over the limit alone is a turn of its own.
    #[test]
    fn hours_are_cut_into_turns_that_fit_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let archive = test_support::open(
            dir.path(),
            &dir.path().join("objects"),
            &dir.path().join("keys"),
        );
        let hour = |n: i64| 1_796_000_400 + n * WINDOW_SECONDS;
        let object = |tenant: &str, window: i64, plain_bytes: u64| ArchivedObject {
            tenant: tenant.into(),
            window,
            source: format!("{tenant}/{window}"),
            key: format!("{tenant}/{window}.parquet.enc"),
            rows: 1,
            plain_bytes,
            stored_bytes: plain_bytes,
            msg_tokens: false,
            format: ObjectFormat::Events,
            uploaded: 0,
            skip_index: false,
        };
        archive.manifest.lock().objects = vec![
            object("acme", hour(0), 60),
            object("acme", hour(0), 40),
            object("acme", hour(1), 100),
            object("acme", hour(2), 300),
            object("acme", hour(3), 50),
            object("beta", hour(1), 1_000),
        ];
        let at = |n: i64| Utc.timestamp_opt(hour(n), 0).single();
        assert_eq!(
            archive.window_turns("acme", 250),
            [(None, at(1)), (at(2), at(2)), (at(3), None)]
        );
        assert_eq!(archive.window_turns("acme", 10_000), [(None, None)]);
        assert_eq!(archive.window_turns("nobody", 10), [(None, None)]);
    }

    /// A local copy of an object's skip index kept in clear by an older version still
    /// answers, and is sealed with the tenant's key once read.
    #[tokio::test]
    async fn a_local_skip_index_kept_in_clear_is_sealed_once_read() {
        use datafusion::arrow::array::{RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let dir = tempfile::tempdir().unwrap();
        let archive = test_support::open(
            dir.path(),
            &dir.path().join("objects"),
            &dir.path().join("keys"),
        );
        let schema = Arc::new(Schema::new(vec![Field::new("msg", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec!["a rare needle here"]))],
        )
        .unwrap();
        let mut builder = skip_index::Builder::default();
        builder.add(&batch).unwrap();
        let index = builder.finish();
        let key = "acme/2026/12/01/10/origin-000000000001-compacted.parquet.enc";
        let path = archive.skip_index_path(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, index.encode()).unwrap();

        assert_eq!(archive.local_skip_index("acme", key), Some(index.clone()));
        let stored = std::fs::read(&path).unwrap();
        assert!(stored.starts_with(crate::hot::sealed::SEALED_MAGIC));
        assert!(!stored.windows(8).any(|window| window == b"MNSKIP01"));
        assert_eq!(archive.local_skip_index("acme", key), Some(index));
        assert_eq!(
            archive.local_skip_index("beta", key),
            None,
            "bound to its tenant"
        );
    }

    /// A tenant's purge takes its objects (recorded or orphaned) and its keys, and nothing of
    /// a tenant whose name merely starts the same way.
    #[tokio::test]
    async fn purge_deletes_a_tenants_objects_orphans_and_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let archive = test_support::open(dir.path(), &objects, &dir.path().join("keys"));
        archive.keyring.current("a").unwrap();
        archive.keyring.current("ab").unwrap();
        for key in [
            "a/2026/01/01/00/x.parquet.enc",
            "a/2026/01/01/00/x.parquet.enc.key",
            "a/2026/01/01/01/orphan.parquet.enc",
            "ab/2026/01/01/00/y.parquet.enc",
        ] {
            archive
                .target
                .store
                .put(&ObjectPath::from(key), PutPayload::from(vec![1u8]))
                .await
                .unwrap();
        }
        assert_eq!(archive.purge("a").await.unwrap(), 2);
        assert_eq!(
            test_support::keys_in(&archive).await,
            ["ab/2026/01/01/00/y.parquet.enc"]
        );
        assert!(!dir.path().join("keys/a.json").exists());
        assert!(dir.path().join("keys/ab.json").exists());
    }

    /// Storage workers of a grid share one target, and their hot-store file names repeat
    /// (each counts its flushes from 1): their objects must not overwrite each other. A
    /// storage worker handing its tenants off reads an object back whole and releases it.
    #[tokio::test]
    async fn archives_sharing_a_target_keep_apart_and_hand_their_objects_off() {
        use test_support::{hot_with, messages, no_grace, objects_in, open};

        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let mut workers = Vec::new();
        for name in ["a", "b"] {
            let root = dir.path().join(name);
            let hot = hot_with(&root, &format!("held by {name}"));
            let archive = open(&root, &objects, &root.join("keys"));
            assert_eq!(archive.upload_pass(&hot, &no_grace()).await.unwrap(), 1);
            workers.push((hot, archive));
        }
        let paths: Vec<String> = workers
            .iter()
            .map(|(hot, _)| hot.file_entries()[0].path.clone())
            .collect();
        assert_eq!(paths[0], paths[1], "the same file name on both workers");
        assert_eq!(
            objects_in(&workers[0].1).await.len(),
            2,
            "two objects, none overwritten"
        );
        for ((_, archive), name) in workers.iter().zip(["a", "b"]) {
            let object = archive.object_of(&paths[0]).unwrap();
            assert_eq!(
                messages(archive, &object).await,
                [format!("held by {name}")]
            );
        }

        // Worker a hands off: its hot file goes, then its object, the only copy left.
        let (hot, archive) = &workers[0];
        assert_eq!(
            hot.read_file(&hot.file_entries()[0]).unwrap()[0].num_rows(),
            1
        );
        assert!(hot.release(&paths[0]).unwrap());
        assert!(!hot.release(&paths[0]).unwrap(), "released once");
        assert!(hot.file_entries().is_empty());
        let only = archive.only_archived(&HashSet::new());
        assert_eq!(only.len(), 1);
        archive.release(&only[0].key).await.unwrap();
        assert!(archive.only_archived(&HashSet::new()).is_empty());
        assert_eq!(objects_in(archive).await.len(), 1, "b's object stays");
        let object = workers[1].1.object_of(&paths[0]).unwrap();
        assert_eq!(
            workers[1].1.read_object(&object).await.unwrap()[0].num_rows(),
            1
        );
    }
}
