//! The Arrow schema of the hot store and the conversions between events and record batches.
//!
//! One row per event. `ts` is the event's effective time (the sender's time, or the receive time
//! when the sender gave none): it orders results, picks the hourly window, and drives
//! retention. `time` keeps the sender's stamp as written, offset included. Nested parts
//! (`native`, `normalized`, `tags`) are JSON text, which SQL can still search with `LIKE` and
//! which keeps the schema fixed whatever tenants send.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder, UInt64Array, UInt64Builder, UInt8Array,
    UInt8Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use meniscus_grid::{Correlation, Event, Transport};
use serde_json::{Map, Value};

pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
            let byte = |name: &str| Field::new(name, DataType::UInt8, true);
            Arc::new(Schema::new(vec![
                Field::new("ts", timestamp.clone(), false),
                text("time", true),
                Field::new("received_at", timestamp, false),
                text("event_id", false),
                text("job_id", true),
                text("host", true),
                text("pname", true),
                text("pid", true),
                text("msgid", true),
                byte("pri"),
                byte("facility"),
                byte("severity"),
                byte("ver"),
                text("msg", false),
                text("native", true),
                text("normalized", true),
                text("tags", true),
                text("producer", false),
                text("pattern", true),
                Field::new("durable", DataType::Boolean, false),
                Field::new("encrypted", DataType::Boolean, false),
                text("transport", false),
                text("parse_error", true),
                text("raw", true),
                text("raw_encoding", true),
                Field::new("truncated_from", DataType::UInt64, true),
            ]))
        })
        .clone()
}

fn json_or_null<T: serde::Serialize>(value: &T, empty: bool) -> Option<String> {
    if empty {
        None
    } else {
        serde_json::to_string(value).ok()
    }
}

/// Builds one record batch from events (all of one tenant).
pub fn events_to_batch(events: &[Event]) -> Result<RecordBatch, ArrowError> {
    let rows = events.len();
    let micros = |time: DateTime<Utc>| time.timestamp_micros();
    let mut ts = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut received_at = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut strings: Vec<StringBuilder> = (0..17)
        .map(|_| StringBuilder::with_capacity(rows, rows * 16))
        .collect();
    let mut bytes: Vec<UInt8Builder> = (0..4).map(|_| UInt8Builder::with_capacity(rows)).collect();
    let mut durable = BooleanBuilder::with_capacity(rows);
    let mut encrypted = BooleanBuilder::with_capacity(rows);
    let mut truncated_from = UInt64Builder::with_capacity(rows);
    for event in events {
        let meta = &event.meniscus;
        ts.append_value(micros(event.effective_time()));
        received_at.append_value(micros(meta.received_at));
        let time_text = event
            .time
            .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let texts: [Option<&str>; 17] = [
            time_text.as_deref(),
            Some(&meta.event_id),
            meta.job_id.as_deref(),
            event.host.as_deref(),
            event.pname.as_deref(),
            event.pid.as_deref(),
            event.msgid.as_deref(),
            Some(&event.msg),
            None, // native, below
            None, // normalized, below
            None, // tags, below
            Some(&meta.producer),
            meta.pattern.as_deref(),
            Some(meta.transport.as_str()),
            meta.parse_error.as_deref(),
            meta.raw.as_deref(),
            meta.raw_encoding.as_deref(),
        ];
        let native = json_or_null(&event.native, event.native.is_empty());
        let normalized = json_or_null(&event.normalized, event.normalized.is_empty());
        let tags = json_or_null(&event.tags, event.tags.is_empty());
        for (index, builder) in strings.iter_mut().enumerate() {
            let value = match index {
                8 => native.as_deref(),
                9 => normalized.as_deref(),
                10 => tags.as_deref(),
                _ => texts[index],
            };
            builder.append_option(value);
        }
        bytes[0].append_option(event.pri);
        bytes[1].append_option(event.facility());
        bytes[2].append_option(event.severity());
        bytes[3].append_option(event.ver);
        durable.append_value(meta.durable);
        encrypted.append_value(meta.encrypted);
        truncated_from.append_option(meta.truncated_from);
    }
    let mut strings = strings
        .into_iter()
        .map(|mut builder| Arc::new(builder.finish()) as ArrayRef);
    let mut bytes = bytes
        .into_iter()
        .map(|mut builder| Arc::new(builder.finish()) as ArrayRef);
    let mut next_string = || strings.next().expect("17 string columns");
    let mut next_byte = || bytes.next().expect("4 byte columns");
    let time = next_string();
    let event_id = next_string();
    let job_id = next_string();
    let host = next_string();
    let pname = next_string();
    let pid = next_string();
    let msgid = next_string();
    let msg = next_string();
    let native = next_string();
    let normalized = next_string();
    let tags = next_string();
    let producer = next_string();
    let pattern = next_string();
    let transport = next_string();
    let parse_error = next_string();
    let raw = next_string();
    let raw_encoding = next_string();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        time,
        Arc::new(received_at.finish()),
        event_id,
        job_id,
        host,
        pname,
        pid,
        msgid,
        next_byte(),
        next_byte(),
        next_byte(),
        next_byte(),
        msg,
        native,
        normalized,
        tags,
        producer,
        pattern,
        Arc::new(durable.finish()),
        Arc::new(encrypted.finish()),
        transport,
        parse_error,
        raw,
        raw_encoding,
        Arc::new(truncated_from.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|array| array.as_any().downcast_ref::<T>())
}

fn text_at(array: Option<&StringArray>, row: usize) -> Option<String> {
    array
        .filter(|array| !array.is_null(row))
        .map(|array| array.value(row).to_string())
}

fn json_at(array: Option<&StringArray>, row: usize) -> Option<Value> {
    text_at(array, row).and_then(|text| serde_json::from_str(&text).ok())
}

fn timestamp_at(array: Option<&TimestampMicrosecondArray>, row: usize) -> Option<DateTime<Utc>> {
    array
        .filter(|array| !array.is_null(row))
        .and_then(|array| Utc.timestamp_micros(array.value(row)).single())
}

fn byte_at(array: Option<&UInt8Array>, row: usize) -> Option<u8> {
    array
        .filter(|array| !array.is_null(row))
        .map(|array| array.value(row))
}

/// Rebuilds events from a batch with the hot-store schema (or a projection of it that keeps
/// `received_at`, `event_id` and `msg`), for the search API.
pub fn batch_to_events(batch: &RecordBatch, tenant: &str) -> Vec<Event> {
    let strings = |name: &str| column::<StringArray>(batch, name);
    let (time, event_id, job_id, host, pname, pid, msgid, msg) = (
        strings("time"),
        strings("event_id"),
        strings("job_id"),
        strings("host"),
        strings("pname"),
        strings("pid"),
        strings("msgid"),
        strings("msg"),
    );
    let (native, normalized, tags, producer, pattern, transport) = (
        strings("native"),
        strings("normalized"),
        strings("tags"),
        strings("producer"),
        strings("pattern"),
        strings("transport"),
    );
    let (parse_error, raw, raw_encoding) = (
        strings("parse_error"),
        strings("raw"),
        strings("raw_encoding"),
    );
    let received_at = column::<TimestampMicrosecondArray>(batch, "received_at");
    let (pri, ver) = (
        column::<UInt8Array>(batch, "pri"),
        column::<UInt8Array>(batch, "ver"),
    );
    let durable = column::<BooleanArray>(batch, "durable");
    let encrypted = column::<BooleanArray>(batch, "encrypted");
    let truncated_from = column::<UInt64Array>(batch, "truncated_from");
    (0..batch.num_rows())
        .map(|row| {
            let object = |array: Option<&StringArray>| match json_at(array, row) {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            let transport = match text_at(transport, row).as_deref() {
                Some("udp") => Transport::Udp,
                Some("tls") => Transport::Tls,
                Some("http") => Transport::Http,
                _ => Transport::Tcp,
            };
            Event {
                time: text_at(time, row).and_then(|text| DateTime::parse_from_rfc3339(&text).ok()),
                host: text_at(host, row),
                pname: text_at(pname, row),
                pid: text_at(pid, row),
                msgid: text_at(msgid, row),
                pri: byte_at(pri, row),
                ver: byte_at(ver, row),
                msg: text_at(msg, row).unwrap_or_default(),
                native: object(native),
                normalized: object(normalized),
                tags: match json_at(tags, row) {
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .filter_map(|item| item.as_str().map(String::from))
                        .collect(),
                    _ => Vec::new(),
                },
                meniscus: Correlation {
                    tenant: tenant.to_string(),
                    producer: text_at(producer, row).unwrap_or_default(),
                    pattern: text_at(pattern, row),
                    durable: durable.map(|array| array.value(row)).unwrap_or(false),
                    encrypted: encrypted.map(|array| array.value(row)).unwrap_or(false),
                    event_id: text_at(event_id, row).unwrap_or_default(),
                    job_id: text_at(job_id, row),
                    received_at: timestamp_at(received_at, row).unwrap_or_default(),
                    transport,
                    parse_error: text_at(parse_error, row),
                    raw: text_at(raw, row),
                    raw_encoding: text_at(raw_encoding, row),
                    truncated_from: truncated_from
                        .filter(|array| !array.is_null(row))
                        .map(|array| array.value(row)),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use meniscus_grid::event::new_ulid;

    #[test]
    fn events_survive_a_trip_through_arrow() {
        let mut native = Map::new();
        native.insert("origin".into(), serde_json::json!({"ip": "10.0.0.1"}));
        let event = Event {
            time: Some(DateTime::parse_from_rfc3339("2026-11-25T10:00:00.5+02:00").unwrap()),
            host: Some("h".into()),
            pname: Some("sshd".into()),
            pid: Some("7".into()),
            msgid: Some("ID1".into()),
            pri: Some(38),
            ver: Some(1),
            msg: "accepted".into(),
            native,
            meniscus: Correlation {
                tenant: "acme".into(),
                producer: "sshd".into(),
                pattern: Some("sshd".into()),
                durable: true,
                encrypted: false,
                event_id: new_ulid(),
                job_id: Some(new_ulid()),
                received_at: Utc.timestamp_micros(1_764_000_000_123_456).unwrap(),
                transport: Transport::Tls,
                parse_error: None,
                raw: None,
                raw_encoding: None,
                truncated_from: Some(70000),
            },
            normalized: Map::new(),
            tags: vec!["ssh".into()],
        };
        let batch = events_to_batch(std::slice::from_ref(&event)).unwrap();
        assert_eq!(batch.num_rows(), 1);
        let back = batch_to_events(&batch, "acme");
        assert_eq!(back, vec![event]);
    }
}
