//! The storage persona: write-ahead log with group commit, hot store, flushes, retention and
//! the query engine over one tenant's events.
//!
//! Events become Arrow batches and a WAL record where they are submitted, on the ingest
//! threads, so that work runs in parallel. Then, on threads of their own so that blocking file
//! IO never stalls the async runtime:
//! - the committer owns the WAL: it takes every record waiting in the queue, appends them,
//!   fsyncs once if any is durable (group commit), inserts the batches into memory and then
//!   acknowledges each submission; it also decides when to freeze memory for a flush;
//! - the flusher writes frozen memory to Parquet, makes the files live in the manifest and
//!   deletes the WAL segments they cover.

pub mod compaction;
pub mod hot;
pub mod jobs;
pub mod msg_tokens;
pub mod query;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use meniscus_grid::record::{self, PayloadFormat, RecordCodec};
use tokio::sync::{mpsc, oneshot};

use crate::columnar::{encode_payload_into, tenant_batches, TenantBatch};
use crate::pipeline::{Batch, BoxFuture, Stage, StageError, WhenFull};
use crate::telemetry::Metrics;
use compaction::CompactionOptions;
use hot::{Frozen, HotStore};
use jobs::JobIndex;

#[derive(Clone, Debug)]
pub struct StorageOptions {
    pub queue_batches: usize,
    pub flush_events: usize,
    /// Arrow bytes held in memory before a flush, whatever the event count.
    pub flush_bytes: usize,
    pub flush_interval: Duration,
    pub compaction: CompactionOptions,
}

enum Command {
    Append {
        batches: Vec<TenantBatch>,
        /// The WAL record holding `batches`.
        record: Vec<u8>,
        durable: bool,
        done: oneshot::Sender<Result<(), StageError>>,
    },
    /// Time passes: sync non-durable appends, flush memory that is old enough.
    Tick,
    /// Flush everything now (tests, shutdown).
    Flush { done: oneshot::Sender<()> },
}

pub struct Storage {
    commands: mpsc::Sender<Command>,
    codec: RecordCodec,
    pub hot: Arc<HotStore>,
    pub jobs: Arc<JobIndex>,
    metrics: Arc<Metrics>,
}

impl Storage {
    /// Opens (or creates) the store under `data_dir`, replaying the write-ahead log.
    pub fn open(
        data_dir: &Path,
        options: StorageOptions,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Storage>> {
        let wal_dir = data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        let (hot, flushed_through) = HotStore::open(&data_dir.join("hot"))?;
        let hot = Arc::new(hot);
        let codec = RecordCodec::plain();
        let replay = wal::replay(&wal_dir, &codec, flushed_through)?;
        for (path, offset, reason) in &replay.repaired {
            tracing::warn!(path = %path.display(), offset, reason, "write-ahead log tail cut at the last whole record");
        }
        for (path, offset, reason) in &replay.skipped {
            tracing::error!(path = %path.display(), offset, reason, "write-ahead log record skipped: its events cannot be decoded");
        }
        let jobs = Arc::new(JobIndex::default());
        let inserted = hot.insert(replay.batches);
        for (tenant, job_id, events) in &inserted.jobs {
            jobs.record_stored(tenant, job_id, *events);
        }
        let replayed: u64 = inserted.per_tenant.iter().map(|(_, count)| count).sum();
        let writer = wal::WalWriter::create(&wal_dir, replay.last_seq + 1)?;
        tracing::info!(replayed, segment = writer.seq(), data_dir = %data_dir.display(), "storage open");

        let (commands, receiver) = mpsc::channel(options.queue_batches.max(1));
        // One flush may run while the next memtable fills; a third waits, which slows the
        // committer and so, through the queue, the senders: memory stays bounded.
        let (flush_sender, flush_receiver) = std::sync::mpsc::sync_channel::<Arc<Frozen>>(1);
        let committer = Committer {
            receiver,
            writer,
            hot: hot.clone(),
            jobs: jobs.clone(),
            metrics: metrics.clone(),
            options: options.clone(),
            flush_sender,
        };
        thread::Builder::new()
            .name("wal-committer".into())
            .spawn(move || committer.run())?;
        let flusher = Flusher {
            receiver: flush_receiver,
            hot: hot.clone(),
            wal_dir,
            metrics: metrics.clone(),
            compaction: options.compaction.clone(),
        };
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
        Ok(Arc::new(Storage {
            commands,
            codec,
            hot,
            jobs,
            metrics,
        }))
    }

    /// Writes everything in memory to Parquet and waits for it.
    pub async fn flush(&self) -> Result<(), StageError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Flush { done })
            .await
            .map_err(|_| unavailable())?;
        wait.await.map_err(|_| unavailable())
    }
}

fn unavailable() -> StageError {
    StageError::Unavailable("the storage committer has stopped".into())
}

impl Storage {
    /// The CPU-heavy part of storing, done on the submitting thread so ingest connections
    /// convert in parallel and the committer only writes bytes: events to Arrow batches per
    /// tenant, and those to the sealed WAL record.
    fn encode(&self, batch: Batch) -> Result<Option<Encoded>, StageError> {
        if batch.events.is_empty() {
            return Ok(None);
        }
        let failed = |error| StageError::Unavailable(format!("cannot encode events: {error}"));
        let durable = batch.is_durable();
        let transport = batch.events[0].meniscus.transport.as_str();
        let batches = tenant_batches(&batch.events).map_err(failed)?;
        drop(batch);
        let mut buffer = vec![0u8; record::HEADER_LEN];
        encode_payload_into(&batches, &mut buffer).map_err(failed)?;
        let record = self.codec.seal_prefixed(PayloadFormat::ArrowIpc, buffer);
        Ok(Some(Encoded {
            batches,
            record,
            durable,
            transport,
        }))
    }

    /// Queues an encoded batch for the committer and waits for its acknowledgement (an empty
    /// batch, `None`, is acknowledged at once).
    async fn append(
        &self,
        encoded: Option<Encoded>,
        when_full: WhenFull,
    ) -> Result<(), StageError> {
        let Some(Encoded {
            batches,
            record,
            durable,
            transport,
        }) = encoded
        else {
            return Ok(());
        };
        let (done, wait) = oneshot::channel();
        let command = Command::Append {
            batches,
            record,
            durable,
            done,
        };
        match when_full {
            WhenFull::Wait => match self.commands.try_send(command) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(command)) => {
                    // The reader now waits, and TCP flow control slows the sender.
                    self.metrics.backpressure.inc(&[transport]);
                    self.commands
                        .send(command)
                        .await
                        .map_err(|_| unavailable())?
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(unavailable()),
            },
            WhenFull::Refuse => self
                .commands
                .try_send(command)
                .map_err(|error| match error {
                    mpsc::error::TrySendError::Full(_) => StageError::Full,
                    mpsc::error::TrySendError::Closed(_) => unavailable(),
                })?,
        }
        if durable {
            wait.await.map_err(|_| unavailable())?
        } else {
            Ok(())
        }
    }
}

/// A batch in the form the committer takes.
struct Encoded {
    batches: Vec<TenantBatch>,
    record: Vec<u8>,
    durable: bool,
    transport: &'static str,
}

impl Stage for Storage {
    fn submit(&self, batch: Batch, when_full: WhenFull) -> BoxFuture<'_, Result<(), StageError>> {
        Box::pin(async move {
            let encoded = self.encode(batch)?;
            self.append(encoded, when_full).await
        })
    }

    fn hand_on(
        self: Arc<Self>,
        batch: Batch,
        when_full: WhenFull,
    ) -> BoxFuture<'static, Result<(), StageError>> {
        // Encoded now, on the reader's thread: the events were just parsed there and are
        // still in its cache, and they are freed by the thread that allocated them.
        let encoded = self.encode(batch);
        Box::pin(async move { self.append(encoded?, when_full).await })
    }
}

struct Committer {
    receiver: mpsc::Receiver<Command>,
    writer: wal::WalWriter,
    hot: Arc<HotStore>,
    jobs: Arc<JobIndex>,
    metrics: Arc<Metrics>,
    options: StorageOptions,
    flush_sender: std::sync::mpsc::SyncSender<Arc<Frozen>>,
}

/// A submission written in the current group commit: its batches, whether it is durable, and
/// who waits for its acknowledgement.
type PendingAppend = (
    Vec<TenantBatch>,
    bool,
    oneshot::Sender<Result<(), StageError>>,
);

/// Most bytes one group commit gathers before it writes.
const GROUP_BYTES: usize = 8 * 1024 * 1024;

impl Committer {
    fn run(mut self) {
        while let Some(first) = self.receiver.blocking_recv() {
            let mut records: Vec<Vec<u8>> = Vec::new();
            let mut group_bytes = 0;
            let mut appends = Vec::new();
            let mut flush_waiters = Vec::new();
            let mut tick = false;
            let mut pending = Some(first);
            while let Some(command) = pending.take() {
                match command {
                    Command::Append {
                        batches,
                        record: bytes,
                        durable,
                        done,
                    } => {
                        group_bytes += bytes.len();
                        records.push(bytes);
                        appends.push((batches, durable, done));
                    }
                    Command::Tick => tick = true,
                    Command::Flush { done } => flush_waiters.push(done),
                }
                if group_bytes < GROUP_BYTES {
                    pending = self.receiver.try_recv().ok();
                }
            }
            if !appends.is_empty() {
                let durable = appends.iter().any(|(_, durable, _)| *durable);
                let result = self.commit(&records, group_bytes, durable);
                drop(records);
                self.acknowledge(appends, result);
            }
            if tick {
                if let Err(error) = self.writer.sync() {
                    tracing::error!(%error, "write-ahead log sync failed");
                }
            }
            if !flush_waiters.is_empty() || self.flush_due() {
                self.start_flush();
            }
            for waiter in flush_waiters {
                // Waits for the flusher to take (and so finish) everything frozen so far.
                self.wait_for_flushes();
                let _ = waiter.send(());
            }
        }
    }

    fn commit(
        &mut self,
        records: &[Vec<u8>],
        bytes: usize,
        durable: bool,
    ) -> Result<(), StageError> {
        self.writer.append(records).map_err(|error| {
            StageError::Unavailable(format!("write-ahead log append failed: {error}"))
        })?;
        self.metrics.wal_bytes.add(&[], bytes as u64);
        if durable {
            self.writer.sync().map_err(|error| {
                StageError::Unavailable(format!("write-ahead log fsync failed: {error}"))
            })?;
            self.metrics.wal_fsyncs.inc(&[]);
        }
        Ok(())
    }

    fn acknowledge(&mut self, appends: Vec<PendingAppend>, result: Result<(), StageError>) {
        if let Err(error) = &result {
            tracing::error!(%error, "batch not stored");
        }
        for (batches, _, done) in appends {
            if result.is_ok() {
                let inserted = self.hot.insert(batches);
                for (tenant, job_id, events) in &inserted.jobs {
                    self.jobs.record_stored(tenant, job_id, *events);
                }
                for (tenant, count) in &inserted.per_tenant {
                    self.metrics.stored_events.add(&[tenant], *count);
                }
            }
            let _ = done.send(result.clone());
        }
    }

    fn flush_due(&self) -> bool {
        let (events, bytes, age) = self.hot.active_size();
        events >= self.options.flush_events
            || bytes >= self.options.flush_bytes
            || (events > 0 && age.is_some_and(|age| age >= self.options.flush_interval))
    }

    fn start_flush(&mut self) {
        // Rotate first: every event in the frozen memtable is then in segments up to the one
        // just closed, which the flusher may delete once Parquet holds them.
        let closed = match self.writer.rotate() {
            Ok(closed) => closed,
            Err(error) => {
                tracing::error!(%error, "cannot rotate the write-ahead log; flush postponed");
                return;
            }
        };
        if let Some(frozen) = self.hot.freeze(closed) {
            if self.flush_sender.send(frozen).is_err() {
                tracing::error!(
                    "the flusher has stopped; events stay in memory and the write-ahead log"
                );
            }
        }
    }

    fn wait_for_flushes(&self) {
        while self.hot.frozen_count() > 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Writes frozen memtables to Parquet and, between flushes, compacts closed windows.
struct Flusher {
    receiver: std::sync::mpsc::Receiver<Arc<Frozen>>,
    hot: Arc<HotStore>,
    wal_dir: PathBuf,
    metrics: Arc<Metrics>,
    compaction: CompactionOptions,
}

impl Flusher {
    fn run(self) {
        let mut compacting = false;
        loop {
            // While compaction has work, only look for a waiting flush between groups.
            let wait = if compacting {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            };
            match self.receiver.recv_timeout(wait) {
                Ok(frozen) => self.flush(&frozen),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
            // One group per turn, so a waiting flush is never held up by more than one.
            compacting = self.compact_one();
            self.hot.delete_retired();
        }
    }

    fn flush(&self, frozen: &Arc<Frozen>) {
        let started = std::time::Instant::now();
        loop {
            match self.hot.flush(frozen) {
                Ok(files) => {
                    self.metrics.flushes.inc(&[]);
                    tracing::info!(
                        events = frozen.events(),
                        files = files.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "flushed to parquet"
                    );
                    if let Err(error) = wal::delete_through(&self.wal_dir, frozen.wal_seq) {
                        tracing::warn!(%error, "cannot delete flushed write-ahead log segments; they are deleted at the next start");
                    }
                    return;
                }
                Err(error) => {
                    // A full disk, say: the events are still in memory and the WAL, so retry
                    // rather than drop; ingest slows down behind us meanwhile.
                    tracing::error!(%error, "flush to parquet failed; retrying in 5s");
                    thread::sleep(Duration::from_secs(5));
                }
            }
        }
    }

    /// Compacts one group if one is due; true when it did (more may be waiting).
    fn compact_one(&self) -> bool {
        let files = self.hot.file_entries();
        let now = chrono::Utc::now().timestamp();
        let plan = compaction::plan(&files, now, &self.compaction);
        let backlog = compaction::backlog(&files, now, &self.compaction);
        self.metrics.compaction_backlog.set(&[], backlog as u64);
        let Some(group) = plan.first() else {
            return false;
        };
        let started = std::time::Instant::now();
        match self.hot.compact(group, &self.compaction) {
            Ok(Some(entry)) => {
                self.metrics.compactions.inc(&[]);
                self.metrics.compaction_backlog.set(
                    &[],
                    backlog.saturating_sub(group.iter().filter(|old| !old.compacted).count())
                        as u64,
                );
                let bytes_before: u64 = group.iter().map(|old| old.bytes).sum();
                tracing::info!(
                    tenant = %entry.tenant,
                    window = entry.window,
                    files = group.len(),
                    rows = entry.rows,
                    bytes_before,
                    bytes_after = entry.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "compacted a closed window"
                );
                true
            }
            Ok(None) => true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // Retention removed a file of the group meanwhile; the next plan sees that.
                tracing::info!(%error, "compaction group changed while it was read; planning again");
                true
            }
            Err(error) => {
                // The old files stay live; the next turn tries again. A full disk backs off.
                tracing::error!(%error, "compaction failed; retrying in 5s");
                thread::sleep(Duration::from_secs(5));
                false
            }
        }
    }
}
