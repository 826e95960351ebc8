//! HTTP publish, the original Meniscus ingest API: `POST /v1/tenant/{tenant_id}/publish`.
//!
//! The body becomes events ([`body`]) and goes through the accept path as one batch: taken
//! whole or not at all. A batch with a durable event is answered 202 with a `job_id` once it
//! is on disk; others 204 once queued.

pub mod body;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meniscus_grid::Transport;
use meniscus_record::WhenFull;
use serde_json::json;

use crate::correlator::{AcceptError, Admission, WhenLimited};
use crate::http::{authorize, read_body, AppState, BodyError, Unauthorized};
use body::{decode_body, BodyFormat};

/// Why a publish was refused. Nothing from the request was stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Auth(#[from] Unauthorized),
    #[error("{0}")]
    BadBody(String),
    #[error("the body (after decompression) is larger than {limit} bytes; split it into smaller requests")]
    TooLarge { limit: usize },
    #[error("content type {0:?} is not accepted: use application/json, application/x-ndjson or text/plain (syslog lines)")]
    UnsupportedMediaType(String),
    #[error("content encoding {0:?} is not accepted: use gzip or zstd")]
    UnsupportedEncoding(String),
    #[error("line {line}: refused ({reason}); nothing from this request was stored")]
    LineRefused { line: usize, reason: &'static str },
    #[error(transparent)]
    Accept(#[from] AcceptError),
    #[error(transparent)]
    Body(#[from] BodyError),
}

pub async fn publish(
    State(state): State<Arc<AppState>>,
    Path(tenant_id): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let result = publish_inner(&state, &tenant_id, &parts.headers, body).await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            let error = crate::http::error::ApiError::from(error);
            if error.status != StatusCode::UNAUTHORIZED && error.status != StatusCode::NOT_FOUND {
                state
                    .correlator
                    .accept
                    .metrics
                    .rejected_messages
                    .inc(&["http", error.code]);
            }
            error.into_response()
        }
    };
    state
        .http_metrics
        .requests
        .inc(&["publish", response.status().as_str()]);
    response
}

async fn publish_inner(
    state: &AppState,
    tenant_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, PublishError> {
    // The token first: a stranger's body is never read.
    let tenant = authorize(state, tenant_id, headers)?;
    let body = read_body(state, headers, body, state.correlator.max_http_body_bytes).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok());
    let correlator = &state.correlator;
    let body = decode_body(encoding, &body, correlator.max_http_body_bytes)?;
    let format = BodyFormat::from_content_type(content_type, &body)?;
    let (batch, refused) = correlator.http_batch(&tenant, format, &body)?;
    let admission = Admission {
        transport: Transport::Http,
        bytes: body.len() as u64,
        when_limited: Some(WhenLimited::Refuse),
        when_full: WhenFull::Refuse,
        job_ids: true,
    };
    let admitted = correlator.accept.admit(batch, admission).await?;
    admitted.ack.await.map_err(AcceptError::from)?;
    // Lines refused on their own (a syslog body's line naming another tenant) are listed;
    // they cost the other lines nothing.
    let refused: Vec<serde_json::Value> = refused
        .into_iter()
        .map(|(line, reason)| json!({ "line": line, "reason": reason }))
        .collect();
    Ok(match admitted.job_id {
        Some(job_id) => {
            let uri = format!("/v1/tenant/{}/jobs/{job_id}", tenant.id);
            let mut answer = json!({ "job_id": job_id, "job_status_uri": uri });
            if !refused.is_empty() {
                answer["refused"] = json!(refused);
            }
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
        None if refused.is_empty() => StatusCode::NO_CONTENT.into_response(),
        None => (StatusCode::OK, Json(json!({ "refused": refused }))).into_response(),
    })
}
