//! The HTTP surface: tenant API (publish, jobs, search, SQL, metrics) and the operational
//! endpoints every persona serves (`/metrics`, `/healthz`, `/readyz`).

pub mod error;
pub mod tenant;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use meniscus_grid::tenant::{AuthError, Tenant};
use meniscus_grid::Transport;
use serde_json::json;

use crate::correlator::http_publish::{assign_job, decode_body, BodyFormat};
use crate::correlator::Correlator;
use crate::pipeline::{Batch, WhenFull};
use crate::storage::query::QueryEngine;
use crate::storage::Storage;
use error::ApiError;

pub struct AppState {
    pub correlator: Arc<Correlator>,
    pub storage: Arc<Storage>,
    pub queries: QueryEngine,
    pub ready: AtomicBool,
}

pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.correlator.max_http_body_bytes;
    Router::new()
        .route("/v1/tenant/{tenant_id}/publish", post(publish))
        .route(
            "/v1/tenant/{tenant_id}/jobs/{job_id}",
            get(tenant::job_status),
        )
        .route("/v1/tenant/{tenant_id}/events", get(tenant::search))
        .route("/v1/tenant/{tenant_id}/sql", post(tenant::sql))
        .route("/v1/tenant/{tenant_id}/metrics", get(tenant::metrics))
        .route("/metrics", get(prometheus))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            ApiError::not_found(
                "not_found",
                "no such route; see the API reference in the README",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
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

/// Checks the tenant's token for any tenant route. Unknown tenant: 404; missing or wrong
/// token: 401. Every failure is counted.
pub fn authorize(
    state: &AppState,
    tenant_id: &str,
    headers: &HeaderMap,
) -> Result<Arc<Tenant>, ApiError> {
    let registry = state.correlator.registry();
    state
        .correlator
        .authenticate(
            &registry,
            tenant_id,
            presented_token(headers),
            Transport::Http,
            Utc::now(),
        )
        .cloned()
        .map_err(|error| match error {
            AuthError::UnknownTenant => {
                ApiError::not_found("unknown_tenant", format!("no tenant {tenant_id:?}"))
            }
            AuthError::MissingToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send the tenant token in the MESSAGE-TOKEN header or as Authorization: Bearer",
            ),
            AuthError::InvalidToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is not valid for this tenant",
            ),
        })
}

async fn publish(
    State(state): State<Arc<AppState>>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let result = publish_inner(&state, &tenant_id, &headers, &body).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(error) => error.status,
    };
    state
        .correlator
        .metrics
        .http_requests
        .inc(&["publish", status.as_str()]);
    if let Err(error) = &result {
        if error.status != StatusCode::UNAUTHORIZED && error.status != StatusCode::NOT_FOUND {
            state
                .correlator
                .metrics
                .rejected_messages
                .inc(&["http", error.code]);
        }
    }
    result
}

async fn publish_inner(
    state: &AppState,
    tenant_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let tenant = authorize(state, tenant_id, headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok());
    let body = decode_body(encoding, body, state.correlator.max_http_body_bytes)?;
    let format = BodyFormat::from_content_type(content_type, &body)?;
    let mut events = state.correlator.http_events(&tenant, format, &body)?;
    if events.is_empty() {
        return Err(ApiError::bad_request("the body holds no log message"));
    }
    let event_count = events.len() as u64;
    if let Some(limit) = &tenant.ingest_limit {
        if let Err(wait) = limit.try_take(event_count, std::time::Instant::now()) {
            state
                .correlator
                .metrics
                .rate_limited
                .add(&[tenant.id.as_str(), "http"], event_count);
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "tenant {} is over its ingest limit of {} events/s (burst {}); nothing from this request was stored, retry after {seconds} s",
                    tenant.id,
                    limit.events_per_second(),
                    limit.burst()
                ),
            );
            error.retry_after_seconds = Some(seconds);
            return Err(error);
        }
    }
    let job_id = assign_job(&mut events);
    state
        .correlator
        .count_received(&events, Transport::Http, body.len() as u64);
    state
        .correlator
        .next
        .submit(Batch::new(events), WhenFull::Refuse)
        .await
        .inspect_err(|_| {
            state.correlator.metrics.backpressure.inc(&["http"]);
            // Nothing was stored: the request does not count against the limit.
            if let Some(limit) = &tenant.ingest_limit {
                limit.refund(event_count);
            }
        })?;
    Ok(match job_id {
        Some(job_id) => {
            let uri = format!("/v1/tenant/{}/jobs/{job_id}", tenant.id);
            (
                StatusCode::ACCEPTED,
                Json(json!({ "job_id": job_id, "job_status_uri": uri })),
            )
                .into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn prometheus(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.correlator.metrics.render(),
    )
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}
