//! The committer: the one thread that writes the write-ahead log.
//!
//! It takes every submission waiting in the queue, appends their records, fsyncs once if any
//! is durable (group commit), inserts the batches into memory (queryable from then on) and
//! acknowledges each submission. Every half second it syncs what non-durable batches appended
//! and decides whether memory is due for a flush.
//!
//! When the WAL cannot be written (a failed append, fsync or segment creation), the batches
//! of that group are answered with an error — nothing of them is acknowledged — and the gate
//! closes: HTTP gets 503, syslog readers wait, `/readyz` says why. The committer probes the
//! disk with a backoff (open a segment, append an empty record, fsync) and opens the gate when
//! that works. Memory is bounded the same way: when a flush cannot start because two are
//! already under way, the memtable grows to twice its flush size and then the gate closes
//! until a flush finishes.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
use meniscus_record::frame::{PayloadFormat, RecordCodec};
use meniscus_record::TenantBatch;
use meniscus_record::{Ack, StageError};
use tokio::sync::{mpsc, oneshot};

use crate::gate::{Closed, Gate};
use crate::hot::{Frozen, HotStore};
use crate::jobs::JobIndex;
use crate::metrics::StoreMetrics;
use crate::wal::WalWriter;
use crate::{Encoded, StoreOptions};

pub(crate) enum Command {
    Append {
        encoded: Encoded,
        done: oneshot::Sender<Result<Ack, StageError>>,
    },
    /// Time passes: sync non-durable appends, probe a failed disk, flush memory that is old
    /// enough.
    Tick,
    /// Flush everything now (tests, shutdown).
    Flush { done: oneshot::Sender<()> },
}

/// Most bytes one group commit gathers before it writes.
const GROUP_BYTES: usize = 8 * 1024 * 1024;
/// Probes of a failed disk start this far apart and back off to [`MAX_PROBE_INTERVAL`].
const FIRST_PROBE_INTERVAL: Duration = Duration::from_secs(1);
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// A disk failure being waited out.
struct WalFailure {
    reason: String,
    next_probe: Instant,
    interval: Duration,
}

pub(crate) struct Committer {
    receiver: mpsc::Receiver<Command>,
    writer: WalWriter,
    hot: Arc<HotStore>,
    jobs: Arc<JobIndex>,
    metrics: Arc<StoreMetrics>,
    gate: Arc<Gate>,
    options: StoreOptions,
    flush_sender: std::sync::mpsc::SyncSender<Arc<Frozen>>,
    failure: Option<WalFailure>,
}

/// A submission written in the current group commit.
struct PendingAppend {
    batches: Vec<TenantBatch>,
    events: u64,
    durable: bool,
    done: oneshot::Sender<Result<Ack, StageError>>,
}

impl Committer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        receiver: mpsc::Receiver<Command>,
        writer: WalWriter,
        hot: Arc<HotStore>,
        jobs: Arc<JobIndex>,
        metrics: Arc<StoreMetrics>,
        gate: Arc<Gate>,
        options: StoreOptions,
        flush_sender: std::sync::mpsc::SyncSender<Arc<Frozen>>,
    ) -> Committer {
        Committer {
            receiver,
            writer,
            hot,
            jobs,
            metrics,
            gate,
            options,
            flush_sender,
            failure: None,
        }
    }

    pub(crate) fn run(mut self) {
        while let Some(first) = self.receiver.blocking_recv() {
            let mut records: Vec<Bytes> = Vec::new();
            let mut group_bytes = 0;
            let mut appends = Vec::new();
            let mut flush_waiters = Vec::new();
            let mut tick = false;
            let mut pending = Some(first);
            while let Some(command) = pending.take() {
                match command {
                    Command::Append { encoded, done } => {
                        group_bytes += encoded.records.iter().map(Bytes::len).sum::<usize>();
                        records.extend(encoded.records);
                        appends.push(PendingAppend {
                            batches: encoded.batches,
                            events: encoded.events,
                            durable: encoded.durable,
                            done,
                        });
                    }
                    Command::Tick => tick = true,
                    Command::Flush { done } => flush_waiters.push(done),
                }
                if group_bytes < GROUP_BYTES {
                    pending = self.receiver.try_recv().ok();
                }
            }
            if !appends.is_empty() {
                if self.failure.is_some() {
                    // Queued before the gate closed: worth one try, the disk may be back.
                    self.probe();
                }
                let durable = appends.iter().any(|append| append.durable);
                let result = match &self.failure {
                    Some(failure) => Err(StageError::unavailable(format!(
                        "the write-ahead log cannot be written: {}",
                        failure.reason
                    ))),
                    None => self.commit(&records, group_bytes, durable),
                };
                drop(records);
                self.acknowledge(appends, result);
            }
            if tick {
                if self.failure.is_some() {
                    if self
                        .failure
                        .as_ref()
                        .is_some_and(|failure| Instant::now() >= failure.next_probe)
                    {
                        self.probe();
                    }
                } else if let Err(error) = self.writer.sync() {
                    self.failed("fsync", &error);
                }
            }
            if !flush_waiters.is_empty() {
                self.start_flush(true);
            } else if self.failure.is_none() && self.flush_due() {
                self.start_flush(false);
            }
            self.update_gate();
            for waiter in flush_waiters {
                // Waits for the flusher to take (and so finish) everything frozen so far.
                self.wait_for_flushes();
                let _ = waiter.send(());
            }
        }
    }

    fn commit(&mut self, records: &[Bytes], bytes: usize, durable: bool) -> Result<(), StageError> {
        let operation = if self.writer.is_open() {
            "write"
        } else {
            "open"
        };
        if let Err(error) = self.writer.append(records) {
            return Err(self.failed(operation, &error));
        }
        self.metrics.wal_appended_bytes.add(bytes as u64);
        if durable {
            let started = Instant::now();
            if let Err(error) = self.writer.sync() {
                return Err(self.failed("fsync", &error));
            }
            self.metrics.wal_fsync_duration.observe(started.elapsed());
            self.metrics.wal_fsyncs.inc();
        }
        Ok(())
    }

    /// Records a WAL failure: the gate closes until a probe succeeds. Returns the error the
    /// batches of the failed group get.
    fn failed(&mut self, operation: &str, error: &std::io::Error) -> StageError {
        self.metrics.wal_failures.inc(&[operation]);
        let reason = format!("{operation} failed: {error}");
        tracing::error!(operation, %error, "write-ahead log failure; durable writes stop until the disk works again");
        let interval = self
            .failure
            .as_ref()
            .map_or(FIRST_PROBE_INTERVAL, |failure| failure.interval);
        self.failure = Some(WalFailure {
            reason: reason.clone(),
            next_probe: Instant::now() + interval,
            interval,
        });
        self.metrics.wal_writable.set(0);
        self.update_gate();
        StageError::unavailable(format!(
            "the write-ahead log cannot be written ({reason}); nothing of this batch was acknowledged"
        ))
    }

    /// Tries the disk again: a segment, an empty record, an fsync. Clears the failure when all
    /// three work; otherwise backs off.
    fn probe(&mut self) {
        let mut probe_record = Vec::new();
        if RecordCodec::plain()
            .seal_into(PayloadFormat::JsonLines, Vec::new(), &mut probe_record)
            .is_err()
        {
            return;
        }
        let outcome = self
            .writer
            .append(&[probe_record])
            .and_then(|_| self.writer.sync());
        match outcome {
            Ok(()) => {
                if let Some(failure) = self.failure.take() {
                    tracing::info!(was = %failure.reason, segment = self.writer.seq(), "write-ahead log writable again");
                }
                self.metrics.wal_writable.set(1);
                self.update_gate();
            }
            Err(error) => {
                if let Some(failure) = self.failure.as_mut() {
                    failure.reason = format!("still failing: {error}");
                    failure.interval = (failure.interval * 2).min(MAX_PROBE_INTERVAL);
                    failure.next_probe = Instant::now() + failure.interval;
                }
            }
        }
    }

    fn acknowledge(&mut self, appends: Vec<PendingAppend>, result: Result<(), StageError>) {
        if let Err(error) = &result {
            tracing::error!(%error, "batch not stored");
        }
        let now = chrono::Utc::now().timestamp_micros();
        for append in appends {
            let outcome = match &result {
                Ok(()) => {
                    let oldest = oldest_received_at(&append.batches);
                    let inserted = self.hot.insert(append.batches);
                    for (tenant, job_id, events) in &inserted.jobs {
                        self.jobs.record_stored(tenant, job_id, *events);
                    }
                    for (tenant, count) in &inserted.per_tenant {
                        self.metrics.stored_events.add(&[tenant], *count);
                    }
                    self.metrics.duplicate_events.add(inserted.duplicates);
                    if let Some(oldest) = oldest {
                        let micros = now.saturating_sub(oldest).max(0) as u64;
                        self.metrics
                            .ingest_to_queryable
                            .observe(Duration::from_micros(micros));
                    }
                    Ok(Ack {
                        events: append.events,
                        synced: append.durable,
                    })
                }
                Err(error) => Err(error.clone()),
            };
            let _ = append.done.send(outcome);
        }
    }

    fn flush_due(&self) -> bool {
        let (events, bytes, age) = self.hot.active_size();
        events >= self.options.flush_events
            || bytes >= self.options.flush_bytes
            || (events > 0 && age.is_some_and(|age| age >= self.options.flush_interval))
    }

    /// Memory holds twice what a flush takes, and no flush can start.
    fn memory_full(&self) -> bool {
        let (events, bytes, _) = self.hot.active_size();
        events >= self.options.flush_events.saturating_mul(2)
            || bytes >= self.options.flush_bytes.saturating_mul(2)
    }

    fn update_gate(&self) {
        let wanted = match &self.failure {
            Some(failure) => Some(Closed::WalUnwritable(failure.reason.clone())),
            None if self.memory_full() => Some(Closed::MemoryFull),
            None => None,
        };
        match (wanted, self.gate.closed()) {
            (None, None) => {}
            (None, Some(_)) => self.gate.open(),
            (Some(wanted), current) if current.as_ref() != Some(&wanted) => self.gate.close(wanted),
            _ => {}
        }
    }

    /// Closes the WAL segment and hands memory to the flusher. Without `wait`, does nothing
    /// while two flushes are already under way (the gate bounds memory meanwhile).
    fn start_flush(&mut self, wait: bool) {
        if !wait && self.hot.frozen_count() >= 2 {
            return;
        }
        // Rotate first: every event in the frozen memtable is then in segments up to the one
        // just closed, which the flusher may delete once Parquet holds them.
        let closed = match self.writer.rotate() {
            Ok(closed) => closed,
            Err(error) => {
                self.failed("fsync", &error);
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
        // The next segment is opened now rather than at the next append, so a disk that
        // cannot create files closes the gate before batches are queued behind it.
        if let Err(error) = self.writer.ensure_open() {
            self.failed("open", &error);
        }
    }

    fn wait_for_flushes(&self) {
        while self.hot.frozen_count() > 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The earliest `received_at` of the first rows of these batches (microseconds), if any.
fn oldest_received_at(batches: &[TenantBatch]) -> Option<i64> {
    batches
        .iter()
        .filter_map(|group| {
            let column = group.batch.column_by_name("received_at")?;
            let times = column
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()?;
            (!times.is_empty()).then(|| times.value(0))
        })
        .min()
}
