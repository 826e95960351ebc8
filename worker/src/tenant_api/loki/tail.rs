//! `/loki/api/v1/tail`: a WebSocket that first sends the newest `limit` lines since `start`
//! (default: an hour ago), then every matching line as it arrives, in Loki's tail message
//! shape (`{"streams": [...], "dropped_entries": null}`).
//!
//! Lines are followed by arrival, not by their time stamp, so a sender whose clock is behind
//! is still tailed; events whose own time is more than an hour before the tail began are
//! not. The store is asked for new arrivals every [`POLL`] — a query like any other, so a tail
//! counts against the tenant's concurrent queries only for the moment it runs — and each
//! tenant may hold at most [`MAX_TAILS_PER_TENANT`] tails open.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use meniscus_grid::tenant::TenantId;
use meniscus_store::logql::ast::{LogQuery, Query};
use meniscus_store::query::loki::TailCursor;
use meniscus_store::query::QueryError;
use serde_json::json;

use super::{limit, parse_loki_time, parse_query, stream_values, LokiRequest};
use crate::http::error::ApiError;
use crate::http::AppState;

/// How often a tail asks the store for new lines: a line is on the socket within about this
/// long of being stored.
const POLL: Duration = Duration::from_millis(200);
/// Most lines one poll sends; more wait for the next poll.
const POLL_LIMIT: usize = 1000;
/// Tails one tenant may have open at once (each polls the store).
pub const MAX_TAILS_PER_TENANT: usize = 4;
/// Events older than this before the tail began are not followed.
const WINDOW: chrono::Duration = chrono::Duration::hours(1);

/// A tenant's open tail, given back when the socket ends.
pub(crate) struct TailSlot {
    state: Arc<AppState>,
    tenant: String,
}

impl TailSlot {
    /// One of the tenant's [`MAX_TAILS_PER_TENANT`] slots, or the 429 that says none is free.
    pub(crate) fn take(state: &Arc<AppState>, tenant: &TenantId) -> Result<TailSlot, ApiError> {
        let mut tails = state.loki_tails.lock();
        let open = tails.entry(tenant.as_str().to_string()).or_default();
        if *open >= MAX_TAILS_PER_TENANT {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_tails",
                format!(
                    "tenant {tenant} has {MAX_TAILS_PER_TENANT} tails open, the most one tenant \
                     may have; close one first"
                ),
            ));
        }
        *open += 1;
        Ok(TailSlot {
            state: state.clone(),
            tenant: tenant.as_str().to_string(),
        })
    }
}

/// The caller's WebSocket upgrade, or the 400 that says a tail is one.
pub(crate) fn websocket(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    upgrade.map_err(|rejection| {
        ApiError::bad_request(format!(
            "tail is a WebSocket: connect with ws:// ({})",
            rejection.body_text()
        ))
    })
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut tails = self.state.loki_tails.lock();
        if let Some(open) = tails.get_mut(&self.tenant) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                tails.remove(&self.tenant);
            }
        }
    }
}

pub async fn tail(
    State(state): State<Arc<AppState>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Result<LokiRequest, ApiError>,
) -> Response {
    let prepared = async {
        let LokiRequest { tenant, params } = request?;
        let query =
            match parse_query(params.get("query"))? {
                Query::Log(query) => query,
                Query::Metric(_) => return Err(ApiError::bad_request(
                    "tail takes a log query (a stream selector and filters), not a metric query",
                )),
            };
        let limit = limit(&params)?;
        state.queries()?;
        let start = match params.get("start") {
            Some(text) => parse_loki_time("start", text)?,
            None => Utc::now() - WINDOW,
        };
        if let Some(delay) = params.get("delay_for") {
            // Accepted for Loki's clients; lines are sent in arrival order without waiting.
            match delay.parse::<u64>() {
                Ok(seconds) if seconds <= 5 => {}
                _ => {
                    return Err(ApiError::bad_request(
                        "delay_for must be a whole number of seconds up to 5",
                    ))
                }
            }
        }
        let upgrade = websocket(upgrade)?;
        let slot = TailSlot::take(&state, &tenant.id)?;
        Ok((tenant, query, limit, start, upgrade, slot))
    }
    .await;
    let status = match &prepared {
        Ok(_) => StatusCode::SWITCHING_PROTOCOLS,
        Err(error) => error.status,
    };
    state
        .http_metrics
        .requests
        .inc(&["loki_tail", status.as_str()]);
    match prepared {
        Err(error) => error.plain_text(),
        Ok((tenant, query, limit, start, upgrade, slot)) => {
            let state = state.clone();
            upgrade.on_upgrade(move |socket| async move {
                let _slot = slot;
                follow(socket, &state, &tenant.id, &query, limit, start).await;
            })
        }
    }
}

async fn follow(
    mut socket: WebSocket,
    state: &AppState,
    tenant: &TenantId,
    query: &LogQuery,
    limit: usize,
    start: DateTime<Utc>,
) {
    let Ok(queries) = state.queries() else {
        return;
    };
    // Arrivals from now on are followed; what came before is the newest `limit` lines.
    let began = Utc::now();
    let mut cursor = TailCursor {
        received_us: began.timestamp_micros(),
        ..TailCursor::default()
    };
    let window_from = start.min(began - WINDOW);
    match queries
        .loki_lines(tenant, query, start, began, limit, false)
        .await
    {
        Ok(mut found) => {
            for stream in &mut found.streams {
                stream.entries.reverse();
            }
            if !found.streams.is_empty() && !send(&mut socket, &found.streams).await {
                return;
            }
        }
        Err(error) => return close(socket, error).await,
    }
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
            _ = ticker.tick() => {}
        }
        match queries
            .loki_tail(tenant, query, window_from, cursor.clone(), POLL_LIMIT)
            .await
        {
            Ok((streams, next)) => {
                cursor = next;
                if !streams.is_empty() && !send(&mut socket, &streams).await {
                    return;
                }
            }
            // The tenant's other queries hold every slot: try again at the next poll.
            Err(QueryError::Busy(_)) => {}
            Err(error) => return close(socket, error).await,
        }
    }
}

/// Whether the message went out (the client is still there).
async fn send(socket: &mut WebSocket, streams: &[meniscus_store::query::loki::LogStream]) -> bool {
    let message = json!({ "streams": stream_values(streams), "dropped_entries": null });
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .is_ok()
}

async fn close(mut socket: WebSocket, error: QueryError) {
    // A close frame's reason is at most 123 bytes: cut at a character boundary.
    let mut reason = error.to_string();
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::ERROR,
            reason: reason.into(),
        })))
        .await;
}
