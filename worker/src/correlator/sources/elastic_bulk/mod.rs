//! Elasticsearch's `_bulk` API, so Filebeat, Logstash, Fluent Bit's `es` output, Vector's
//! `elasticsearch` sink and the Elasticsearch clients ship here unchanged.
//!
//! - `GET /` answers the version handshake clients make before anything else (they check the
//!   `X-Elastic-Product: Elasticsearch` header, sent on every answer here).
//! - `POST /_bulk` and `POST /{index}/_bulk`: NDJSON, an action line (`index` or `create`,
//!   with optional `_index` and `_id`) then the document, per item. Each document becomes an
//!   event: `msg` from `message`, `time` from `@timestamp`, `host` from `host.name` (or a
//!   `host` string), `pname` from `service.name` (else the index), the severity from
//!   `log.level`; the rest of the document, with `_index` and any `_id`, under
//!   `native.document`. Nested (`{"host": {"name": ...}}`) and dotted (`"host.name"`) field
//!   names are both read.
//! - The answer is Elastic's: `{"took", "errors", "items": [{"create": {"_index", "_id",
//!   "status": 201, "result": "created", ...}}]}`; an item that cannot be taken (`delete` and
//!   `update`: the store is append-only; a document that is not a JSON object) gets its own
//!   status and error while the others are stored. A request refused whole (credentials,
//!   limits, backpressure) gets Elastic's error body with the status.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, FixedOffset, Utc};
use meniscus_grid::event::new_ulid_at;
use meniscus_grid::tenant::Tenant;
use meniscus_grid::Transport;
use meniscus_record::{Batch, BatchBuilder, EventRow};
use serde_json::{json, Map, Value};

use super::agent::{self, severity_from_level, user_pri, NativeJson};
use crate::http::error::ApiError;
use crate::http::AppState;

const TRANSPORT: Transport = Transport::Elastic;
/// The Elasticsearch version reported to clients: the 8.x API these endpoints follow.
const COMPATIBLE_VERSION: &str = "8.11.0";

/// Every answer carries the product header the Elasticsearch clients verify.
fn elastic(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

/// `GET /`: the cluster information clients read before their first request.
pub async fn info() -> Response {
    elastic(
        Json(json!({
            "name": "meniscus",
            "cluster_name": "meniscus",
            "cluster_uuid": "meniscus",
            "version": {
                "number": COMPATIBLE_VERSION,
                "build_flavor": "default",
                "build_type": "meniscus",
                "build_hash": "meniscus",
                "build_date": "2023-11-04T10:04:57.184859352Z",
                "build_snapshot": false,
                "lucene_version": "9.8.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0"
            },
            "tagline": "You Know, for Search"
        }))
        .into_response(),
    )
}

pub async fn bulk(State(state): State<Arc<AppState>>, request: Request) -> Response {
    bulk_for_index(&state, None, request).await
}

pub async fn bulk_into(
    State(state): State<Arc<AppState>>,
    Path(index): Path<String>,
    request: Request,
) -> Response {
    bulk_for_index(&state, Some(index), request).await
}

async fn bulk_for_index(state: &AppState, index: Option<String>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let result = bulk_inner(state, &parts.headers, body, index.as_deref()).await;
    let (response, error) = match result {
        Ok(items) => {
            let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let body = format!(
                "{{\"took\":{took},\"errors\":{},\"items\":[{}]}}",
                items.errors, items.text
            );
            (
                ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
                None,
            )
        }
        Err(error) => (error_response(&error), Some(error)),
    };
    agent::count_answer(
        state,
        "elastic_bulk",
        TRANSPORT,
        error.as_ref(),
        response.status(),
    );
    elastic(response)
}

/// Elastic's error body: `{"error": {"root_cause": [...], "type", "reason"}, "status"}`.
fn error_response(error: &ApiError) -> Response {
    let kind = match error.status {
        StatusCode::UNAUTHORIZED => "security_exception",
        StatusCode::TOO_MANY_REQUESTS => "es_rejected_execution_exception",
        StatusCode::PAYLOAD_TOO_LARGE => "content_too_long_exception",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable_shards_exception",
        _ => "illegal_argument_exception",
    };
    let cause = json!({ "type": kind, "reason": error.message });
    let mut response = (
        error.status,
        Json(json!({
            "error": { "root_cause": [cause], "type": kind, "reason": error.message },
            "status": error.status.as_u16()
        })),
    )
        .into_response();
    error.add_retry_after(&mut response);
    response
}

async fn bulk_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    default_index: Option<&str>,
) -> Result<Items, ApiError> {
    let (tenant, body) = agent::authorized_body(state, headers, body, TRANSPORT).await?;
    let text = std::str::from_utf8(&body).map_err(|error| {
        ApiError::bad_request(format!(
            "the body is not valid UTF-8 (first bad byte at offset {})",
            error.valid_up_to()
        ))
    })?;
    let (batch, items) = to_batch(&tenant, text, default_index, Utc::now())?;
    if !batch.is_empty() {
        agent::hand_on(state, batch, TRANSPORT, body.len()).await?;
    }
    Ok(items)
}

/// A field by its nested (`{"host": {"name": ...}}`) or dotted (`"host.name"`) name.
fn field<'d>(document: &'d Map<String, Value>, path: &str) -> Option<&'d Value> {
    if let Some(value) = document.get(path) {
        return Some(value);
    }
    let (head, rest) = path.split_once('.')?;
    field(document.get(head)?.as_object()?, rest)
}

fn text_field(document: &Map<String, Value>, path: &str) -> Option<String> {
    match field(document, path)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The answer's `items`, written as JSON text as they come (a thousand small JSON trees per
/// request cost more than the events themselves).
#[derive(Default)]
struct Items {
    text: String,
    /// Whether any item failed (the answer's `errors`).
    errors: bool,
}

impl Items {
    /// One action's result, in Elastic's shape.
    fn push(
        &mut self,
        action: &str,
        index: &str,
        id: &str,
        status: u16,
        error: Option<(&str, String)>,
    ) {
        let quote = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
        if !self.text.is_empty() {
            self.text.push(',');
        }
        self.text.push_str(&format!(
            "{{{}:{{\"_index\":{},\"_id\":{},\"status\":{status},",
            quote(action),
            quote(index),
            quote(id)
        ));
        match error {
            None => self.text.push_str(
                "\"result\":\"created\",\"_version\":1,\"_shards\":{\"total\":1,\"successful\":1,\"failed\":0}}}",
            ),
            Some((kind, reason)) => {
                self.errors = true;
                self.text.push_str(&format!(
                    "\"error\":{{\"type\":{},\"reason\":{}}}}}}}",
                    quote(kind),
                    quote(&reason)
                ));
            }
        }
    }
}

/// The members of a document that name event fields (nested or dotted).
const FIELD_ROOTS: [&str; 7] = [
    "@timestamp",
    "host",
    "host.name",
    "service",
    "service.name",
    "log",
    "log.level",
];

/// A bulk document read in one pass: `message` taken out, the members that name event fields
/// kept as small JSON trees, and every other member copied straight into `rest` as JSON text.
/// Building a tree of the whole document and writing it back out cost most of `_bulk`'s
/// CPU (bench/agents).
struct Document {
    message: Option<String>,
    fields: Map<String, Value>,
    /// The document without `message`, as a JSON object; `None` when nothing is left.
    rest: Option<String>,
}

impl Document {
    fn read(text: &str) -> Result<Document, serde_json::Error> {
        use serde::de::Deserializer as _;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let document = deserializer.deserialize_map(DocumentVisitor)?;
        deserializer.end()?;
        Ok(document)
    }
}

struct DocumentVisitor;

impl<'de> serde::de::Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        use serde::ser::{SerializeMap, Serializer as _};
        let mut message = None;
        let mut fields = Map::new();
        let mut rest = Vec::with_capacity(256);
        let mut members = 0usize;
        {
            let mut serializer = serde_json::Serializer::new(&mut rest);
            let mut out = serializer
                .serialize_map(None)
                .map_err(serde::de::Error::custom)?;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "message" {
                    message = Some(match map.next_value::<Value>()? {
                        Value::String(text) => text,
                        other => other.to_string(),
                    });
                } else if FIELD_ROOTS.contains(&key.as_ref()) {
                    let value: Value = map.next_value()?;
                    out.serialize_entry(key.as_ref(), &value)
                        .map_err(serde::de::Error::custom)?;
                    fields.insert(key.into_owned(), value);
                    members += 1;
                } else {
                    out.serialize_key(key.as_ref())
                        .map_err(serde::de::Error::custom)?;
                    map.next_value_seed(CopyInto(&mut out))?;
                    members += 1;
                }
            }
            SerializeMap::end(out).map_err(serde::de::Error::custom)?;
        }
        let rest = (members > 0).then(|| String::from_utf8(rest).unwrap_or_default());
        Ok(Document {
            message,
            fields,
            rest,
        })
    }
}

/// Copies one JSON value from the document being read into the output, without a tree.
struct CopyInto<'a, 'w>(
    &'a mut serde_json::ser::Compound<'w, &'w mut Vec<u8>, serde_json::ser::CompactFormatter>,
);

impl<'de> serde::de::DeserializeSeed<'de> for CopyInto<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        use serde::de::Error as _;
        use serde::ser::SerializeMap;
        let value = serde_transcode::Transcoder::new(deserializer);
        self.0
            .serialize_value(&value)
            .map_err(|error| D::Error::custom(error.to_string()))
    }
}

fn to_batch(
    tenant: &Tenant,
    text: &str,
    default_index: Option<&str>,
    received_at: DateTime<Utc>,
) -> Result<(Batch, Items), ApiError> {
    let mut batch = BatchBuilder::default();
    let columns = batch.tenant(&tenant.id);
    let mut items = Items::default();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    while let Some((number, line)) = lines.next() {
        let action: Map<String, Value> = serde_json::from_str(line).map_err(|error| {
            ApiError::bad_request(format!(
                "line {}: not a bulk action ({error}); expected {{\"create\": {{\"_index\": ...}}}}",
                number + 1
            ))
        })?;
        let Some((kind, meta)) = action.iter().next().filter(|_| action.len() == 1) else {
            return Err(ApiError::bad_request(format!(
                "line {}: an action line holds exactly one action",
                number + 1
            )));
        };
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .unwrap_or("")
            .to_string();
        let given_id = meta.get("_id").and_then(Value::as_str).map(str::to_string);
        if kind == "delete" {
            // No document follows a delete.
            let id = given_id.unwrap_or_default();
            items.push(
                kind,
                &index,
                &id,
                400,
                Some((
                    "illegal_argument_exception",
                    "Meniscus keeps logs append-only: delete is not supported".into(),
                )),
            );
            continue;
        }
        let Some((doc_number, document)) = lines.next() else {
            return Err(ApiError::bad_request(format!(
                "line {}: the {kind} action has no document line after it",
                number + 1
            )));
        };
        if kind != "index" && kind != "create" {
            let id = given_id.unwrap_or_default();
            items.push(kind, &index, &id, 400, Some(("illegal_argument_exception",
                format!("Meniscus keeps logs append-only: {kind} is not supported; use create or index"))));
            continue;
        }
        if index.is_empty() {
            items.push(
                kind,
                &index,
                given_id.as_deref().unwrap_or(""),
                400,
                Some((
                    "action_request_validation_exception",
                    "no index: give _index in the action or use /{index}/_bulk".into(),
                )),
            );
            continue;
        }
        let document = match Document::read(document) {
            Ok(document) => document,
            Err(_) => {
                items.push(
                    kind,
                    &index,
                    given_id.as_deref().unwrap_or(""),
                    400,
                    Some((
                        "document_parsing_exception",
                        format!("line {}: the document is not a JSON object", doc_number + 1),
                    )),
                );
                continue;
            }
        };
        let fields = &document.fields;
        let time = text_field(fields, "@timestamp")
            .and_then(|text| DateTime::<FixedOffset>::parse_from_rfc3339(&text).ok());
        let event_id = new_ulid_at(received_at);
        let id = given_id.clone().unwrap_or_else(|| event_id.clone());
        let msg = document.message.unwrap_or_default();
        let host = text_field(fields, "host.name").or_else(|| text_field(fields, "host"));
        let pname = text_field(fields, "service.name").or_else(|| Some(index.clone()));
        let pri = text_field(fields, "log.level")
            .as_deref()
            .and_then(severity_from_level)
            .map(user_pri);
        let mut native = NativeJson::default();
        native.text("_index", &index);
        if let Some(given) = &given_id {
            native.text("_id", given);
        }
        if let Some(rest) = &document.rest {
            native.raw("document", rest);
        }
        let native = native.finish().unwrap_or_default();
        let producer = tenant.producer_for(pname.as_deref());
        columns.push(&EventRow {
            time,
            event_id: Some(&event_id),
            host: host.as_deref(),
            pname: pname.as_deref(),
            pri,
            native: Some(&native),
            ..EventRow::message(&msg, producer, TRANSPORT, received_at)
        });
        items.push(kind, &index, &id, 201, None);
    }
    let groups = batch
        .finish()
        .map_err(|error| ApiError::bad_request(format!("the events cannot be stored: {error}")))?;
    Ok((Batch::new(groups), items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_read_in_one_pass_without_their_message() {
        let document = Document::read(
            r#"{"@timestamp":"2026-11-25T10:00:00Z","message":"hello \"x\"","host":{"name":"h1","ip":["10.0.0.1"]},"service.name":"svc","tags":[1,{"a":null}],"n":1.5,"s":"t\u00e9"}"#,
        )
        .unwrap();
        assert_eq!(document.message.as_deref(), Some("hello \"x\""));
        assert_eq!(
            text_field(&document.fields, "host.name").as_deref(),
            Some("h1")
        );
        assert_eq!(
            text_field(&document.fields, "service.name").as_deref(),
            Some("svc")
        );
        let rest: Value = serde_json::from_str(document.rest.as_deref().unwrap()).unwrap();
        assert_eq!(
            rest,
            json!({"@timestamp": "2026-11-25T10:00:00Z", "host": {"name": "h1", "ip": ["10.0.0.1"]},
                   "service.name": "svc", "tags": [1, {"a": null}], "n": 1.5, "s": "té"})
        );
        let structured = Document::read(r#"{"message":{"a":1}}"#).unwrap();
        assert_eq!(structured.message.as_deref(), Some(r#"{"a":1}"#));
        assert!(structured.rest.is_none());
        for bad in ["[1]", "\"text\"", r#"{"a":1} x"#, r#"{"a":"#, ""] {
            assert!(Document::read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_found_nested_or_dotted() {
        let document: Map<String, Value> = serde_json::from_value(json!({
            "host": {"name": "web-1"},
            "log.level": "warn",
            "service": {"name": "api"}
        }))
        .unwrap();
        assert_eq!(text_field(&document, "host.name").as_deref(), Some("web-1"));
        assert_eq!(text_field(&document, "log.level").as_deref(), Some("warn"));
        assert_eq!(
            text_field(&document, "service.name").as_deref(),
            Some("api")
        );
        assert_eq!(text_field(&document, "service.version"), None);
    }
}
