//! OTLP/HTTP logs, `POST /v1/logs`: what the OpenTelemetry Collector's `otlphttp` exporter
//! and the SDKs' OTLP exporters send.
//!
//! Bodies: `ExportLogsServiceRequest` as protobuf (`application/x-protobuf`) or as OTLP JSON
//! (`application/json`), optionally `Content-Encoding: gzip`. Each log record becomes an event:
//! `msg` is the body (a string as it is, any other value as JSON text), `time` the record's
//! time (else its observed time), the severity from `severity_number` (else
//! `severity_text`); `host` from the resource's `host.name`, `pname` from `service.name`,
//! `pid` from `process.pid`; under `native`: `resource`, `scope`, `attributes`, `trace_id`,
//! `span_id`, `severity_text`, `event_name`. The answer is an `ExportLogsServiceResponse` in
//! the request's encoding; errors are a `google.rpc.Status` with the status code the
//! specification gives (400 not retryable; 429 and 503 with `Retry-After`).

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use meniscus_grid::tenant::Tenant;
use meniscus_grid::Transport;
use meniscus_record::{Batch, BatchBuilder, EventRow};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::{Map, Value};

use super::agent::{self, severity_from_level, user_pri, NativeJson};
use crate::http::error::ApiError;
use crate::http::AppState;

const TRANSPORT: Transport = Transport::Otlp;

/// `google.rpc.Status`, the body of an OTLP error.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Encoding {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if json {
            Encoding::Json
        } else {
            Encoding::Protobuf
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

pub async fn export(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let encoding = Encoding::of(&parts.headers);
    let result = export_inner(&state, &parts.headers, body, encoding).await;
    let (response, error) = match result {
        Ok(()) => (answer(encoding, StatusCode::OK, success(encoding)), None),
        Err(error) => (status_response(encoding, &error), Some(error)),
    };
    agent::count_answer(
        &state,
        "otlp_logs",
        TRANSPORT,
        error.as_ref(),
        response.status(),
    );
    response
}

fn success(encoding: Encoding) -> Vec<u8> {
    let response = ExportLogsServiceResponse {
        partial_success: None,
    };
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

fn answer(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

/// The error as `google.rpc.Status`; `code` is the gRPC code matching the HTTP status.
fn status_response(encoding: Encoding, error: &ApiError) -> Response {
    let code = match error.status {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => 3, // INVALID_ARGUMENT
        StatusCode::UNAUTHORIZED => 16,                               // UNAUTHENTICATED
        StatusCode::TOO_MANY_REQUESTS => 8,                           // RESOURCE_EXHAUSTED
        StatusCode::SERVICE_UNAVAILABLE => 14,                        // UNAVAILABLE
        _ => 2,                                                       // UNKNOWN
    };
    let status = Status {
        code,
        message: error.message.clone(),
    };
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": error.message })
            .to_string()
            .into_bytes(),
    };
    let mut response = answer(encoding, error.status, body);
    error.add_retry_after(&mut response);
    response
}

async fn export_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    encoding: Encoding,
) -> Result<(), ApiError> {
    let (tenant, body) = agent::authorized_body(state, headers, body, TRANSPORT).await?;
    let request = match encoding {
        Encoding::Protobuf => {
            ExportLogsServiceRequest::decode(body.as_slice()).map_err(|error| {
                ApiError::bad_request(format!(
                    "the body is not an OTLP ExportLogsServiceRequest: {error}"
                ))
            })?
        }
        Encoding::Json => serde_json::from_slice(&body).map_err(|error| {
            ApiError::bad_request(format!("the body is not OTLP/JSON logs: {error}"))
        })?,
    };
    let batch = to_batch(&tenant, &request, Utc::now())?;
    if batch.is_empty() {
        return Ok(());
    }
    agent::hand_on(state, batch, TRANSPORT, body.len()).await?;
    Ok(())
}

/// The syslog severity of an OTLP severity number (1–4 TRACE … 21–24 FATAL).
fn severity_of_number(number: i32) -> Option<u8> {
    Some(match number {
        1..=8 => 7,   // TRACE, DEBUG
        9..=12 => 6,  // INFO
        13..=16 => 4, // WARN
        17..=20 => 3, // ERROR
        21..=24 => 2, // FATAL
        _ => return None,
    })
}

/// An OTLP value as JSON: bytes as base64, key-value lists as objects.
fn json_of(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(text)) => Value::String(text.clone()),
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(*flag),
        Some(any_value::Value::IntValue(number)) => Value::from(*number),
        Some(any_value::Value::DoubleValue(number)) => {
            serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.iter().map(json_of).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Value::Object(attributes(&list.values)),
        Some(any_value::Value::BytesValue(bytes)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        // An index into a profile's string table: no meaning outside profiles.
        Some(_) => Value::Null,
    }
}

fn attributes(pairs: &[KeyValue]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|pair| {
            let value = pair.value.as_ref().map_or(Value::Null, json_of);
            (pair.key.clone(), value)
        })
        .collect()
}

fn text_attribute(attributes: &Map<String, Value>, key: &str) -> Option<String> {
    match attributes.get(key)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

fn to_batch(
    tenant: &Tenant,
    request: &ExportLogsServiceRequest,
    received_at: DateTime<Utc>,
) -> Result<Batch, ApiError> {
    let mut batch = BatchBuilder::default();
    let columns = batch.tenant(&tenant.id);
    for resource_logs in &request.resource_logs {
        let resource = resource_logs
            .resource
            .as_ref()
            .map(|resource| attributes(&resource.attributes))
            .unwrap_or_default();
        let host = text_attribute(&resource, "host.name");
        let pname = text_attribute(&resource, "service.name");
        let pid = text_attribute(&resource, "process.pid");
        let producer = tenant.producer_for(pname.as_deref());
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs.scope.as_ref().map(|scope| {
                let mut object = Map::new();
                if !scope.name.is_empty() {
                    object.insert("name".into(), Value::String(scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    object.insert("version".into(), Value::String(scope.version.clone()));
                }
                if !scope.attributes.is_empty() {
                    object.insert(
                        "attributes".into(),
                        Value::Object(attributes(&scope.attributes)),
                    );
                }
                object
            });
            // What every record of this scope shares, written as JSON once: rebuilding and
            // re-serializing the resource for each record took a third of OTLP's ingest CPU
            // (bench/agents).
            let mut shared = NativeJson::default();
            if !resource.is_empty() {
                shared.raw("resource", &Value::Object(resource.clone()).to_string());
            }
            if let Some(scope) = scope.filter(|scope| !scope.is_empty()) {
                shared.raw("scope", &Value::Object(scope).to_string());
            }
            for record in &scope_logs.log_records {
                let msg = match record.body.as_ref().map(|body| &body.value) {
                    Some(Some(any_value::Value::StringValue(text))) => Cow::Borrowed(text.as_str()),
                    Some(Some(_)) => Cow::Owned(
                        record
                            .body
                            .as_ref()
                            .map(json_of)
                            .unwrap_or_default()
                            .to_string(),
                    ),
                    _ => Cow::Borrowed(""),
                };
                let severity = severity_of_number(record.severity_number)
                    .or_else(|| severity_from_level(&record.severity_text));
                let nanos = if record.time_unix_nano != 0 {
                    record.time_unix_nano
                } else {
                    record.observed_time_unix_nano
                };
                let time = i64::try_from(nanos)
                    .ok()
                    .filter(|nanos| *nanos > 0)
                    .map(|nanos| DateTime::from_timestamp_nanos(nanos).fixed_offset());
                let mut native = shared.clone();
                if !record.attributes.is_empty() {
                    native.raw(
                        "attributes",
                        &Value::Object(attributes(&record.attributes)).to_string(),
                    );
                }
                if !record.trace_id.is_empty() {
                    native.text("trace_id", &hex(&record.trace_id));
                }
                if !record.span_id.is_empty() {
                    native.text("span_id", &hex(&record.span_id));
                }
                if !record.severity_text.is_empty() {
                    native.text("severity_text", &record.severity_text);
                }
                if !record.event_name.is_empty() {
                    native.text("event_name", &record.event_name);
                }
                let native = native.finish();
                columns.push(&EventRow {
                    time,
                    host: host.as_deref(),
                    pname: pname.as_deref(),
                    pid: pid.as_deref(),
                    pri: severity.map(user_pri),
                    native: native.as_deref(),
                    ..EventRow::message(&msg, producer, TRANSPORT, received_at)
                });
            }
        }
    }
    let groups = batch
        .finish()
        .map_err(|error| ApiError::bad_request(format!("the events cannot be stored: {error}")))?;
    Ok(Batch::new(groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_severity_numbers_map_to_syslog_severities() {
        assert_eq!(severity_of_number(9), Some(6));
        assert_eq!(severity_of_number(13), Some(4));
        assert_eq!(severity_of_number(17), Some(3));
        assert_eq!(severity_of_number(24), Some(2));
        assert_eq!(severity_of_number(0), None);
    }

    #[test]
    fn otlp_json_requests_decode_as_the_specification_writes_them() {
        // Integers as strings, ids as hex, enums as numbers: OTLP/JSON's rules.
        let body = serde_json::json!({
            "resourceLogs": [{
                "resource": {"attributes": [
                    {"key": "service.name", "value": {"stringValue": "checkout"}},
                    {"key": "host.name", "value": {"stringValue": "node-7"}}
                ]},
                "scopeLogs": [{
                    "scope": {"name": "app.logger"},
                    "logRecords": [{
                        "timeUnixNano": "1700000000000000001",
                        "severityNumber": 17,
                        "severityText": "ERROR",
                        "body": {"stringValue": "payment failed"},
                        "attributes": [{"key": "order", "value": {"intValue": "42"}}],
                        "traceId": "5b8efff798038103d269b633813fc60c",
                        "spanId": "eee19b7ec3c1b174"
                    }]
                }]
            }]
        });
        let request: ExportLogsServiceRequest =
            serde_json::from_value(body).expect("OTLP/JSON decodes");
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(hex(&record.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(json_of(record.attributes[0].value.as_ref().unwrap()), 42);
    }
}
