//! The HTTP surface of a worker: one router for every HTTP source (publish), the tenant read
//! API, and the operational endpoints every persona serves (`/metrics`, `/healthz`,
//! `/readyz`), served with connection limits and timeouts ([`server`]); the operators' own
//! listener ([`ops`]). Status codes are chosen here and in [`error`] only.
//!
//! `/metrics` on this listener, which tenants reach, leaves out every series labelled with a
//! tenant (it would list the tenants and their volumes); the ops listener has them all.

pub mod error;
pub mod ops;
pub mod server;
mod unread_body;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use meniscus_grid::tenant::{AuthError, Tenant};
use meniscus_grid::Transport;
use meniscus_metrics::{Exposure, Registry};
use meniscus_store::query::QueryEngine;
use meniscus_store::Store;

use crate::correlator::sources::{elastic_bulk, http_publish, loki_push, otlp_http};
use crate::correlator::Correlator;
use crate::telemetry::HttpMetrics;
use crate::tenant_api;
use crate::tenant_api::loki;
use error::ApiError;

pub struct AppState {
    pub correlator: Arc<Correlator>,
    /// The store and its queries: in standalone and on grid workers with the storage
    /// persona; `None` on a grid correlator, which serves ingest routes only.
    pub store: Option<Arc<Store>>,
    /// The long-term archive, when it is on.
    pub archive: Option<Arc<meniscus_store::archive::Archive>>,
    pub queries: Option<QueryEngine>,
    pub registry: Registry,
    pub http_metrics: HttpMetrics,
    pub connection_limits: crate::connections::ConnectionLimits,
    pub ready: AtomicBool,
    /// Open Loki tails per tenant (tenant_api::loki::tail caps them).
    pub loki_tails: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
}

impl AppState {
    pub fn store(&self) -> Result<&Arc<Store>, ApiError> {
        self.store.as_ref().ok_or_else(no_storage)
    }

    pub fn queries(&self) -> Result<&QueryEngine, ApiError> {
        self.queries.as_ref().ok_or_else(no_storage)
    }
}

fn no_storage() -> ApiError {
    ApiError::not_found(
        "no_storage_here",
        "this worker has no storage persona: query the grid's storage workers",
    )
}

/// Every route: ingest, the tenant read API and the operational endpoints.
pub fn router(state: Arc<AppState>) -> Router {
    with_operations(ingest_routes().merge(read_routes()), state)
}

/// A grid correlator's routes: ingest and the operational endpoints, no reads.
pub fn ingest_router(state: Arc<AppState>) -> Router {
    with_operations(ingest_routes(), state)
}

/// The tenant read API alone, without ingest or operational routes: what a grid storage
/// worker serves on its grid address for the tenant-API persona to fan out to.
pub fn read_router(state: Arc<AppState>) -> Router {
    read_routes().with_state(state)
}

/// `/metrics`, `/healthz`, `/readyz` and the 404 for everything else: for a router whose
/// other routes have a state of their own (the grid's tenant-API persona).
pub fn operations_router(state: Arc<AppState>) -> Router {
    with_operations(Router::new(), state)
}

fn ingest_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/v1/tenant/{tenant_id}/publish",
            post(http_publish::publish),
        )
        // Agent protocols: the tenant comes from the credentials (X-Scope-OrgID, Basic,
        // ApiKey), see correlator::sources::agent.
        .route("/loki/api/v1/push", post(loki_push::push))
        .route("/v1/logs", post(otlp_http::export))
        .route("/", get(elastic_bulk::info))
        // The Elasticsearch clients send PUT, Beats and Logstash POST.
        .route("/_bulk", post(elastic_bulk::bulk).put(elastic_bulk::bulk))
        .route(
            "/{index}/_bulk",
            post(elastic_bulk::bulk_into).put(elastic_bulk::bulk_into),
        )
}

fn read_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/v1/tenant/{tenant_id}/jobs/{job_id}",
            get(tenant_api::job_status),
        )
        .route("/v1/tenant/{tenant_id}/events", get(tenant_api::search))
        .route("/v1/tenant/{tenant_id}/sql", post(tenant_api::sql))
        .route("/v1/tenant/{tenant_id}/metrics", get(tenant_api::metrics))
        // The Loki-compatible query API (Grafana's Loki data source); tenant as for agents.
        .route(
            "/loki/api/v1/query_range",
            get(loki::query_range).post(loki::query_range),
        )
        .route("/loki/api/v1/query", get(loki::query).post(loki::query))
        .route("/loki/api/v1/labels", get(loki::labels).post(loki::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(loki::label_values).post(loki::label_values),
        )
        .route(
            "/loki/api/v1/series",
            get(loki::series_route).post(loki::series_route),
        )
        .route("/loki/api/v1/tail", get(loki::tail::tail))
}

fn with_operations(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    routes
        .route("/metrics", get(prometheus))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            ApiError::not_found(
                "not_found",
                "no such route; see the API reference in the README",
            )
        })
        .layer(axum::middleware::from_fn(unread_body::close_if_body_unread))
        .with_state(state)
}

/// The token from `MESSAGE-TOKEN` (the original Meniscus header) or `Authorization: Bearer`.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(token) = headers
        .get("message-token")
        .and_then(|value| value.to_str().ok())
    {
        return Some(token.trim());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than the limit of {limit} bytes (limits.maxHttpBodyBytes); split it into smaller requests")]
    TooLarge { limit: usize },
    #[error("the body did not arrive within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the body could not be read: {0}")]
    Read(String),
}

/// Reads a request body once its headers have passed the token check: at most `limit` bytes,
/// within the body timeout. A declared length over the limit is refused before any of it is
/// read (16 MB bodies were read in full before the token was looked at: 40 of them held ~1 GB
/// for strangers).
pub async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<bytes::Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|declared| declared > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let timeout = state.connection_limits.body_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(BodyError::Timeout(timeout)),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            let text = error.to_string();
            if text.to_ascii_lowercase().contains("length limit") {
                Err(BodyError::TooLarge { limit })
            } else {
                Err(BodyError::Read(text))
            }
        }
    }
}

/// A tenant route's credentials were refused.
#[derive(Debug, thiserror::Error)]
#[error("tenant {tenant:?}: {error}")]
pub struct Unauthorized {
    pub tenant: String,
    pub error: AuthError,
}

/// Checks the tenant's token for any tenant route, through the accept path (counted).
pub fn authorize(
    state: &AppState,
    tenant_id: &str,
    headers: &HeaderMap,
) -> Result<Arc<Tenant>, Unauthorized> {
    let accept = &state.correlator.accept;
    let registry = accept.registry();
    accept
        .authenticate(
            &registry,
            tenant_id,
            presented_token(headers),
            Transport::Http,
            Utc::now(),
        )
        .cloned()
        .map_err(|error| Unauthorized {
            tenant: tenant_id.to_string(),
            error,
        })
}

async fn prometheus(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.registry.render(Exposure::WithoutTenants),
    )
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    readiness(&state)
}

/// 503 while starting and while the store cannot take durable writes (with the reason).
/// Failing archive uploads are reported but keep the instance ready: ingest and queries work,
/// and the data stays in the hot store until the uploads do.
pub fn readiness(state: &AppState) -> (StatusCode, String) {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string());
    }
    let archive = state
        .archive
        .as_ref()
        .and_then(|archive| archive.problem())
        .map(|problem| format!("archive: {problem}\n"))
        .unwrap_or_default();
    match state.store.as_ref().and_then(|store| store.unhealthy()) {
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n{archive}"),
        ),
        None => (StatusCode::OK, format!("ready\n{archive}")),
    }
}
