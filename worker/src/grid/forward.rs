//! The stage a correlator (or a normalizer hop) hands its batches to in a grid: each
//! tenant's events go to the next worker the routes give that tenant, through a link with a
//! spool. That is the tenant's storage worker, or, from a correlator that does not normalize
//! itself while the grid has normalizer hops, one of those ([`NextHop`]).
//!
//! - A batch is acknowledged upstream once its records are in the spools (fsynced when
//!   durable): a durable publish answers 202 then, and the events survive this worker's
//!   `kill -9`. Records are sealed with this worker's spool key when a producer is marked
//!   `encrypted`.
//! - Each downstream worker has its own spool, drained in order by its own task, so a slow or
//!   dead worker holds up only the records spooled for it.
//! - A worker that does not answer is skipped with backoff: new batches of its tenants go to
//!   the next worker the routes rank for them, and it is reported to
//!   the coordinator. What its spool holds waits for it (it is sent nowhere else, so nothing
//!   is stored twice) and drains when it answers again. With no storage worker online at all
//!   (the coordinator cannot tell a partition between correlators and storage from storage
//!   being gone), batches spool for the best-ranked known one, up to the quota.
//! - A worker removed from the grid for good (the coordinator's routes no longer name it)
//!   will never take what its spool holds: those records move, in order, to the storage
//!   workers the routes now give their tenants.
//! - Past the spool quota, batches are refused (`Full`: HTTP 503) or, for socket readers,
//!   wait: backpressure reaches the senders instead of memory growing.
//! - Records are zstd-compressed only when they will wait ([`LinkCompression::Backlog`], the
//!   default): while the storage worker keeps up, compressing on one side and decompressing
//!   on the other cost a sixth of the grid's CPU for bytes that cross loopback or a cluster
//!   network once; once the link is down or the spools hold half their quota, new records
//!   are compressed so the quota covers a longer outage. Not sooner: a storage worker that is
//!   merely behind (a burst) is short of CPU, and on shared nodes compressing for it takes CPU
//!   from it and from the correlator just when both need it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use meniscus_coordinator::state::Snapshot;
use meniscus_grid::routes::WorkerId;
use meniscus_grid::TenantId;
use meniscus_metrics::{Counter, Family, Gauge, Histogram, Registry, LATENCY_BUCKETS};
use meniscus_record::columnar::{batch_bytes, decode_payload, encode_payload_into, TenantBatch};
use meniscus_record::frame::{PayloadFormat, RecordCodec, FLAGS_AT, FLAG_AES_GCM, HEADER_LEN};
use meniscus_record::stage::{Ack, Batch, BoxFuture, Stage, StageError, WhenFull};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::accepted_jobs::AcceptedJobs;
use super::control::ControlPlane;
use super::link::{self, SendError};
use super::spool::{Entry, Quota, Spool};

/// Records a link keeps in flight.
const IN_FLIGHT: usize = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A worker still unreachable is reported again this often: the coordinator may have let it
/// back into the routes on its heartbeats while this worker still cannot reach it.
const REPORT_AGAIN: Duration = Duration::from_secs(10);

/// When a correlator compresses the records it spools and sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkCompression {
    /// Only records that will wait: the link is down, or the spools hold more than half their
    /// quota (a storage worker behind by a burst does not pay for it; an outage that could
    /// fill the quota is stretched about threefold).
    #[default]
    Backlog,
    /// Every record (links that cross a metered network).
    Always,
    /// None.
    Never,
}

/// Which workers a forwarder sends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// The normalizer hops while the grid has any, else the tenants' storage workers: a
    /// correlator that does not normalize what it ingests. A tenant's records from one
    /// correlator go to one normalizer (rendezvous on tenant and correlator), so their order
    /// holds, and a busy tenant's correlators spread it over the normalizers.
    NormalizerThenStorage,
    /// The tenants' storage workers, the next one when the first is down: a correlator that
    /// normalizes itself.
    Storage,
    /// Each tenant's first storage worker by the grid's membership, online or not, with no
    /// skipping: a normalizer hop. A correlator sends a record again when an answer was lost
    /// (or the normalizer was killed before answering), and the normalizer must send the
    /// copy where it sent the first, or storage, which dedupes per worker, keeps both; a
    /// choice that followed who is up (down reports, backoff) could differ between the two.
    /// While that worker is down the tenant's records wait in the normalizer's spool.
    StorageByMembership,
}

pub struct ForwardOptions {
    /// `DATA_DIR/spool`: one directory per downstream worker.
    pub dir: PathBuf,
    /// Disk all spools may use together.
    pub quota_bytes: u64,
    /// Seals the records of producers marked `encrypted` while they rest in a spool.
    pub key: [u8; 32],
    pub compression: LinkCompression,
    pub next_hop: NextHop,
}

/// The four ways a record is sealed: compressed or not, encrypted (producers marked
/// `encrypted`) or not.
struct Codecs {
    plain: RecordCodec,
    zstd: RecordCodec,
    sealed: RecordCodec,
    sealed_zstd: RecordCodec,
}

impl Codecs {
    fn new(key: &[u8; 32]) -> Codecs {
        Codecs {
            plain: RecordCodec::plain(),
            zstd: RecordCodec::plain().with_zstd(1),
            sealed: RecordCodec::plain().with_key(key),
            sealed_zstd: RecordCodec::plain().with_zstd(1).with_key(key),
        }
    }

    fn choose(&self, encrypted: bool, compressed: bool) -> &RecordCodec {
        match (encrypted, compressed) {
            (false, false) => &self.plain,
            (false, true) => &self.zstd,
            (true, false) => &self.sealed,
            (true, true) => &self.sealed_zstd,
        }
    }
}

pub struct Forwarder {
    snapshot: watch::Receiver<Option<Snapshot>>,
    control: Arc<ControlPlane>,
    dir: PathBuf,
    quota: Arc<Quota>,
    codecs: Codecs,
    compression: LinkCompression,
    next_hop: NextHop,
    sender: link::Sender,
    links: Mutex<HashMap<WorkerId, Arc<Link>>>,
    metrics: ForwardMetrics,
    started: Instant,
    /// The jobs of durable publishes acknowledged here (their `accepted` status).
    pub jobs: Arc<AcceptedJobs>,
    /// Hand-off times (seconds) of the records acknowledged since the last heartbeat took
    /// them: its p99 (the newest [`RECENT_HANDOFFS`] at most).
    recent_handoffs: Mutex<VecDeque<f64>>,
    /// Events spooled per tenant since the start: the heartbeat's per-tenant counters.
    tenant_events: Mutex<BTreeMap<TenantId, u64>>,
}

/// Hand-off times kept between two heartbeats.
const RECENT_HANDOFFS: usize = 4096;

struct ForwardMetrics {
    sent: Family<Counter>,
    spool_bytes: Gauge,
    set_aside: Counter,
    events_in: Counter,
    events_out: Counter,
    records_in: Family<Counter>,
    moved: Counter,
    handoff: Histogram,
}

/// One downstream worker as this worker sees it.
struct Link {
    to: WorkerId,
    spool: Arc<Spool>,
    /// Milliseconds since the forwarder started until which new batches skip this worker.
    down_until: AtomicU64,
    /// When it was last reported down (milliseconds since the forwarder started; 0: not
    /// since it last answered).
    reported_at: AtomicU64,
}

impl Forwarder {
    /// Opens the spools left by an earlier run (they start draining at once) and returns the
    /// stage.
    pub fn start(
        options: ForwardOptions,
        snapshot: watch::Receiver<Option<Snapshot>>,
        control: Arc<ControlPlane>,
        registry: &Registry,
    ) -> anyhow::Result<Arc<Forwarder>> {
        std::fs::create_dir_all(&options.dir)?;
        let forwarder = Arc::new(Forwarder {
            snapshot,
            control,
            dir: options.dir.clone(),
            quota: Quota::new(options.quota_bytes),
            codecs: Codecs::new(&options.key),
            compression: options.compression,
            next_hop: options.next_hop,
            sender: link::Sender::new(),
            links: Mutex::new(HashMap::new()),
            metrics: ForwardMetrics {
                sent: registry.counters(
                    "meniscus_link_records_sent_total",
                    "Records sent to downstream workers, by outcome (acknowledged, unreachable, unauthorized, full, unavailable, refused).",
                    &["outcome"],
                ),
                spool_bytes: registry.gauge(
                    "meniscus_link_spool_bytes",
                    "Bytes in this worker's link spools, not yet acknowledged downstream.",
                ),
                set_aside: registry.counter(
                    "meniscus_link_records_set_aside_total",
                    "Records a downstream worker refused as malformed, moved to DATA_DIR/spool/refused/ instead of blocking the link.",
                ),
                events_in: registry.counter(
                    "meniscus_link_events_spooled_total",
                    "Events written to the link spools.",
                ),
                handoff: registry.histogram(
                    "meniscus_link_handoff_seconds",
                    "From sending a link record to its acknowledgement by the next worker (written to a storage worker's log, or to a normalizer hop's spool; fsynced when durable).",
                    LATENCY_BUCKETS,
                ),
                moved: registry.counter(
                    "meniscus_link_records_moved_total",
                    "Records moved from the spool of a worker removed from the grid to the storage workers the routes now give their tenants.",
                ),
                records_in: registry.counters(
                    "meniscus_link_records_spooled_total",
                    "Records written to the link spools, by whether they were zstd-compressed (by default only those that wait for a storage worker that is down or behind).",
                    &["compressed"],
                ),
                events_out: registry.counter(
                    "meniscus_link_events_acknowledged_total",
                    "Events acknowledged by downstream workers.",
                ),
            },
            started: Instant::now(),
            jobs: Arc::default(),
            recent_handoffs: Mutex::default(),
            tenant_events: Mutex::default(),
        });
        for entry in std::fs::read_dir(&options.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() && name != "refused" && is_safe_name(&name) {
                forwarder.link(&WorkerId(name))?;
            }
        }
        // What the spools held at start is waiting from the first scrape on, not only once a
        // link has tried to send it.
        forwarder.metrics.spool_bytes.set(forwarder.quota.used());
        Ok(forwarder)
    }

    /// Bytes and records waiting in the spools: the heartbeat's spool depth.
    pub fn depth(&self) -> (u64, u64) {
        let links: Vec<Arc<Link>> = self.links.lock().values().cloned().collect();
        links.iter().fold((0, 0), |(records, bytes), link| {
            let (more, more_bytes) = link.spool.depth();
            (records + more as u64, bytes + more_bytes)
        })
    }

    /// The p99 of the hand-off times since the last call (0 when nothing was acknowledged):
    /// the heartbeat's `handoffP99Seconds`.
    pub fn take_handoff_p99(&self) -> f64 {
        let mut times: Vec<f64> = self.recent_handoffs.lock().drain(..).collect();
        if times.is_empty() {
            return 0.0;
        }
        times.sort_by(f64::total_cmp);
        times[(times.len() * 99 / 100).min(times.len() - 1)]
    }

    fn handed_off(&self, took: Duration) {
        self.metrics.handoff.observe(took);
        let mut recent = self.recent_handoffs.lock();
        if recent.len() == RECENT_HANDOFFS {
            recent.pop_front();
        }
        recent.push_back(took.as_secs_f64());
    }

    /// Events spooled per tenant since this worker started.
    pub fn tenant_events(&self) -> BTreeMap<TenantId, u64> {
        self.tenant_events.lock().clone()
    }

    pub fn events_in(&self) -> u64 {
        self.metrics.events_in.get()
    }

    pub fn events_out(&self) -> u64 {
        self.metrics.events_out.get()
    }

    /// Waits until every spool is empty, or `timeout` passes; true when empty.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.depth().0 == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.depth().0 == 0
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn link(self: &Arc<Self>, to: &WorkerId) -> anyhow::Result<Arc<Link>> {
        let mut links = self.links.lock();
        if let Some(link) = links.get(to) {
            return Ok(link.clone());
        }
        anyhow::ensure!(
            is_safe_name(&to.0),
            "worker id {to} cannot name a spool directory"
        );
        let spool = Spool::open(&self.dir.join(&to.0), self.quota.clone())?;
        let link = Arc::new(Link {
            to: to.clone(),
            spool,
            down_until: AtomicU64::new(0),
            reported_at: AtomicU64::new(0),
        });
        links.insert(to.clone(), link.clone());
        tokio::spawn(self.clone().drain_link(link.clone()));
        Ok(link)
    }

    /// Where each tenant batch goes: the first worker the routes rank for its tenant (a
    /// normalizer hop or a storage worker, see [`NextHop`]) that this worker does not
    /// currently see as down (the first of them when all are), or, by membership, the first.
    fn destinations(
        &self,
        tenants: Vec<TenantBatch>,
    ) -> Result<BTreeMap<WorkerId, Vec<TenantBatch>>, StageError> {
        let now = self.now_ms();
        let down: HashMap<WorkerId, bool> = self
            .links
            .lock()
            .iter()
            .map(|(id, link)| (id.clone(), link.down_until.load(Ordering::Relaxed) > now))
            .collect();
        let snapshot = self.snapshot.borrow();
        let Some(snapshot) = snapshot.as_ref() else {
            return Err(StageError::unavailable(
                "no routes yet: this worker has not paired with the coordinator",
            ));
        };
        let me = self
            .control
            .saved_identity()
            .map(|identity| identity.worker_id.0)
            .unwrap_or_default();
        let mut groups: BTreeMap<WorkerId, Vec<TenantBatch>> = BTreeMap::new();
        for group in tenants {
            let tenant = group.tenant.as_str();
            let mut ranked = match self.next_hop {
                NextHop::NormalizerThenStorage => snapshot
                    .routes
                    .normalizers_for(&format!("{tenant}\u{0}{me}")),
                NextHop::Storage => Vec::new(),
                NextHop::StorageByMembership => snapshot.routes.storage_known_for(tenant),
            };
            let skips_down = self.next_hop != NextHop::StorageByMembership;
            if ranked.is_empty() {
                ranked = snapshot.routes.storage_for(tenant);
            }
            if ranked.is_empty() {
                ranked = snapshot.routes.storage_known_for(tenant);
            }
            let chosen = ranked
                .iter()
                .find(|worker| skips_down && !down.get(&worker.id).copied().unwrap_or(false))
                .or(ranked.first())
                .ok_or_else(|| {
                    StageError::unavailable("no storage worker has joined the grid yet")
                })?;
            groups.entry(chosen.id.clone()).or_default().push(group);
        }
        Ok(groups)
    }

    /// Tenant batches as the records to spool: one per storage worker the routes give them.
    fn encode(&self, tenants: Vec<TenantBatch>) -> Result<Vec<Spooled>, StageError> {
        let refused = |error: &dyn std::fmt::Display| StageError::refused(error.to_string());
        self.destinations(tenants)?
            .into_iter()
            .map(|(to, groups)| {
                let durable = groups.iter().any(TenantBatch::is_durable);
                let encrypted = groups.iter().any(TenantBatch::is_encrypted);
                let compressed = self.compresses_for(&to);
                let codec = self.codecs.choose(encrypted, compressed);
                // Built behind room for the header: a plain record is not copied again.
                // Sized for the Arrow data up front: growing by doubling copied each record
                // about once more.
                let data: usize = groups.iter().map(|group| batch_bytes(&group.batch)).sum();
                let mut buffer = Vec::with_capacity(HEADER_LEN + data + data / 8 + 4096);
                buffer.resize(HEADER_LEN, 0);
                encode_payload_into(&groups, &mut buffer).map_err(|e| refused(&e))?;
                let bytes = codec
                    .seal_prefixed(PayloadFormat::ArrowIpc, buffer)
                    .map_err(|e| refused(&e))?;
                Ok(Spooled {
                    to,
                    bytes,
                    durable,
                    compressed,
                })
            })
            .collect()
    }

    /// Appends `records`, whose bytes the caller has taken from the quota, to their spools
    /// (fsynced when durable); on an error the bytes not written are given back. Returns
    /// whether any was durable.
    async fn spool(self: &Arc<Self>, records: Vec<Spooled>) -> Result<bool, StageError> {
        let mut unwritten: u64 = records.iter().map(|record| record.bytes.len() as u64).sum();
        let mut durable = false;
        for record in records {
            let len = record.bytes.len() as u64;
            let appended = match self.link(&record.to) {
                Ok(link) => link
                    .spool
                    .append(record.bytes.into(), record.durable)
                    .await
                    .map_err(anyhow::Error::from),
                Err(error) => {
                    self.quota.release(len);
                    Err(error)
                }
            };
            unwritten -= len;
            if let Err(error) = appended {
                self.quota.release(unwritten);
                return Err(StageError::unavailable(format!("{error:#}")));
            }
            durable |= record.durable;
            self.metrics
                .records_in
                .inc(&[if record.compressed { "true" } else { "false" }]);
        }
        Ok(durable)
    }

    /// True when `to` has left the grid for good: the routes no longer name it at all (an
    /// offline worker stays named).
    fn removed(&self, to: &WorkerId) -> bool {
        self.snapshot
            .borrow()
            .as_ref()
            .is_some_and(|snapshot| snapshot.routes.worker(to).is_none())
    }

    /// Moves what `link`'s spool holds, in order, to the storage workers the routes now give
    /// its tenants: the worker it waited for was removed from the grid and will not take it.
    /// Each record is in its new spool (fsynced when durable) before it leaves the old one,
    /// so a crash meanwhile sends it twice at worst, which storage dedupes.
    async fn move_spool(self: &Arc<Self>, link: &Link) -> Result<(), SendError> {
        let stuck = |reason: String| SendError::Unreachable {
            address: link.to.0.clone(),
            reason,
        };
        loop {
            let records = link
                .spool
                .peek(IN_FLIGHT)
                .map_err(|error| stuck(error.to_string()))?;
            if records.is_empty() {
                return Ok(());
            }
            for (entry, bytes) in records {
                let tenants = self
                    .codecs
                    .sealed
                    .open(&bytes)
                    .map_err(|error| error.to_string())
                    .and_then(|(_, payload, _)| {
                        decode_payload(&payload).map_err(|error| error.to_string())
                    });
                let tenants = match tenants {
                    Ok(tenants) => tenants,
                    Err(reason) => {
                        self.set_aside(link, entry, &format!("unreadable, not moved: {reason}"));
                        self.acknowledged(link, entry)?;
                        continue;
                    }
                };
                let moved = self
                    .encode(tenants)
                    .map_err(|error| stuck(format!("cannot move its records: {error}")))?;
                // Net neutral: the old copy's bytes are given back just below.
                self.quota
                    .take(moved.iter().map(|record| record.bytes.len() as u64).sum());
                self.spool(moved)
                    .await
                    .map_err(|error| stuck(format!("cannot move its records: {error}")))?;
                self.metrics.moved.inc();
                self.acknowledged(link, entry)?;
            }
        }
    }

    /// Whether a record for `to` is compressed: see [`LinkCompression`].
    fn compresses_for(&self, to: &WorkerId) -> bool {
        match self.compression {
            LinkCompression::Always => true,
            LinkCompression::Never => false,
            LinkCompression::Backlog => {
                self.quota.used() > self.quota.limit() / 2
                    || self
                        .links
                        .lock()
                        .get(to)
                        .is_some_and(|link| link.down_until.load(Ordering::Relaxed) > self.now_ms())
            }
        }
    }

    /// The address of `to` in the current routes, online or not.
    fn address(&self, to: &WorkerId) -> Option<String> {
        let snapshot = self.snapshot.borrow();
        snapshot
            .as_ref()?
            .routes
            .worker(to)
            .map(|worker| worker.address.clone())
    }

    /// Sends what `link`'s spool holds, in order, for as long as the process runs.
    async fn drain_link(self: Arc<Self>, link: Arc<Link>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            link.spool.wait_pending().await;
            let sent = if self.removed(&link.to) {
                self.move_spool(&link).await
            } else {
                self.send_some(&link).await
            };
            let wait = match sent {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    link.down_until.store(0, Ordering::Relaxed);
                    link.reported_at.store(0, Ordering::Relaxed);
                    None
                }
                Err(error) => {
                    let outcome = match &error {
                        SendError::Unreachable { .. } => "unreachable",
                        SendError::Unauthorized { .. } => "unauthorized",
                        SendError::Stage {
                            error: StageError::Full,
                            ..
                        } => "full",
                        SendError::Stage { .. } => "unavailable",
                    };
                    self.metrics.sent.inc(&[outcome]);
                    tracing::warn!(to = %link.to, %error, retry_in = ?backoff, "link: records not taken; they stay in the spool");
                    if matches!(error, SendError::Unreachable { .. }) && !self.removed(&link.to) {
                        // `max(1)`: 0 means "not reported".
                        let now = self.now_ms().max(1);
                        link.down_until
                            .store(now + MAX_BACKOFF.as_millis() as u64, Ordering::Relaxed);
                        let last = link.reported_at.load(Ordering::Relaxed);
                        if last == 0 || now - last >= REPORT_AGAIN.as_millis() as u64 {
                            link.reported_at.store(now, Ordering::Relaxed);
                            self.report_down(&link.to).await;
                        }
                    }
                    Some(backoff)
                }
            };
            self.metrics.spool_bytes.set(self.quota.used());
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Sends what the spool holds, keeping up to [`IN_FLIGHT`] records in flight (a window
    /// that slides as answers come, so the link never waits for its slowest record before
    /// sending more); acknowledges them in order, stopping at the first that did not get
    /// through (the ones after it are sent again later; storage dedupes them). Returns once
    /// nothing is pending or in flight.
    async fn send_some(&self, link: &Link) -> Result<(), SendError> {
        let unreachable = |reason: String| SendError::Unreachable {
            address: link.to.0.clone(),
            reason,
        };
        let Some(address) = self.address(&link.to) else {
            return Err(unreachable("not in the routes this worker has".into()));
        };
        let Some(identity) = self.control.saved_identity() else {
            return Err(unreachable("this worker has not paired yet".into()));
        };
        let send = |entry: Entry, bytes: Bytes| {
            let wire = self.for_the_wire(bytes);
            let address = address.clone();
            let identity = identity.clone();
            async move {
                let sent = Instant::now();
                let answer = match wire {
                    Ok(wire) => self.sender.send(&address, &identity, wire).await,
                    Err(error) => Err(SendError::Stage {
                        address,
                        error: StageError::refused(error.to_string()),
                    }),
                };
                if answer.is_ok() {
                    self.handed_off(sent.elapsed());
                }
                (entry, answer)
            }
        };
        let mut in_flight = futures::stream::FuturesOrdered::new();
        let mut last_sent = None;
        loop {
            if in_flight.len() < IN_FLIGHT {
                let more = link
                    .spool
                    .peek_after(last_sent, IN_FLIGHT - in_flight.len())
                    .map_err(|error| unreachable(error.to_string()))?;
                for (entry, bytes) in more {
                    last_sent = Some(entry);
                    in_flight.push_back(send(entry, bytes));
                }
            }
            let Some((entry, answer)) = futures::StreamExt::next(&mut in_flight).await else {
                return Ok(());
            };
            match answer {
                Ok(ack) => {
                    self.metrics.sent.inc(&["acknowledged"]);
                    self.metrics.events_out.add(ack.events);
                    self.acknowledged(link, entry)?;
                }
                Err(SendError::Stage {
                    error: StageError::Refused { reason },
                    ..
                }) => {
                    self.metrics.sent.inc(&["refused"]);
                    self.set_aside(link, entry, &reason);
                    self.acknowledged(link, entry)?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn acknowledged(&self, link: &Link, entry: Entry) -> Result<(), SendError> {
        link.spool
            .acknowledged(entry)
            .map_err(|error| SendError::Unreachable {
                address: link.to.0.clone(),
                reason: format!("cannot update the spool: {error}"),
            })
    }

    /// A record the downstream can never take is kept aside (sealed as it was spooled) for
    /// an operator to look at, rather than blocking every record behind it.
    fn set_aside(&self, link: &Link, entry: Entry, reason: &str) {
        self.metrics.set_aside.inc();
        let dir = self.dir.join("refused");
        let path = dir.join(format!(
            "{}-{}-{}.record",
            link.to, entry.segment, entry.offset
        ));
        let saved = link.spool.peek(1).ok().and_then(|records| {
            let (first, bytes) = records.into_iter().next()?;
            (first == entry).then_some(bytes)
        });
        let result = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, saved.unwrap_or_default()));
        tracing::error!(to = %link.to, reason, path = %path.display(), saved = result.is_ok(), "link: a record was refused downstream and set aside");
    }

    /// A spooled record as it goes on the wire: an encrypted one is opened with the spool
    /// key (the downstream has its own keys) and sent compressed.
    ///
    /// A plain one goes as it is, its checksum not checked here: the downstream checks it
    /// (a damaged record is refused there and set aside, as it would be here), and checking
    /// it twice was a hundredth of a correlator's CPU.
    fn for_the_wire(&self, spooled: Bytes) -> Result<Bytes, meniscus_record::frame::RecordError> {
        if spooled
            .get(FLAGS_AT)
            .is_some_and(|flags| flags & FLAG_AES_GCM == 0)
        {
            return Ok(spooled);
        }
        let (format, payload, _) = self.codecs.sealed.open(&spooled)?;
        let mut wire = Vec::new();
        let compressed = self.compression == LinkCompression::Always;
        self.codecs
            .choose(false, compressed)
            .seal_into(format, payload, &mut wire)?;
        Ok(wire.into())
    }

    async fn report_down(&self, target: &WorkerId) {
        let Some(identity) = self.control.saved_identity() else {
            return;
        };
        match self.control.report_down(&identity, target).await {
            Ok(changed) => {
                tracing::warn!(%target, routes_changed = changed, "reported a worker down")
            }
            Err(error) => tracing::warn!(%target, %error, "cannot report a worker down"),
        }
    }
}

impl Stage for Forwarder {
    fn hand_on(
        self: Arc<Self>,
        batch: Batch,
        when_full: WhenFull,
    ) -> BoxFuture<Result<Ack, StageError>> {
        let events = batch.rows() as u64;
        let per_tenant: Vec<(TenantId, u64)> = batch
            .tenants
            .iter()
            .map(|group| (group.tenant.clone(), group.batch.num_rows() as u64))
            .collect();
        let jobs: Vec<(String, BTreeMap<String, u64>)> = batch
            .tenants
            .iter()
            .map(|group| (group.tenant.as_str().to_string(), group.jobs()))
            .filter(|(_, jobs)| !jobs.is_empty())
            .collect();
        // Encoded here, on the caller's thread, like the store's WAL record.
        let records = self.encode(batch.tenants);
        Box::pin(async move {
            let records = records?;
            let total: u64 = records.iter().map(|record| record.bytes.len() as u64).sum();
            match when_full {
                WhenFull::Refuse => {
                    if !self.quota.try_reserve(total) {
                        return Err(StageError::Full);
                    }
                }
                WhenFull::Wait => self.quota.reserve(total).await,
            }
            // Once the room is taken the records are written whatever becomes of the caller
            // (a link receiver answers 503 after a while and drops its future): half a write
            // cancelled would keep quota no record holds.
            let forwarder = self.clone();
            tokio::spawn(async move {
                let durable = forwarder.spool(records).await?;
                forwarder.metrics.events_in.add(events);
                forwarder.metrics.spool_bytes.set(forwarder.quota.used());
                {
                    let mut counts = forwarder.tenant_events.lock();
                    for (tenant, rows) in per_tenant {
                        *counts.entry(tenant).or_default() += rows;
                    }
                }
                for (tenant, jobs) in jobs {
                    for (job, events) in jobs {
                        forwarder.jobs.accepted(&tenant, &job, events);
                    }
                }
                Ok(Ack {
                    events,
                    synced: durable,
                })
            })
            .await
            .map_err(|error| StageError::unavailable(format!("spool write failed: {error}")))?
        })
    }
}

/// A record ready for a spool.
struct Spooled {
    to: WorkerId,
    bytes: Vec<u8>,
    durable: bool,
    compressed: bool,
}

/// Worker ids are made by the coordinator (`w1`, `w2`, …); anything else is not trusted as a
/// directory name.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The spool key: made once per worker, kept in `DATA_DIR/grid/spool.key` (mode 0600).
pub fn spool_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join("grid").join("spool.key");
    if let Ok(bytes) = std::fs::read(&path) {
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()));
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    meniscus_coordinator::persist::replace_private_file(&path, &key)?;
    Ok(key)
}
