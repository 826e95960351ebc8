//! The coordinator's HTTP API.
//!
//! Workers (header `X-Meniscus-Worker: ID`, `Authorization: Bearer CREDENTIAL`):
//! - `POST /v1/pair` `{"secret", "personas", "advertise", "name", "capacity", "previous"}` -> the
//!   worker's id, its credential (only here) and the snapshot; 401 with a wrong secret;
//! - `POST /v1/heartbeat` (a [`Load`]) -> `{"routeVersion", "tenantsVersion"}`;
//! - `POST /v1/down` `{"target": ID}` -> `{"routesChanged"}`;
//! - `GET /v1/snapshot` -> routes, tenants and every worker's credential hash (how a worker
//!   tells grid peers from strangers on its links, and broadcasters the workers they serve);
//! - `GET /v1/updates?route=V&tenants=V` -> waits (up to 30 s) for a newer version, then the
//!   snapshot;
//! - `GET /v1/broadcast?route=V&tenants=V` -> the same, for broadcasters only: the one
//!   long-poll the coordinator serves per broadcaster, where workers long-poll broadcasters.
//!
//! Administrators (`Authorization: Bearer ADMIN-CREDENTIAL`): `GET /v1/admin/workers`,
//! `GET /v1/admin/tenants`, `PUT` / `DELETE /v1/admin/tenants/{id}` (a tenant spec, as in the
//! config file), `POST /v1/admin/tenants/{id}/rotate-token` `{"graceSeconds"}` -> the new
//! token, `DELETE /v1/admin/workers/{id}` (decommission), `PUT` / `DELETE
//! /v1/admin/workers/{id}/drain` (a storage worker hands its tenants off before it leaves, its
//! heartbeat's `handedOff` says when it is done; or it stays after all), `PUT /v1/admin/purges/{id}` (take
//! the tenant out and order its data deleted), `GET /v1/admin/purges` (each order and the
//! storage workers that have not carried it out yet), `DELETE /v1/admin/purges/{id}`
//! (forget a finished order). Every change reaches the workers through the next snapshot
//! they fetch.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use meniscus_grid::routes::WorkerId;
use meniscus_grid::tenant::{TenantId, TenantSpec};
use serde::Deserialize;
use serde_json::json;

use crate::state::{Load, PairRequest, Refused};
use crate::{Coordinator, Error};

/// How long `GET /v1/updates` waits for a change before it answers with what it has.
const UPDATE_WAIT: Duration = Duration::from_secs(30);

pub fn router(coordinator: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/v1/pair", post(pair))
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/down", post(down))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/updates", get(updates))
        .route("/v1/broadcast", get(broadcast))
        .route("/v1/admin/workers", get(admin_workers))
        .route("/v1/admin/workers/{id}", delete(admin_remove_worker))
        .route(
            "/v1/admin/workers/{id}/drain",
            put(admin_drain_worker).delete(admin_drain_worker),
        )
        .route("/v1/admin/purges", get(admin_purges))
        .route(
            "/v1/admin/purges/{id}",
            put(admin_order_purge).delete(admin_finish_purge),
        )
        .with_state(coordinator.clone())
        .merge(tenant_admin_router(coordinator))
}

/// The administrators' tenant registry alone (`/v1/admin/tenants…`): what standalone serves
/// of the coordinator it embeds.
pub fn tenant_admin_router(coordinator: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/v1/admin/tenants", get(admin_tenants))
        .route(
            "/v1/admin/tenants/{id}",
            put(admin_put_tenant).delete(admin_delete_tenant),
        )
        .route(
            "/v1/admin/tenants/{id}/rotate-token",
            post(admin_rotate_token),
        )
        .with_state(coordinator)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::Refused(Refused::PairingSecret | Refused::Credential) => {
                StatusCode::UNAUTHORIZED
            }
            Error::Refused(Refused::UnknownWorker(_) | Refused::UnknownTenant(_)) => {
                StatusCode::NOT_FOUND
            }
            Error::Refused(Refused::Incomplete | Refused::InvalidTenant(_)) => {
                StatusCode::BAD_REQUEST
            }
            Error::Save(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        error(status, self)
    }
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
}

/// The calling worker's id and credential (`X-Meniscus-Worker`, `Authorization: Bearer`), as
/// every worker-facing API of the grid takes them.
pub fn worker(headers: &HeaderMap) -> (WorkerId, &str) {
    let id = headers
        .get("x-meniscus-worker")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    (WorkerId(id.to_string()), bearer(headers))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairBody {
    secret: String,
    #[serde(flatten)]
    request: PairRequest,
}

async fn pair(State(coordinator): State<Arc<Coordinator>>, Json(body): Json<PairBody>) -> Response {
    match coordinator.pair(&body.secret, body.request) {
        Ok(paired) => Json(paired).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn heartbeat(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Json(load): Json<Load>,
) -> Response {
    let (id, credential) = worker(&headers);
    match coordinator.heartbeat(&id, credential, load) {
        Ok((route, tenants)) => {
            Json(json!({ "routeVersion": route, "tenantsVersion": tenants })).into_response()
        }
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
struct DownBody {
    target: WorkerId,
}

async fn down(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Json(body): Json<DownBody>,
) -> Response {
    let (id, credential) = worker(&headers);
    match coordinator.report_down(&id, credential, &body.target) {
        Ok(changed) => Json(json!({ "routesChanged": changed })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn snapshot(State(coordinator): State<Arc<Coordinator>>, headers: HeaderMap) -> Response {
    let (id, credential) = worker(&headers);
    match coordinator.snapshot_for(&id, credential) {
        Ok(snapshot) => Json(snapshot).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `?route=V&tenants=V`: the versions a follower has; it waits for newer ones.
#[derive(Deserialize)]
pub struct Since {
    #[serde(default)]
    pub route: u64,
    #[serde(default)]
    pub tenants: u64,
}

async fn updates(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Query(since): Query<Since>,
) -> Response {
    let (id, credential) = worker(&headers);
    if let Err(error) = coordinator.snapshot_for(&id, credential) {
        return error.into_response();
    }
    coordinator
        .wait_newer((since.route, since.tenants), UPDATE_WAIT)
        .await;
    snapshot(State(coordinator), headers).await
}

/// Like `/v1/updates`, for broadcasters only, so they can serve workers on the coordinator's
/// behalf.
async fn broadcast(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Query(since): Query<Since>,
) -> Response {
    let (id, credential) = worker(&headers);
    if let Err(error) = coordinator.broadcast_for(&id, credential) {
        return error.into_response();
    }
    coordinator
        .wait_newer((since.route, since.tenants), UPDATE_WAIT)
        .await;
    match coordinator.broadcast_for(&id, credential) {
        Ok(broadcast) => Json(broadcast).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `None` when the caller is an administrator; the refusal otherwise.
fn admin_refusal(coordinator: &Coordinator, headers: &HeaderMap) -> Option<Response> {
    if coordinator.admin_allowed(bearer(headers)) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "wrong or missing admin credential",
        ))
    }
}

async fn admin_workers(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    let workers = coordinator.with_state(|state| {
        state
            .workers
            .iter()
            .map(|worker| {
                json!({
                    "id": worker.id, "name": worker.name, "address": worker.address,
                    "personas": worker.personas, "status": worker.status,
                    "draining": worker.draining, "capacity": worker.capacity, "load": worker.load,
                    "lastHeard": worker.last_heard, "pairedAt": worker.paired_at,
                })
            })
            .collect::<Vec<_>>()
    });
    Json(json!({ "routeVersion": coordinator.snapshot().routes.version, "workers": workers }))
        .into_response()
}

async fn admin_tenants(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    Json(coordinator.snapshot().tenants).into_response()
}

async fn admin_put_tenant(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    // Credentials first: a stranger's body is not even parsed.
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    let spec: TenantSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(parse) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a tenant spec: {parse}"),
            )
        }
    };
    if spec.id.as_str() != id {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the body is tenant {:?}, the path {id:?}", spec.id.as_str()),
        );
    }
    match coordinator.put_tenant(spec) {
        Ok(()) => Json(json!({ "tenantsVersion": coordinator.snapshot().tenants.version }))
            .into_response(),
        Err(error) => error.into_response(),
    }
}

/// Decommissions a worker (see [`State::remove_worker`](crate::state::State::remove_worker)).
async fn admin_remove_worker(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    match coordinator.remove_worker(&WorkerId(id)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

/// `PUT`: hand the worker's tenants off (a storage worker on its way out); `DELETE`: stay.
async fn admin_drain_worker(
    State(coordinator): State<Arc<Coordinator>>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    let draining = method == axum::http::Method::PUT;
    match coordinator.set_draining(&WorkerId(id), draining) {
        Ok(changed) => {
            Json(json!({ "draining": draining, "routesChanged": changed })).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn admin_delete_tenant(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    let Ok(id) = TenantId::parse(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no tenant {id:?}"));
    };
    match coordinator.delete_tenant(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RotateBody {
    #[serde(default = "default_grace")]
    grace_seconds: u64,
}

fn default_grace() -> u64 {
    24 * 3600
}

async fn admin_rotate_token(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<RotateBody>>,
) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    let Ok(id) = TenantId::parse(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no tenant {id:?}"));
    };
    let grace =
        Duration::from_secs(body.map_or_else(default_grace, |Json(body)| body.grace_seconds));
    match coordinator.rotate_token(&id, grace) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn admin_purges(State(coordinator): State<Arc<Coordinator>>, headers: HeaderMap) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    let purges = coordinator.with_state(|state| {
        state
            .purges
            .iter()
            .map(|id| json!({"tenant": id, "waitingFor": state.purge_waiting_for(id)}))
            .collect::<Vec<_>>()
    });
    Json(json!({ "purges": purges })).into_response()
}

async fn admin_order_purge(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    let id = match TenantId::parse(&id) {
        Ok(id) => id,
        Err(invalid) => return error(StatusCode::BAD_REQUEST, invalid),
    };
    match coordinator.order_purge(&id) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "waitingFor": coordinator.purge_waiting_for(&id) })),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

async fn admin_finish_purge(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = admin_refusal(&coordinator, &headers) {
        return refused;
    }
    let id = match TenantId::parse(&id) {
        Ok(id) => id,
        Err(invalid) => return error(StatusCode::BAD_REQUEST, invalid),
    };
    match coordinator.finish_purge(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}
