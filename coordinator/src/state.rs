//! The coordinator's state and every change to it, as plain functions of the current time:
//! no I/O, no clock, no locks, so each rule (who may pair, when a worker is taken out of the
//! routes, when it comes back) is tested on its own.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use meniscus_grid::routes::{Persona, RouteEntry, Routes, WorkerId, WorkerStatus};
use meniscus_grid::tenant::{Tenant, TenantId, TenantSpec, TokenSpec};
use serde::{Deserialize, Serialize};

use crate::credential::{self, Credential, CredentialHash};

/// The grid's rules, from its spec.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Distinct workers that must report a worker down, within `down_window`, before it is
    /// taken out of the routes (fewer when fewer other workers are online).
    pub down_reports_needed: usize,
    pub down_window: Duration,
    /// How long a worker taken out by down reports stays out even while its heartbeats
    /// arrive: the coordinator hears it, but its peers could not reach it, and letting each
    /// heartbeat bring it straight back would flip the routes every few seconds for as long
    /// as the partition lasts.
    pub down_hold: Duration,
    /// A worker not heard from for this long is taken out of the routes.
    pub heartbeat_timeout: Duration,
    /// Storage workers per tenant.
    pub storage_copies: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            down_reports_needed: 2,
            down_window: Duration::from_secs(30),
            down_hold: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(15),
            storage_copies: 2,
        }
    }
}

/// What a worker says about itself when it pairs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairRequest {
    pub personas: Vec<Persona>,
    /// Where other workers reach it (`host:port`).
    pub advertise: String,
    /// Events per second it expects to handle: a hint for the autoscaler.
    #[serde(default)]
    pub capacity: u64,
    /// A worker that paired before (a restarted process with its data directory) presents
    /// its id and credential to come back as itself: a storage worker keeps its tenants.
    #[serde(default)]
    pub previous: Option<(WorkerId, String)>,
    /// A stable name for the worker where it has one (its pod's name on Kubernetes): how the
    /// operator tells which worker a StatefulSet ordinal is.
    #[serde(default)]
    pub name: Option<String>,
}

/// Load a worker reports with each heartbeat: the autoscaler's input. Fields it does not
/// report are zero.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Load {
    pub events_in_per_second: f64,
    pub events_out_per_second: f64,
    pub queue_depth: u64,
    pub spool_bytes: u64,
    pub handoff_p99_seconds: f64,
    /// When this worker process started: counters below restart from zero with it.
    pub started_at: Option<DateTime<Utc>>,
    /// What this worker has seen of each tenant (correlators: events taken since
    /// `started_at`; storage workers: bytes held): the Tenants' status.
    pub tenants: BTreeMap<TenantId, TenantLoad>,
    /// Purge orders of the snapshot this storage worker has carried out.
    pub purged: Vec<TenantId>,
    /// A draining storage worker that holds nothing any more: everything it had is in the
    /// storage workers the routes give its tenants, so it may be removed.
    pub handed_off: bool,
}

/// One tenant in a worker's heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TenantLoad {
    /// Events taken from the tenant's senders since the worker started (a counter).
    pub events: u64,
    /// Bytes of the tenant's data the worker holds (hot store and archive).
    pub bytes_stored: u64,
}

/// A tenant's totals over the grid, as the Tenant status shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TenantUsage {
    /// Events taken since the tenant was registered, over every correlator and restart.
    pub events_received: u64,
    /// Bytes the storage workers hold for it, by their last heartbeats.
    pub bytes_stored: u64,
    /// When a heartbeat last showed new events (to the heartbeat interval).
    pub last_event: Option<DateTime<Utc>>,
}

/// What has been counted of a worker's event counters: the next heartbeat adds only what
/// grew since. Saved with the totals it produced, so a restarted coordinator neither counts
/// twice nor loses what was saved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counted {
    pub started_at: Option<DateTime<Utc>>,
    pub events: BTreeMap<TenantId, u64>,
}

/// A worker as the coordinator knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    pub id: WorkerId,
    pub address: String,
    pub personas: Vec<Persona>,
    pub capacity: u64,
    pub status: WorkerStatus,
    /// As it paired with ([`PairRequest::name`]).
    #[serde(default)]
    pub name: Option<String>,
    /// Asked to hand its tenants off and leave (a storage scale-down): see
    /// [`RouteEntry::draining`].
    #[serde(default)]
    pub draining: bool,
    /// Only a hash is kept: the state file does not hand out credentials.
    pub credential: CredentialHash,
    pub paired_at: DateTime<Utc>,
    /// Not persisted: after a coordinator restart every worker gets a full timeout to be
    /// heard from again.
    #[serde(skip)]
    pub last_heard: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub load: Load,
    /// Who reported it down, and when (not persisted: reports are about the present).
    #[serde(skip)]
    pub down_reports: BTreeMap<WorkerId, DateTime<Utc>>,
    /// Taken out by down reports: heartbeats do not bring it back before this time.
    #[serde(skip)]
    pub held_out_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub counted: Counted,
}

/// The tenant registry at one version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenants {
    pub version: u64,
    pub specs: Vec<TenantSpec>,
}

/// Everything a worker needs to run: the routes, the tenant registry, and the credential
/// hashes of every worker, so that any worker can tell a grid peer from a stranger on its
/// links and broadcasters can serve workers without asking the coordinator. Hashes of 256-bit
/// random credentials reveal nothing usable; the tenant tokens beside them are what a
/// snapshot must never reach a stranger for, and it does not (every snapshot is served to a
/// worker that proved its credential).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub routes: Routes,
    pub tenants: Tenants,
    #[serde(default)]
    pub credentials: BTreeMap<WorkerId, CredentialHash>,
    /// Tenants whose data storage workers must delete (their Tenant is gone): each storage
    /// worker deletes them and says so in its heartbeats.
    #[serde(default)]
    pub purges: Vec<TenantId>,
}

impl Snapshot {
    /// True when `id` is a worker of this snapshot and `presented` is its credential.
    pub fn knows(&self, id: &WorkerId, presented: &str) -> bool {
        self.credentials
            .get(id)
            .is_some_and(|hash| hash.matches(presented))
    }
}

/// The coordinator's state; what [`crate::persist`] writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub route_version: u64,
    pub workers: Vec<Worker>,
    pub tenants: Tenants,
    /// The next worker number: ids are never reused, so a report about an old worker cannot
    /// hit a new one.
    pub next_worker: u64,
    /// See [`Snapshot::purges`].
    #[serde(default)]
    pub purges: Vec<TenantId>,
    /// Events and last event time per tenant, summed from the correlators' heartbeats.
    #[serde(default)]
    pub usage: BTreeMap<TenantId, TenantUsage>,
    /// The counts moved since they were last saved (they are saved now and then, not with
    /// every heartbeat).
    #[serde(skip)]
    pub counts_unsaved: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("wrong pairing secret")]
    PairingSecret,
    #[error("unknown worker or wrong worker credential")]
    Credential,
    #[error("a worker needs at least one persona and an address to pair")]
    Incomplete,
    #[error("unknown worker {0}")]
    UnknownWorker(WorkerId),
    #[error("{0}")]
    InvalidTenant(String),
    #[error("no tenant {0}")]
    UnknownTenant(String),
}

/// What pairing hands a worker.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Paired {
    pub worker_id: WorkerId,
    /// Sent once, here; the worker presents it on every later call and on links to other
    /// workers.
    pub credential: String,
    pub snapshot: Snapshot,
}

impl State {
    pub fn snapshot(&self, rules: &Rules) -> Snapshot {
        Snapshot {
            routes: self.routes(rules),
            tenants: self.tenants.clone(),
            credentials: self
                .workers
                .iter()
                .map(|worker| (worker.id.clone(), worker.credential.clone()))
                .collect(),
            purges: self.purges.clone(),
        }
    }

    pub fn routes(&self, rules: &Rules) -> Routes {
        Routes {
            version: self.route_version,
            workers: self
                .workers
                .iter()
                .map(|worker| RouteEntry {
                    id: worker.id.clone(),
                    address: worker.address.clone(),
                    personas: worker.personas.clone(),
                    status: worker.status,
                    draining: worker.draining,
                })
                .collect(),
            storage_copies: rules.storage_copies.max(1),
        }
    }

    /// Pairs a worker that presents the grid's secret. A worker that presents its previous
    /// id and credential comes back as itself, with its new address and personas.
    pub fn pair(
        &mut self,
        secret_ok: bool,
        request: PairRequest,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Paired, Refused> {
        if !secret_ok {
            return Err(Refused::PairingSecret);
        }
        if request.personas.is_empty() || request.advertise.trim().is_empty() {
            return Err(Refused::Incomplete);
        }
        let mut personas = request.personas.clone();
        personas.sort();
        personas.dedup();
        let credential = Credential::generate();
        let returning = request.previous.as_ref().and_then(|(id, presented)| {
            self.workers
                .iter()
                .position(|worker| &worker.id == id && worker.credential.matches(presented))
        });
        let id = match returning {
            Some(index) => {
                let worker = &mut self.workers[index];
                worker.address = request.advertise.clone();
                worker.personas = personas;
                worker.capacity = request.capacity;
                worker.name = request.name.clone().or(worker.name.take());
                worker.status = WorkerStatus::Online;
                worker.credential = credential.hash();
                worker.last_heard = Some(now);
                worker.down_reports.clear();
                worker.held_out_until = None;
                worker.id.clone()
            }
            None => {
                let id = WorkerId(format!("w{}", self.next_worker));
                self.next_worker += 1;
                self.workers.push(Worker {
                    id: id.clone(),
                    address: request.advertise.clone(),
                    personas,
                    capacity: request.capacity,
                    status: WorkerStatus::Online,
                    name: request.name.clone(),
                    draining: false,
                    credential: credential.hash(),
                    paired_at: now,
                    last_heard: Some(now),
                    load: Load::default(),
                    down_reports: BTreeMap::new(),
                    held_out_until: None,
                    counted: Counted::default(),
                });
                id
            }
        };
        self.route_version += 1;
        Ok(Paired {
            worker_id: id,
            credential: credential.reveal(),
            snapshot: self.snapshot(rules),
        })
    }

    /// The worker `id` if `presented` is its credential.
    pub fn authenticate(&self, id: &WorkerId, presented: &str) -> Result<&Worker, Refused> {
        self.workers
            .iter()
            .find(|worker| &worker.id == id && worker.credential.matches(presented))
            .ok_or(Refused::Credential)
    }

    /// A heartbeat: the worker is alive (back in the routes if it was out, unless down
    /// reports took it out less than `down_hold` ago) and this is its load. Returns whether
    /// the routes changed.
    pub fn heartbeat(
        &mut self,
        id: &WorkerId,
        presented: &str,
        load: Load,
        now: DateTime<Utc>,
    ) -> Result<bool, Refused> {
        self.authenticate(id, presented)?;
        let worker = self.worker_mut(id)?;
        worker.last_heard = Some(now);
        let grown = count_events(&mut worker.counted, &load);
        worker.load = load;
        for (tenant, events) in grown {
            // Only tenants of the registry are counted: a deleted one's old counters are not
            // brought back by a late heartbeat.
            if self.tenants.specs.iter().any(|spec| spec.id == tenant) {
                let usage = self.usage.entry(tenant).or_default();
                usage.events_received += events;
                usage.last_event = Some(now);
            }
            self.counts_unsaved = true;
        }
        let worker = self.worker_mut(id)?;
        if worker.held_out_until.is_some_and(|until| now < until) {
            return Ok(false);
        }
        worker.held_out_until = None;
        worker.down_reports.clear();
        if worker.status == WorkerStatus::Offline {
            worker.status = WorkerStatus::Online;
            self.route_version += 1;
            tracing::info!(worker = %id, "worker is back in the routes");
            return Ok(true);
        }
        Ok(false)
    }

    /// `reporter` could not reach `target`. Once enough distinct workers say so within the
    /// window, `target` leaves the routes. Returns whether the routes changed.
    pub fn report_down(
        &mut self,
        reporter: &WorkerId,
        presented: &str,
        target: &WorkerId,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<bool, Refused> {
        self.authenticate(reporter, presented)?;
        let online_others = self
            .workers
            .iter()
            .filter(|worker| worker.status == WorkerStatus::Online && &worker.id != target)
            .count();
        let needed = rules.down_reports_needed.clamp(1, online_others.max(1));
        let window = chrono::Duration::from_std(rules.down_window).unwrap_or_default();
        let worker = self
            .workers
            .iter_mut()
            .find(|worker| &worker.id == target)
            .ok_or_else(|| Refused::UnknownWorker(target.clone()))?;
        if worker.status == WorkerStatus::Offline || reporter == target {
            return Ok(false);
        }
        worker.down_reports.insert(reporter.clone(), now);
        worker.down_reports.retain(|_, at| now - *at <= window);
        if worker.down_reports.len() < needed {
            return Ok(false);
        }
        worker.status = WorkerStatus::Offline;
        worker.down_reports.clear();
        worker.held_out_until =
            Some(now + chrono::Duration::from_std(rules.down_hold).unwrap_or_default());
        self.route_version += 1;
        tracing::warn!(worker = %target, reports = needed, hold = ?rules.down_hold, "worker reported down: taken out of the routes");
        Ok(true)
    }

    /// Forgets a worker for good (decommissioned: its disk is gone, or it will not come back):
    /// it leaves the routes, its credential stops working, and senders move what their
    /// spools hold for it to the storage workers the routes now give its tenants. Started
    /// again, it pairs as a new worker.
    pub fn remove_worker(&mut self, id: &WorkerId) -> Result<(), Refused> {
        let before = self.workers.len();
        self.workers.retain(|worker| &worker.id != id);
        if self.workers.len() == before {
            return Err(Refused::UnknownWorker(id.clone()));
        }
        self.route_version += 1;
        tracing::warn!(worker = %id, "worker removed from the grid");
        Ok(())
    }

    /// Asks a storage worker to hand its tenants off and leave (`draining`), or to stay after
    /// all. Returns whether the routes changed.
    pub fn set_draining(&mut self, id: &WorkerId, draining: bool) -> Result<bool, Refused> {
        let worker = self
            .workers
            .iter_mut()
            .find(|worker| &worker.id == id)
            .ok_or_else(|| Refused::UnknownWorker(id.clone()))?;
        if worker.draining == draining {
            return Ok(false);
        }
        worker.draining = draining;
        if !draining {
            worker.load.handed_off = false;
        }
        self.route_version += 1;
        tracing::info!(worker = %id, draining, "worker drain changed");
        Ok(true)
    }

    /// Takes out of the routes every online worker not heard from within the timeout.
    /// Returns whether the routes changed.
    pub fn expire_silent(&mut self, rules: &Rules, now: DateTime<Utc>) -> bool {
        let timeout = chrono::Duration::from_std(rules.heartbeat_timeout).unwrap_or_default();
        let mut changed = false;
        for worker in &mut self.workers {
            let heard = worker.last_heard.unwrap_or(now);
            if worker.status == WorkerStatus::Online && now - heard > timeout {
                worker.status = WorkerStatus::Offline;
                changed = true;
                tracing::warn!(worker = %worker.id, "no heartbeat within the timeout: taken out of the routes");
            }
        }
        if changed {
            self.route_version += 1;
        }
        changed
    }

    /// After a restart of the coordinator: nobody has been heard from yet, and everybody
    /// gets a full timeout from `now`.
    pub fn restarted(&mut self, now: DateTime<Utc>) {
        for worker in &mut self.workers {
            worker.last_heard = Some(now);
        }
    }

    /// Creates or replaces a tenant (validated as the standalone config is).
    pub fn put_tenant(&mut self, spec: TenantSpec) -> Result<(), Refused> {
        Tenant::from_spec(spec.clone())
            .map_err(|error| Refused::InvalidTenant(error.to_string()))?;
        // A tenant registered again is not purged (its Tenant object came back).
        self.purges.retain(|purge| purge != &spec.id);
        let specs = &mut self.tenants.specs;
        match specs.iter_mut().find(|existing| existing.id == spec.id) {
            Some(existing) => *existing = spec,
            None => specs.push(spec),
        }
        self.tenants.version += 1;
        Ok(())
    }

    pub fn delete_tenant(&mut self, id: &TenantId) -> Result<(), Refused> {
        let before = self.tenants.specs.len();
        self.tenants.specs.retain(|spec| &spec.id != id);
        if self.tenants.specs.len() == before {
            return Err(Refused::UnknownTenant(id.to_string()));
        }
        self.tenants.version += 1;
        Ok(())
    }

    /// Gives a tenant a new token; the ones it had stay valid for `grace` more (at most),
    /// so senders can move over, and those already past their end are dropped. Returns the
    /// new token.
    pub fn rotate_token(
        &mut self,
        id: &TenantId,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> Result<String, Refused> {
        let grace_until = now + chrono::Duration::from_std(grace).unwrap_or_default();
        let spec = self
            .tenants
            .specs
            .iter_mut()
            .find(|spec| &spec.id == id)
            .ok_or_else(|| Refused::UnknownTenant(id.to_string()))?;
        let token = credential::Credential::generate().reveal();
        for old in &mut spec.tokens {
            old.not_after = Some(old.not_after.map_or(grace_until, |at| at.min(grace_until)));
        }
        spec.tokens
            .retain(|old| old.not_after.is_none_or(|at| at > now));
        spec.tokens.push(TokenSpec {
            value: token.clone(),
            not_after: None,
        });
        self.tenants.version += 1;
        Ok(token)
    }

    /// Orders the storage workers to delete `id`'s data (idempotent). The tenant leaves the
    /// registry first: its tokens stop working, so nothing new arrives for it.
    pub fn order_purge(&mut self, id: &TenantId) {
        if self.tenants.specs.iter().any(|spec| &spec.id == id) {
            self.tenants.specs.retain(|spec| &spec.id != id);
            self.tenants.version += 1;
        }
        if !self.purges.contains(id) {
            self.purges.push(id.clone());
            self.tenants.version += 1;
        }
    }

    /// The storage workers that have not yet said they deleted `id`'s data, offline ones
    /// included (their disks still hold it); empty once the purge is done everywhere.
    pub fn purge_waiting_for(&self, id: &TenantId) -> Vec<WorkerId> {
        self.workers
            .iter()
            .filter(|worker| worker.personas.contains(&Persona::Storage))
            .filter(|worker| !worker.load.purged.contains(id))
            .map(|worker| worker.id.clone())
            .collect()
    }

    /// Forgets a finished purge and the tenant's counts.
    pub fn finish_purge(&mut self, id: &TenantId) {
        let before = self.purges.len();
        self.purges.retain(|purge| purge != id);
        if self.purges.len() != before {
            self.tenants.version += 1;
        }
        if self.usage.remove(id).is_some() {
            self.counts_unsaved = true;
        }
    }

    /// A tenant's totals: its counted events, and the bytes the storage workers hold.
    pub fn usage(&self, id: &TenantId) -> TenantUsage {
        let mut usage = self.usage.get(id).cloned().unwrap_or_default();
        usage.bytes_stored = self
            .workers
            .iter()
            .filter(|worker| worker.personas.contains(&Persona::Storage))
            .filter_map(|worker| worker.load.tenants.get(id))
            .map(|load| load.bytes_stored)
            .sum();
        usage
    }

    /// Heartbeat loads of the online workers, per persona: the autoscaler's input.
    pub fn loads(&self) -> BTreeMap<Persona, Vec<(WorkerId, Load)>> {
        let mut loads: BTreeMap<Persona, Vec<(WorkerId, Load)>> = BTreeMap::new();
        for worker in &self.workers {
            if worker.status != WorkerStatus::Online {
                continue;
            }
            for persona in &worker.personas {
                loads
                    .entry(*persona)
                    .or_default()
                    .push((worker.id.clone(), worker.load.clone()));
            }
        }
        loads
    }

    fn worker_mut(&mut self, id: &WorkerId) -> Result<&mut Worker, Refused> {
        self.workers
            .iter_mut()
            .find(|worker| &worker.id == id)
            .ok_or_else(|| Refused::UnknownWorker(id.clone()))
    }
}

/// What grew in a worker's event counters since they were last counted, per tenant; moves
/// `counted` on. A worker that restarted (another `started_at`) counts from zero again.
fn count_events(counted: &mut Counted, load: &Load) -> Vec<(TenantId, u64)> {
    if load.started_at != counted.started_at {
        counted.started_at = load.started_at;
        counted.events.clear();
    }
    let mut grown = Vec::new();
    for (tenant, now) in &load.tenants {
        let before = counted.events.get(tenant).copied().unwrap_or(0);
        if now.events > before {
            grown.push((tenant.clone(), now.events - before));
        }
        if now.events != before {
            counted.events.insert(tenant.clone(), now.events);
        }
    }
    grown
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn request(personas: &[Persona], address: &str) -> PairRequest {
        PairRequest {
            personas: personas.to_vec(),
            advertise: address.into(),
            capacity: 1000,
            previous: None,
            name: None,
        }
    }

    /// A grid of `count` storage workers, paired at time 0; their credentials.
    fn grid(count: usize) -> (State, Rules, Vec<(WorkerId, String)>) {
        let (mut state, rules) = (State::default(), Rules::default());
        let workers = (0..count)
            .map(|index| {
                let paired = state
                    .pair(
                        true,
                        request(&[Persona::Storage], &format!("s{index}:7000")),
                        &rules,
                        at(0),
                    )
                    .unwrap();
                (paired.worker_id, paired.credential)
            })
            .collect();
        (state, rules, workers)
    }

    fn status(state: &State, id: &WorkerId) -> WorkerStatus {
        state
            .workers
            .iter()
            .find(|worker| &worker.id == id)
            .unwrap()
            .status
    }

    #[test]
    fn a_removed_worker_leaves_the_routes_loses_its_credential_and_comes_back_as_new() {
        let (mut state, rules, workers) = grid(2);
        let version = state.route_version;
        let (gone, credential) = &workers[0];
        state.remove_worker(gone).unwrap();
        assert_eq!(state.route_version, version + 1);
        assert!(!state
            .snapshot(&rules)
            .routes
            .workers
            .iter()
            .any(|worker| &worker.id == gone));
        assert!(state.authenticate(gone, credential).is_err());
        assert_eq!(
            state.remove_worker(gone).unwrap_err(),
            Refused::UnknownWorker(gone.clone())
        );
        let again = PairRequest {
            previous: Some((gone.clone(), credential.clone())),
            ..request(&[Persona::Storage], "s0:7000")
        };
        let back = state.pair(true, again, &rules, at(5)).unwrap();
        assert_ne!(&back.worker_id, gone, "ids are never reused");
    }

    #[test]
    fn pairing_needs_the_secret_and_gives_ids_that_are_never_reused() {
        let (mut state, rules) = (State::default(), Rules::default());
        assert_eq!(
            state
                .pair(false, request(&[Persona::Storage], "a:1"), &rules, at(0))
                .unwrap_err(),
            Refused::PairingSecret
        );
        assert_eq!(state, State::default(), "a refused pairing changes nothing");
        assert_eq!(
            state
                .pair(true, request(&[], "a:1"), &rules, at(0))
                .unwrap_err(),
            Refused::Incomplete
        );
        let first = state
            .pair(
                true,
                request(&[Persona::Storage, Persona::Storage], "a:1"),
                &rules,
                at(0),
            )
            .unwrap();
        let second = state
            .pair(true, request(&[Persona::Correlator], "b:1"), &rules, at(0))
            .unwrap();
        assert_ne!(first.worker_id, second.worker_id);
        assert_eq!(
            second.snapshot.routes.version, 2,
            "each pairing is a new route version"
        );
        assert_eq!(
            second.snapshot.routes.workers[0].personas,
            vec![Persona::Storage]
        );
        // A restarted worker presenting its id and credential comes back as itself; one with
        // a forged credential is a new worker.
        let again = PairRequest {
            previous: Some((first.worker_id.clone(), first.credential.clone())),
            ..request(&[Persona::Storage], "a2:1")
        };
        let back = state.pair(true, again, &rules, at(5)).unwrap();
        assert_eq!(back.worker_id, first.worker_id);
        assert_eq!(back.snapshot.routes.workers[0].address, "a2:1");
        assert!(
            state
                .authenticate(&first.worker_id, &first.credential)
                .is_err(),
            "the old credential is replaced"
        );
        assert!(state
            .authenticate(&back.worker_id, &back.credential)
            .is_ok());
        let forged = PairRequest {
            previous: Some((first.worker_id.clone(), "forged".into())),
            ..request(&[Persona::Storage], "evil:1")
        };
        assert_ne!(
            state.pair(true, forged, &rules, at(6)).unwrap().worker_id,
            first.worker_id
        );
    }

    #[test]
    fn a_worker_leaves_the_routes_after_reports_from_distinct_workers_within_the_window() {
        let (mut state, rules, workers) = grid(4);
        let [(a, ca), (b, cb), (c, _), (target, ct)] = <[_; 4]>::try_from(workers).unwrap();
        let version = state.route_version;
        // The same reporter twice is one report.
        assert!(!state.report_down(&a, &ca, &target, &rules, at(1)).unwrap());
        assert!(!state.report_down(&a, &ca, &target, &rules, at(2)).unwrap());
        // A second reporter, but the first report is out of the window by then.
        assert!(!state.report_down(&b, &cb, &target, &rules, at(40)).unwrap());
        assert_eq!(status(&state, &target), WorkerStatus::Online);
        // A forged report counts for nothing.
        assert_eq!(
            state
                .report_down(&c, "forged", &target, &rules, at(41))
                .unwrap_err(),
            Refused::Credential
        );
        // Two distinct reporters within the window: out, and a new route version.
        assert!(state.report_down(&a, &ca, &target, &rules, at(45)).unwrap());
        assert_eq!(status(&state, &target), WorkerStatus::Offline);
        assert_eq!(state.route_version, version + 1);
        assert!(!state
            .routes(&rules)
            .storage_for("acme")
            .iter()
            .any(|w| w.id == target));
        // Its heartbeats do not bring it back within the hold (its peers could not reach it,
        // whatever the coordinator hears); the first one after it does, with another version.
        assert!(!state
            .heartbeat(&target, &ct, Load::default(), at(50))
            .unwrap());
        assert_eq!(status(&state, &target), WorkerStatus::Offline);
        assert!(state
            .heartbeat(&target, &ct, Load::default(), at(55))
            .unwrap());
        assert_eq!(status(&state, &target), WorkerStatus::Online);
        assert_eq!(state.route_version, version + 2);
        assert!(
            !state
                .heartbeat(&target, &ct, Load::default(), at(56))
                .unwrap(),
            "no change"
        );
    }

    #[test]
    fn in_a_grid_of_two_one_report_is_enough() {
        let (mut state, rules, workers) = grid(2);
        assert!(state
            .report_down(&workers[0].0, &workers[0].1, &workers[1].0, &rules, at(1))
            .unwrap());
        // A worker cannot report itself.
        assert!(!state
            .report_down(&workers[0].0, &workers[0].1, &workers[0].0, &rules, at(2))
            .unwrap());
    }

    #[test]
    fn silent_workers_leave_the_routes_and_a_restarted_coordinator_waits_a_full_timeout() {
        let (mut state, rules, workers) = grid(3);
        let (talker, credential) = &workers[0];
        assert!(state
            .heartbeat(
                talker,
                credential,
                Load {
                    events_in_per_second: 5.0,
                    ..Load::default()
                },
                at(10)
            )
            .is_ok());
        assert!(!state.expire_silent(&rules, at(15)), "within the timeout");
        let version = state.route_version;
        assert!(state.expire_silent(&rules, at(20)));
        assert_eq!(state.route_version, version + 1, "one version for both");
        assert_eq!(status(&state, &workers[1].0), WorkerStatus::Offline);
        assert_eq!(status(&state, talker), WorkerStatus::Online);
        let loads = state.loads();
        assert_eq!(loads[&Persona::Storage].len(), 1);
        assert_eq!(loads[&Persona::Storage][0].1.events_in_per_second, 5.0);
        // Saved and loaded (what a restart does): nobody is expired before a full timeout.
        let mut restarted: State =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        restarted.restarted(at(100));
        assert!(!restarted.expire_silent(&rules, at(110)));
        assert!(restarted.expire_silent(&rules, at(116)));
        assert!(
            restarted.authenticate(talker, credential).is_ok(),
            "credentials survive as hashes"
        );
        assert!(
            !serde_json::to_string(&state)
                .unwrap()
                .contains(credential.as_str()),
            "never in clear"
        );
    }

    #[test]
    fn tenants_are_validated_versioned_and_rotated_with_a_grace() {
        let mut state = State::default();
        let spec: TenantSpec = serde_json::from_value(serde_json::json!({
            "id": "acme", "tokens": [{"value": "old-token"}]
        }))
        .unwrap();
        state.put_tenant(spec.clone()).unwrap();
        assert_eq!(state.tenants.version, 1);
        let mut bad = spec.clone();
        bad.tokens.clear();
        assert!(matches!(
            state.put_tenant(bad),
            Err(Refused::InvalidTenant(_))
        ));
        assert_eq!(state.tenants.version, 1, "a refused change changes nothing");
        let id = TenantId::parse("acme").unwrap();
        let token = state
            .rotate_token(&id, Duration::from_secs(3600), at(0))
            .unwrap();
        let tokens = &state.tenants.specs[0].tokens;
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            tokens[0].not_after,
            Some(at(3600)),
            "the old token has a grace period"
        );
        assert_eq!(
            (tokens[1].value.as_str(), tokens[1].not_after),
            (token.as_str(), None)
        );
        // A second rotation after the grace drops the expired token.
        state
            .rotate_token(&id, Duration::from_secs(60), at(7200))
            .unwrap();
        assert_eq!(state.tenants.specs[0].tokens.len(), 2);
        assert!(state.tenants.specs[0]
            .tokens
            .iter()
            .all(|t| t.value != "old-token"));
        assert_eq!(state.tenants.version, 3);
        state.delete_tenant(&id).unwrap();
        assert!(matches!(
            state.delete_tenant(&id),
            Err(Refused::UnknownTenant(_))
        ));
    }

    fn acme() -> TenantSpec {
        serde_json::from_value(serde_json::json!({"id": "acme", "tokens": [{"value": "t"}]}))
            .unwrap()
    }

    fn events(started: i64, count: u64) -> Load {
        let tenant = TenantId::parse("acme").unwrap();
        Load {
            started_at: Some(at(started)),
            tenants: BTreeMap::from([(
                tenant,
                TenantLoad {
                    events: count,
                    ..TenantLoad::default()
                },
            )]),
            ..Load::default()
        }
    }

    #[test]
    fn events_are_counted_once_across_heartbeats_worker_restarts_and_coordinator_restarts() {
        let (mut state, _, workers) = grid(1);
        let (worker, credential) = &workers[0];
        let id = TenantId::parse("acme").unwrap();
        state.put_tenant(acme()).unwrap();
        state
            .heartbeat(worker, credential, events(0, 10), at(1))
            .unwrap();
        state
            .heartbeat(worker, credential, events(0, 10), at(2))
            .unwrap();
        state
            .heartbeat(worker, credential, events(0, 25), at(3))
            .unwrap();
        assert_eq!(state.usage(&id).events_received, 25);
        assert_eq!(state.usage(&id).last_event, Some(at(3)));
        assert!(state.counts_unsaved);
        // The coordinator restarts from what it saved: the worker's counter goes on.
        let saved: State = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        let mut state = saved;
        state
            .heartbeat(worker, credential, events(0, 30), at(4))
            .unwrap();
        assert_eq!(state.usage(&id).events_received, 30, "not counted twice");
        // The worker restarts: its counter starts from zero again.
        state
            .heartbeat(worker, credential, events(5, 4), at(6))
            .unwrap();
        assert_eq!(state.usage(&id).events_received, 34);
        assert_eq!(state.usage(&id).last_event, Some(at(6)));
        state
            .heartbeat(worker, credential, events(5, 4), at(9))
            .unwrap();
        assert_eq!(state.usage(&id).last_event, Some(at(6)), "no new events");
    }

    #[test]
    fn a_purge_takes_the_tenant_out_and_waits_for_every_storage_worker() {
        let (mut state, rules, workers) = grid(2);
        let id = TenantId::parse("acme").unwrap();
        state.put_tenant(acme()).unwrap();
        let version = state.tenants.version;
        state.order_purge(&id);
        state.order_purge(&id);
        assert!(state.tenants.specs.is_empty(), "its tokens stop working");
        assert!(state.tenants.version > version, "workers fetch the order");
        assert_eq!(state.snapshot(&rules).purges, vec![id.clone()]);
        assert_eq!(state.purge_waiting_for(&id).len(), 2);
        let done = Load {
            purged: vec![id.clone()],
            ..Load::default()
        };
        let (first, credential) = &workers[0];
        state
            .heartbeat(first, credential, done.clone(), at(1))
            .unwrap();
        assert_eq!(state.purge_waiting_for(&id), vec![workers[1].0.clone()]);
        // An offline worker is still waited for: its disk holds the data.
        state.expire_silent(&rules, at(100));
        assert_eq!(state.purge_waiting_for(&id), vec![workers[1].0.clone()]);
        let (second, credential) = &workers[1];
        state.heartbeat(second, credential, done, at(101)).unwrap();
        assert!(state.purge_waiting_for(&id).is_empty());
        state.finish_purge(&id);
        assert!(state.snapshot(&rules).purges.is_empty());
        // Registered again, a tenant is no longer purged.
        state.order_purge(&id);
        state.put_tenant(acme()).unwrap();
        assert!(state.purges.is_empty());
    }
}
