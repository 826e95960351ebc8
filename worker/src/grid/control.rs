//! A worker's side of the control plane: pairing with the coordinator, heartbeats with its
//! load, and the routes and tenants it runs on.
//!
//! What must hold, whatever the coordinator does:
//! - a worker keeps running on the last routes it had: the snapshot is kept in
//!   `DATA_DIR/grid/snapshot.json`, so even a restart while the coordinator is unreachable
//!   starts from it;
//! - a restarted worker comes back as itself: its id and credential are kept in
//!   `DATA_DIR/grid/identity.json` (mode 0600) and presented when it pairs again;
//! - a coordinator that no longer knows it (its state was lost) answers 401, and the worker
//!   pairs again instead of giving up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meniscus_coordinator::state::{Load, Snapshot};
use meniscus_grid::routes::{Persona, Routes, WorkerId};
use meniscus_metrics::Registry;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

/// Who this worker is to the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub worker_id: WorkerId,
    pub credential: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The coordinator refused: a wrong pairing secret, or it does not know this worker.
    #[error("the coordinator refused: {0}")]
    Refused(String),
    #[error("the coordinator is unreachable: {0}")]
    Unreachable(String),
    #[error("the coordinator answered {status}: {body}")]
    Failed { status: u16, body: String },
    #[error("{0}")]
    Local(#[from] std::io::Error),
}

/// How to reach the coordinator and who to say this worker is.
#[derive(Clone, Debug)]
pub struct ControlOptions {
    /// The coordinator's base URL (`http://coordinator:7400`).
    pub coordinator: String,
    pub pairing_secret: String,
    pub personas: Vec<Persona>,
    pub advertise: String,
    pub name: Option<String>,
    pub capacity: u64,
    pub data_dir: PathBuf,
    pub heartbeat_interval: Duration,
}

pub struct ControlPlane {
    options: ControlOptions,
    client: Client<HttpConnector, Full<Bytes>>,
    /// `DATA_DIR/grid/identity.json` as last read or written: links ask for it with every
    /// batch, which must not cost a file read.
    identity: parking_lot::RwLock<Option<Identity>>,
}

impl ControlPlane {
    pub fn new(options: ControlOptions) -> ControlPlane {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let identity = read_json(&options.data_dir.join("grid").join("identity.json"));
        ControlPlane {
            options,
            client: Client::builder(TokioExecutor::new()).build(connector),
            identity: parking_lot::RwLock::new(identity),
        }
    }

    fn dir(&self) -> PathBuf {
        self.options.data_dir.join("grid")
    }

    /// The identity kept from an earlier pairing, if any.
    pub fn saved_identity(&self) -> Option<Identity> {
        self.identity.read().clone()
    }

    /// The last snapshot this worker had, if any: what it runs on until the coordinator
    /// answers.
    pub fn saved_snapshot(&self) -> Option<Snapshot> {
        read_json(&self.dir().join("snapshot.json"))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        identity: Option<&Identity>,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ControlError> {
        let base = self.options.coordinator.trim_end_matches('/').to_string();
        self.call_at(&base, method, path, identity, body).await
    }

    async fn call_at(
        &self,
        base: &str,
        method: Method,
        path: &str,
        identity: Option<&Identity>,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ControlError> {
        let url = format!("{base}{path}");
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(identity) = identity {
            request = request
                .header("x-meniscus-worker", identity.worker_id.0.as_str())
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", identity.credential),
                );
        }
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| ControlError::Unreachable(format!("{url}: {error}")))?;
        let response = tokio::time::timeout(Duration::from_secs(40), self.client.request(request))
            .await
            .map_err(|_| ControlError::Unreachable(format!("{url}: no answer in 40 s")))?
            .map_err(|error| ControlError::Unreachable(format!("{url}: {error}")))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|error| ControlError::Unreachable(format!("{url}: {error}")))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match status {
            StatusCode::OK => {
                serde_json::from_slice(&bytes).map_err(|error| ControlError::Failed {
                    status: 200,
                    body: format!("not JSON ({error}): {text}"),
                })
            }
            StatusCode::UNAUTHORIZED => Err(ControlError::Refused(text)),
            _ => Err(ControlError::Failed {
                status: status.as_u16(),
                body: text,
            }),
        }
    }

    /// Pairs (as itself again when it has an identity) and saves the identity and snapshot.
    pub async fn pair(&self) -> Result<(Identity, Snapshot), ControlError> {
        let previous = self
            .saved_identity()
            .map(|identity| json!([identity.worker_id, identity.credential]));
        let answer = self
            .call(
                Method::POST,
                "/v1/pair",
                None,
                Some(json!({
                    "secret": self.options.pairing_secret,
                    "personas": self.options.personas,
                    "advertise": self.options.advertise,
                    "name": self.options.name,
                    "capacity": self.options.capacity,
                    "previous": previous,
                })),
            )
            .await?;
        let identity = Identity {
            worker_id: serde_json::from_value(answer["workerId"].clone())
                .map_err(|error| bad_answer(&answer, error))?,
            credential: answer["credential"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let snapshot: Snapshot = serde_json::from_value(answer["snapshot"].clone())
            .map_err(|error| bad_answer(&answer, error))?;
        write_json(&self.dir().join("identity.json"), &identity)?;
        *self.identity.write() = Some(identity.clone());
        write_json(&self.dir().join("snapshot.json"), &snapshot)?;
        tracing::info!(worker = %identity.worker_id, routes = snapshot.routes.version, "paired with the coordinator");
        Ok((identity, snapshot))
    }

    /// One heartbeat; the coordinator's current (route, tenants) versions.
    pub async fn heartbeat(
        &self,
        identity: &Identity,
        load: &Load,
    ) -> Result<(u64, u64), ControlError> {
        let answer = self
            .call(
                Method::POST,
                "/v1/heartbeat",
                Some(identity),
                Some(serde_json::to_value(load).unwrap_or_default()),
            )
            .await?;
        Ok((
            answer["routeVersion"].as_u64().unwrap_or_default(),
            answer["tenantsVersion"].as_u64().unwrap_or_default(),
        ))
    }

    /// The current snapshot, saved before it is returned: from a broadcaster of the routes
    /// this worker has (the coordinator's load should not grow with the grid), from the
    /// coordinator when none answers.
    pub async fn fetch_snapshot(
        &self,
        identity: &Identity,
        routes: Option<&Routes>,
    ) -> Result<Snapshot, ControlError> {
        self.fetch(identity, routes, "/v1/snapshot").await
    }

    /// The first snapshot newer than `since` (route, tenants versions), or the current one
    /// when none comes within the server's wait (30 s): a long poll, from a broadcaster when
    /// one answers, from the coordinator otherwise.
    pub async fn wait_for_update(
        &self,
        identity: &Identity,
        routes: Option<&Routes>,
        since: (u64, u64),
    ) -> Result<Snapshot, ControlError> {
        let path = format!("/v1/updates?route={}&tenants={}", since.0, since.1);
        self.fetch(identity, routes, &path).await
    }

    async fn fetch(
        &self,
        identity: &Identity,
        routes: Option<&Routes>,
        path: &str,
    ) -> Result<Snapshot, ControlError> {
        let mut answer = None;
        for broadcaster in broadcasters_for(routes, &identity.worker_id) {
            let base = format!("http://{broadcaster}");
            match self
                .call_at(&base, Method::GET, path, Some(identity), None)
                .await
            {
                Ok(snapshot) => {
                    answer = Some(snapshot);
                    break;
                }
                Err(error) => tracing::debug!(%broadcaster, %error, "broadcaster did not answer"),
            }
        }
        let answer = match answer {
            Some(answer) => answer,
            None => self.call(Method::GET, path, Some(identity), None).await?,
        };
        let snapshot: Snapshot =
            serde_json::from_value(answer.clone()).map_err(|error| bad_answer(&answer, error))?;
        write_json(&self.dir().join("snapshot.json"), &snapshot)?;
        Ok(snapshot)
    }

    /// Reports `target` unreachable; true when the coordinator took it out of the routes.
    pub async fn report_down(
        &self,
        identity: &Identity,
        target: &WorkerId,
    ) -> Result<bool, ControlError> {
        let answer = self
            .call(
                Method::POST,
                "/v1/down",
                Some(identity),
                Some(json!({ "target": target })),
            )
            .await?;
        Ok(answer["routesChanged"].as_bool().unwrap_or_default())
    }

    /// For a broadcaster: the coordinator's next broadcast after `since` (route, tenants);
    /// waits up to 30 s for one.
    pub async fn follow_broadcast(
        &self,
        identity: &Identity,
        since: (u64, u64),
    ) -> Result<Snapshot, ControlError> {
        let path = format!("/v1/broadcast?route={}&tenants={}", since.0, since.1);
        let answer = self.call(Method::GET, &path, Some(identity), None).await?;
        serde_json::from_value(answer.clone()).map_err(|error| bad_answer(&answer, error))
    }

    /// Long-polls for updates for as long as the process runs, so a change (a worker paired
    /// or taken out, a tenant edited) reaches this worker within a round trip rather than at
    /// its next heartbeat. The heartbeat loop still compares versions, and catches up when
    /// this follower cannot.
    async fn follow_updates(self: Arc<Self>, sender: Arc<watch::Sender<Option<Snapshot>>>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let Some(identity) = self.saved_identity() else {
                tokio::time::sleep(backoff).await;
                continue;
            };
            let (since, routes) = {
                let current = sender.borrow();
                let current = current.as_ref();
                (
                    current
                        .map(|snapshot| (snapshot.routes.version, snapshot.tenants.version))
                        .unwrap_or((0, 0)),
                    current.map(|snapshot| snapshot.routes.clone()),
                )
            };
            match self
                .wait_for_update(&identity, routes.as_ref(), since)
                .await
            {
                Ok(snapshot) => {
                    backoff = Duration::from_millis(200);
                    offer(&sender, snapshot);
                }
                Err(error) => {
                    tracing::debug!(%error, retry_in = ?backoff, "cannot follow updates");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Runs the control loop: pairs (retrying with backoff while the coordinator is away),
    /// heartbeats every interval with `load()`, fetches a snapshot whenever the coordinator
    /// has a newer version, and pairs again when it is no longer known. The receiver holds
    /// the snapshot to run on: the saved one at first, if there is one.
    pub fn spawn(
        self: Arc<Self>,
        registry: &Registry,
        load: impl Fn() -> Load + Send + 'static,
    ) -> (
        watch::Receiver<Option<Snapshot>>,
        tokio::task::JoinHandle<()>,
    ) {
        let (sender, receiver) = watch::channel(self.saved_snapshot());
        let sender = Arc::new(sender);
        tokio::spawn(self.clone().follow_updates(sender.clone()));
        show_versions(receiver.clone(), registry);
        let task = tokio::spawn(async move {
            let mut identity: Option<Identity> = None;
            let mut backoff = Duration::from_millis(200);
            loop {
                let current = match &identity {
                    Some(identity) => identity.clone(),
                    None => match self.pair().await {
                        Ok((paired, snapshot)) => {
                            sender.send_replace(Some(snapshot));
                            identity = Some(paired.clone());
                            backoff = Duration::from_millis(200);
                            paired
                        }
                        Err(error) => {
                            tracing::warn!(%error, retry_in = ?backoff, "cannot pair; running on the last routes");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                            continue;
                        }
                    },
                };
                match self.heartbeat(&current, &load()).await {
                    Ok((route, tenants)) => {
                        let have = sender
                            .borrow()
                            .as_ref()
                            .map(|snapshot| (snapshot.routes.version, snapshot.tenants.version));
                        if have != Some((route, tenants)) {
                            let routes = sender
                                .borrow()
                                .as_ref()
                                .map(|snapshot| snapshot.routes.clone());
                            match self.fetch_snapshot(&current, routes.as_ref()).await {
                                Ok(snapshot) => offer(&sender, snapshot),
                                Err(error) => tracing::warn!(%error, "cannot fetch the routes"),
                            }
                        }
                    }
                    Err(ControlError::Refused(reason)) => {
                        tracing::warn!(%reason, "the coordinator does not know this worker: pairing again");
                        identity = None;
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "heartbeat failed; running on the last routes")
                    }
                }
                tokio::time::sleep(self.options.heartbeat_interval).await;
            }
        });
        (receiver, task)
    }
}

/// Takes `snapshot` unless the one in force is as new or newer in routes or tenants: the
/// heartbeat loop and the update follower both fetch, and a broadcaster may lag behind.
fn offer(sender: &watch::Sender<Option<Snapshot>>, snapshot: Snapshot) {
    sender.send_if_modified(|current| {
        let newer = current.as_ref().is_none_or(|current| {
            let (route, tenants) = (snapshot.routes.version, snapshot.tenants.version);
            let (have_route, have_tenants) = (current.routes.version, current.tenants.version);
            route >= have_route
                && tenants >= have_tenants
                && (route, tenants) != (have_route, have_tenants)
        });
        if newer {
            *current = Some(snapshot);
        }
        newer
    });
}

/// Keeps the route and tenant versions this worker runs on in its metrics, so an operator
/// (and the grid tests) can see every worker converge on the coordinator's versions.
fn show_versions(mut snapshots: watch::Receiver<Option<Snapshot>>, registry: &Registry) {
    let route = registry.gauge(
        "meniscus_grid_route_version",
        "Version of the routes this worker runs on (0 before it has any).",
    );
    let tenants = registry.gauge(
        "meniscus_grid_tenants_version",
        "Version of the tenant registry this worker runs on (0 before it has any).",
    );
    tokio::spawn(async move {
        loop {
            if let Some(snapshot) = snapshots.borrow_and_update().as_ref() {
                route.set(snapshot.routes.version);
                tenants.set(snapshot.tenants.version);
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    });
}

/// The online broadcasters of `routes`, in the order this worker tries them: its own
/// rendezvous ranking, so the workers of a grid spread over its broadcasters.
fn broadcasters_for(routes: Option<&Routes>, worker: &WorkerId) -> Vec<String> {
    routes.map_or_else(Vec::new, |routes| {
        routes
            .ranked(Persona::Broadcaster, &worker.0)
            .into_iter()
            .map(|broadcaster| broadcaster.address.clone())
            .collect()
    })
}

fn bad_answer(answer: &serde_json::Value, error: serde_json::Error) -> ControlError {
    ControlError::Failed {
        status: 200,
        body: format!("unexpected answer ({error}): {answer}"),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "ignoring an unreadable grid state file");
            None
        }
    }
}

/// Replaces a small state file atomically, fsynced, readable only by this user.
fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    meniscus_coordinator::persist::replace_private_file(path, &bytes)
}
