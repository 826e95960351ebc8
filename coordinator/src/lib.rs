//! The Meniscus coordinator: pairs workers, keeps the worker and tenant registries and the
//! routes, takes heartbeats and down reports, and tells whoever listens (broadcasters) when
//! the routes or the tenants change. No Kubernetes and no store here: standalone embeds it,
//! `meniscus worker --persona coordinator` serves it, and the operator will host it.
//!
//! - [`state`]: the rules, as pure functions of the state and the time;
//! - [`persist`]: the state file a standalone coordinator restarts from;
//! - [`http`]: the API workers and administrators call;
//! - [`credential`]: worker credentials and secret comparison.
#![forbid(unsafe_code)]

pub mod credential;
pub mod http;
pub mod persist;
pub mod state;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use meniscus_grid::routes::{Persona, WorkerId, WorkerStatus};
use meniscus_grid::tenant::{TenantId, TenantSpec};
use meniscus_metrics::{Counter, Family, Gauge, Registry};
use parking_lot::Mutex;
use tokio::sync::watch;

use persist::{StateFile, StateStore};
use state::{Load, PairRequest, Paired, Refused, Rules, Snapshot, State, TenantUsage};

/// How often moved tenant counts are saved at most: each save may be an API write (the
/// operator keeps the state in a Secret), and counts lost to a crash are at most this old.
const COUNTS_SAVE_INTERVAL: Duration = Duration::from_secs(30);

/// Who may do what: the grid's pairing secret and the administrators' credential.
#[derive(Clone)]
pub struct Secrets {
    pub pairing: String,
    pub admin: String,
}

pub struct CoordinatorMetrics {
    pub refused: Family<Counter>,
    pub route_version: Gauge,
    pub tenants_version: Gauge,
    pub workers: Family<Gauge>,
}

impl CoordinatorMetrics {
    fn register(registry: &Registry) -> CoordinatorMetrics {
        CoordinatorMetrics {
            refused: registry.counters(
                "meniscus_coordinator_refused_total",
                "Calls refused: a wrong pairing secret, worker credential or admin credential.",
                &["reason"],
            ),
            route_version: registry.gauge(
                "meniscus_coordinator_route_version",
                "Version of the routes the coordinator hands out.",
            ),
            tenants_version: registry.gauge(
                "meniscus_coordinator_tenants_version",
                "Version of the tenant registry the coordinator hands out.",
            ),
            workers: registry.gauges(
                "meniscus_coordinator_workers",
                "Paired workers by status.",
                &["status"],
            ),
        }
    }
}

/// The coordinator service: the state behind a lock, saved after every change, and a
/// watch channel that carries the (route, tenants) versions to subscribers.
pub struct Coordinator {
    state: Mutex<State>,
    file: Box<dyn StateStore>,
    pub rules: Rules,
    secrets: Secrets,
    versions: watch::Sender<(u64, u64)>,
    pub metrics: CoordinatorMetrics,
    counts_saved_at: Mutex<std::time::Instant>,
}

impl Coordinator {
    /// Opens the coordinator whose state lives in `state_file` (created on first use).
    pub fn open(
        state_file: &std::path::Path,
        rules: Rules,
        secrets: Secrets,
        registry: &Registry,
    ) -> io::Result<Arc<Coordinator>> {
        let file = StateFile::new(state_file);
        let state = file.load()?;
        Ok(Coordinator::with_store(
            state,
            Box::new(file),
            rules,
            secrets,
            registry,
        ))
    }

    /// A coordinator starting from `state` (as last saved), saving into `store`.
    pub fn with_store(
        mut state: State,
        store: Box<dyn StateStore>,
        rules: Rules,
        secrets: Secrets,
        registry: &Registry,
    ) -> Arc<Coordinator> {
        state.restarted(Utc::now());
        let (versions, _) = watch::channel((state.route_version, state.tenants.version));
        let coordinator = Coordinator {
            state: Mutex::new(state),
            file: store,
            rules,
            secrets,
            versions,
            metrics: CoordinatorMetrics::register(registry),
            counts_saved_at: Mutex::new(std::time::Instant::now()),
        };
        coordinator.published(&coordinator.state.lock());
        Arc::new(coordinator)
    }

    /// Runs `change` on a copy of the state; when it succeeds the copy is saved, then takes
    /// the state's place and subscribers are told. A change that cannot be saved is not made.
    /// For the rare calls (pairing, tenant edits).
    fn change<T>(&self, change: impl FnOnce(&mut State) -> Result<T, Refused>) -> Result<T, Error> {
        let mut state = self.state.lock();
        let mut next = state.clone();
        let result = change(&mut next);
        if let Err(refused) = &result {
            self.count_refusal(refused);
        }
        let value = result?;
        if versions(&next) != versions(&state) {
            next.counts_unsaved = false;
            self.file.save(&next)?;
        }
        *state = next;
        self.published(&state);
        Ok(value)
    }

    /// Runs `change` in place: for the frequent calls (heartbeats, down reports, the silence
    /// check), which mostly touch what is not saved (times, loads). When they move the routes,
    /// the state is saved; if that fails the change stands (it is about the present: who is
    /// reachable) and is saved with the next one.
    fn touch<T>(&self, change: impl FnOnce(&mut State) -> Result<T, Refused>) -> Result<T, Error> {
        let mut state = self.state.lock();
        let before = versions(&state);
        let result = change(&mut state);
        if let Err(refused) = &result {
            self.count_refusal(refused);
        }
        let value = result?;
        if versions(&state) != before {
            state.counts_unsaved = false;
            if let Err(error) = self.file.save(&state) {
                state.counts_unsaved = true;
                tracing::error!(%error, "cannot save the coordinator state; the routes changed in memory");
            }
            self.published(&state);
        }
        Ok(value)
    }

    fn published(&self, state: &State) {
        let versions = (state.route_version, state.tenants.version);
        self.versions.send_if_modified(|current| {
            let changed = *current != versions;
            *current = versions;
            changed
        });
        self.metrics.route_version.set(state.route_version);
        self.metrics.tenants_version.set(state.tenants.version);
        let online = state
            .workers
            .iter()
            .filter(|worker| worker.status == WorkerStatus::Online)
            .count() as u64;
        self.metrics.workers.set(&["online"], online);
        self.metrics
            .workers
            .set(&["offline"], state.workers.len() as u64 - online);
    }

    fn count_refusal(&self, refused: &Refused) {
        let reason = match refused {
            Refused::PairingSecret => "pairing_secret",
            Refused::Credential => "worker_credential",
            _ => return,
        };
        self.metrics.refused.inc(&[reason]);
        tracing::warn!(%refused, "coordinator call refused");
    }

    pub fn pair(&self, secret: &str, request: PairRequest) -> Result<Paired, Error> {
        let secret_ok = credential::secret_matches(&self.secrets.pairing, secret);
        let rules = self.rules.clone();
        self.change(|state| state.pair(secret_ok, request, &rules, Utc::now()))
    }

    /// Returns the current (route, tenants) versions, so the worker knows whether to fetch.
    pub fn heartbeat(
        &self,
        id: &WorkerId,
        credential: &str,
        load: Load,
    ) -> Result<(u64, u64), Error> {
        self.touch(|state| {
            state.heartbeat(id, credential, load, Utc::now())?;
            Ok((state.route_version, state.tenants.version))
        })
    }

    pub fn report_down(
        &self,
        reporter: &WorkerId,
        credential: &str,
        target: &WorkerId,
    ) -> Result<bool, Error> {
        let rules = self.rules.clone();
        self.touch(|state| state.report_down(reporter, credential, target, &rules, Utc::now()))
    }

    /// The snapshot, for a worker that presents its credential.
    pub fn snapshot_for(&self, id: &WorkerId, credential: &str) -> Result<Snapshot, Error> {
        let state = self.state.lock();
        match state.authenticate(id, credential) {
            Ok(_) => Ok(state.snapshot(&self.rules)),
            Err(refused) => {
                self.count_refusal(&refused);
                Err(refused.into())
            }
        }
    }

    /// The snapshot, for a worker with the broadcaster persona that presents its credential
    /// (`/v1/broadcast`, the broadcasters' long-poll).
    pub fn broadcast_for(&self, id: &WorkerId, credential: &str) -> Result<Snapshot, Error> {
        let state = self.state.lock();
        let worker = state
            .authenticate(id, credential)
            .inspect_err(|refused| self.count_refusal(refused))?;
        if !worker.personas.contains(&Persona::Broadcaster) {
            self.metrics.refused.inc(&["not_a_broadcaster"]);
            return Err(Refused::Credential.into());
        }
        Ok(state.snapshot(&self.rules))
    }

    pub fn snapshot(&self) -> Snapshot {
        self.state.lock().snapshot(&self.rules)
    }

    /// Waits until the routes or the tenants are newer than `since` (route, tenants), or
    /// `timeout` passes; returns the versions then.
    pub async fn wait_newer(&self, since: (u64, u64), timeout: Duration) -> (u64, u64) {
        let mut receiver = self.versions.subscribe();
        let newer = |versions: &(u64, u64)| versions.0 > since.0 || versions.1 > since.1;
        let _ = tokio::time::timeout(timeout, receiver.wait_for(newer)).await;
        let versions = *receiver.borrow();
        versions
    }

    /// Takes silent workers out of the routes, and saves tenant counts that moved (at most
    /// every 30 s); call it every few seconds.
    pub fn expire_silent(&self, now: DateTime<Utc>) -> Result<bool, Error> {
        let rules = self.rules.clone();
        let changed = self.touch(|state| Ok(state.expire_silent(&rules, now)))?;
        let mut saved_at = self.counts_saved_at.lock();
        if saved_at.elapsed() >= COUNTS_SAVE_INTERVAL {
            let mut state = self.state.lock();
            if state.counts_unsaved {
                self.file.save(&state)?;
                state.counts_unsaved = false;
                *saved_at = std::time::Instant::now();
            }
        }
        Ok(changed)
    }

    /// Orders the storage workers to delete a tenant's data; see [`State::order_purge`].
    pub fn order_purge(&self, id: &TenantId) -> Result<(), Error> {
        self.change(|state| {
            state.order_purge(id);
            Ok(())
        })
    }

    /// The storage workers still holding a purged tenant's data (empty: done).
    pub fn purge_waiting_for(&self, id: &TenantId) -> Vec<WorkerId> {
        self.state.lock().purge_waiting_for(id)
    }

    pub fn finish_purge(&self, id: &TenantId) -> Result<(), Error> {
        self.change(|state| {
            state.finish_purge(id);
            Ok(())
        })
    }

    /// A tenant's events, bytes stored and last event time over the grid.
    pub fn usage(&self, id: &TenantId) -> TenantUsage {
        self.state.lock().usage(id)
    }

    pub fn admin_allowed(&self, presented: &str) -> bool {
        let allowed = credential::secret_matches(&self.secrets.admin, presented);
        if !allowed {
            self.metrics.refused.inc(&["admin_credential"]);
        }
        allowed
    }

    pub fn put_tenant(&self, spec: TenantSpec) -> Result<(), Error> {
        self.change(|state| state.put_tenant(spec))
    }

    pub fn remove_worker(&self, id: &WorkerId) -> Result<(), Error> {
        self.change(|state| state.remove_worker(id))
    }

    /// See [`State::set_draining`].
    pub fn set_draining(&self, id: &WorkerId, draining: bool) -> Result<bool, Error> {
        self.change(|state| state.set_draining(id, draining))
    }

    pub fn delete_tenant(&self, id: &TenantId) -> Result<(), Error> {
        self.change(|state| state.delete_tenant(id))
    }

    pub fn rotate_token(&self, id: &TenantId, grace: Duration) -> Result<String, Error> {
        self.change(|state| state.rotate_token(id, grace, Utc::now()))
    }

    pub fn with_state<T>(&self, read: impl FnOnce(&State) -> T) -> T {
        read(&self.state.lock())
    }
}

/// Runs the silence check every `interval` until the process ends.
pub fn spawn_expiry(
    coordinator: Arc<Coordinator>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            if let Err(error) = coordinator.expire_silent(Utc::now()) {
                tracing::error!(%error, "cannot save the coordinator state");
            }
        }
    })
}

/// What saved state depends on: every saved change moves one of these.
fn versions(state: &State) -> (u64, u64, u64) {
    (
        state.route_version,
        state.tenants.version,
        state.next_worker,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The change could not be saved; it was not made.
    #[error("cannot save the coordinator state: {0}")]
    Save(#[from] io::Error),
}
