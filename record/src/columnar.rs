//! The columnar form of CEE events: the Arrow schema of the hot store, the conversions between
//! events and record batches, and the record payload the write-ahead log (and later the spool
//! and the wire) carries.
//!
//! One row per event. `ts` is the event's effective time (the sender's time, or the receive time
//! when the sender gave none): it orders results, picks the hourly window, and drives
//! retention. `time_offset` is the sender's UTC offset in seconds, null when the message carried
//! no time; with `ts` (microseconds) it gives back the sender's stamp exactly, so the stamp is
//! not stored a second time as text. Nested parts (`native`, `normalized`, `tags`) are JSON
//! text, which SQL can still search with `LIKE` and which keeps the schema fixed whatever
//! tenants send.
//!
//! Events are converted once, where they are handed to storage (on the ingest threads, in
//! parallel): the WAL record is the Arrow IPC form of the same batches the memtable keeps, so
//! the single WAL thread only writes bytes, and a query reads memory without converting it.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    BooleanBuilder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
    UInt8Builder,
};
use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt64Array, UInt8Array,
};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use meniscus_grid::event::new_event_key_at;
use meniscus_grid::tenant::TenantId;
use meniscus_grid::{Correlation, Event, Producer, Transport};
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
                Field::new("time_offset", DataType::Int32, true),
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

/// One event as the columns take it: borrowed text, so a source appends what it parsed
/// without making an owned event first.
#[derive(Clone, Copy, Debug)]
pub struct EventRow<'a> {
    /// The sender's time; `None` when it sent none.
    pub time: Option<DateTime<FixedOffset>>,
    pub received_at: DateTime<Utc>,
    /// `None`: a new ULID is made, stamped with `received_at`.
    pub event_id: Option<&'a str>,
    pub job_id: Option<&'a str>,
    pub host: Option<&'a str>,
    pub pname: Option<&'a str>,
    pub pid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub pri: Option<u8>,
    pub ver: Option<u8>,
    pub msg: &'a str,
    /// Structured data as JSON text; `None` when there is none.
    pub native: Option<&'a str>,
    /// Normalizer output and tags as JSON text; `None` when empty.
    pub normalized: Option<&'a str>,
    pub tags: Option<&'a str>,
    pub producer: &'a Producer,
    pub transport: Transport,
    pub parse_error: Option<&'a str>,
    pub raw: Option<&'a str>,
    pub raw_encoding: Option<&'a str>,
    pub truncated_from: Option<u64>,
}

impl<'a> EventRow<'a> {
    /// A row with only a message: no header fields, nothing flagged.
    pub fn message(
        msg: &'a str,
        producer: &'a Producer,
        transport: Transport,
        received_at: DateTime<Utc>,
    ) -> EventRow<'a> {
        EventRow {
            time: None,
            received_at,
            event_id: None,
            job_id: None,
            host: None,
            pname: None,
            pid: None,
            msgid: None,
            pri: None,
            ver: None,
            msg,
            native: None,
            normalized: None,
            tags: None,
            producer,
            transport,
            parse_error: None,
            raw: None,
            raw_encoding: None,
            truncated_from: None,
        }
    }
}

/// A text column that stays a null array, without offsets, while every row is null: most
/// optional columns are null for a whole batch (no job id, no structured data, no parse
/// error).
#[derive(Default)]
struct OptionalText {
    builder: Option<StringBuilder>,
}

impl OptionalText {
    #[inline]
    fn append(&mut self, value: Option<&str>, rows_before: usize) {
        match (&mut self.builder, value) {
            (Some(builder), value) => builder.append_option(value),
            (None, None) => {}
            (None, Some(value)) => {
                let mut builder = StringBuilder::with_capacity(rows_before + 64, 1024);
                for _ in 0..rows_before {
                    builder.append_null();
                }
                builder.append_value(value);
                self.builder = Some(builder);
            }
        }
    }

    fn finish(&mut self, rows: usize) -> ArrayRef {
        match self.builder.take() {
            Some(mut builder) => Arc::new(builder.finish()),
            None => new_null_array(&DataType::Utf8, rows),
        }
    }
}

/// The columns of one tenant's events, appended a row at a time: what a source builds as it
/// parses, and what the WAL record, the memtable and a flush work with once finished.
pub struct EventColumns {
    tenant: TenantId,
    rows: usize,
    ts: TimestampMicrosecondBuilder,
    time_offset: Int32Builder,
    received_at: TimestampMicrosecondBuilder,
    event_id: StringBuilder,
    keys: Vec<u128>,
    job_id: OptionalText,
    host: OptionalText,
    pname: OptionalText,
    pid: OptionalText,
    msgid: OptionalText,
    pri: UInt8Builder,
    facility: UInt8Builder,
    severity: UInt8Builder,
    ver: UInt8Builder,
    msg: StringBuilder,
    native: OptionalText,
    normalized: OptionalText,
    tags: OptionalText,
    producer: StringBuilder,
    pattern: OptionalText,
    durable: BooleanBuilder,
    encrypted: BooleanBuilder,
    transport: StringBuilder,
    parse_error: OptionalText,
    raw: OptionalText,
    raw_encoding: OptionalText,
    truncated_from: UInt64Builder,
}

impl EventColumns {
    /// Columns for about `rows` events of `tenant` (they grow past it as needed).
    pub fn new(tenant: TenantId, rows: usize) -> EventColumns {
        EventColumns {
            tenant,
            rows: 0,
            ts: TimestampMicrosecondBuilder::with_capacity(rows),
            time_offset: Int32Builder::with_capacity(rows),
            received_at: TimestampMicrosecondBuilder::with_capacity(rows),
            event_id: StringBuilder::with_capacity(rows, rows * ulid::ULID_LEN),
            keys: Vec::with_capacity(rows),
            job_id: OptionalText::default(),
            host: OptionalText::default(),
            pname: OptionalText::default(),
            pid: OptionalText::default(),
            msgid: OptionalText::default(),
            pri: UInt8Builder::with_capacity(rows),
            facility: UInt8Builder::with_capacity(rows),
            severity: UInt8Builder::with_capacity(rows),
            ver: UInt8Builder::with_capacity(rows),
            msg: StringBuilder::with_capacity(rows, rows * 160),
            native: OptionalText::default(),
            normalized: OptionalText::default(),
            tags: OptionalText::default(),
            producer: StringBuilder::with_capacity(rows, rows * 8),
            pattern: OptionalText::default(),
            durable: BooleanBuilder::with_capacity(rows),
            encrypted: BooleanBuilder::with_capacity(rows),
            transport: StringBuilder::with_capacity(rows, rows * 4),
            parse_error: OptionalText::default(),
            raw: OptionalText::default(),
            raw_encoding: OptionalText::default(),
            truncated_from: UInt64Builder::with_capacity(rows),
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one event.
    #[inline]
    pub fn push(&mut self, row: &EventRow<'_>) {
        let before = self.rows;
        let effective = row
            .time
            .map_or(row.received_at, |time| time.with_timezone(&Utc));
        self.ts.append_value(effective.timestamp_micros());
        self.time_offset
            .append_option(row.time.map(|time| time.offset().local_minus_utc()));
        self.received_at
            .append_value(row.received_at.timestamp_micros());
        match row.event_id {
            Some(event_id) => {
                self.keys.push(event_key(event_id));
                self.event_id.append_value(event_id);
            }
            None => {
                let key = new_event_key_at(row.received_at);
                self.keys.push(key);
                let mut text = [0u8; ulid::ULID_LEN];
                self.event_id
                    .append_value(ulid::Ulid(key).array_to_str(&mut text));
            }
        }
        self.job_id.append(row.job_id, before);
        self.host.append(row.host, before);
        self.pname.append(row.pname, before);
        self.pid.append(row.pid, before);
        self.msgid.append(row.msgid, before);
        self.pri.append_option(row.pri);
        self.facility.append_option(row.pri.map(|pri| pri >> 3));
        self.severity.append_option(row.pri.map(|pri| pri & 7));
        self.ver.append_option(row.ver);
        self.msg.append_value(row.msg);
        self.native.append(row.native, before);
        self.normalized.append(row.normalized, before);
        self.tags.append(row.tags, before);
        self.producer.append_value(&row.producer.name);
        self.pattern.append(row.producer.pattern.as_deref(), before);
        self.durable.append_value(row.producer.durable);
        self.encrypted.append_value(row.producer.encrypted);
        self.transport.append_value(row.transport.as_str());
        self.parse_error.append(row.parse_error, before);
        self.raw.append(row.raw, before);
        self.raw_encoding.append(row.raw_encoding, before);
        self.truncated_from.append_option(row.truncated_from);
        self.rows += 1;
    }

    /// Appends an event in its owned form (HTTP bodies, tools, tests).
    pub fn push_event(&mut self, event: &Event) {
        let json =
            |value: &dyn erased::Json, empty: bool| (!empty).then(|| value.to_json()).flatten();
        let native = json(&event.native, event.native.is_empty());
        let normalized = json(&event.normalized, event.normalized.is_empty());
        let tags = json(&event.tags, event.tags.is_empty());
        let correlation = &event.meniscus;
        let producer = Producer {
            name: correlation.producer.clone(),
            pattern: correlation.pattern.clone(),
            durable: correlation.durable,
            encrypted: correlation.encrypted,
        };
        self.push(&EventRow {
            time: event.time,
            received_at: correlation.received_at,
            event_id: Some(&correlation.event_id),
            job_id: correlation.job_id.as_deref(),
            host: event.host.as_deref(),
            pname: event.pname.as_deref(),
            pid: event.pid.as_deref(),
            msgid: event.msgid.as_deref(),
            pri: event.pri,
            ver: event.ver,
            msg: &event.msg,
            native: native.as_deref(),
            normalized: normalized.as_deref(),
            tags: tags.as_deref(),
            producer: &producer,
            transport: correlation.transport,
            parse_error: correlation.parse_error.as_deref(),
            raw: correlation.raw.as_deref(),
            raw_encoding: correlation.raw_encoding.as_deref(),
            truncated_from: correlation.truncated_from,
        });
    }

    /// The finished batch of this tenant, with the dedupe key of every row.
    pub fn finish(mut self) -> Result<TenantBatch, ArrowError> {
        let rows = self.rows;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.time_offset.finish()),
            Arc::new(self.received_at.finish().with_timezone("UTC")),
            Arc::new(self.event_id.finish()),
            self.job_id.finish(rows),
            self.host.finish(rows),
            self.pname.finish(rows),
            self.pid.finish(rows),
            self.msgid.finish(rows),
            Arc::new(self.pri.finish()),
            Arc::new(self.facility.finish()),
            Arc::new(self.severity.finish()),
            Arc::new(self.ver.finish()),
            Arc::new(self.msg.finish()),
            self.native.finish(rows),
            self.normalized.finish(rows),
            self.tags.finish(rows),
            Arc::new(self.producer.finish()),
            self.pattern.finish(rows),
            Arc::new(self.durable.finish()),
            Arc::new(self.encrypted.finish()),
            Arc::new(self.transport.finish()),
            self.parse_error.finish(rows),
            self.raw.finish(rows),
            self.raw_encoding.finish(rows),
            Arc::new(self.truncated_from.finish()),
        ];
        Ok(TenantBatch {
            tenant: self.tenant,
            batch: RecordBatch::try_new(schema(), columns)?,
            keys: Some(self.keys.into()),
        })
    }
}

/// JSON text of the nested parts of an owned event.
mod erased {
    pub trait Json {
        fn to_json(&self) -> Option<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Option<String> {
            serde_json::to_string(self).ok()
        }
    }
}

/// Events of several tenants being collected into one batch: one [`EventColumns`] per tenant,
/// in order of first appearance (one read nearly always has one tenant).
#[derive(Default)]
pub struct BatchBuilder {
    tenants: Vec<EventColumns>,
    rows_hint: usize,
}

impl BatchBuilder {
    /// A builder expecting about `rows` events (sizes the first tenant's columns).
    pub fn with_capacity(rows: usize) -> BatchBuilder {
        BatchBuilder {
            tenants: Vec::new(),
            rows_hint: rows,
        }
    }

    /// The columns of `tenant`, created on first use.
    pub fn tenant(&mut self, tenant: &TenantId) -> &mut EventColumns {
        let index = match self
            .tenants
            .iter()
            .position(|columns| columns.tenant == *tenant)
        {
            Some(index) => index,
            None => {
                let rows = if self.tenants.is_empty() {
                    self.rows_hint
                } else {
                    64
                };
                self.tenants.push(EventColumns::new(tenant.clone(), rows));
                self.tenants.len() - 1
            }
        };
        &mut self.tenants[index]
    }

    pub fn rows(&self) -> usize {
        self.tenants.iter().map(EventColumns::rows).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }

    pub fn finish(self) -> Result<Vec<TenantBatch>, ArrowError> {
        self.tenants
            .into_iter()
            .filter(|columns| columns.rows > 0)
            .map(EventColumns::finish)
            .collect()
    }
}

/// Builds one record batch from events (all of one tenant).
pub fn events_to_batch(events: &[Event]) -> Result<RecordBatch, ColumnarError> {
    let Some(first) = events.first() else {
        return Ok(RecordBatch::new_empty(schema()));
    };
    let tenant = TenantId::parse(&first.meniscus.tenant)
        .map_err(|error| ColumnarError::Tenant(error.to_string()))?;
    let mut columns = EventColumns::new(tenant, events.len());
    for event in events {
        columns.push_event(event);
    }
    Ok(columns.finish()?.batch)
}

/// Events of one tenant in columnar form: the unit the WAL record, the memtable and a flush
/// work with.
#[derive(Clone, Debug)]
pub struct TenantBatch {
    pub tenant: TenantId,
    pub batch: RecordBatch,
    /// The dedupe key of every row ([`event_key`] of its `event_id`), when the batch was built
    /// here; `None` for batches read back (they are worked out from `event_id`).
    pub keys: Option<Arc<[u128]>>,
}

impl TenantBatch {
    /// A batch read back from a record or a file: its keys are worked out when needed.
    pub fn new(tenant: TenantId, batch: RecordBatch) -> TenantBatch {
        TenantBatch {
            tenant,
            batch,
            keys: None,
        }
    }

    /// The dedupe key of every row.
    pub fn keys(&self) -> Arc<[u128]> {
        match &self.keys {
            Some(keys) => keys.clone(),
            None => event_keys(&self.batch).into(),
        }
    }

    /// Rows `offset..offset + length`, keys included.
    pub fn slice(&self, offset: usize, length: usize) -> TenantBatch {
        TenantBatch {
            tenant: self.tenant.clone(),
            batch: self.batch.slice(offset, length),
            keys: self
                .keys
                .as_ref()
                .map(|keys| keys[offset..offset + length].into()),
        }
    }

    /// Whether any row belongs to a durable producer.
    pub fn is_durable(&self) -> bool {
        column::<BooleanArray>(&self.batch, "durable")
            .is_some_and(|durable| durable.true_count() > 0)
    }

    /// Whether any row belongs to a producer marked `encrypted`: wherever such a batch rests
    /// outside the store (a link's spool), it rests encrypted.
    pub fn is_encrypted(&self) -> bool {
        column::<BooleanArray>(&self.batch, "encrypted")
            .is_some_and(|encrypted| encrypted.true_count() > 0)
    }

    /// The jobs whose events this batch carries, with how many of them each (empty for
    /// events that came without a job: syslog, non-durable publishes).
    pub fn jobs(&self) -> std::collections::BTreeMap<String, u64> {
        let mut jobs = std::collections::BTreeMap::new();
        if let Some(job_ids) = column::<StringArray>(&self.batch, "job_id") {
            if job_ids.null_count() < job_ids.len() {
                for job_id in job_ids.iter().flatten() {
                    *jobs.entry(job_id.to_string()).or_insert(0) += 1;
                }
            }
        }
        jobs
    }

    /// This batch with every row's `job_id` set to `job_id`.
    pub fn with_job_id(&self, job_id: &str) -> Result<TenantBatch, ArrowError> {
        self.with_column(
            "job_id",
            Arc::new(StringArray::from(vec![job_id; self.batch.num_rows()])),
        )
    }

    /// This batch with one column replaced (same name, same type).
    pub fn with_column(&self, name: &str, column: ArrayRef) -> Result<TenantBatch, ArrowError> {
        let index = self.batch.schema().index_of(name)?;
        let mut columns = self.batch.columns().to_vec();
        columns[index] = column;
        Ok(TenantBatch {
            tenant: self.tenant.clone(),
            batch: RecordBatch::try_new(self.batch.schema(), columns)?,
            keys: self.keys.clone(),
        })
    }
}

/// Groups events by tenant (keeping their order within a tenant) and converts each group.
pub fn tenant_batches(events: &[Event]) -> Result<Vec<TenantBatch>, ColumnarError> {
    let mut builder = BatchBuilder::with_capacity(events.len());
    for event in events {
        let tenant = TenantId::parse(&event.meniscus.tenant)
            .map_err(|error| ColumnarError::Tenant(error.to_string()))?;
        builder.tenant(&tenant).push_event(event);
    }
    Ok(builder.finish()?)
}

/// The key storage dedupes on: an `event_id` ULID as its 128 bits. An id that is not a ULID
/// (none of ours; a replay of foreign data) is hashed instead, so it still dedupes.
pub fn event_key(event_id: &str) -> u128 {
    match ulid::Ulid::from_string(event_id) {
        Ok(ulid) => ulid.0,
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            let hash = |seed: u64| {
                let mut hasher = foldhash::quality::FixedState::with_seed(seed).build_hasher();
                hasher.write(event_id.as_bytes());
                hasher.finish() as u128
            };
            (hash(1) << 64) | hash(2)
        }
    }
}

/// The dedupe key of every row of a batch.
pub fn event_keys(batch: &RecordBatch) -> Vec<u128> {
    match column::<StringArray>(batch, "event_id") {
        Some(ids) => (0..ids.len())
            .map(|row| event_key(ids.value(row)))
            .collect(),
        None => Vec::new(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ColumnarError {
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("invalid tenant id in a record: {0}")]
    Tenant(String),
    #[error("truncated record payload")]
    Truncated,
    #[error("record batch does not have the event schema")]
    Schema,
}

/// The `ArrowIpc` record payload: for each tenant, `tenant length u16 LE | tenant | IPC length
/// u32 LE | Arrow IPC stream (schema and one batch)`. The stream leaves out columns that are
/// null in every row: IPC would still write their offsets and values as zeros, about 40 bytes
/// per event for a plain syslog line (job id, structured data, raw text, …), a seventh of the
/// WAL. Decoding puts them back as nulls.
pub fn encode_payload(batches: &[TenantBatch]) -> Result<Vec<u8>, ColumnarError> {
    let mut payload = Vec::new();
    encode_payload_into(batches, &mut payload)?;
    Ok(payload)
}

/// [`encode_payload`], appending to `payload`.
pub fn encode_payload_into(
    batches: &[TenantBatch],
    payload: &mut Vec<u8>,
) -> Result<(), ColumnarError> {
    let bytes: usize = batches
        .iter()
        .map(|group| group.batch.get_array_memory_size() + 4096)
        .sum();
    payload.reserve(bytes);
    for group in batches {
        let tenant = group.tenant.as_str().as_bytes();
        payload.extend_from_slice(&(tenant.len() as u16).to_le_bytes());
        payload.extend_from_slice(tenant);
        let length_at = payload.len();
        payload.extend_from_slice(&[0; 4]);
        let batch = &group.batch;
        let present: Vec<usize> = (0..batch.num_columns())
            .filter(|&index| {
                let column = batch.column(index);
                column.is_empty() || column.null_count() < column.len()
            })
            .collect();
        let batch = batch.project(&present)?;
        let mut writer = StreamWriter::try_new(&mut *payload, &batch.schema())?;
        writer.write(&batch)?;
        writer.finish()?;
        drop(writer);
        let length = (payload.len() - length_at - 4) as u32;
        payload[length_at..length_at + 4].copy_from_slice(&length.to_le_bytes());
    }
    Ok(())
}

/// `batch` in the event schema: columns matched by name and type, missing ones (and ones of
/// another type, from a file of an older version) null.
pub fn conform(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let target = schema();
    if batch.schema() == target {
        return Ok(batch.clone());
    }
    let columns = target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            _ => new_null_array(field.data_type(), batch.num_rows()),
        })
        .collect();
    RecordBatch::try_new(target, columns)
}

/// Reads an `ArrowIpc` record payload back. Tenant ids are validated again (they name
/// directories); every column must be one of the event schema's, as it is there, and the
/// columns left out come back null.
/// The bytes of Arrow data `batch` holds: its arrays' own slices, not the capacity of the
/// buffers they point into. A batch decoded from a record shares one buffer among all its
/// columns, which `RecordBatch::get_array_memory_size` counts once per column (nine times
/// over for an ordinary record): a store sizing its memory by that flushed ever smaller files.
pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}

pub fn decode_payload(payload: &[u8]) -> Result<Vec<TenantBatch>, ColumnarError> {
    decode_payload_shared(Buffer::from(payload))
}

/// [`decode_payload`] without copying `payload`: the batches' string values (most of a
/// record) stay slices of it, and only fixed-width buffers that are not aligned for their
/// type are copied. A storage worker decodes every link record this way, straight from the
/// bytes HTTP/2 received; a zeroed buffer and a copy per record were a twentieth of its CPU.
pub fn decode_payload_shared(payload: Buffer) -> Result<Vec<TenantBatch>, ColumnarError> {
    let mut groups = Vec::new();
    let bytes = payload.as_slice();
    let mut rest = bytes;
    while !rest.is_empty() {
        let tenant_length = take(&mut rest, 2)?;
        let tenant_length = u16::from_le_bytes([tenant_length[0], tenant_length[1]]) as usize;
        let tenant = take(&mut rest, tenant_length)?;
        let tenant = std::str::from_utf8(tenant)
            .ok()
            .and_then(|tenant| TenantId::parse(tenant).ok())
            .ok_or_else(|| ColumnarError::Tenant(String::from_utf8_lossy(tenant).into_owned()))?;
        let ipc_length = take(&mut rest, 4)?;
        let ipc_length =
            u32::from_le_bytes([ipc_length[0], ipc_length[1], ipc_length[2], ipc_length[3]])
                as usize;
        let ipc_start = bytes.len() - rest.len();
        take(&mut rest, ipc_length)?;
        for batch in decode_ipc_stream(payload.slice_with_length(ipc_start, ipc_length))? {
            groups.push(TenantBatch::new(tenant.clone(), conform(&batch)?));
        }
    }
    Ok(groups)
}

/// The batches of one tenant's IPC stream. Every column must be one of the event schema's,
/// as it is there, and every required one present: its buffers then back the row count,
/// which would otherwise size the null columns `conform` makes.
fn decode_ipc_stream(mut stream: Buffer) -> Result<Vec<RecordBatch>, ColumnarError> {
    let full = schema();
    let known = |field: &Arc<Field>| {
        full.field_with_name(field.name())
            .is_ok_and(|expected| expected == field.as_ref())
    };
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    while !stream.is_empty() {
        let left = stream.len();
        match decoder.decode(&mut stream)? {
            Some(batch) => batches.push(batch),
            None if stream.len() == left => break,
            None => {}
        }
    }
    decoder.finish()?;
    let written = decoder.schema().ok_or(ColumnarError::Truncated)?;
    let required_present = full
        .fields()
        .iter()
        .all(|field| field.is_nullable() || written.field_with_name(field.name()).is_ok());
    if !written.fields().iter().all(known) || !required_present {
        return Err(ColumnarError::Schema);
    }
    Ok(batches)
}

/// Splits `length` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], length: usize) -> Result<&'a [u8], ColumnarError> {
    if rest.len() < length {
        return Err(ColumnarError::Truncated);
    }
    let (head, tail) = rest.split_at(length);
    *rest = tail;
    Ok(head)
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

/// The sender's stamp from `ts` and `time_offset`.
fn sender_time(
    ts: Option<&TimestampMicrosecondArray>,
    offset: Option<&Int32Array>,
    row: usize,
) -> Option<DateTime<FixedOffset>> {
    let offset = offset.filter(|array| !array.is_null(row))?.value(row);
    let zone = FixedOffset::east_opt(offset)?;
    timestamp_at(ts, row).map(|time| time.with_timezone(&zone))
}

/// Rebuilds events from a batch with the hot-store schema (or a projection of it that keeps
/// `received_at`, `event_id` and `msg`), for the search API.
pub fn batch_to_events(batch: &RecordBatch, tenant: &str) -> Vec<Event> {
    let strings = |name: &str| column::<StringArray>(batch, name);
    let (event_id, job_id, host, pname, pid, msgid, msg) = (
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
    let ts = column::<TimestampMicrosecondArray>(batch, "ts");
    let time_offset = column::<Int32Array>(batch, "time_offset");
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
            let transport = text_at(transport, row)
                .as_deref()
                .and_then(Transport::parse)
                .unwrap_or(Transport::Tcp);
            Event {
                time: sender_time(ts, time_offset, row),
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
    fn a_decoded_payload_measures_its_own_bytes_not_the_whole_record_per_column() {
        let producer = meniscus_grid::Producer::plain("default");
        let events: Vec<Event> = (0..2000)
            .map(|n| {
                let correlation = Correlation::new("acme", &producer, Transport::Tcp, Utc::now());
                Event::from_message(
                    format!("message number {n} with some text to store"),
                    correlation,
                )
            })
            .collect();
        let groups = tenant_batches(&events).unwrap();
        let sent = batch_bytes(&groups[0].batch);
        let decoded = decode_payload(&encode_payload(&groups).unwrap()).unwrap();
        let received = batch_bytes(&decoded[0].batch);
        assert_eq!(received, sent);
        // What the capacities say instead: the shared buffer counted once per column.
        assert!(decoded[0].batch.get_array_memory_size() > 4 * sent);
    }

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
        assert_eq!(back, vec![event.clone()]);

        // Through the WAL payload too, grouped by tenant in order of first appearance.
        let mut other = event.clone();
        other.meniscus.tenant = "other".into();
        other.time = None;
        let events = vec![event.clone(), other.clone(), event.clone()];
        let groups = tenant_batches(&events).unwrap();
        let tenants: Vec<&str> = groups.iter().map(|group| group.tenant.as_str()).collect();
        assert_eq!(tenants, ["acme", "other"]);
        let decoded = decode_payload(&encode_payload(&groups).unwrap()).unwrap();
        assert_eq!(
            batch_to_events(&decoded[0].batch, "acme"),
            vec![event.clone(), event]
        );
        assert_eq!(batch_to_events(&decoded[1].batch, "other"), vec![other]);

        // The jobs a batch carries, for the `accepted` job status of a grid.
        let job = groups[0].jobs().into_keys().next().unwrap();
        assert_eq!(groups[0].jobs(), [(job, 2)].into_iter().collect());
        let mut no_job = batch_to_events(&decoded[1].batch, "other").remove(0);
        no_job.meniscus.job_id = None;
        assert!(tenant_batches(&[no_job]).unwrap()[0].jobs().is_empty());
        let relabelled = groups[0].with_job_id("01KBX0000000000000000000AB").unwrap();
        assert_eq!(
            relabelled.jobs(),
            [("01KBX0000000000000000000AB".to_string(), 2)]
                .into_iter()
                .collect()
        );
    }

    /// A storage worker decodes link records where HTTP/2 received them: the messages are
    /// read from the payload's own bytes, not copied, and the result matches a copying decode.
    #[test]
    fn a_shared_payload_is_decoded_in_place() {
        let events: Vec<Event> = (0..100)
            .map(|index| {
                Event::from_message(
                    format!("message {index}"),
                    Correlation::new("acme", &Producer::plain("web"), Transport::Tcp, Utc::now()),
                )
            })
            .collect();
        let payload = encode_payload(&tenant_batches(&events).unwrap()).unwrap();
        let shared = Buffer::from(payload.clone());
        let inside = shared.as_ptr() as usize..shared.as_ptr() as usize + shared.len();
        let decoded = decode_payload_shared(shared.clone()).unwrap();
        let messages = column::<StringArray>(&decoded[0].batch, "msg").unwrap();
        assert!(inside.contains(&(messages.values().as_ptr() as usize)));
        let copied = decode_payload(&payload).unwrap();
        assert_eq!(decoded[0].batch, copied[0].batch);
        assert_eq!(batch_to_events(&decoded[0].batch, "acme").len(), 100);
    }

    /// One tenant's payload holding `batch` as is, every column written.
    fn payload_of(batch: &RecordBatch) -> Vec<u8> {
        let mut payload = vec![4, 0];
        payload.extend_from_slice(b"acme");
        let mut ipc = Vec::new();
        let mut writer = StreamWriter::try_new(&mut ipc, &batch.schema()).unwrap();
        writer.write(batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        payload.extend_from_slice(&(ipc.len() as u32).to_le_bytes());
        payload.extend_from_slice(&ipc);
        payload
    }

    #[test]
    fn columns_null_in_every_row_are_left_out_of_the_wal_and_come_back_null() {
        let producer = meniscus_grid::Producer::plain("default");
        let correlation = Correlation::new("acme", &producer, Transport::Tcp, Utc::now());
        let events: Vec<Event> = (0..1000)
            .map(|index| Event::from_message(format!("line {index}"), correlation.clone()))
            .collect();
        let groups = tenant_batches(&events).unwrap();
        let payload = encode_payload(&groups).unwrap();
        let everything = payload_of(&groups[0].batch);
        assert!(
            payload.len() * 3 < everything.len() * 2,
            "{} bytes, {} with every column",
            payload.len(),
            everything.len()
        );
        let decoded = decode_payload(&payload).unwrap();
        assert_eq!(decoded[0].batch, groups[0].batch);
        // Records written with every column (by older versions) still decode.
        assert_eq!(
            decode_payload(&everything).unwrap()[0].batch,
            groups[0].batch
        );

        // A column the event schema does not have, or a required column left out: rejected.
        let batch = &groups[0].batch;
        let extra = Field::new("extra", DataType::Utf8, true);
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(extra);
        let mut columns = batch.columns().to_vec();
        columns.push(new_null_array(&DataType::Utf8, batch.num_rows()));
        let widened = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        assert!(matches!(
            decode_payload(&payload_of(&widened)),
            Err(ColumnarError::Schema)
        ));
        let without_msg = batch.project(&[0, 1, 2, 3]).unwrap();
        assert!(matches!(
            decode_payload(&payload_of(&without_msg)),
            Err(ColumnarError::Schema)
        ));
    }

    #[test]
    fn a_damaged_payload_is_an_error_not_a_panic() {
        let producer = meniscus_grid::Producer::plain("default");
        let correlation = Correlation::new("acme", &producer, Transport::Udp, Utc::now());
        let mut event = Event::from_message("m".into(), correlation);
        event.pri = Some(13);
        let payload = encode_payload(&tenant_batches(&[event]).unwrap()).unwrap();
        for cut in 0..payload.len() {
            assert!(
                decode_payload(&payload[..cut]).is_err() || cut == 0,
                "cut at {cut}"
            );
        }
        let mut bad_tenant = payload.clone();
        bad_tenant[2] = b'/';
        assert!(matches!(
            decode_payload(&bad_tenant),
            Err(ColumnarError::Tenant(_))
        ));
    }
}
