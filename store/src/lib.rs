//! The Meniscus store: write-ahead log, hot store (memory + Parquet), compaction, retention,
//! durable jobs and the query engine over one tenant's events.
//!
//! Events become Arrow batches and WAL records where they are handed on, on the ingest
//! threads, so that work runs in parallel ([`Store::hand_on`]). Then, on threads of their own
//! so that blocking file IO never stalls the async runtime:
//! - the committer ([`commit`]) owns the WAL: it takes every record waiting in the queue,
//!   appends them, fsyncs once if any is durable (group commit), inserts the batches into
//!   memory and then acknowledges each submission; it also decides when to freeze memory for
//!   a flush, and stops the store taking new batches while the WAL cannot be written;
//! - the flusher ([`flush`]) writes frozen memory to Parquet, makes the files live in the
//!   manifest, deletes the WAL segments they cover, and compacts closed windows in between.

pub mod archive;
mod commit;
pub mod compaction;
pub mod disk;
mod flush;
pub mod gate;
pub mod hot;
pub mod jobs;
pub mod logql;
pub mod metrics;
pub mod msg_tokens;
pub mod query;
pub mod read_only_store;
pub mod retention;
pub mod skip_index;
pub mod wal;

#[cfg(test)]
mod fault_tests;

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[tokio::test]
    async fn a_second_store_on_one_data_directory_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let first = Store::open(dir.path(), StoreOptions::default(), &registry).unwrap();
        let second = Store::open(dir.path(), StoreOptions::default(), &Registry::new());
        let error = format!("{:#}", second.err().expect("refused"));
        assert!(
            error.contains("in use by another Meniscus process"),
            "{error}"
        );
        drop(first);
        Store::open(dir.path(), StoreOptions::default(), &Registry::new()).unwrap();
    }
}

/// The object-store client the archive uses, for tools and tests that look at a target.
pub use object_store;

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use meniscus_metrics::Registry;
use meniscus_record::columnar::{batch_bytes, encode_payload_into, TenantBatch};
use meniscus_record::frame::{self, PayloadFormat, RecordCodec};
use meniscus_record::stage::BoxFuture;
use meniscus_record::{Ack, Batch, Stage, StageError, WhenFull};
use tokio::sync::{mpsc, oneshot};

use archive::crypto::Keyring;
use commit::{Command, Committer};
use compaction::CompactionOptions;
use disk::{Disk, LocalDisk};
use flush::Flusher;
use gate::{Closed, Gate};
use hot::{Frozen, HotStore};
use jobs::JobIndex;
use metrics::StoreMetrics;

/// How the store behaves; every default is defined here once (the worker's configuration
/// reads them from [`StoreOptions::default`]).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Batches queued between ingest and the WAL; then backpressure.
    pub queue_batches: usize,
    /// Events held in memory before a flush.
    pub flush_events: usize,
    /// Arrow bytes held in memory before a flush, whatever the event count.
    pub flush_bytes: usize,
    /// Longest time events stay only in memory and the WAL.
    pub flush_interval: Duration,
    /// How far back, at start, event ids are read from recent files so a batch redelivered
    /// after a restart is stored once.
    pub dedupe_window: Duration,
    pub compaction: CompactionOptions,
    /// Where tenant keys are kept (`archive.keyDir`); `None`: `DATA_DIR/keys`. Hot-store
    /// files holding rows of an `encrypted` producer are sealed with them.
    pub key_dir: Option<std::path::PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            // Measured (bench/e2e, 2 M messages): 256 batches and 500 k events peaked at
            // 1.25 GB RSS; 16 and 100 k peaked at 317 MB and ingested faster.
            queue_batches: 16,
            flush_events: 1_000_000,
            flush_bytes: 64 * 1024 * 1024,
            flush_interval: Duration::from_secs(60),
            dedupe_window: Duration::from_secs(600),
            compaction: CompactionOptions::default(),
            key_dir: None,
        }
    }
}

/// Records are cut to about this many bytes of Arrow data each, far below the record format's
/// limit ([`frame::MAX_PAYLOAD_LEN`]) that replay enforces: a 16 MiB HTTP body of one-byte
/// lines becomes more than that in columnar form.
const RECORD_TARGET_BYTES: usize = 64 * 1024 * 1024;

pub struct Store {
    commands: mpsc::Sender<Command>,
    codec: RecordCodec,
    /// Seals records holding rows of an `encrypted` producer (the log's own key, in the key
    /// directory); `None` when there is no key and none can be made (they are refused then).
    sealing_codec: Option<RecordCodec>,
    /// Tenants whose key is known to be there: their `encrypted` rows can be sealed at flush.
    sealable: parking_lot::RwLock<std::collections::HashSet<String>>,
    gate: Arc<Gate>,
    pub hot: Arc<HotStore>,
    pub jobs: Arc<JobIndex>,
    pub metrics: Arc<StoreMetrics>,
    /// `DATA_DIR/LOCK`, locked while the store is open (see [`lock_data_dir`]).
    _lock: std::fs::File,
}

/// How long opening waits for another store of the same process to let go of the data
/// directory (a restart within a process drops the old store just before).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Locks `DATA_DIR/LOCK` for this store: two processes writing one write-ahead log and one
/// manifest would corrupt both, so the second is refused, with the reason. The kernel lets go
/// of the lock when the process dies, `kill -9` included, so no stale lock is ever left.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("LOCK");
    let file = disk::open_lock_file(&path)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "the data directory {} is in use by another Meniscus process ({} is locked): stop it first, or give this one another --data-dir",
                data_dir.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(anyhow::Error::from(error)
                    .context(format!("cannot lock {}", path.display())))
            }
        }
    }
}

impl Store {
    /// Batches waiting for the write-ahead log (at most `queue_batches`; then backpressure).
    pub fn queued_batches(&self) -> usize {
        self.commands.max_capacity() - self.commands.capacity()
    }

    /// Events committed since the store opened, every tenant together.
    pub fn stored_events(&self) -> u64 {
        self.metrics.stored_events.total()
    }

    /// Opens (or creates) the store under `data_dir`, replaying the write-ahead log.
    pub fn open(
        data_dir: &Path,
        options: StoreOptions,
        registry: &Registry,
    ) -> anyhow::Result<Arc<Store>> {
        Store::open_on(data_dir, options, registry, Arc::new(LocalDisk))
    }

    /// [`Store::open`] writing through `disk` (tests inject faults there).
    pub fn open_on(
        data_dir: &Path,
        options: StoreOptions,
        registry: &Registry,
        disk: Arc<dyn Disk>,
    ) -> anyhow::Result<Arc<Store>> {
        let metrics = Arc::new(StoreMetrics::register(registry));
        let wal_dir = data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        let lock = lock_data_dir(data_dir)?;
        let key_dir = (options.key_dir.clone()).unwrap_or_else(|| data_dir.join("keys"));
        let keyring = Arc::new(Keyring::open(&key_dir).map_err(|error| {
            anyhow::anyhow!(
                "cannot open the key directory {}: {error}",
                key_dir.display()
            )
        })?);
        let (hot, flushed_through) = HotStore::open(
            &data_dir.join("hot"),
            disk.clone(),
            options.dedupe_window,
            keyring,
        )?;
        // Files the archive holds stay whole: pinned before the flusher (which compacts)
        // starts, whether or not the archive is on in this run.
        let archived = archive::manifest::read(&data_dir.join("archive"))?;
        for object in &archived.objects {
            hot.pin(&object.source);
        }
        let hot = Arc::new(hot);
        let codec = RecordCodec::plain();
        let sealing_codec = wal::record_key(&key_dir)
            .map_err(|error| {
                anyhow::anyhow!(
                    "the write-ahead log's key in {}: {error}",
                    key_dir.display()
                )
            })?
            .map(|key| RecordCodec::plain().with_key(&key));
        // The keyed codec opens plain records as well as sealed ones.
        let replay = wal::replay(
            &wal_dir,
            sealing_codec.as_ref().unwrap_or(&codec),
            flushed_through,
        )?;
        for (path, offset, reason) in &replay.repaired {
            tracing::warn!(path = %path.display(), offset, reason, "write-ahead log tail cut at the last whole record");
        }
        for (path, offset, reason) in &replay.skipped {
            tracing::error!(path = %path.display(), offset, reason, "write-ahead log record skipped: its events cannot be decoded");
        }
        for damage in &replay.damaged {
            tracing::error!(
                segment = %damage.segment.display(),
                offset = damage.offset,
                length = damage.length,
                reason = %damage.reason,
                kept_at = ?damage.kept_at,
                "damaged bytes in the middle of a write-ahead log segment skipped; the records after them were kept"
            );
        }
        metrics.wal_replay_skipped.add(replay.skipped.len() as u64);
        metrics.wal_replay_damaged.add(replay.damaged.len() as u64);
        let jobs = Arc::new(JobIndex::default());
        let inserted = hot.insert(replay.batches);
        for (tenant, job_id, events) in &inserted.jobs {
            jobs.record_stored(tenant, job_id, *events);
        }
        let replayed: u64 = inserted.per_tenant.iter().map(|(_, count)| count).sum();
        let mut writer = wal::WalWriter::new(disk.clone(), &wal_dir, replay.last_seq + 1);
        // The first segment is opened now, so a data directory that cannot be written is
        // found at start rather than at the first durable publish.
        writer.ensure_open()?;
        tracing::info!(replayed, segment = writer.seq(), data_dir = %data_dir.display(), "storage open");

        let gate = Arc::new(Gate::new());
        metrics.wal_writable.set(1);
        let (commands, receiver) = mpsc::channel(options.queue_batches.max(1));
        // One flush may run while the next memtable fills; when both are busy the committer
        // stops freezing, memory fills to its cap and the gate closes: bounded, not lost.
        let (flush_sender, flush_receiver) = std::sync::mpsc::sync_channel::<Arc<Frozen>>(1);
        let committer = Committer::new(
            receiver,
            writer,
            hot.clone(),
            jobs.clone(),
            metrics.clone(),
            gate.clone(),
            options.clone(),
            flush_sender,
        );
        thread::Builder::new()
            .name("wal-committer".into())
            .spawn(move || committer.run())?;
        let flusher = Flusher::new(
            flush_receiver,
            hot.clone(),
            wal_dir,
            metrics.clone(),
            options.compaction.clone(),
        );
        thread::Builder::new()
            .name("hot-flusher".into())
            .spawn(move || flusher.run())?;

        let tick_sender = commands.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(500));
            loop {
                interval.tick().await;
                if tick_sender.send(Command::Tick).await.is_err() {
                    break;
                }
            }
        });
        Ok(Arc::new(Store {
            commands,
            codec,
            sealing_codec,
            sealable: Default::default(),
            gate,
            hot,
            jobs,
            metrics,
            _lock: lock,
        }))
    }

    /// Writes everything in memory to Parquet and waits for it.
    pub async fn flush(&self) -> Result<(), StageError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Flush { done })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())
    }

    /// Deletes everything the store holds of `tenant`: what is in memory is flushed first, so
    /// the write-ahead log cannot bring it back at the next start, then its files go. Returns
    /// how many files were deleted. Events of the tenant that arrive meanwhile are not; the
    /// caller makes sure none are sent any more (the tenant leaves the registry first). The
    /// tenant's key goes last (the archive, purged after this, deletes objects without it):
    /// a copy of a sealed file left anywhere no longer opens.
    pub async fn purge_tenant(&self, tenant: &str) -> anyhow::Result<usize> {
        self.flush().await?;
        let hot = self.hot.clone();
        self.sealable.write().remove(tenant);
        let tenant = tenant.to_string();
        Ok(tokio::task::spawn_blocking(move || {
            let files = hot.purge(&tenant)?;
            hot.keyring().purge(&tenant)?;
            Ok::<_, std::io::Error>(files)
        })
        .await??)
    }

    /// Why the store is not taking durable writes, if it is not (for `/readyz`). Memory
    /// backpressure is not a failure and is not reported here.
    pub fn unhealthy(&self) -> Option<String> {
        match self.gate.closed() {
            Some(closed @ Closed::WalUnwritable(_)) => Some(closed.describe()),
            _ => None,
        }
    }

    /// Makes sure `tenant` has a key (made on first use), so its `encrypted` rows can be sealed
    /// when they are flushed. Checked when they arrive, not at the flush: a key that cannot be
    /// made (a read-only key directory lacking it, a damaged key file) then refuses that
    /// tenant's events, with the reason, instead of failing every flush, which would hold back
    /// every tenant.
    fn ensure_sealable(&self, tenant: &str) -> Result<(), String> {
        if self.sealable.read().contains(tenant) {
            return Ok(());
        }
        self.hot.keyring().current(tenant).map_err(|error| {
            format!(
                "events of an encrypted producer of {tenant} cannot be sealed: its key: {error}"
            )
        })?;
        self.sealable.write().insert(tenant.to_string());
        Ok(())
    }

    /// The CPU-heavy part of storing, done on the submitting thread so ingest connections
    /// convert in parallel and the committer only writes bytes: events to Arrow batches per
    /// tenant, and those to sealed WAL records of at most about [`RECORD_TARGET_BYTES`].
    fn encode(&self, mut batch: Batch) -> Result<Option<Encoded>, StageError> {
        if batch.is_empty() {
            return Ok(None);
        }
        let refused = |error: &dyn std::fmt::Display| {
            StageError::refused(format!("cannot encode events: {error}"))
        };
        let durable = batch.synced || batch.is_durable();
        let acknowledge_when_written = durable || batch.acknowledge_when_written;
        let events = batch.rows() as u64;
        let transport = transport_of(&batch);
        // A record received on a link already is what this log would write: taken as it is,
        // unless it holds rows of an `encrypted` producer (this log seals those).
        let mut encrypted = false;
        for group in batch.tenants.iter().filter(|group| group.is_encrypted()) {
            encrypted = true;
            // Unavailable, not refused: the batch is fine, and is taken once the key is there.
            self.ensure_sealable(group.tenant.as_str())
                .map_err(StageError::unavailable)?;
        }
        let received = batch.take_sealed_record().filter(|record| {
            self.codec.is_plain() && !encrypted && record.len() <= RECORD_TARGET_BYTES
        });
        let batches = batch.tenants;
        let records = match received {
            Some(record) => vec![record],
            None => record_chunks(&batches, RECORD_TARGET_BYTES)
                .into_iter()
                .map(|chunk| {
                    let mut buffer = vec![0u8; frame::HEADER_LEN];
                    encode_payload_into(&chunk, &mut buffer).map_err(|error| refused(&error))?;
                    let codec = match chunk.iter().any(TenantBatch::is_encrypted) {
                        false => &self.codec,
                        true => self.sealing_codec.as_ref().ok_or_else(|| {
                            StageError::unavailable("events of an encrypted producer cannot be sealed: the key directory is read-only and holds no write-ahead log key (wal.key)")
                        })?,
                    };
                    codec
                        .seal_prefixed(PayloadFormat::ArrowIpc, buffer)
                        .map(Bytes::from)
                        .map_err(|error| refused(&error))
                })
                .collect::<Result<Vec<_>, StageError>>()?,
        };
        Ok(Some(Encoded {
            batches,
            records,
            durable,
            acknowledge_when_written,
            events,
            transport,
        }))
    }

    /// Queues an encoded batch for the committer and, when durable, waits for its fsync (an
    /// empty batch, `None`, is acknowledged at once).
    async fn append(
        self: Arc<Self>,
        encoded: Option<Encoded>,
        when_full: WhenFull,
    ) -> Result<Ack, StageError> {
        let Some(encoded) = encoded else {
            return Ok(Ack::default());
        };
        let (wait_for_write, events, transport) = (
            encoded.acknowledge_when_written,
            encoded.events,
            encoded.transport,
        );
        while let Some(closed) = self.gate.closed() {
            match (when_full, closed) {
                (WhenFull::Refuse, Closed::MemoryFull) => return Err(StageError::Full),
                (WhenFull::Refuse, closed) => {
                    return Err(StageError::unavailable(closed.describe()))
                }
                (WhenFull::Wait, _) => {
                    self.metrics.queue_full.inc(&[transport]);
                    self.gate.wait_open().await
                }
            }
        }
        let (done, wait) = oneshot::channel();
        let command = Command::Append { encoded, done };
        match when_full {
            WhenFull::Wait => match self.commands.try_send(command) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(command)) => {
                    // The reader now waits, and TCP flow control slows the sender.
                    self.metrics.queue_full.inc(&[transport]);
                    self.commands.send(command).await.map_err(|_| stopped())?
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(stopped()),
            },
            WhenFull::Refuse => self
                .commands
                .try_send(command)
                .map_err(|error| match error {
                    mpsc::error::TrySendError::Full(_) => {
                        self.metrics.queue_full.inc(&[transport]);
                        StageError::Full
                    }
                    mpsc::error::TrySendError::Closed(_) => stopped(),
                })?,
        }
        if wait_for_write {
            wait.await.map_err(|_| stopped())?
        } else {
            Ok(Ack {
                events,
                synced: false,
            })
        }
    }
}

/// The transport of a batch's first event, as a metric label.
fn transport_of(batch: &Batch) -> &'static str {
    use datafusion::arrow::array::{Array, StringArray};
    let transport = batch.tenants.first().and_then(|group| {
        let column = group.batch.column_by_name("transport")?;
        let texts = column.as_any().downcast_ref::<StringArray>()?;
        (!texts.is_empty()).then(|| texts.value(0))
    });
    transport
        .and_then(meniscus_grid::Transport::parse)
        .map_or("other", meniscus_grid::Transport::as_str)
}

fn stopped() -> StageError {
    StageError::unavailable("the storage committer has stopped")
}

/// A batch in the form the committer takes.
pub(crate) struct Encoded {
    pub batches: Vec<TenantBatch>,
    /// The WAL records holding `batches`, appended together.
    pub records: Vec<Bytes>,
    pub durable: bool,
    /// The submitter waits for the committer (the write, and the fsync when durable).
    pub acknowledge_when_written: bool,
    pub events: u64,
    pub transport: &'static str,
}

/// The batches of one submission cut into groups of about `target` bytes of Arrow data, one
/// WAL record each. Nearly always one group holding everything.
fn record_chunks(batches: &[TenantBatch], target: usize) -> Vec<Vec<TenantBatch>> {
    let size = |group: &TenantBatch| batch_bytes(&group.batch);
    let total: usize = batches.iter().map(size).sum();
    if total <= target {
        return vec![batches.to_vec()];
    }
    let mut chunks = Vec::new();
    for group in batches {
        let rows = group.batch.num_rows();
        let bytes = size(group).max(1);
        let pieces = bytes.div_ceil(target).max(1);
        let rows_per_piece = rows.div_ceil(pieces).max(1);
        let mut offset = 0;
        while offset < rows {
            let length = rows_per_piece.min(rows - offset);
            chunks.push(vec![group.slice(offset, length)]);
            offset += length;
        }
    }
    chunks
}

impl Stage for Store {
    fn hand_on(
        self: Arc<Self>,
        batch: Batch,
        when_full: WhenFull,
    ) -> BoxFuture<Result<Ack, StageError>> {
        // Encoded now, on the caller's thread: the events were just parsed there and are
        // still in its cache, and they are freed by the thread that allocated them.
        let encoded = self.encode(batch);
        Box::pin(async move { self.append(encoded?, when_full).await })
    }
}
