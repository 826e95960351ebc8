//! The broadcaster persona: follows the coordinator (`GET /v1/broadcast`) and serves the
//! routes and tenants to workers (`GET /v1/snapshot`, `GET /v1/updates`), so the
//! coordinator answers a few broadcasters instead of every worker of the grid.
//!
//! It checks each worker's credential against the hashes the coordinator sends with every
//! version (a newly paired worker's comes with the route version its pairing made), so it
//! hands tenant tokens to no one the coordinator would not.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use meniscus_coordinator::http::{worker, Since};
use meniscus_coordinator::state::Snapshot;
use meniscus_metrics::{Counter, Family, Registry};
use serde_json::json;
use tokio::sync::watch;

use super::control::{ControlError, ControlPlane};

/// How long a worker's `GET /v1/updates` waits for a newer version.
const UPDATE_WAIT: Duration = Duration::from_secs(30);

pub struct Broadcaster {
    latest: watch::Receiver<Option<Snapshot>>,
    served: Family<Counter>,
}

impl Broadcaster {
    /// Starts following the coordinator through `control` (already paired, or pairing as
    /// it goes); the broadcaster serves nothing until it has a first broadcast.
    pub fn start(control: Arc<ControlPlane>, registry: &Registry) -> Arc<Broadcaster> {
        let (sender, latest) = watch::channel(None::<Snapshot>);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let since = sender
                    .borrow()
                    .as_ref()
                    .map(|b| (b.routes.version, b.tenants.version))
                    .unwrap_or((0, 0));
                let Some(identity) = control.saved_identity() else {
                    tokio::time::sleep(backoff).await;
                    continue;
                };
                match control.follow_broadcast(&identity, since).await {
                    Ok(broadcast) => {
                        backoff = Duration::from_millis(200);
                        sender.send_replace(Some(broadcast));
                    }
                    Err(ControlError::Refused(reason)) => {
                        tracing::warn!(%reason, "the coordinator refused the broadcaster; pairing again");
                        if let Err(error) = control.pair().await {
                            tracing::warn!(%error, "cannot pair");
                        }
                        tokio::time::sleep(backoff).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, retry_in = ?backoff, "cannot follow the coordinator; serving the last version");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        Arc::new(Broadcaster {
            latest,
            served: registry.counters(
                "meniscus_broadcaster_answers_total",
                "Snapshots and updates served to workers, and refusals.",
                &["outcome"],
            ),
        })
    }

    pub fn router(self: Arc<Broadcaster>) -> Router {
        Router::new()
            .route("/v1/snapshot", get(snapshot))
            .route("/v1/updates", get(updates))
            .with_state(self)
    }

    /// `read` of the latest broadcast if the caller is a worker it knows; the refusal
    /// otherwise. Checked on the borrowed broadcast, so nothing is copied but what `read` takes
    /// (not every worker's hash with each answer).
    fn answer<T>(
        &self,
        headers: &HeaderMap,
        read: impl FnOnce(&Snapshot) -> T,
    ) -> Result<T, Refusal> {
        let (id, presented) = worker(headers);
        let latest = self.latest.borrow();
        let Some(broadcast) = latest.as_ref() else {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "no routes from the coordinator yet",
            ));
        };
        if !broadcast.knows(&id, presented) {
            self.served.inc(&["refused"]);
            return Err((
                StatusCode::UNAUTHORIZED,
                "unknown worker or wrong worker credential",
            ));
        }
        Ok(read(broadcast))
    }
}

/// Why a worker gets no snapshot.
type Refusal = (StatusCode, &'static str);

fn refuse((status, message): Refusal) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

async fn snapshot(State(broadcaster): State<Arc<Broadcaster>>, headers: HeaderMap) -> Response {
    match broadcaster.answer(&headers, |broadcast| broadcast.clone()) {
        Ok(snapshot) => {
            broadcaster.served.inc(&["snapshot"]);
            Json(snapshot).into_response()
        }
        Err(refused) => refuse(refused),
    }
}

async fn updates(
    State(broadcaster): State<Arc<Broadcaster>>,
    headers: HeaderMap,
    Query(since): Query<Since>,
) -> Response {
    if let Err(refused) = broadcaster.answer(&headers, |_| ()) {
        return refuse(refused);
    }
    let mut latest = broadcaster.latest.clone();
    let newer = |broadcast: &Option<Snapshot>| {
        broadcast
            .as_ref()
            .is_some_and(|b| b.routes.version > since.route || b.tenants.version > since.tenants)
    };
    let _ = tokio::time::timeout(UPDATE_WAIT, latest.wait_for(newer)).await;
    match broadcaster.answer(&headers, |broadcast| broadcast.clone()) {
        Ok(snapshot) => {
            broadcaster.served.inc(&["update"]);
            Json(snapshot).into_response()
        }
        Err(refused) => refuse(refused),
    }
}
