//! A storage worker on its way out (a scale-down: the coordinator marks it `draining`) hands
//! everything it holds to the storage workers the routes now give its tenants, then says so in
//! its heartbeat (`handedOff`), after which it may be stopped and its disk deleted.
//!
//! - **What moves**: every hot-store file (what is in memory is flushed first) and every
//!   archived object whose hot copy has expired, as link records answered only once fsynced
//!   by the receiving worker. A file (or object) is deleted here only after every one of its
//!   records was acknowledged; an interrupted hand-off sends it again, and the receiving store
//!   drops the rows it already has (it dedupes by `event_id`).
//! - **Queries stay whole**: the tenant API asks every storage worker in the routes, this one
//!   included, so a file is found here until it is deleted and on the new worker from its
//!   acknowledgement on. Between the two (one deletion) a query may count its rows twice;
//!   never zero times.
//! - **Nothing lands afterwards**: from the moment it drains, this worker's link receiver
//!   refuses new records (503), so senders keep them in their spools and move them to the
//!   tenants' new storage workers when this one is removed from the grid; publishes to its
//!   own tenant API are refused too ([`UnlessDraining`]).
//! - `handedOff` is reported once a pass, after a flush, found nothing left to move. Told to
//!   stay after all (`draining` cleared), the worker takes records again and keeps what it
//!   has not moved yet.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arrow_array::RecordBatch;
use bytes::Bytes;
use meniscus_coordinator::state::Snapshot;
use meniscus_metrics::{Counter, Family, Registry};
use meniscus_record::columnar::{batch_to_events, encode_payload_into, tenant_batches};
use meniscus_record::frame::{PayloadFormat, RecordCodec, HEADER_LEN};
use meniscus_record::stage::{Ack, Batch, BoxFuture, Stage, StageError, WhenFull};
use meniscus_store::archive::Archive;
use meniscus_store::Store;
use tokio::sync::watch;

use super::control::ControlPlane;
use super::link::Sender;

/// Events per link record: a few MiB, well under the receiver's body limit.
const EVENTS_PER_RECORD: usize = 10_000;
/// A pass that failed (no storage worker to take a tenant, one that does not answer) is
/// tried again after this long.
const RETRY: Duration = Duration::from_secs(2);
/// Between passes while draining: late files (a compaction swap, a direct publish) are found
/// by the next one.
const PASS_SPACING: Duration = Duration::from_secs(1);

/// The store as a storage worker's own publish path reaches it: refused (503) while the
/// worker drains, so nothing lands after its last pass.
pub struct UnlessDraining {
    pub handoff: Handoff,
    pub next: Arc<dyn Stage>,
}

impl Stage for UnlessDraining {
    fn hand_on(
        self: Arc<Self>,
        batch: Batch,
        when_full: WhenFull,
    ) -> BoxFuture<Result<Ack, StageError>> {
        if self.handoff.draining() {
            return Box::pin(async {
                Err(StageError::unavailable(
                    "this storage worker is handing its tenants off: publish to a correlator",
                ))
            });
        }
        self.next.clone().hand_on(batch, when_full)
    }
}

/// What a hand-off tells the rest of the worker: made before the parts that read it, set
/// by the task [`spawn`] starts.
#[derive(Clone, Default)]
pub struct Handoff {
    /// Set while the routes mark this worker draining: the link receiver's and
    /// [`UnlessDraining`]'s switch.
    draining: Arc<AtomicBool>,
    /// The heartbeat's `handedOff`.
    done: Arc<AtomicBool>,
}

impl Handoff {
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The switch a link receiver refuses new records on.
    pub fn draining_switch(&self) -> Arc<AtomicBool> {
        self.draining.clone()
    }

    pub fn done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }
}

struct Mover {
    control: Arc<ControlPlane>,
    store: Arc<Store>,
    archive: Option<Arc<Archive>>,
    sender: Sender,
    codec: RecordCodec,
    /// Events handed off, by tenant.
    moved: Family<Counter>,
}

/// Starts the task that hands this worker's tenants off whenever the routes mark it
/// draining, and keeps `handoff` telling so.
pub fn spawn(
    handoff: Handoff,
    control: Arc<ControlPlane>,
    mut snapshots: watch::Receiver<Option<Snapshot>>,
    store: Arc<Store>,
    archive: Option<Arc<Archive>>,
    registry: &Registry,
) {
    let mover = Mover {
        control,
        store,
        archive,
        sender: Sender::new(),
        codec: RecordCodec::plain().with_zstd(1),
        moved: registry.counters(
            "meniscus_storage_handoff_events_total",
            "Events this storage worker handed to the storage workers the routes give their tenants, while draining for a scale-down.",
            &["tenant"],
        ),
    };
    let Handoff {
        draining: switch,
        done,
    } = handoff;
    tokio::spawn(async move {
        loop {
            let draining = {
                let snapshot = snapshots.borrow();
                let me = mover.control.saved_identity().map(|id| id.worker_id);
                snapshot.as_ref().zip(me).is_some_and(|(snapshot, me)| {
                    snapshot
                        .routes
                        .worker(&me)
                        .is_some_and(|worker| worker.draining)
                })
            };
            switch.store(draining, Ordering::Relaxed);
            if !draining {
                done.store(false, Ordering::Relaxed);
                if snapshots.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let snapshot = snapshots.borrow().clone();
            match mover.pass(snapshot.as_ref()).await {
                Ok(0) => {
                    if !done.swap(true, Ordering::Relaxed) {
                        tracing::info!("hand-off done: this storage worker holds nothing any more and may be removed");
                    }
                    tokio::time::sleep(PASS_SPACING).await;
                }
                Ok(events) => {
                    done.store(false, Ordering::Relaxed);
                    tracing::info!(events, "handed events off to the tenants' storage workers");
                    tokio::time::sleep(PASS_SPACING).await;
                }
                Err(error) => {
                    done.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %format!("{error:#}"), "hand-off incomplete; trying again");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
}

impl Mover {
    /// Moves everything held now; returns the events moved (0: nothing was left).
    async fn pass(&self, snapshot: Option<&Snapshot>) -> anyhow::Result<u64> {
        let snapshot = snapshot.context("no routes yet")?;
        self.store
            .flush()
            .await
            .map_err(|error| anyhow::anyhow!("cannot flush before the hand-off: {error}"))?;
        let mut moved = 0;
        for entry in self.store.hot.file_entries() {
            // Pinned, compaction leaves it be while it is read; not live any more, compaction
            // replaced it and the new file is in the next listing.
            if !self.store.hot.pin(&entry.path) {
                continue;
            }
            let hot = self.store.hot.clone();
            let read = entry.clone();
            let batches = tokio::task::spawn_blocking(move || hot.read_file(&read)).await??;
            moved += self.send(snapshot, &entry.tenant, &batches).await?;
            // The archived copy first: a query here reads it once the hot file is gone.
            if let Some(archive) = &self.archive {
                if let Some(object) = archive.object_of(&entry.path) {
                    archive.release(&object.key).await?;
                }
            }
            self.store.hot.release(&entry.path)?;
        }
        if let Some(archive) = &self.archive {
            let live: HashSet<String> = self
                .store
                .hot
                .file_entries()
                .into_iter()
                .map(|entry| entry.path)
                .collect();
            for object in archive.only_archived(&live) {
                let batches = archive.read_object(&object).await?;
                moved += self.send(snapshot, &object.tenant, &batches).await?;
                archive.release(&object.key).await?;
            }
        }
        Ok(moved)
    }

    /// Sends `tenant`'s rows to its best-ranked storage worker, record by record, each
    /// answered once fsynced there.
    async fn send(
        &self,
        snapshot: &Snapshot,
        tenant: &str,
        batches: &[RecordBatch],
    ) -> anyhow::Result<u64> {
        let identity = self
            .control
            .saved_identity()
            .context("this worker has not paired")?;
        let to = snapshot
            .routes
            .storage_for(tenant)
            .into_iter()
            .find(|worker| worker.id != identity.worker_id)
            .with_context(|| format!("no storage worker online to take tenant {tenant:?}"))?;
        let mut sent = 0;
        for batch in batches {
            let events = batch_to_events(batch, tenant);
            for chunk in events.chunks(EVENTS_PER_RECORD) {
                let groups = tenant_batches(chunk)?;
                let mut buffer = vec![0u8; HEADER_LEN];
                encode_payload_into(&groups, &mut buffer)?;
                let record = self.codec.seal_prefixed(PayloadFormat::ArrowIpc, buffer)?;
                self.sender
                    .send_handoff(&to.address, &identity, Bytes::from(record))
                    .await
                    .with_context(|| format!("handing tenant {tenant:?} to {}", to.id))?;
                sent += chunk.len() as u64;
            }
        }
        self.moved.add(&[tenant], sent);
        Ok(sent)
    }
}
