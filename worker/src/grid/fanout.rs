//! The tenant API of a grid: one address for a tenant's reads, answered by asking the
//! storage workers and merging what they hold.
//!
//! A tenant's events live on the storage workers the routes ranked for it when they arrived;
//! after a failover some are on another one. So every storage worker in the routes is asked
//! (offline ones too: a worker the coordinator took out may still answer), with the tenant's
//! own token, on its grid address (`--listen`, where storage workers serve the read API
//! too). The answers merge exactly:
//! - search: each worker returns its newest `limit` events after the cursor; the merged page
//!   is the newest `limit` of their union, and its cursor continues every worker's list;
//! - counts: summed per bucket (and group);
//! - job status: events summed; `archived` once every worker holding some says so;
//!   `accepted` when no storage worker has the job's events yet but a correlator
//!   acknowledged it (then correlators are asked); 404 only when no worker knows the job;
//! - SQL: run where the tenant's events are when one worker holds them all (the usual case);
//!   across several workers the statement runs here over the rows each sends for it
//!   ([`fanout_sql`]), since an aggregate cannot be merged from per-worker results.
//!
//! The Loki query API is merged in [`fanout_loki`].
//!
//! A worker that does not answer is named in `incomplete` (with the reason) and the answer
//! is built from the others; when none answers, 503. A worker's refusal (400 for a bad
//! query, 429 when busy) is passed on as it is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use meniscus_coordinator::state::Snapshot;
use meniscus_grid::routes::{Persona, WorkerId};
use meniscus_grid::Event;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::http::error::ApiError;
use crate::http::{authorize, read_body, AppState};
use crate::tenant_api::{encode_cursor, SqlFormat, SqlRequest, DEFAULT_PAGE, MAX_PAGE};
use meniscus_store::query::QueryLimits;

use super::{fanout_loki, fanout_sql, fanout_tail};

/// Longer than a storage worker's own query deadline (30 s by default), so its answer, even
/// a timeout, arrives rather than being cut here.
pub(super) const ASK_TIMEOUT: Duration = Duration::from_secs(60);
/// A job's status is a lookup, not a query: a worker that has not answered it in this long
/// (a silent partition) is listed as `incomplete` rather than holding the answer for a
/// minute.
const JOB_ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// The caller's headers a storage worker is asked with: its tenant and token, as the tenant
/// API's own endpoints and the Loki API read them.
pub(super) const CALLER_CREDENTIALS: [&str; 3] =
    ["message-token", "authorization", "x-scope-orgid"];
/// Largest SQL request body passed on (the storage workers check the statement's size).
const MAX_SQL_BODY: usize = 1 << 20;

pub struct Fanout {
    state: Arc<AppState>,
    snapshots: watch::Receiver<Option<Snapshot>>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The query limits of `--config`, for statements run here across storage workers.
    pub(super) query_limits: QueryLimits,
    /// Statements across storage workers running at once (`maxConcurrentQueries`).
    pub(super) across_permits: tokio::sync::Semaphore,
}

/// Counts a request by its route (named as standalone names it) and status.
async fn count_request(
    State(state): State<Arc<AppState>>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let route = route_label(request.uri().path());
    let response = next.run(request).await;
    state
        .http_metrics
        .requests
        .inc(&[route, response.status().as_str()]);
    response
}

/// The `route` label of a tenant API path (one the router matched).
fn route_label(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "tenant", _, "events"] => "events",
        ["v1", "tenant", _, "metrics"] => "metrics",
        ["v1", "tenant", _, "jobs", _] => "jobs",
        ["v1", "tenant", _, "sql"] => "sql",
        ["loki", "api", "v1", "query_range"] => "loki_query_range",
        ["loki", "api", "v1", "query"] => "loki_query",
        ["loki", "api", "v1", "labels"] => "loki_labels",
        ["loki", "api", "v1", "label", _, "values"] => "loki_label_values",
        ["loki", "api", "v1", "series"] => "loki_series",
        ["loki", "api", "v1", "tail"] => "loki_tail",
        _ => "other",
    }
}

/// One storage worker's answer: its status and body, or why it gave none.
type Answer = (WorkerId, Result<(StatusCode, Bytes), String>);

impl Fanout {
    pub fn new(
        state: Arc<AppState>,
        snapshots: watch::Receiver<Option<Snapshot>>,
        query_limits: QueryLimits,
    ) -> Arc<Fanout> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        Arc::new(Fanout {
            state,
            snapshots,
            client: Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(connector),
            across_permits: tokio::sync::Semaphore::new(query_limits.max_concurrent.max(1)),
            query_limits,
        })
    }

    pub fn router(self: Arc<Fanout>) -> Router {
        Router::new()
            .route("/v1/tenant/{tenant_id}/events", get(search))
            .route("/v1/tenant/{tenant_id}/metrics", get(counts))
            .route("/v1/tenant/{tenant_id}/jobs/{job_id}", get(job_status))
            .route("/v1/tenant/{tenant_id}/sql", post(sql))
            .route(
                "/loki/api/v1/query_range",
                get(fanout_loki::query).post(fanout_loki::query),
            )
            .route(
                "/loki/api/v1/query",
                get(fanout_loki::query).post(fanout_loki::query),
            )
            .route(
                "/loki/api/v1/labels",
                get(fanout_loki::labels).post(fanout_loki::labels),
            )
            .route(
                "/loki/api/v1/label/{name}/values",
                get(fanout_loki::labels).post(fanout_loki::labels),
            )
            .route(
                "/loki/api/v1/series",
                get(fanout_loki::series).post(fanout_loki::series),
            )
            .route("/loki/api/v1/tail", get(fanout_tail::tail))
            .route(
                "/loki/{*rest}",
                get(fanout_loki::not_here).post(fanout_loki::not_here),
            )
            // After routing, so the route is known: `meniscus_http_requests_total` as
            // standalone counts it, and the tenant API's heartbeat reports its rate.
            .route_layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                count_request,
            ))
            .with_state(self)
    }

    pub(super) fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Every storage worker in the routes, the tenant's own ranking first.
    pub(super) fn storage_workers(&self, tenant: &str) -> Vec<(WorkerId, String)> {
        let snapshot = self.snapshots.borrow();
        let Some(snapshot) = snapshot.as_ref() else {
            return Vec::new();
        };
        let mut workers: Vec<(WorkerId, String)> = snapshot
            .routes
            .storage_for(tenant)
            .into_iter()
            .map(|worker| (worker.id.clone(), worker.address.clone()))
            .collect();
        for worker in &snapshot.routes.workers {
            if worker.personas.contains(&Persona::Storage)
                && !workers.iter().any(|(id, _)| id == &worker.id)
            {
                workers.push((worker.id.clone(), worker.address.clone()));
            }
        }
        workers
    }

    /// The online correlators and normalizer hops in the routes: they know the jobs whose
    /// events they spooled.
    fn correlators(&self) -> Vec<(WorkerId, String)> {
        let snapshot = self.snapshots.borrow();
        snapshot.as_ref().map_or_else(Vec::new, |snapshot| {
            let routes = &snapshot.routes;
            routes
                .online(Persona::Correlator)
                .chain(
                    routes
                        .online(Persona::Normalizer)
                        .filter(|worker| worker.is_normalizer_hop()),
                )
                .map(|worker| (worker.id.clone(), worker.address.clone()))
                .collect()
        })
    }

    /// The normalizer hops in the routes.
    fn normalizer_hops(&self) -> Vec<WorkerId> {
        let snapshot = self.snapshots.borrow();
        snapshot.as_ref().map_or_else(Vec::new, |snapshot| {
            snapshot
                .routes
                .workers
                .iter()
                .filter(|worker| worker.is_normalizer_hop())
                .map(|worker| worker.id.clone())
                .collect()
        })
    }

    /// Sends the same request to every storage worker at once, with the caller's token,
    /// waiting at most `deadline` for each.
    pub(super) async fn ask_all(
        &self,
        tenant: &str,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        deadline: Duration,
    ) -> Result<Vec<Answer>, ApiError> {
        let workers = self.storage_workers(tenant);
        if workers.is_empty() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_storage_worker",
                "the grid has no storage worker in its routes yet",
            ));
        }
        Ok(self
            .ask(workers, method, path_and_query, headers, body, deadline)
            .await)
    }

    /// Sends the same request to each of `workers` at once, with the caller's token, waiting
    /// at most `deadline` for each.
    async fn ask(
        &self,
        workers: Vec<(WorkerId, String)>,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        deadline: Duration,
    ) -> Vec<Answer> {
        let asks = workers.into_iter().map(|(id, address)| {
            let request = self.request(&method, &address, path_and_query, headers, body.clone());
            async move { (id, self.send(request, deadline).await) }
        });
        futures::future::join_all(asks).await
    }

    pub(super) fn request(
        &self,
        method: &Method,
        address: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{address}{path_and_query}"))
            .header(header::CONTENT_TYPE, "application/json");
        for name in CALLER_CREDENTIALS {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        request
            .body(Full::new(body))
            .map_err(|error| error.to_string())
    }

    async fn send(
        &self,
        request: Result<Request<Full<Bytes>>, String>,
        deadline: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let (status, _, body) = self.send_with_headers(request, deadline).await?;
        Ok((status, body))
    }

    /// One request, waited for at most `deadline` (the answer's headers and its whole body).
    pub(super) async fn send_with_headers(
        &self,
        request: Result<Request<Full<Bytes>>, String>,
        deadline: Duration,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        let response = tokio::time::timeout(deadline, self.client.request(request?))
            .await
            .map_err(|_| format!("no answer in {} s", deadline.as_secs()))?
            .map_err(|error| format!("unreachable: {error}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(deadline, response.into_body().collect())
            .await
            .map_err(|_| format!("answer not finished in {} s", deadline.as_secs()))?
            .map_err(|error| format!("answer cut: {error}"))?
            .to_bytes();
        Ok((status, headers, body))
    }
}

/// The answers split: the 200s parsed, the first refusal (any other status but `also_ok`),
/// and the workers that gave none.
pub(super) struct Sorted {
    pub(super) ok: Vec<(WorkerId, Value)>,
    other: Vec<(WorkerId, StatusCode, Bytes)>,
    pub(super) incomplete: Vec<Value>,
}

pub(super) fn sort(answers: Vec<Answer>) -> Sorted {
    let mut sorted = Sorted {
        ok: Vec::new(),
        other: Vec::new(),
        incomplete: Vec::new(),
    };
    for (worker, answer) in answers {
        match answer {
            Ok((StatusCode::OK, body)) => match serde_json::from_slice(&body) {
                Ok(value) => sorted.ok.push((worker, value)),
                Err(error) => sorted.incomplete.push(
                    json!({"worker": worker, "reason": format!("unreadable answer: {error}")}),
                ),
            },
            // A storage worker's own trouble (5xx) is its incompleteness, not the caller's
            // error; its 4xx are about the request and are passed on.
            Ok((status, body)) if status.is_server_error() => sorted.incomplete.push(json!({
                "worker": worker,
                "reason": format!("answered {status}: {}", String::from_utf8_lossy(&body)),
            })),
            Ok((status, body)) => sorted.other.push((worker, status, body)),
            Err(reason) => sorted
                .incomplete
                .push(json!({"worker": worker, "reason": reason})),
        }
    }
    sorted
}

impl Sorted {
    /// Itself, with at least one 200 and no refusal; or the answer to give instead: the
    /// first refusal, passed on, or 503 when no worker answered.
    pub(super) fn settle(mut self) -> Result<Sorted, Box<Response>> {
        if let Some((_, status, body)) = self.other.drain(..).next() {
            return Err(Box::new(pass_on(status, body)));
        }
        if self.ok.is_empty() {
            return Err(Box::new(none_answered(self.incomplete)));
        }
        Ok(self)
    }
}

/// A storage worker's answer, passed on as it is.
pub(super) fn pass_on(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) fn none_answered(incomplete: Vec<Value>) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "error": {"code": "storage_unavailable", "message": "no storage worker answered"},
            "incomplete": incomplete,
        })),
    )
        .into_response()
}

pub(super) fn with_incomplete(mut answer: Value, incomplete: Vec<Value>) -> Response {
    if !incomplete.is_empty() {
        answer["incomplete"] = Value::Array(incomplete);
    }
    Json(answer).into_response()
}

fn path_with_query(path: &str, query: Option<String>) -> String {
    match query {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_string(),
    }
}

async fn search(
    State(fanout): State<Arc<Fanout>>,
    Path(tenant_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&fanout.state, &tenant_id, &headers)?;
    let limit = query_param(query.as_deref(), "limit")
        .and_then(|limit| limit.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE);
    let path = path_with_query(&format!("/v1/tenant/{tenant_id}/events"), query);
    let answers = fanout
        .ask_all(
            &tenant_id,
            Method::GET,
            &path,
            &headers,
            Bytes::new(),
            ASK_TIMEOUT,
        )
        .await?;
    let Sorted { ok, incomplete, .. } = match sort(answers).settle() {
        Ok(settled) => settled,
        Err(answer) => return Ok(*answer),
    };
    let pages: Vec<Value> = ok.into_iter().map(|(_, page)| page).collect();
    let answer = merge_pages(pages, limit)
        .map_err(|error| ApiError::new(StatusCode::BAD_GATEWAY, "bad_storage_answer", error))?;
    Ok(with_incomplete(answer, incomplete))
}

/// The value of `name` in a query string (undecoded: only for numbers).
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The newest `limit` events of the workers' pages (each newest first, each its worker's
/// newest `limit` after the same cursor), and a cursor when any worker has more.
pub fn merge_pages(pages: Vec<Value>, limit: usize) -> Result<Value, String> {
    let mut events: Vec<(i64, String, Value)> = Vec::new();
    let mut more = false;
    let mut unreadable = Vec::new();
    for mut page in pages {
        more |= !page["next_cursor"].is_null();
        if let Some(Value::Array(windows)) = page.get_mut("unreadable").map(Value::take) {
            unreadable.extend(windows);
        }
        let Some(Value::Array(page_events)) = page.get_mut("events").map(Value::take) else {
            return Err("a storage worker's page has no events".into());
        };
        for value in page_events {
            let event: Event = serde_json::from_value(value.clone())
                .map_err(|error| format!("unreadable event: {error}"))?;
            let key = event.effective_time().timestamp_micros();
            events.push((key, event.meniscus.event_id.clone(), value));
        }
    }
    // Newest first, ties by event id descending: the order each storage worker pages in.
    events.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    events.dedup_by(|a, b| a.1 == b.1);
    more |= events.len() > limit;
    events.truncate(limit);
    let next_cursor = if more {
        events.last().map(|(ts, id, _)| encode_cursor(*ts, id))
    } else {
        None
    };
    let mut answer = json!({
        "events": events.into_iter().map(|(_, _, event)| event).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    });
    if !unreadable.is_empty() {
        answer["unreadable"] = Value::Array(unreadable);
    }
    Ok(answer)
}

async fn counts(
    State(fanout): State<Arc<Fanout>>,
    Path(tenant_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&fanout.state, &tenant_id, &headers)?;
    let path = path_with_query(&format!("/v1/tenant/{tenant_id}/metrics"), query);
    let answers = fanout
        .ask_all(
            &tenant_id,
            Method::GET,
            &path,
            &headers,
            Bytes::new(),
            ASK_TIMEOUT,
        )
        .await?;
    let Sorted { ok, incomplete, .. } = match sort(answers).settle() {
        Ok(settled) => settled,
        Err(answer) => return Ok(*answer),
    };
    let answers: Vec<Value> = ok.into_iter().map(|(_, answer)| answer).collect();
    Ok(with_incomplete(merge_counts(answers), incomplete))
}

/// The workers' counts summed per bucket and group, in bucket then group order.
pub fn merge_counts(mut answers: Vec<Value>) -> Value {
    let mut first = answers.remove(0);
    let group_by = first["group_by"].as_str().map(str::to_string);
    let mut sums: BTreeMap<(String, String), (Value, u64)> = BTreeMap::new();
    let mut truncated = false;
    let mut unreadable = Vec::new();
    for answer in std::iter::once(&mut first).chain(answers.iter_mut()) {
        truncated |= answer["truncated"].as_bool().unwrap_or(false);
        if let Some(Value::Array(windows)) = answer.get_mut("unreadable").map(Value::take) {
            unreadable.extend(windows);
        }
        let Some(Value::Array(buckets)) = answer.get_mut("buckets").map(Value::take) else {
            continue;
        };
        for row in buckets {
            let bucket = row["bucket"].as_str().unwrap_or_default().to_string();
            // Numbers (severity, facility) ordered as numbers, names as text.
            let group = match group_by.as_deref().map(|field| &row[field]) {
                Some(Value::Number(number)) => format!("{:020}", number.as_u64().unwrap_or(0)),
                Some(value) => value.to_string(),
                None => String::new(),
            };
            let count = row["count"].as_u64().unwrap_or(0);
            sums.entry((bucket, group))
                .and_modify(|(_, sum)| *sum += count)
                .or_insert((row, count));
        }
    }
    let buckets: Vec<Value> = sums
        .into_values()
        .map(|(mut row, count)| {
            row["count"] = json!(count);
            row
        })
        .collect();
    first["buckets"] = Value::Array(buckets);
    first["truncated"] = json!(truncated);
    if !unreadable.is_empty() {
        first["unreadable"] = Value::Array(unreadable);
    }
    first
}

async fn job_status(
    State(fanout): State<Arc<Fanout>>,
    Path((tenant_id, job_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&fanout.state, &tenant_id, &headers)?;
    let path = format!("/v1/tenant/{tenant_id}/jobs/{job_id}");
    let answers = fanout
        .ask_all(
            &tenant_id,
            Method::GET,
            &path,
            &headers,
            Bytes::new(),
            JOB_ASK_TIMEOUT,
        )
        .await?;
    let sorted = sort(answers);
    let (not_found, refused): (Vec<_>, Vec<_>) = sorted
        .other
        .into_iter()
        .partition(|(_, status, _)| *status == StatusCode::NOT_FOUND);
    if let Some((_, status, body)) = refused.into_iter().next() {
        return Ok(pass_on(status, body));
    }
    if sorted.ok.is_empty() {
        // No storage worker has the job's events: the correlator that acknowledged it (and
        // the normalizer hop that spooled it next) says `accepted` (they remember the job for
        // an hour, so a job stored between the two questions is still known there).
        let acknowledgers = sort(
            fanout
                .ask(
                    fanout.correlators(),
                    Method::GET,
                    &path,
                    &headers,
                    Bytes::new(),
                    JOB_ASK_TIMEOUT,
                )
                .await,
        );
        if !acknowledgers.ok.is_empty() {
            // A job spooled by a correlator and then by a normalizer hop is known to both:
            // counted once, from the hop that knows more of it (the normalizer may not have
            // all of it yet).
            let hops = fanout.normalizer_hops();
            let (mut by_correlators, mut by_normalizers) = (0u64, 0u64);
            for (id, answer) in &acknowledgers.ok {
                let events = answer["events"].as_u64().unwrap_or(0);
                if hops.contains(id) {
                    by_normalizers += events;
                } else {
                    by_correlators += events;
                }
            }
            let events = by_correlators.max(by_normalizers);
            let answer = json!({"job_id": job_id, "status": "accepted", "events": events});
            return Ok(with_incomplete(answer, sorted.incomplete));
        }
        let mut incomplete = sorted.incomplete;
        incomplete.extend(acknowledgers.incomplete);
        return match not_found.into_iter().next() {
            // Unknown everywhere that answered; said only when every worker answered, since
            // the job may be on the one that did not.
            Some((_, status, body)) if incomplete.is_empty() => Ok(pass_on(status, body)),
            _ => Ok(none_answered(incomplete)),
        };
    }
    let events: u64 = sorted
        .ok
        .iter()
        .map(|(_, answer)| answer["events"].as_u64().unwrap_or(0))
        .sum();
    let archived = sorted
        .ok
        .iter()
        .all(|(_, answer)| answer["status"] == "archived");
    let answer = json!({
        "job_id": job_id,
        "status": if archived { "archived" } else { "stored" },
        "events": events,
    });
    Ok(with_incomplete(answer, sorted.incomplete))
}

async fn sql(
    State(fanout): State<Arc<Fanout>>,
    Path(tenant_id): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    authorize(&fanout.state, &tenant_id, &headers)?;
    let body = read_body(&fanout.state, &headers, body, MAX_SQL_BODY).await?;
    let path = format!("/v1/tenant/{tenant_id}/sql");
    // Where are the tenant's events? A count per worker (from file metadata and memory,
    // cheap next to most statements).
    let census = Bytes::from_static(br#"{"sql": "SELECT count(*) AS n FROM events"}"#);
    let answers = fanout
        .ask_all(
            &tenant_id,
            Method::POST,
            &path,
            &headers,
            census,
            ASK_TIMEOUT,
        )
        .await?;
    let Sorted { ok, incomplete, .. } = match sort(answers).settle() {
        Ok(settled) => settled,
        Err(answer) => return Ok(*answer),
    };
    let holders: Vec<&WorkerId> = ok
        .iter()
        .filter(|(_, answer)| answer["rows"][0]["n"].as_u64().unwrap_or(0) > 0)
        .map(|(worker, _)| worker)
        .collect();
    if holders.len() > 1 {
        let request = SqlRequest::read(&body)?;
        if request.format != SqlFormat::Json {
            return Err(ApiError::bad_request(format!(
                "tenant {tenant_id}'s events are on {} storage workers: only the JSON format \
                 is answered across them",
                holders.len()
            )));
        }
        let workers = fanout.storage_workers(&tenant_id);
        let holders = holders
            .iter()
            .filter_map(|holder| workers.iter().find(|(id, _)| id == *holder).cloned())
            .collect();
        return fanout_sql::across(
            &fanout,
            &tenant_id,
            holders,
            &headers,
            &request.sql,
            incomplete,
        )
        .await;
    }
    // The one holder, or (no events yet) the tenant's first-ranked worker that answered.
    let target = holders
        .first()
        .map(|worker| (*worker).clone())
        .unwrap_or_else(|| ok[0].0.clone());
    let Some((_, address)) = fanout
        .storage_workers(&tenant_id)
        .into_iter()
        .find(|(id, _)| *id == target)
    else {
        return Ok(none_answered(incomplete));
    };
    let request = fanout.request(&Method::POST, &address, &path, &headers, body);
    match fanout.send(request, ASK_TIMEOUT).await {
        Ok((StatusCode::OK, body)) if !incomplete.is_empty() => {
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Ok(with_incomplete(answer, incomplete))
        }
        Ok((status, body)) => Ok(pass_on(status, body)),
        Err(reason) => Ok(none_answered(vec![
            json!({"worker": target, "reason": reason}),
        ])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, time: &str) -> Value {
        json!({
            "time": time,
            "msg": id,
            "meniscus": {"tenant": "acme", "producer": "web", "durable": true, "event_id": id,
                         "received_at": time, "transport": "http"},
        })
    }

    #[test]
    fn pages_merge_newest_first_with_a_cursor_when_any_worker_has_more() {
        let a = json!({"events": [event("a3", "2026-01-01T00:00:03Z"), event("a1", "2026-01-01T00:00:01Z")], "next_cursor": null});
        let b = json!({"events": [event("b2", "2026-01-01T00:00:02Z")], "next_cursor": "x"});
        let merged = merge_pages(vec![a.clone(), b.clone()], 2).unwrap();
        let ids: Vec<&str> = merged["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["meniscus"]["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a3", "b2"]);
        assert!(merged["next_cursor"].is_string());
        let all = merge_pages(
            vec![
                a,
                json!({"events": [event("b2", "2026-01-01T00:00:02Z")], "next_cursor": null}),
            ],
            10,
        )
        .unwrap();
        assert_eq!(all["events"].as_array().unwrap().len(), 3);
        assert!(all["next_cursor"].is_null());
    }

    #[test]
    fn counts_sum_per_bucket_and_group() {
        let a = json!({"group_by": "severity", "truncated": false, "buckets": [
            {"bucket": "t1", "severity": 3, "count": 2},
            {"bucket": "t2", "severity": 3, "count": 1},
        ]});
        let b = json!({"group_by": "severity", "truncated": false, "buckets": [
            {"bucket": "t1", "severity": 3, "count": 5},
            {"bucket": "t1", "severity": 6, "count": 1},
        ]});
        let merged = merge_counts(vec![a, b]);
        assert_eq!(
            merged["buckets"],
            json!([
                {"bucket": "t1", "severity": 3, "count": 7},
                {"bucket": "t1", "severity": 6, "count": 1},
                {"bucket": "t2", "severity": 3, "count": 1},
            ])
        );
    }

    #[test]
    fn requests_are_counted_under_standalones_route_names() {
        for (path, route) in [
            ("/v1/tenant/acme/events", "events"),
            ("/v1/tenant/acme/jobs/01J", "jobs"),
            ("/v1/tenant/acme/sql", "sql"),
            ("/loki/api/v1/label/host/values", "loki_label_values"),
            ("/loki/api/v1/query_range", "loki_query_range"),
            ("/loki/api/v2/whatever", "other"),
        ] {
            assert_eq!(super::route_label(path), route, "{path}");
        }
    }
}
