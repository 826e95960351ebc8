//! Loki's push API, `POST /loki/api/v1/push`, so Promtail, Grafana Alloy, Fluent Bit's `loki`
//! output, Vector's `loki` sink and logging libraries ship here unchanged.
//!
//! Bodies: protobuf `PushRequest` compressed with snappy (block format; the agents' default,
//! any `Content-Type` but JSON) or JSON (`application/json`:
//! `{"streams": [{"stream": {labels}, "values": [["<unix ns>", "line", {metadata}?], ...]}]}`),
//! optionally `Content-Encoding: gzip`. Each entry becomes an event: `msg` is the line, `time`
//! its timestamp; `host` comes from the `host` or `hostname` label, `pname` from `app`,
//! `service_name` or `job`, the severity from `level`, `detected_level` or `severity`; every
//! label is kept under `native.labels` and structured metadata under
//! `native.structured_metadata`. Answers as Loki does: 204 when stored, else the status with
//! the error as plain text.

pub mod proto;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use meniscus_grid::tenant::Tenant;
use meniscus_grid::Transport;
use meniscus_record::{Batch, BatchBuilder, EventRow};
use prost::Message;
use serde_json::{Map, Value};

use super::agent::{self, severity_from_level, user_pri, NativeJson};
use crate::http::error::ApiError;
use crate::http::AppState;

const TRANSPORT: Transport = Transport::Loki;

pub async fn push(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = push_inner(&state, &parts.headers, body).await;
    let (response, error) = match result {
        Ok(()) => (StatusCode::NO_CONTENT.into_response(), None),
        Err(error) => (error.plain_text(), Some(error)),
    };
    agent::count_answer(
        &state,
        "loki_push",
        TRANSPORT,
        error.as_ref(),
        response.status(),
    );
    response
}

async fn push_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(), ApiError> {
    let (tenant, body) = agent::authorized_body(state, headers, body, TRANSPORT).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let streams = if is_json {
        streams_from_json(&body)?
    } else {
        streams_from_protobuf(&body, state.correlator.max_http_body_bytes)?
    };
    let batch = to_batch(&tenant, streams, Utc::now())?;
    if batch.is_empty() {
        // Loki answers an empty push with 204 too.
        return Ok(());
    }
    agent::hand_on(state, batch, TRANSPORT, body.len()).await?;
    Ok(())
}

/// One stream, whichever encoding it came in.
struct PushStream {
    labels: BTreeMap<String, String>,
    entries: Vec<PushEntry>,
}

struct PushEntry {
    nanos: i128,
    line: String,
    metadata: BTreeMap<String, String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn streams_from_protobuf(body: &[u8], limit: usize) -> Result<Vec<PushStream>, ApiError> {
    let length = snap::raw::decompress_len(body).map_err(|error| {
        bad(format!(
            "the body is not snappy-compressed protobuf: {error}"
        ))
    })?;
    if length > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body decompresses to {length} bytes, more than the limit of {limit}"),
        ));
    }
    let decoded = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| {
            bad(format!(
                "the body is not snappy-compressed protobuf: {error}"
            ))
        })?;
    let request = proto::PushRequest::decode(decoded.as_slice())
        .map_err(|error| bad(format!("the body is not a Loki PushRequest: {error}")))?;
    request
        .streams
        .into_iter()
        .enumerate()
        .map(|(index, stream)| {
            let labels = parse_labels(&stream.labels).map_err(|error| {
                bad(format!(
                    "stream {index}: labels {:?}: {error}",
                    stream.labels
                ))
            })?;
            let entries = stream
                .entries
                .into_iter()
                .map(|entry| PushEntry {
                    nanos: entry.timestamp.map_or(0, |ts| {
                        i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos)
                    }),
                    line: entry.line,
                    metadata: entry
                        .structured_metadata
                        .into_iter()
                        .map(|pair| (pair.name, pair.value))
                        .collect(),
                })
                .collect();
            Ok(PushStream { labels, entries })
        })
        .collect()
}

fn streams_from_json(body: &[u8]) -> Result<Vec<PushStream>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| bad(format!("the body is not valid JSON: {error}")))?;
    let streams = value
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("expected {\"streams\": [{\"stream\": {...}, \"values\": [...]}]}"))?;
    streams
        .iter()
        .enumerate()
        .map(|(index, stream)| {
            let labels = match stream.get("stream") {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(Value::Object(labels)) => string_map(labels).ok_or_else(|| {
                    bad(format!(
                        "streams[{index}].stream: label values must be strings"
                    ))
                })?,
                Some(_) => return Err(bad(format!("streams[{index}].stream must be an object"))),
            };
            let values = stream
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("streams[{index}].values must be an array")))?;
            let entries = values
                .iter()
                .enumerate()
                .map(|(entry, value)| {
                    json_entry(value)
                        .map_err(|error| bad(format!("streams[{index}].values[{entry}]: {error}")))
                })
                .collect::<Result<_, _>>()?;
            Ok(PushStream { labels, entries })
        })
        .collect()
}

fn string_map(object: &Map<String, Value>) -> Option<BTreeMap<String, String>> {
    object
        .iter()
        .map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
        .collect()
}

/// `["<unix ns>", "line"]` or `["<unix ns>", "line", {"name": "value"}]`.
fn json_entry(value: &Value) -> Result<PushEntry, String> {
    let parts = value
        .as_array()
        .filter(|parts| parts.len() == 2 || parts.len() == 3)
        .ok_or("expected [\"<unix epoch in nanoseconds>\", \"<log line>\"]")?;
    let nanos = match &parts[0] {
        Value::String(text) => text.parse::<i128>().ok(),
        Value::Number(number) => number.as_i64().map(i128::from),
        _ => None,
    }
    .ok_or("the timestamp must be a string of nanoseconds since the Unix epoch")?;
    let line = parts[1].as_str().ok_or("the log line must be a string")?;
    let metadata = match parts.get(2) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(object)) => {
            string_map(object).ok_or("structured metadata values must be strings")?
        }
        Some(_) => return Err("structured metadata must be an object".into()),
    };
    Ok(PushEntry {
        nanos,
        line: line.to_string(),
        metadata,
    })
}

/// Prometheus label text: `{name="value", other="va\"lue"}` (escapes `\\`, `\"`, `\n`).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or("labels must be written {name=\"value\", ...}")?;
    let mut labels = BTreeMap::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').ok_or("a label needs name=\"value\"")?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            return Err(format!("{name:?} is not a label name"));
        }
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or("label values are quoted")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => return Err("unfinished escape".into()),
                },
                Some((_, other)) => value.push(other),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.insert(name.to_string(), value);
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(labels)
}

fn first_label<'l>(labels: &'l BTreeMap<String, String>, names: &[&str]) -> Option<&'l str> {
    names
        .iter()
        .find_map(|name| labels.get(*name))
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

fn to_batch(
    tenant: &Tenant,
    streams: Vec<PushStream>,
    received_at: DateTime<Utc>,
) -> Result<Batch, ApiError> {
    let mut batch = BatchBuilder::default();
    let columns = batch.tenant(&tenant.id);
    for stream in &streams {
        let host = first_label(&stream.labels, &["host", "hostname"]);
        let pname = first_label(&stream.labels, &["app", "service_name", "job"]);
        let pri = first_label(&stream.labels, &["level", "detected_level", "severity"])
            .and_then(severity_from_level)
            .map(user_pri);
        let producer = tenant.producer_for(pname);
        // The stream's labels are written as JSON once, not per entry.
        let mut shared = NativeJson::default();
        if !stream.labels.is_empty() {
            shared.raw(
                "labels",
                &serde_json::to_string(&stream.labels).unwrap_or_else(|_| "{}".into()),
            );
        }
        let labels_only = shared.clone().finish();
        for entry in &stream.entries {
            let with_metadata;
            let native = if entry.metadata.is_empty() {
                labels_only.as_deref()
            } else {
                let mut native = shared.clone();
                native.raw(
                    "structured_metadata",
                    &serde_json::to_string(&entry.metadata).unwrap_or_else(|_| "{}".into()),
                );
                with_metadata = native.finish();
                with_metadata.as_deref()
            };
            let time = i64::try_from(entry.nanos)
                .ok()
                .filter(|nanos| *nanos > 0)
                .map(|nanos| DateTime::from_timestamp_nanos(nanos).fixed_offset());
            columns.push(&EventRow {
                time,
                host,
                pname,
                pri,
                native,
                ..EventRow::message(&entry.line, producer, TRANSPORT, received_at)
            });
        }
    }
    let groups = batch
        .finish()
        .map_err(|error| bad(format!("the events cannot be stored: {error}")))?;
    Ok(Batch::new(groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_label_text_is_parsed_with_its_escapes() {
        let labels =
            parse_labels(r#"{app="web", host="h-1", msg="say \"hi\"\n", path="C:\\x"}"#).unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels["host"], "h-1");
        assert_eq!(labels["msg"], "say \"hi\"\n");
        assert_eq!(labels["path"], "C:\\x");
        assert!(parse_labels("{}").unwrap().is_empty());
        assert!(parse_labels("app=web").is_err());
        assert!(parse_labels(r#"{app="web}"#).is_err());
        assert!(parse_labels(r#"{a-b="x"}"#).is_err());
    }

    #[test]
    fn json_entries_take_string_timestamps_and_optional_metadata() {
        let entry =
            json_entry(&serde_json::json!(["1700000000123456789", "line", {"trace_id": "t1"}]))
                .unwrap();
        assert_eq!(entry.nanos, 1_700_000_000_123_456_789);
        assert_eq!(entry.metadata["trace_id"], "t1");
        assert!(json_entry(&serde_json::json!(["soon", "line"])).is_err());
        assert!(json_entry(&serde_json::json!(["1", 5])).is_err());
    }

    #[test]
    fn protobuf_pushes_decode_from_snappy_blocks() {
        let request = proto::PushRequest {
            streams: vec![proto::Stream {
                labels: r#"{app="api", level="error"}"#.into(),
                entries: vec![proto::Entry {
                    timestamp: Some(proto::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }),
                    line: "boom".into(),
                    structured_metadata: vec![proto::LabelPair {
                        name: "trace_id".into(),
                        value: "abc".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap();
        let streams = streams_from_protobuf(&compressed, 1 << 20).unwrap();
        assert_eq!(streams[0].labels["app"], "api");
        assert_eq!(streams[0].entries[0].nanos, 1_700_000_000_000_000_005);
        assert_eq!(streams[0].entries[0].metadata["trace_id"], "abc");
        // A small body that claims to decompress past the limit is refused before it is.
        assert_eq!(
            streams_from_protobuf(&compressed, 4)
                .err()
                .map(|error| error.status),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert!(streams_from_protobuf(b"not snappy", 1 << 20).is_err());
    }
}
