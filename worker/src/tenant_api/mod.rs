//! The tenant persona's read API: job status, search, SQL and counts. Every call needs the
//! tenant's token and sees only that tenant's events. The Loki-compatible query API is in
//! [`loki`].

pub mod loki;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use meniscus_grid::event::{parse_facility, parse_severity};
use serde::Deserialize;
use serde_json::{json, Value};

use meniscus_store::query::SearchRequest;

use crate::http::error::ApiError;
use crate::http::{authorize, read_body, AppState};

pub(crate) const DEFAULT_PAGE: usize = 100;
pub(crate) const MAX_PAGE: usize = 1000;

/// Counts the request by route and status (queries are counted and timed by the engine).
fn finish<T>(state: &AppState, route: &str, result: Result<T, ApiError>) -> Result<T, ApiError> {
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(error) => error.status,
    };
    state.http_metrics.requests.inc(&[route, status.as_str()]);
    result
}

pub async fn job_status(
    State(state): State<Arc<AppState>>,
    Path((tenant_id, job_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        let tenant = authorize(&state, &tenant_id, &headers)?;
        if ulid::Ulid::from_string(&job_id).is_err() {
            return Err(ApiError::not_found(
                "unknown_job",
                format!("no job {job_id:?}: job ids are ULIDs"),
            ));
        }
        let stored = match state
            .store()?
            .jobs
            .stored_events(tenant.id.as_str(), &job_id)
        {
            Some(events) => events,
            None => state.queries()?.job_events(&tenant.id, &job_id).await?,
        };
        if stored == 0 {
            return Err(ApiError::not_found(
                "unknown_job",
                format!("no job {job_id:?} for tenant {}", tenant.id),
            ));
        }
        // `archived` once no event of the job is without a copy in the archive.
        let status = match state
            .queries()?
            .job_unarchived_events(&tenant.id, &job_id)
            .await?
        {
            Some(0) => "archived",
            _ => "stored",
        };
        Ok(Json(
            json!({ "job_id": job_id, "status": status, "events": stored }),
        ))
    }
    .await;
    finish(&state, "jobs", result)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    host: Option<String>,
    pname: Option<String>,
    /// Comma-separated codes or names (`err,crit` or `3,2`).
    severity: Option<String>,
    facility: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// RFC 3339, or relative to now: `15m`, `2h`, `7d` ago.
fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(ago) = text.parse::<meniscus_grid::duration::HumanDuration>() {
        // Checked: `999999999d` ago is before any time the calendar holds (a handler
        // panicked on it).
        return Duration::from_std(ago.0)
            .ok()
            .and_then(|ago| Utc::now().checked_sub_signed(ago))
            .ok_or_else(|| ApiError::bad_request(format!("{name}: {text:?} is too far back")));
    }
    Err(ApiError::bad_request(format!(
        "{name}: {text:?} is neither an RFC 3339 time nor a duration ago like 15m or 7d"
    )))
}

fn parse_codes(
    name: &str,
    text: &Option<String>,
    parse: fn(&str) -> Option<u8>,
) -> Result<Vec<u8>, ApiError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            parse(item)
                .ok_or_else(|| ApiError::bad_request(format!("{name}: unknown value {item:?}")))
        })
        .collect()
}

pub(crate) fn encode_cursor(ts: i64, event_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{ts}:{event_id}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let invalid = || ApiError::bad_request("cursor: not a cursor returned by this API");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (ts, event_id) = text.split_once(':').ok_or_else(invalid)?;
    Ok((ts.parse().map_err(|_| invalid())?, event_id.to_string()))
}

pub async fn search(
    State(state): State<Arc<AppState>>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        let tenant = authorize(&state, &tenant_id, &headers)?;
        let Query(params) =
            params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        let request = SearchRequest {
            from: params
                .from
                .as_deref()
                .map(|text| parse_time("from", text))
                .transpose()?,
            to: params
                .to
                .as_deref()
                .map(|text| parse_time("to", text))
                .transpose()?,
            text: params.q.filter(|text| !text.is_empty()),
            host: params.host,
            pname: params.pname,
            severities: parse_codes("severity", &params.severity, parse_severity)?,
            facilities: parse_codes("facility", &params.facility, parse_facility)?,
            limit: params.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
            after: params.cursor.as_deref().map(decode_cursor).transpose()?,
        };
        let page = state.queries()?.search(&tenant.id, request).await?;
        let next_cursor = page.next.map(|(ts, event_id)| encode_cursor(ts, &event_id));
        let mut answer = json!({ "events": page.events, "next_cursor": next_cursor });
        if !page.unreadable.is_empty() {
            answer["unreadable"] = json!(page.unreadable);
        }
        Ok(Json(answer))
    }
    .await;
    finish(&state, "events", result)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    pub(crate) sql: String,
    /// `json` (the default: rows as objects, cut at the row and byte limits) or `arrow`:
    /// every row as an Arrow IPC stream, refused past the query memory limit instead of cut
    /// (what the grid's tenant API fetches from storage workers to run one statement over
    /// all of them).
    #[serde(default)]
    pub(crate) format: SqlFormat,
}

impl SqlRequest {
    /// Reads a request body (any content type: `curl -d` labels JSON as a form).
    pub(crate) fn read(body: &[u8]) -> Result<SqlRequest, ApiError> {
        serde_json::from_slice(body).map_err(|error| {
            ApiError::bad_request(format!(
                "{error}; expected {{\"sql\": \"SELECT ... FROM events\"}}"
            ))
        })
    }
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SqlFormat {
    #[default]
    Json,
    Arrow,
}

/// Header of an Arrow SQL answer naming the windows the query could not read (JSON).
pub const UNREADABLE_HEADER: &str = "x-meniscus-unreadable";

pub async fn sql(
    State(state): State<Arc<AppState>>,
    Path(tenant_id): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let result = async {
        let tenant = authorize(&state, &tenant_id, &headers)?;
        // A statement plus its JSON wrapping; longer ones are refused by the query engine
        // with a message naming the limit.
        let limit = state
            .queries()?
            .limits()
            .max_statement_bytes
            .saturating_mul(2)
            + 1024;
        let body = read_body(&state, &headers, body, limit).await?;
        let request = SqlRequest::read(&body)?;
        if request.format == SqlFormat::Arrow {
            let (stream, unreadable) = state.queries()?.sql_arrow(&tenant.id, &request.sql).await?;
            let unreadable = serde_json::to_string(&unreadable).unwrap_or_default();
            return Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        meniscus_store::query::distributed::ARROW_STREAM.to_string(),
                    ),
                    (
                        header::HeaderName::from_static(UNREADABLE_HEADER),
                        unreadable,
                    ),
                ],
                stream,
            )
                .into_response());
        }
        let result = state.queries()?.sql(&tenant.id, &request.sql).await?;
        Ok(Json(serde_json::to_value(result).unwrap_or(Value::Null)).into_response())
    }
    .await;
    finish(&state, "sql", result)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    from: Option<String>,
    to: Option<String>,
    /// Bucket width: `60s`, `5m`, `1h`.
    bucket: Option<String>,
    group_by: Option<String>,
}

/// Most buckets one counts request may ask for.
const MAX_BUCKETS: i64 = 10_000;
/// Widest bucket: ten years (a wider one answered 500 from the engine's interval arithmetic).
const MAX_BUCKET_SECONDS: u64 = 3650 * 86_400;

pub async fn metrics(
    State(state): State<Arc<AppState>>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<MetricsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        let tenant = authorize(&state, &tenant_id, &headers)?;
        let Query(params) =
            params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        let to = params
            .to
            .as_deref()
            .map(|text| parse_time("to", text))
            .transpose()?
            .unwrap_or_else(Utc::now);
        let from = params
            .from
            .as_deref()
            .map(|text| parse_time("from", text))
            .transpose()?
            .unwrap_or(to - Duration::hours(1));
        if from >= to {
            return Err(ApiError::bad_request("from must be before to"));
        }
        let bucket = params.bucket.as_deref().unwrap_or("1m");
        let bucket: meniscus_grid::duration::HumanDuration =
            bucket
                .parse()
                .map_err(|error: meniscus_grid::duration::DurationError| {
                    ApiError::bad_request(format!("bucket: {error}"))
                })?;
        let bucket_seconds = bucket.0.as_secs();
        if bucket_seconds == 0 || bucket_seconds > MAX_BUCKET_SECONDS {
            return Err(ApiError::bad_request(format!(
                "bucket must be between 1s and {}d",
                MAX_BUCKET_SECONDS / 86_400
            )));
        }
        if (to - from).num_seconds() / bucket_seconds as i64 > MAX_BUCKETS {
            return Err(ApiError::bad_request(format!(
                "more than {MAX_BUCKETS} buckets: widen the bucket or narrow the range"
            )));
        }
        let result = state
            .queries()?
            .counts(
                &tenant.id,
                from,
                to,
                bucket_seconds,
                params.group_by.as_deref(),
            )
            .await?;
        let mut answer = json!({
            "from": from,
            "to": to,
            "bucket_seconds": bucket_seconds,
            "group_by": params.group_by,
            "buckets": result.rows,
            "truncated": result.truncated,
        });
        if !result.unreadable.is_empty() {
            answer["unreadable"] = json!(result.unreadable);
        }
        Ok(Json(answer))
    }
    .await;
    finish(&state, "metrics", result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor(1_764_000_000_000_000, "01JABC");
        assert_eq!(
            decode_cursor(&cursor).unwrap(),
            (1_764_000_000_000_000, "01JABC".to_string())
        );
        assert_eq!(
            decode_cursor("%%%").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        assert!(parse_time("from", "2026-11-25T10:00:00Z").is_ok());
        let ago = parse_time("from", "15m").unwrap();
        assert!(Utc::now() - ago >= Duration::minutes(15));
        assert!(parse_time("from", "yesterday")
            .unwrap_err()
            .message
            .contains("neither"));
    }
}
