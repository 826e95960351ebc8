//! `/loki/api/v1/tail` on a grid's tenant-API persona: the caller's WebSocket is fed by a tail
//! on every storage worker in the routes (each follows what it stores; a tenant's new events
//! may land on any of them after a failover), with the caller's credentials, their messages
//! passed on as they come.
//!
//! - The caller is checked here first, and the tenant's open tails are capped here as on one
//!   worker; a request the workers refuse (a metric query, a bad selector) gets their answer
//!   before any upgrade, as from one worker.
//! - The first message of each worker holds its newest `limit` lines since `start`, so the
//!   opening burst may hold up to `limit` lines per worker, each worker's in order.
//! - A worker whose tail ends (it stopped) leaves the others running; the socket closes when
//!   none is left. A storage worker that joins after the tail opened is not followed by it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as Upstream};

use super::fanout::{Fanout, CALLER_CREDENTIALS};
use crate::http::error::ApiError;
use crate::tenant_api::loki::tail::{websocket, TailSlot};
use crate::tenant_api::loki::LokiRequest;

/// How long a storage worker may take to accept its tail.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type UpstreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn tail(
    State(fanout): State<Arc<Fanout>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let LokiRequest { tenant, params } =
        match LokiRequest::from_request(request, fanout.state()).await {
            Ok(request) => request,
            Err(error) => return error.plain_text(),
        };
    let (upgrade, slot) = match websocket(upgrade)
        .and_then(|upgrade| Ok((upgrade, TailSlot::take(fanout.state(), &tenant.id)?)))
    {
        Ok(taken) => taken,
        Err(error) => return error.plain_text(),
    };
    let query = match serde_urlencoded::to_string(&params.0) {
        Ok(query) => query,
        Err(error) => {
            return ApiError::bad_request(format!("the parameters cannot be passed on: {error}"))
                .plain_text()
        }
    };
    let workers = fanout.storage_workers(tenant.id.as_str());
    let attempts = futures::future::join_all(
        workers
            .iter()
            .map(|(_, address)| connect(address, &query, &headers)),
    )
    .await;
    let mut upstreams = Vec::new();
    let mut refusal = None;
    let mut unanswered = Vec::new();
    for ((worker, _), attempt) in workers.iter().zip(attempts) {
        match attempt {
            Ok(socket) => upstreams.push(socket),
            Err(Refusal::Answered(response)) => {
                refusal.get_or_insert(response);
            }
            Err(Refusal::Unreachable(reason)) => {
                unanswered.push(json!({"worker": worker, "reason": reason}));
            }
        }
    }
    if upstreams.is_empty() {
        return match refusal {
            Some(response) => response,
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "error": {"code": "storage_unavailable", "message": "no storage worker took the tail"},
                    "incomplete": unanswered,
                })),
            )
                .into_response(),
        };
    }
    upgrade.on_upgrade(move |socket| async move {
        let _slot = slot;
        relay(socket, upstreams).await;
    })
}

enum Refusal {
    /// The worker answered the handshake with an error: passed on to the caller.
    Answered(Response),
    Unreachable(String),
}

/// Opens the tail on the worker at `address` with the caller's credentials.
async fn connect(
    address: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<UpstreamSocket, Refusal> {
    let url = format!("ws://{address}/loki/api/v1/tail?{query}");
    let mut request = url
        .into_client_request()
        .map_err(|error| Refusal::Unreachable(error.to_string()))?;
    for name in CALLER_CREDENTIALS {
        if let Some(value) = headers.get(name) {
            request.headers_mut().insert(name, value.clone());
        }
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err(Refusal::Unreachable(format!(
            "no answer in {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("text/plain")
                .to_string();
            let body = response.into_body().unwrap_or_default();
            Err(Refusal::Answered(
                (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
            ))
        }
        Ok(Err(error)) => Err(Refusal::Unreachable(error.to_string())),
    }
}

/// Passes every worker's messages on to the caller until the caller leaves or every worker's
/// tail has ended.
async fn relay(socket: WebSocket, upstreams: Vec<UpstreamSocket>) {
    let (mut to_caller, mut from_caller) = socket.split();
    // A worker's tail ends at its first error or close; the others go on.
    let mut merged = futures::stream::select_all(upstreams.into_iter().map(|upstream| {
        upstream
            .take_while(|message| {
                futures::future::ready(matches!(message, Ok(message) if !message.is_close()))
            })
            .boxed()
    }));
    loop {
        tokio::select! {
            message = merged.next() => match message {
                Some(Ok(Upstream::Text(text))) => {
                    if to_caller.send(Message::Text(text.as_str().into())).await.is_err() {
                        return;
                    }
                }
                Some(_) => {}
                None => {
                    let _ = to_caller
                        .send(Message::Close(Some(CloseFrame {
                            code: axum::extract::ws::close_code::AWAY,
                            reason: "every storage worker's tail ended".into(),
                        })))
                        .await;
                    return;
                }
            },
            incoming = from_caller.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
