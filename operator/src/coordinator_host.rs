//! The grids' coordinators, served by the leading operator replica: one
//! [`meniscus_coordinator::Coordinator`] per `MeniscusGrid`, under
//! `/grids/NAMESPACE/NAME/` on the operator's coordinator port, behind the chart's Service
//! (only the leader is ready, so only it gets traffic). Its state (workers, credential hashes,
//! tenants, routes) is kept in the Secret `GRID-coordinator-state` (key `state.json`), so the
//! next leader carries on where this one stopped and the workers keep their identities.
//!
//! Tenants and loads go to and from a coordinator by direct calls, not over HTTP.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Path, Request, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use meniscus_coordinator::persist::StateStore;
use meniscus_coordinator::state::{Rules, State};
use meniscus_coordinator::{spawn_expiry, Coordinator, Secrets};
use meniscus_metrics::Registry;
use parking_lot::RwLock;
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

use crate::context::Context;
use crate::crd::grid::MeniscusGrid;
use crate::grid::children::{self, MANAGER};

/// How far a coordinator's counters move when it starts from a saved state (see `ensure`).
const EPOCH: u64 = 1_000;

/// The key of the state in its Secret.
const STATE_KEY: &str = "state.json";

struct Hosted {
    /// The grid it belongs to: a grid deleted and made again under its name is another.
    uid: Option<String>,
    coordinator: Arc<Coordinator>,
    router: Router,
    /// The silence check and the state saver; stopped with the coordinator.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The newest state handed to the saver, and the newest it wrote (generations).
    requested: Arc<AtomicU64>,
    written: watch::Receiver<u64>,
    /// Tells the saver to write now instead of waiting for the changes to settle.
    hurry: Arc<Notify>,
}

impl Drop for Hosted {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Default)]
pub struct Coordinators {
    grids: RwLock<HashMap<String, Hosted>>,
    /// Held while a coordinator starts: the grid and Tenant controllers both start them, and
    /// two starts at once would build two (two savers, the counters moved twice).
    starting: tokio::sync::Mutex<()>,
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The Secret holding a grid's coordinator state.
pub fn state_secret_name(grid: &MeniscusGrid) -> String {
    format!("{}-coordinator-state", children::grid_name(grid))
}

impl Coordinators {
    /// The running coordinator of a grid, if this replica hosts it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Coordinator>> {
        let grids = self.grids.read();
        grids
            .get(&key(namespace, name))
            .map(|hosted| hosted.coordinator.clone())
    }

    /// The grid's coordinator, started from its saved state if it is not running yet.
    pub async fn ensure(
        &self,
        grid: &MeniscusGrid,
        context: &Context,
    ) -> anyhow::Result<Arc<Coordinator>> {
        let namespace = grid.namespace().unwrap_or_default();
        let _starting = self.starting.lock().await;
        {
            let mut grids = self.grids.write();
            let slot = key(&namespace, &grid.name_any());
            match grids.get(&slot) {
                Some(hosted) if hosted.uid == grid.metadata.uid => {
                    return Ok(hosted.coordinator.clone())
                }
                // A grid of the same name that is gone: its coordinator goes with it.
                Some(_) => {
                    grids.remove(&slot);
                }
                None => {}
            }
        }
        let secrets_api: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
        let secret = |name: String| {
            let api = secrets_api.clone();
            async move {
                api.get_opt(&name)
                    .await?
                    .with_context(|| format!("the Secret {name} is missing"))
            }
        };
        let grid_secrets = secret(children::secrets_name(grid)).await?;
        let read = |key: &str| -> anyhow::Result<String> {
            let bytes = grid_secrets
                .data
                .as_ref()
                .and_then(|data| data.get(key))
                .with_context(|| format!("the grid's Secret has no {key}"))?;
            Ok(String::from_utf8(bytes.0.clone())?.trim().to_string())
        };
        let secrets = Secrets {
            pairing: read("pairing-secret")?,
            admin: read("admin-credential")?,
        };
        let state_name = state_secret_name(grid);
        let mut state: State = match secrets_api.get_opt(&state_name).await? {
            None => State::default(),
            // A state that does not parse is an error, never a fresh start: that would
            // forget every worker (they would all have to pair again) and tenant.
            Some(saved) => match saved.data.as_ref().and_then(|data| data.get(STATE_KEY)) {
                Some(bytes) => serde_json::from_slice(&bytes.0).with_context(|| {
                    format!("the Secret {state_name} does not hold a coordinator state")
                })?,
                None => State::default(),
            },
        };
        // Saves run behind the changes: the last ones before a failover may be lost. Workers
        // take only newer versions, and ids are never reused, so the counters move past
        // anything the previous leader may have handed out unsaved.
        state.route_version += EPOCH;
        state.tenants.version += EPOCH;
        state.next_worker += EPOCH;
        let rules = Rules {
            storage_copies: grid.spec.storage_copies.max(1) as usize,
            ..Rules::default()
        };
        // Saved at once, so that a second failover before any change moves on from here.
        let (saves, saved) = watch::channel(Some((1, serde_json::to_vec(&state)?)));
        let requested = Arc::new(AtomicU64::new(1));
        let (written_sender, written) = watch::channel(0);
        let hurry = Arc::new(Notify::new());
        // The state it starts with is written at once (see above).
        hurry.notify_one();
        let coordinator = Coordinator::with_store(
            state,
            Box::new(SecretStore {
                saves,
                requested: requested.clone(),
            }),
            rules.clone(),
            secrets,
            // Each coordinator's own metrics (one registry per grid: the names repeat).
            &Registry::new(),
        );
        let saver = tokio::spawn(save_loop(
            secrets_api,
            state_secret(grid, &state_name),
            saved,
            written_sender,
            hurry.clone(),
            context.metrics.writes.with(&["Secret"]),
        ));
        let check = (rules.heartbeat_timeout / 3).max(Duration::from_millis(200));
        let hosted = Hosted {
            uid: grid.metadata.uid.clone(),
            router: meniscus_coordinator::http::router(coordinator.clone()),
            coordinator: coordinator.clone(),
            tasks: vec![spawn_expiry(coordinator.clone(), check), saver],
            requested,
            written,
            hurry,
        };
        tracing::info!(namespace, grid = %grid.name_any(), "serving the grid's coordinator");
        let mut grids = self.grids.write();
        // Another reconcile may have started it meanwhile: that one stands.
        let hosted = grids
            .entry(key(&namespace, &grid.name_any()))
            .or_insert(hosted);
        Ok(hosted.coordinator.clone())
    }

    /// Waits (up to `within` in all) until every coordinator's newest state is in its
    /// Secret: for a replica stopping on SIGTERM, so the next leader loses nothing. Not for
    /// one that lost its lease: a new leader may be writing the Secret already.
    pub async fn flush(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let pending: Vec<(String, u64, watch::Receiver<u64>)> = self
            .grids
            .read()
            .iter()
            .map(|(grid, hosted)| {
                hosted.hurry.notify_one();
                let wanted = hosted.requested.load(Ordering::SeqCst);
                (grid.clone(), wanted, hosted.written.clone())
            })
            .collect();
        for (grid, wanted, mut written) in pending {
            let saved = written.wait_for(|written| *written >= wanted);
            if tokio::time::timeout_at(deadline, saved).await.is_err() {
                tracing::warn!(%grid, "the coordinator state was not saved before stopping; the next leader starts from the one before");
            }
        }
    }

    /// Stops serving a grid's coordinator (the grid is gone).
    pub fn stop(&self, namespace: &str, name: &str) {
        self.grids.write().remove(&key(namespace, name));
    }

    /// `/grids/NAMESPACE/NAME/...`: each grid's coordinator API, as workers call it with
    /// `--coordinator http://SERVICE:7400/grids/NAMESPACE/NAME`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(
                "/grids/{namespace}/{name}/{*rest}",
                axum::routing::any(dispatch),
            )
            .with_state(self)
    }
}

async fn dispatch(
    AxumState(hosts): AxumState<Arc<Coordinators>>,
    Path((namespace, name, rest)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let router = {
        let grids = hosts.grids.read();
        grids
            .get(&key(&namespace, &name))
            .map(|hosted| hosted.router.clone())
    };
    let Some(router) = router else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no coordinator for grid {namespace}/{name} here: not the leading operator replica, or no such grid\n"),
        )
            .into_response();
    };
    let (mut parts, body) = request.into_parts();
    let query = parts
        .uri
        .query()
        .map(|query| format!("?{query}"))
        .unwrap_or_default();
    match format!("/{rest}{query}").parse() {
        Ok(uri) => parts.uri = uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    }
    match router.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Hands each saved state to [`save_loop`]; never fails (the Secret is written in the
/// background, the newest state winning). What a failover loses of the last changes: a
/// worker paired just before pairs again; a tenant change is made again by the Tenant
/// controller (and a tenant with no Tenant object is dropped by the grid's reconcile); the
/// counters move on (`EPOCH`).
struct SecretStore {
    /// The newest state to write, with its generation.
    saves: watch::Sender<Option<(u64, Vec<u8>)>>,
    requested: Arc<AtomicU64>,
}

impl StateStore for SecretStore {
    fn save(&self, state: &State) -> io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        // Under the watch's lock, so generations reach the saver in order.
        self.saves.send_modify(|newest| {
            let generation = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
            *newest = Some((generation, bytes));
        });
        Ok(())
    }
}

fn state_secret(grid: &MeniscusGrid, name: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: grid.namespace(),
            labels: Some(children::grid_labels(grid)),
            owner_references: grid.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}

/// A state write waits until the state has not changed for this long (or for
/// [`SAVE_AT_MOST_AFTER`]): each write is the whole state, so 1,000 Tenants applied at once
/// are one write, not one per registration (the bench holds the operator to 3 API writes
/// per tenant, and a tenant costs those 3 on its own: its token Secret, its finalizer, its
/// status).
const SAVE_WHEN_QUIET_FOR: Duration = Duration::from_secs(1);

/// The longest a change waits for a write while changes keep coming. What a failover loses
/// of it is made again (see [`SecretStore`]).
const SAVE_AT_MOST_AFTER: Duration = Duration::from_secs(30);

/// Writes the newest state into the Secret once its changes settle (see
/// [`SAVE_WHEN_QUIET_FOR`]), or at once when `hurry` is notified, retrying until it lands.
async fn save_loop(
    api: Api<Secret>,
    template: Secret,
    mut saved: watch::Receiver<Option<(u64, Vec<u8>)>>,
    written: watch::Sender<u64>,
    hurry: Arc<Notify>,
    writes: meniscus_metrics::Counter,
) {
    let name = template.metadata.name.clone().unwrap_or_default();
    // The state it starts with is written too.
    saved.mark_changed();
    while saved.changed().await.is_ok() {
        let first_change = tokio::time::Instant::now();
        let latest = first_change + SAVE_AT_MOST_AFTER;
        loop {
            let quiet = (tokio::time::Instant::now() + SAVE_WHEN_QUIET_FOR).min(latest);
            tokio::select! {
                changed = saved.changed() => {
                    if changed.is_err() {
                        // The coordinator is gone: nothing more to save.
                        return;
                    }
                }
                () = hurry.notified() => break,
                () = tokio::time::sleep_until(quiet) => break,
            }
        }
        let Some((generation, bytes)) = saved.borrow_and_update().clone() else {
            continue;
        };
        let mut secret = template.clone();
        secret.data = Some([(STATE_KEY.to_string(), ByteString(bytes))].into());
        let mut retry = Duration::from_millis(200);
        loop {
            writes.inc();
            let applied = api
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&secret),
                )
                .await;
            match applied {
                Ok(_) => {
                    written.send_replace(generation);
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, secret = %name, "cannot save the coordinator state; retrying");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(10));
                    // A newer state replaces this one.
                    if saved.has_changed().unwrap_or(false) {
                        break;
                    }
                }
            }
        }
    }
}
