//! The Loki-compatible query API, for Grafana's Loki data source and for scripts written
//! against Loki: `/loki/api/v1/query_range`, `/query`, `/labels`, `/label/{name}/values`,
//! `/series` and `/tail` ([`tail`]), answering in Loki's JSON shapes (`streams`, `matrix`,
//! `vector`). Queries are LogQL ([`meniscus_store::logql`]), run by the same engine as SQL.
//!
//! The tenant and token come as for the agent protocols (`X-Scope-OrgID` with a Bearer token,
//! or Basic `TENANT:TOKEN`); a tenant only ever sees its own events. Errors are Loki's: a
//! status and the reason as plain text.

pub mod tail;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use meniscus_grid::tenant::Tenant;
use meniscus_grid::Transport;
use meniscus_store::logql::ast::{Matcher, Query};
use meniscus_store::logql::{self, LogqlError};
use meniscus_store::query::loki::{LogStream, Series, Steps};
use serde_json::{json, Value};

use crate::correlator::sources::agent;
use crate::http::error::ApiError;
use crate::http::{read_body, AppState};

/// Lines a log query returns unless `limit` says otherwise, and the most it may ask for
/// (Loki's defaults: `limit` 100, `max_entries_limit_per_query` 5000).
pub(crate) const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 5000;
/// How far back a query reaches without `start` or `since` (Loki: an hour), and the label
/// endpoints (Loki: six hours).
const DEFAULT_SINCE_HOURS: i64 = 1;
const DEFAULT_LABELS_SINCE_HOURS: i64 = 6;
/// Largest form body of a POSTed query.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A request's parameters: the query string, and for POST a form body (Grafana may send
/// either). Repeated names (`match[]`) are kept in order.
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    async fn read(
        state: &AppState,
        method: &Method,
        headers: &HeaderMap,
        query: Option<String>,
        body: axum::body::Body,
    ) -> Result<Params, ApiError> {
        let mut pairs = parse_form(query.as_deref().unwrap_or(""))?;
        if method == Method::POST {
            let body = read_body(state, headers, body, MAX_FORM_BYTES).await?;
            let text = std::str::from_utf8(&body)
                .map_err(|_| ApiError::bad_request("the form body is not UTF-8"))?;
            pairs.extend(parse_form(text)?);
        }
        Ok(Params(pairs))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

fn parse_form(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(text)
        .map_err(|error| ApiError::bad_request(format!("the parameters cannot be read: {error}")))
}

/// A Loki API request: the tenant its credentials name (checked first, so nothing of a
/// stranger's request is read) and its parameters.
pub struct LokiRequest {
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) params: Params,
}

impl FromRequest<Arc<AppState>> for LokiRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let tenant = authenticate(state, &parts.headers)?;
        let query = parts.uri.query().map(str::to_string);
        let params = Params::read(state, &parts.method, &parts.headers, query, body).await?;
        Ok(LokiRequest { tenant, params })
    }
}

/// A Loki time: RFC 3339, Unix seconds with a fraction (`1700000000.5`), Unix seconds (up to
/// ten digits) or Unix nanoseconds (more digits), as Loki reads them.
pub fn parse_loki_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid {name}: {text:?} is neither RFC 3339 nor a Unix time in seconds or nanoseconds"
        ))
    };
    if text.contains('.') && !text.contains('-') {
        if let Ok(seconds) = text.parse::<f64>() {
            // Whole seconds and milliseconds, as Loki rounds them (a float cannot hold
            // nanoseconds since 1970).
            let whole = seconds.trunc();
            let millis = ((seconds - whole) * 1000.0).round() as i64;
            if !whole.is_finite() || whole.abs() > 9e9 {
                return Err(bad());
            }
            return DateTime::from_timestamp(whole as i64, 0)
                .map(|time| time + Duration::milliseconds(millis))
                .ok_or_else(bad);
        }
    }
    if let Ok(number) = text.parse::<i64>() {
        return if text.trim_start_matches('-').len() <= 10 {
            DateTime::from_timestamp(number, 0).ok_or_else(bad)
        } else {
            Ok(DateTime::from_timestamp_nanos(number))
        };
    }
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| bad())
}

/// A duration as Loki takes `step`, `since` and `delay_for`: `5m`, `1h30m`, or seconds
/// (`60`, `0.5`).
fn parse_seconds_or_duration(name: &str, text: &str) -> Result<std::time::Duration, ApiError> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds > 0.0 && seconds < 1e10 {
            return Ok(std::time::Duration::from_secs_f64(seconds));
        }
    }
    logql::parse_duration(text)
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid {name}: {text:?} is not a positive duration (5m, 1h) or number of seconds"
            ))
        })
}

/// `start` and `end` (or `since` before `end`), defaulting to the last `default_hours`.
fn time_range(
    params: &Params,
    default_hours: i64,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let end = match params.get("end") {
        Some(text) => parse_loki_time("end", text)?,
        None => Utc::now(),
    };
    let start = match (params.get("start"), params.get("since")) {
        (Some(text), _) => parse_loki_time("start", text)?,
        (None, Some(since)) => {
            let since = parse_seconds_or_duration("since", since)?;
            Duration::from_std(since)
                .ok()
                .and_then(|since| end.checked_sub_signed(since))
                .ok_or_else(|| ApiError::bad_request("since: too far back"))?
        }
        (None, None) => end - Duration::hours(default_hours),
    };
    if end < start {
        return Err(ApiError::bad_request(
            "end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

pub(crate) fn limit(params: &Params) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(0) => Err(ApiError::bad_request("limit must be a positive value")),
            Ok(limit) if limit > MAX_LIMIT => Err(ApiError::bad_request(format!(
                "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {MAX_LIMIT})"
            ))),
            Ok(limit) => Ok(limit),
            Err(_) => Err(ApiError::bad_request(format!(
                "invalid limit: {text:?} is not a number"
            ))),
        },
    }
}

pub(crate) fn forward(params: &Params) -> Result<bool, ApiError> {
    match params
        .get("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("backward") => Ok(false),
        Some("forward") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid direction {other:?}: forward or backward"
        ))),
    }
}

fn parse_query(text: Option<&str>) -> Result<Query, ApiError> {
    let text = text.ok_or_else(|| ApiError::bad_request("the query parameter is missing"))?;
    Ok(logql::parse(text)?)
}

/// A selector alone (`match[]`, or `query` of the label endpoints).
fn parse_selector(text: &str) -> Result<Vec<Matcher>, ApiError> {
    match logql::parse(text)? {
        Query::Log(query) if query.stages.is_empty() => Ok(query.selector),
        _ => Err(ApiError::bad_request(format!(
            "{text:?} is not a stream selector like {{app=\"web\"}}"
        ))),
    }
}

/// The tenant named by the request's credentials (as for the agent protocols).
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Arc<Tenant>, ApiError> {
    agent::authenticate(state, headers, Transport::Http)
}

/// Counts the request by route and status, and renders errors Loki's way.
fn answer(state: &AppState, route: &str, result: Result<Value, ApiError>) -> Response {
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(error) => error.status,
    };
    state.http_metrics.requests.inc(&[route, status.as_str()]);
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => error.plain_text(),
    }
}

impl From<LogqlError> for ApiError {
    fn from(error: LogqlError) -> Self {
        let code = match error {
            LogqlError::Syntax(_) => "invalid_query",
            LogqlError::Unsupported(_) => "unsupported_logql",
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, error.to_string())
    }
}

/// `GET|POST /loki/api/v1/query_range`
pub async fn query_range(
    State(state): State<Arc<AppState>>,
    request: Result<LokiRequest, ApiError>,
) -> Response {
    let result = async {
        let LokiRequest { tenant, params } = request?;
        let query = parse_query(params.get("query"))?;
        let (start, end) = time_range(&params, DEFAULT_SINCE_HOURS)?;
        // Checked for metric queries too, as Loki does.
        let limit = limit(&params)?;
        let forward = forward(&params)?;
        let started = Instant::now();
        match query {
            Query::Log(query) => {
                // `end` is exclusive for lines; Grafana asks up to "now" in nanoseconds.
                let found = state
                    .queries()?
                    .loki_lines(&tenant.id, &query, start, end, limit, forward)
                    .await?;
                Ok(streams_answer(&found.streams, started))
            }
            Query::Metric(expr) => {
                let step = match params.get("step") {
                    Some(text) => parse_seconds_or_duration("step", text)?,
                    None => default_step(start, end),
                };
                let step_us = i64::try_from(step.as_micros()).unwrap_or(i64::MAX).max(1);
                let steps = Steps {
                    start_us: start.timestamp_micros(),
                    end_us: end.timestamp_micros(),
                    step_us,
                };
                let matrix = state
                    .queries()?
                    .loki_metric(&tenant.id, &expr, steps)
                    .await?;
                Ok(json!({
                    "status": "success",
                    "data": {
                        "resultType": "matrix",
                        "result": matrix.series.iter().map(matrix_series).collect::<Vec<_>>(),
                        "stats": stats(started, 0),
                    }
                }))
            }
        }
    }
    .await;
    answer(&state, "loki_query_range", result)
}

/// Loki's default step: the range in 250 steps, at least a second.
fn default_step(start: DateTime<Utc>, end: DateTime<Utc>) -> std::time::Duration {
    let seconds = ((end - start).num_milliseconds() as f64 / 1000.0 / 250.0).ceil();
    std::time::Duration::from_secs((seconds as u64).max(1))
}

/// `GET|POST /loki/api/v1/query`: a metric query at one time.
pub async fn query(
    State(state): State<Arc<AppState>>,
    request: Result<LokiRequest, ApiError>,
) -> Response {
    let result = async {
        let LokiRequest { tenant, params } = request?;
        let query = parse_query(params.get("query"))?;
        let at = match params.get("time") {
            Some(text) => parse_loki_time("time", text)?,
            None => Utc::now(),
        };
        let started = Instant::now();
        match query {
            Query::Log(_) => Err(ApiError::bad_request(
                "log queries are not supported as an instant query type, please change your \
                 query to a range query type",
            )),
            Query::Metric(expr) => {
                let matrix = state
                    .queries()?
                    .loki_metric(&tenant.id, &expr, Steps::instant(at))
                    .await?;
                let result: Vec<Value> = matrix
                    .series
                    .iter()
                    .filter_map(|series| {
                        let (at, value) = series.points.first()?;
                        Some(json!({
                            "metric": series.labels,
                            "value": [unix_seconds(*at), format_value(*value)],
                        }))
                    })
                    .collect();
                Ok(json!({
                    "status": "success",
                    "data": { "resultType": "vector", "result": result, "stats": stats(started, 0) }
                }))
            }
        }
    }
    .await;
    answer(&state, "loki_query", result)
}

/// `GET|POST /loki/api/v1/labels`: the label names in the time range.
pub async fn labels(
    State(state): State<Arc<AppState>>,
    request: Result<LokiRequest, ApiError>,
) -> Response {
    let result = async {
        let LokiRequest { tenant, params } = request?;
        let (start, end) = time_range(&params, DEFAULT_LABELS_SINCE_HOURS)?;
        let selectors = match params.get("query") {
            Some(text) => vec![parse_selector(text)?],
            None => Vec::new(),
        };
        let sets = state
            .queries()?
            .loki_series(&tenant.id, &selectors, start, end)
            .await?;
        let mut names: Vec<&String> = sets.iter().flat_map(BTreeMap::keys).collect();
        names.sort();
        names.dedup();
        Ok(json!({ "status": "success", "data": names }))
    }
    .await;
    answer(&state, "loki_labels", result)
}

/// `GET|POST /loki/api/v1/label/{name}/values`
pub async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    request: Result<LokiRequest, ApiError>,
) -> Response {
    let result = async {
        let LokiRequest { tenant, params } = request?;
        let (start, end) = time_range(&params, DEFAULT_LABELS_SINCE_HOURS)?;
        let selector = params.get("query").map(parse_selector).transpose()?;
        let values = state
            .queries()?
            .loki_label_values(&tenant.id, &name, selector.as_deref(), start, end)
            .await?;
        Ok(json!({ "status": "success", "data": values }))
    }
    .await;
    answer(&state, "loki_label_values", result)
}

/// `GET|POST /loki/api/v1/series`: the label sets of the streams matching `match[]`.
pub async fn series_route(
    State(state): State<Arc<AppState>>,
    request: Result<LokiRequest, ApiError>,
) -> Response {
    let result = async {
        let LokiRequest { tenant, params } = request?;
        let (start, end) = time_range(&params, DEFAULT_LABELS_SINCE_HOURS)?;
        let mut texts = params.all("match[]");
        texts.extend(params.all("match"));
        let selectors = texts
            .into_iter()
            .map(parse_selector)
            .collect::<Result<Vec<_>, _>>()?;
        let sets = state
            .queries()?
            .loki_series(&tenant.id, &selectors, start, end)
            .await?;
        Ok(json!({ "status": "success", "data": sets }))
    }
    .await;
    answer(&state, "loki_series", result)
}

/// Streams as Loki answers them: `{"stream": {labels}, "values": [["<ns>", "line"], ...]}`.
pub fn stream_values(streams: &[LogStream]) -> Vec<Value> {
    streams
        .iter()
        .map(|stream| {
            json!({
                "stream": stream.labels,
                "values": stream
                    .entries
                    .iter()
                    .map(|(nanos, line)| json!([nanos.to_string(), line]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn streams_answer(streams: &[LogStream], started: Instant) -> Value {
    let entries = streams.iter().map(|stream| stream.entries.len()).sum();
    json!({
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": stream_values(streams),
            "stats": stats(started, entries),
        }
    })
}

fn matrix_series(series: &Series) -> Value {
    json!({
        "metric": series.labels,
        "values": series
            .points
            .iter()
            .map(|(at, value)| json!([unix_seconds(*at), format_value(*value)]))
            .collect::<Vec<_>>(),
    })
}

/// The part of Loki's statistics Meniscus measures.
fn stats(started: Instant, entries: usize) -> Value {
    json!({
        "summary": {
            "execTime": started.elapsed().as_secs_f64(),
            "totalEntriesReturned": entries,
        }
    })
}

/// Unix seconds as a JSON number: whole when the time is a whole second.
fn unix_seconds(millis: i64) -> Value {
    if millis % 1000 == 0 {
        json!(millis / 1000)
    } else {
        json!(millis as f64 / 1000.0)
    }
}

/// A sample value as Prometheus writes it: the shortest text that reads back the same.
pub(crate) fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_loki_reads_them() {
        let at = |text: &str| {
            parse_loki_time("start", text)
                .unwrap()
                .timestamp_nanos_opt()
        };
        assert_eq!(at("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(at("1700000000000000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(at("1700000000.25"), Some(1_700_000_000_250_000_000));
        assert_eq!(at("2023-11-14T22:13:20Z"), Some(1_700_000_000_000_000_000));
        assert!(parse_loki_time("start", "yesterday").is_err());
        assert!(parse_loki_time("start", "1e400").is_err());
    }

    #[test]
    fn steps_are_durations_or_seconds() {
        let step = |text: &str| parse_seconds_or_duration("step", text).map(|d| d.as_millis());
        assert_eq!(step("60").unwrap(), 60_000);
        assert_eq!(step("0.5").unwrap(), 500);
        assert_eq!(step("5m").unwrap(), 300_000);
        assert!(step("0").is_err());
        assert!(step("-1").is_err());
        assert!(step("soon").is_err());
        let start = Utc::now();
        assert_eq!(
            default_step(start, start + Duration::hours(1)).as_secs(),
            15
        );
        assert_eq!(default_step(start, start).as_secs(), 1);
    }

    #[test]
    fn values_and_times_are_written_as_loki_writes_them() {
        assert_eq!(format_value(5.0), "5");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(unix_seconds(1_700_000_000_000), json!(1_700_000_000));
        assert_eq!(unix_seconds(1_700_000_000_500), json!(1_700_000_000.5));
    }
}
