//! Queries over one tenant's events: SQL, search and counts.
//!
//! Every query gets a fresh DataFusion session that holds exactly one table, `events`, built
//! from that tenant's in-memory batches and Parquet files; nothing else is registered, so no
//! statement can name another tenant's data. On top of that, no statement can take the
//! service down:
//! - only a single `SELECT` (or `WITH`) is accepted (no DDL, DML, `COPY`, `SET`, `EXPLAIN`),
//!   URL tables are off, and a statement has a size limit;
//! - parsing, planning and running all happen on the query's own threads, inside its
//!   deadline, so a huge statement cannot stall the shared runtime (or `/healthz`);
//! - DataFusion's recursion protection grows the stack of deep expression trees (a flat
//!   `1+1+…+1` of a thousand terms overflowed a 2 MiB stack and aborted the process);
//! - memory is capped for operators (the pool, spilling off) and for the functions that build
//!   large values from small arguments ([`guards`]), and the answer is capped in rows and bytes;
//! - concurrent queries are capped per tenant and in all (429 beyond), each query runs on a
//!   small runtime of its own so it cannot starve ingest, and at its deadline its task is
//!   dropped, which stops its operators at their next batch.

mod archived_events;
pub mod distributed;
mod guards;
pub mod loki;
mod scan_needs;
mod sealed_files;
mod skipping;
mod yielding;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{col, lit, Expr, SortExpr};
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;
use meniscus_grid::tenant::TenantId;
use meniscus_grid::Event;
use serde::Serialize;
use serde_json::{Map, Value};

use meniscus_record::columnar::{batch_to_events, schema};

use crate::archive::cache::CachedFile;
use crate::archive::manifest::{ArchivedObject, ObjectFormat};
use crate::archive::ranged::{QueryObjects, ARCHIVE_READ_FAILED};
use crate::archive::Archive;
use crate::hot::{HotStore, Snapshot, Unreadable};
use crate::metrics::StoreMetrics;
use crate::msg_tokens::{msg_from_tokens, stored_schema, token_column_names};
use crate::read_only_store::ReadOnlyStore;
use crate::skip_index::SkipIndex;
use archived_events::ArchivedEvents;
use sealed_files::SealedFiles;

#[derive(Clone, Debug)]
pub struct QueryLimits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub max_rows: usize,
    /// Largest answer, in bytes of JSON; a longer one is cut and marked `truncated`.
    pub max_result_bytes: usize,
    /// Longest SQL statement, in bytes.
    pub max_statement_bytes: usize,
    /// Queries running at once, in all and per tenant.
    pub max_concurrent: usize,
    pub max_concurrent_per_tenant: usize,
    /// Nice value of query threads (0–19; Linux keeps one per thread): how far below ingest
    /// they run when both want the CPU. 0 runs them alongside ingest.
    pub thread_nice: i32,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory_bytes: 256 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_rows: 10_000,
            max_result_bytes: 16 * 1024 * 1024,
            max_statement_bytes: 64 * 1024,
            // Each query runs on two threads of its own; the machines have two cores.
            max_concurrent: 4,
            max_concurrent_per_tenant: 2,
            thread_nice: DEFAULT_QUERY_THREAD_NICE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The tenant's query is wrong or not allowed; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("query exceeded its time limit of {0:?}; narrow the time range or add filters")]
    Timeout(Duration),
    /// Over the memory limit; the detail says where, when known.
    #[error("query exceeded its memory limit{}; narrow the time range, add filters or aggregate", .0.as_deref().map(|detail| format!(" ({detail})")).unwrap_or_default())]
    Memory(Option<String>),
    /// Too many queries are running (this tenant's or everyone's); retry shortly.
    #[error("{0}; retry in a second")]
    Busy(String),
    /// An archived hour's chunks could not be fetched or opened mid-scan (the target went
    /// away after the query began); retry once it is back.
    #[error("{0}")]
    Archive(String),
    #[error("internal query error: {0}")]
    Internal(String),
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        let text = error.to_string();
        // First: whatever kind of error wraps it, an archived object that could not be read
        // is the target's fault (503), not the statement's.
        if let Some(at) = text.find(ARCHIVE_READ_FAILED) {
            return QueryError::Archive(text[at..].to_string());
        }
        match error.find_root() {
            DataFusionError::ResourcesExhausted(detail) if detail.contains("memory limit of") => {
                QueryError::Memory(Some(detail.clone()))
            }
            DataFusionError::ResourcesExhausted(_) => QueryError::Memory(None),
            // What the statement asked for cannot be done: the tenant's to fix (a division by
            // zero, a cast that overflows, a type that does not fit).
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Execution(_)
            | DataFusionError::ArrowError(..) => QueryError::Invalid(text),
            _ if text.contains("Resources exhausted") => QueryError::Memory(None),
            _ => QueryError::Internal(text),
        }
    }
}

/// Rows as JSON objects, in order.
#[derive(Debug, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
    /// True when the result had more than `max_rows` rows and was cut.
    pub truncated: bool,
    /// Windows the query could not read (a file missing from disk): the answer is complete
    /// except for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<UnreadableWindow>,
}

/// An hourly window a query could not read, as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UnreadableWindow {
    /// Window start, RFC 3339.
    pub window: String,
    pub reason: String,
}

fn unreadable_windows(unreadable: Vec<Unreadable>) -> Vec<UnreadableWindow> {
    let mut windows: Vec<UnreadableWindow> = unreadable
        .into_iter()
        .map(|entry| UnreadableWindow {
            window: DateTime::<Utc>::from_timestamp(entry.window, 0)
                .map(|start| start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| entry.window.to_string()),
            reason: entry.reason,
        })
        .collect();
    windows.sort_by(|a, b| a.window.cmp(&b.window));
    windows.dedup();
    windows
}

/// Filters of the search API.
#[derive(Debug, Default, Clone)]
pub struct SearchRequest {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Substring of `msg`, case-sensitive.
    pub text: Option<String>,
    pub host: Option<String>,
    pub pname: Option<String>,
    pub severities: Vec<u8>,
    pub facilities: Vec<u8>,
    pub limit: usize,
    /// Continue after this (ts in µs, event id): the last event of the previous page.
    pub after: Option<(i64, String)>,
}

#[derive(Debug)]
pub struct SearchPage {
    pub events: Vec<Event>,
    /// Set when there may be more: pass back to continue.
    pub next: Option<(i64, String)>,
    /// Windows the search could not read.
    pub unreadable: Vec<UnreadableWindow>,
}

/// Fields that metrics may group by.
pub const GROUPABLE_FIELDS: [&str; 7] = [
    "severity",
    "facility",
    "host",
    "pname",
    "producer",
    "transport",
    "msgid",
];

#[derive(Clone)]
pub struct QueryEngine {
    hot: Arc<HotStore>,
    /// Archived hours, read where the hot store no longer holds them.
    archive: Option<Arc<Archive>>,
    limits: QueryLimits,
    metrics: Arc<StoreMetrics>,
    /// Queries running now, per tenant; their sum is capped too.
    running: Arc<parking_lot::Mutex<std::collections::HashMap<String, usize>>>,
    /// Run by each query thread as it exits (the binary returns the thread's memory to the
    /// OS there).
    on_thread_stop: fn(),
}

/// Only the pages a query touches count; recursion protection grows the stack beyond this
/// where DataFusion must.
const QUERY_THREAD_STACK_BYTES: usize = 16 * 1024 * 1024;

/// A running query's slot, given back when it ends however it ends.
struct Running {
    tenant: String,
    running: Arc<parking_lot::Mutex<std::collections::HashMap<String, usize>>>,
    /// Archived objects the query reads, kept on local disk until it ends.
    held: Vec<Arc<CachedFile>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.running.lock();
        if let Some(count) = running.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

/// A query's own runtime, shut down without waiting when the query ends or times out.
/// How much lower than ingest a query thread runs by default (Linux nice value).
///
/// A cap on concurrent queries bounds how many run, not how much CPU they take: with two
/// heavy queries of one tenant on a 2-core machine another tenant's syslog ingest fell to
/// 0.41x its rate (bench/noisy); at nice 10 it kept 0.77x. The scheduler gives a thread at
/// nice N about 1.25^-N of what a nice-0 thread gets while both want the CPU, and all of it
/// when ingest is idle, so queries still use every idle cycle.
pub const DEFAULT_QUERY_THREAD_NICE: i32 = 15;

/// Lowers the calling thread's scheduling priority to `nice` (Linux keeps a nice value per
/// thread). Best effort: a failure leaves the thread at normal priority.
fn lower_thread_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    // SAFETY: gettid and setpriority take plain integers and touch only this thread's
    // scheduling attributes.
    unsafe {
        let thread = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, nice.min(19));
    }
}

struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            // Never blocks: threads still inside an operator that has not yielded finish
            // on their own, without holding up the next query.
            runtime.shutdown_background();
        }
    }
}

impl QueryEngine {
    pub fn new(hot: Arc<HotStore>, limits: QueryLimits, metrics: Arc<StoreMetrics>) -> QueryEngine {
        QueryEngine {
            hot,
            archive: None,
            limits,
            metrics,
            running: Default::default(),
            on_thread_stop: || {},
        }
    }

    /// Queries read archived hours too.
    pub fn with_archive(mut self, archive: Arc<Archive>) -> QueryEngine {
        self.archive = Some(archive);
        self
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// A slot for one more query of `tenant`, or why there is none.
    fn admit(&self, tenant: &TenantId) -> Result<Running, QueryError> {
        let mut running = self.running.lock();
        let total: usize = running.values().sum();
        if total >= self.limits.max_concurrent {
            return Err(QueryError::Busy(format!(
                "{total} queries are running, the most this server runs at once"
            )));
        }
        let mine = running.entry(tenant.as_str().to_string()).or_default();
        if *mine >= self.limits.max_concurrent_per_tenant {
            return Err(QueryError::Busy(format!(
                "tenant {tenant} has {mine} queries running, the most one tenant may run at once"
            )));
        }
        *mine += 1;
        Ok(Running {
            tenant: tenant.as_str().to_string(),
            running: self.running.clone(),
            held: Vec::new(),
        })
    }

    /// Runs `hook` on every query thread as it exits.
    pub fn with_thread_stop(mut self, hook: fn()) -> QueryEngine {
        self.on_thread_stop = hook;
        self
    }

    /// A session for one query. `selective`: the query keeps few rows of many (a free-text
    /// search, a job lookup), so Parquet readers apply its filters first and decode the other
    /// columns only for the rows that pass. A search then decodes `msg` (or, in split files,
    /// its token columns) and `ts` instead of every column (about a fifth less CPU on
    /// bench/query's corpus, whole messages); for aggregations that keep most rows it would
    /// only add work, so it stays off for them.
    fn session(&self, selective: bool) -> Result<SessionContext, QueryError> {
        new_session(&self.limits, selective)
    }

    /// The tenant's events between `from` and `to` (by window; rows are filtered further by
    /// the caller) as one data frame: memory, hot-store files and, for hours the hot store no
    /// longer holds, archived objects (fetched into the local cache and held open by
    /// `running` until the query ends).
    async fn events_frame(
        &self,
        ctx: &SessionContext,
        tenant: &TenantId,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        scan_filters: Option<&[Vec<Expr>]>,
        running: &mut Running,
    ) -> Result<(DataFrame, Vec<UnreadableWindow>), QueryError> {
        // Archived hours no scan of the query needs (outside its time range or the range its
        // filters on `ts` allow, or whose skip index rules out the text it requires) are not
        // fetched. (Hot files, and the objects that are fetched, are pruned by the filters
        // DataFusion pushes into their scans, whatever the query.)
        let needs = scan_needs::of(from, to, scan_filters);
        // Nothing archived past the tenant's long-term retention is read, even before the
        // janitor deletes it: whole hours before it are not fetched, and rows of the hour it
        // falls in are cut. (Hot data past its retention goes at the next retention pass.)
        let cutoff = self
            .archive
            .as_ref()
            .and_then(|archive| archive.retention_cutoff(tenant.as_str(), Utc::now()));
        let mut snapshot = self.hot.snapshot(tenant.as_str(), from, to);
        let mut unreadable = std::mem::take(&mut snapshot.unreadable);
        // Only hours the query reads are worth a warning.
        unreadable.retain(|window| {
            needs
                .iter()
                .any(|scan| scan.windows.contains(&window.window))
        });
        let (mut archived_files, mut archived_token_files) = (Vec::new(), Vec::new());
        let (mut ranged, mut events) = (Vec::new(), Vec::new());
        if let Some(archive) = &self.archive {
            let objects = archive
                .objects_for_query(tenant.as_str(), &snapshot.live, &needs)
                .await;
            if !objects.is_empty() {
                let bytes: u64 = objects.iter().map(|object| object.plain_bytes).sum();
                if bytes > archive.query_fetch_limit() {
                    return Err(QueryError::Invalid(format!(
                        "the query would read {} of archived hours ({} objects), more than \
                         the {} the local archive cache holds (archive.cacheBytes): narrow \
                         its time range",
                        size_of(bytes),
                        objects.len(),
                        size_of(archive.query_fetch_limit())
                    )));
                }
                // A hot file missing from disk but archived is read from the archive.
                let covered: std::collections::HashSet<&str> = objects
                    .iter()
                    .map(|object| object.source.as_str())
                    .collect();
                unreadable.retain(|window| {
                    !window
                        .source
                        .as_deref()
                        .is_some_and(|source| covered.contains(source))
                });
                let fetch = archive.fetch(objects);
                let (files, failures) = tokio::time::timeout(self.limits.timeout, fetch)
                    .await
                    .map_err(|_| QueryError::Timeout(self.limits.timeout))?;
                for failure in failures {
                    unreadable.push(Unreadable {
                        window: failure.window,
                        reason: failure.reason,
                        source: None,
                    });
                }
                for (file, object) in files {
                    running.held.push(file.clone());
                    if object.format == ObjectFormat::Events {
                        events.push((file, object));
                    } else if file.chunked.is_some() {
                        ranged.push((file, object));
                    } else if object.msg_tokens {
                        archived_token_files.push(file.path.clone());
                    } else {
                        archived_files.push(file.path.clone());
                    }
                }
            }
        }
        let unreadable = unreadable_windows(unreadable);
        let memory = MemTable::try_new(schema(), vec![std::mem::take(&mut snapshot.batches)])?;
        let mut frame = ctx.read_table(Arc::new(memory))?;
        if let Some(files) = hot_files_frame(ctx, &self.hot, tenant.as_str(), &snapshot)? {
            frame = files.union(frame)?;
        }
        let mut archived = files_frame(ctx, &archived_files, &archived_token_files)?;
        if let Some(archive) = &self.archive {
            archived = union_of(
                archived,
                ranged_objects_frame(ctx, archive, tenant.as_str(), ranged)?,
            )?;
            if !events.is_empty() {
                let table = ArchivedEvents::new(archive.clone(), schema(), events);
                archived = union_of(archived, Some(ctx.read_table(Arc::new(table))?))?;
            }
        }
        if let Some(mut archived) = archived {
            if let Some(cutoff) = cutoff {
                archived = archived
                    .filter(col("ts").gt_eq(timestamp_literal(cutoff.timestamp_micros())))?;
            }
            frame = archived.union(frame)?;
        }
        Ok((frame, unreadable))
    }

    /// Runs `work` on a runtime of its own, with the deadline; counts and times it by kind.
    async fn run<T: Send + 'static>(
        &self,
        kind: &'static str,
        work: impl std::future::Future<Output = Result<T, QueryError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        let started = std::time::Instant::now();
        let result = self.run_untimed(work).await;
        self.metrics
            .query_duration
            .with(&[kind])
            .observe(started.elapsed());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(QueryError::Invalid(_)) => "invalid",
            Err(QueryError::Timeout(_)) => "timeout",
            Err(QueryError::Memory(_)) => "memory",
            Err(QueryError::Busy(_)) => "busy",
            Err(QueryError::Archive(_)) => "archive",
            Err(QueryError::Internal(_)) => "error",
        };
        self.metrics.query_requests.inc(&[kind, outcome]);
        result
    }

    async fn run_untimed<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, QueryError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        on_query_threads(&self.limits, self.on_thread_stop, work).await
    }

    /// A tenant's SQL over its `events` table.
    pub async fn sql(&self, tenant: &TenantId, sql: &str) -> Result<QueryResult, QueryError> {
        let (max_rows, max_bytes) = (self.limits.max_rows, self.limits.max_result_bytes);
        let prepared = self.prepare_sql(tenant, sql).await?;
        self.run("sql", async move {
            let (frame, unreadable, _running) = prepared.plan().await?;
            let mut result = collect_json(frame, max_rows, max_bytes).await?;
            result.unreadable = unreadable;
            Ok(result)
        })
        .await
    }

    /// A tenant's SQL, every row of the answer as an Arrow IPC stream: what the grid's tenant
    /// API fetches from each storage worker to run a statement across them
    /// ([`distributed`]). Not cut at `max_rows`: an answer larger than the query's memory
    /// limit is refused instead, since a cut one would make the merged answer wrong.
    pub async fn sql_arrow(
        &self,
        tenant: &TenantId,
        sql: &str,
    ) -> Result<(Vec<u8>, Vec<UnreadableWindow>), QueryError> {
        let max_bytes = self.limits.memory_bytes;
        let prepared = self.prepare_sql(tenant, sql).await?;
        self.run("sql", async move {
            let (frame, unreadable, _running) = prepared.plan().await?;
            let stream = distributed::ipc_stream(frame, max_bytes).await?;
            Ok((stream, unreadable))
        })
        .await
    }

    /// Checks a statement, admits it, and registers the tenant's `events` for it.
    async fn prepare_sql(&self, tenant: &TenantId, sql: &str) -> Result<PreparedSql, QueryError> {
        if sql.len() > self.limits.max_statement_bytes {
            return Err(QueryError::Invalid(format!(
                "the statement is {} bytes long; at most {} are accepted",
                sql.len(),
                self.limits.max_statement_bytes
            )));
        }
        let mut running = self.admit(tenant)?;
        let options = sql_options();
        let sql = sql.to_string();
        // `now()` is this instant in every plan of the statement: the hours it needs are
        // found with the same clock it then runs with.
        let started = Utc::now();
        // Parsed on the query's threads and inside its deadline, first to check it and to
        // find the text it requires of every row, by planning it once over an empty table of
        // the same shape: archived hours that cannot hold that text are not fetched. (The
        // fetch itself runs here, as for searches, at the priority of the other I/O.)
        let scan_filters = {
            let (engine, sql) = (self.clone(), sql.clone());
            self.run_untimed(async move {
                check_single_select(&sql)?;
                if engine.archive.is_none() {
                    return Ok(None);
                }
                filters_of_scans(&engine.session(false)?, &sql, options, started)
                    .await
                    .map(Some)
            })
            .await?
        };
        let ctx = self.session(false)?;
        let (frame, unreadable) = self
            .events_frame(
                &ctx,
                tenant,
                None,
                None,
                scan_filters.as_deref(),
                &mut running,
            )
            .await?;
        ctx.register_table("events", frame.into_view())?;
        Ok(PreparedSql {
            ctx,
            running,
            unreadable,
            sql,
            options,
            started,
        })
    }

    /// Events matching the filters, newest first, one page.
    pub async fn search(
        &self,
        tenant: &TenantId,
        request: SearchRequest,
    ) -> Result<SearchPage, QueryError> {
        let mut running = self.admit(tenant)?;
        let ctx = self.session(true)?;
        let filters = search_filters(&request);
        let (mut frame, unreadable) = self
            .events_frame(
                &ctx,
                tenant,
                request.from,
                request.to,
                Some(std::slice::from_ref(&filters)),
                &mut running,
            )
            .await?;
        for filter in filters {
            frame = frame.filter(filter)?;
        }
        let order = vec![
            SortExpr::new(col("ts"), false, false),
            SortExpr::new(col("event_id"), false, false),
        ];
        let limit = request.limit.max(1);
        let frame = frame.sort(order)?.limit(0, Some(limit + 1))?;
        let tenant_name = tenant.to_string();
        self.run("search", async move {
            let _running = running;
            let batches: Vec<RecordBatch> = frame.collect().await?;
            let mut events: Vec<Event> = batches
                .iter()
                .flat_map(|batch| batch_to_events(batch, &tenant_name))
                .collect();
            let more = events.len() > limit;
            events.truncate(limit);
            let next = if more {
                events.last().map(|event| {
                    (
                        event.effective_time().timestamp_micros(),
                        event.meniscus.event_id.clone(),
                    )
                })
            } else {
                None
            };
            Ok(SearchPage {
                events,
                next,
                unreadable,
            })
        })
        .await
    }

    /// Event counts per time bucket, optionally per value of one field.
    pub async fn counts(
        &self,
        tenant: &TenantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_seconds: u64,
        group_by: Option<&str>,
    ) -> Result<QueryResult, QueryError> {
        let group_by = match group_by {
            Some(field) if GROUPABLE_FIELDS.contains(&field) => Some(field),
            Some(field) => {
                return Err(QueryError::Invalid(format!(
                    "cannot group by {field:?}: choose one of {}",
                    GROUPABLE_FIELDS.join(", ")
                )))
            }
            None => None,
        };
        let mut running = self.admit(tenant)?;
        let ctx = self.session(false)?;
        let (frame, unreadable) = self
            .events_frame(&ctx, tenant, Some(from), Some(to), None, &mut running)
            .await?;
        ctx.register_table("events", frame.into_view())?;
        // Every interpolated value is a number we produced or a field from the allow-list.
        let (select_field, group_field) = match group_by {
            Some(field) => (format!(", {field}"), ", 2".to_string()),
            None => (String::new(), String::new()),
        };
        let sql = format!(
            "SELECT date_bin(INTERVAL '{bucket_seconds} seconds', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS bucket{select_field}, count(*) AS count \
             FROM events WHERE ts >= to_timestamp_micros({}) AND ts < to_timestamp_micros({}) \
             GROUP BY 1{group_field} ORDER BY 1{group_field}",
            from.timestamp_micros(),
            to.timestamp_micros()
        );
        // Buckets times groups can pass the SQL row limit (a day of minutes by 8 severities is
        // 11,520 rows); the API already caps the buckets, so allow ten groups per bucket.
        let max_rows = self.limits.max_rows.max(100_000);
        let max_bytes = self.limits.max_result_bytes;
        self.run("counts", async move {
            let _running = running;
            let frame = ctx.sql(&sql).await?;
            let mut result = collect_json(frame, max_rows, max_bytes).await?;
            result.unreadable = unreadable;
            Ok(result)
        })
        .await
    }

    /// How many events of this job have no archived copy yet: those in memory and in
    /// hot-store files the archive does not hold. Archived objects are not read (a job-status
    /// poll must not fetch a tenant's archive), so `None` without an archive.
    pub async fn job_unarchived_events(
        &self,
        tenant: &TenantId,
        job_id: &str,
    ) -> Result<Option<u64>, QueryError> {
        let Some(archive) = self.archive.clone() else {
            return Ok(None);
        };
        let running = self.admit(tenant)?;
        let ctx = self.session(true)?;
        let snapshot = self.hot.snapshot(tenant.as_str(), None, None);
        let root = self.hot.root().to_path_buf();
        let archived = archive.sources();
        let unarchived = |paths: Vec<std::path::PathBuf>| -> Vec<std::path::PathBuf> {
            paths
                .into_iter()
                .filter(|path| {
                    !path.strip_prefix(&root).is_ok_and(|relative| {
                        archived.contains(relative.to_string_lossy().as_ref())
                    })
                })
                .collect()
        };
        let memory = MemTable::try_new(schema(), vec![snapshot.batches.clone()])?;
        let snapshot = Snapshot {
            files: unarchived(snapshot.files),
            token_files: unarchived(snapshot.token_files),
            batches: Vec::new(),
            ..snapshot
        };
        let mut frame = ctx.read_table(Arc::new(memory))?;
        if let Some(files) = hot_files_frame(&ctx, &self.hot, tenant.as_str(), &snapshot)? {
            frame = files.union(frame)?;
        }
        let frame = frame.filter(col("job_id").eq(lit(job_id)))?;
        self.run("jobs", async move {
            let _running = running;
            Ok(Some(frame.count().await? as u64))
        })
        .await
    }

    /// How many events of this job the store holds (0 when none).
    pub async fn job_events(&self, tenant: &TenantId, job_id: &str) -> Result<u64, QueryError> {
        let mut running = self.admit(tenant)?;
        // A job's events may carry any time, so every hour is read: the archived ones in
        // turns of consecutive hours that each fit the local cache (one pass over all of them
        // would be refused once they outgrow it), each turn's objects let go before the next.
        let turns = match &self.archive {
            Some(archive) => archive.window_turns(tenant.as_str(), archive.query_fetch_limit()),
            None => vec![(None, None)],
        };
        let mut events = 0;
        for (from, to) in turns {
            let ctx = self.session(true)?;
            let (frame, _) = self
                .events_frame(&ctx, tenant, from, to, None, &mut running)
                .await?;
            let frame = frame.filter(col("job_id").eq(lit(job_id)))?;
            events += self
                .run("jobs", async move { Ok(frame.count().await? as u64) })
                .await?;
            running.held.clear();
        }
        Ok(events)
    }
}

/// A byte count as people read it: MB from 10 MB up, else KB, else bytes.
fn size_of(bytes: u64) -> String {
    match bytes {
        10_000_000.. => format!("{} MB", bytes / 1_000_000),
        10_000.. => format!("{} KB", bytes / 1_000),
        _ => format!("{bytes} bytes"),
    }
}

/// An SQL statement admitted, with the tenant's `events` registered for it (hot files and the
/// archived hours it needs).
struct PreparedSql {
    ctx: SessionContext,
    running: Running,
    unreadable: Vec<UnreadableWindow>,
    sql: String,
    options: SQLOptions,
    /// The statement's `now()`.
    started: DateTime<Utc>,
}

impl PreparedSql {
    /// The statement planned over `events` (and what it could not read; it holds its place
    /// among running queries until dropped).
    async fn plan(self) -> Result<(DataFrame, Vec<UnreadableWindow>, Running), QueryError> {
        let frame = plan_sql(&self.ctx, &self.sql, self.options, self.started).await?;
        Ok((frame, self.unreadable, self.running))
    }
}

/// `sql` planned over `ctx` with `now()` fixed at `started`, so that every plan of one
/// statement (the one that finds which archived hours it needs, the one that runs) sees the
/// same time: a bound such as `ts < now() - INTERVAL '2 hours'` must not move between them.
async fn plan_sql(
    ctx: &SessionContext,
    sql: &str,
    options: SQLOptions,
    started: DateTime<Utc>,
) -> Result<DataFrame, QueryError> {
    let mut state = ctx.state();
    state.execution_props_mut().query_execution_start_time = Some(started);
    let plan = state.create_logical_plan(sql).await?;
    options.verify_plan(&plan)?;
    Ok(DataFrame::new(state, plan))
}

/// The filters on `events` a statement applies to the rows of each of its scans of `events`
/// (one for most statements; a self-join or a subquery has more), planned over an empty
/// table of the same shape. An archived hour is fetched when the filters of any scan may
/// hold for its rows.
async fn filters_of_scans(
    ctx: &SessionContext,
    sql: &str,
    options: SQLOptions,
    started: DateTime<Utc>,
) -> Result<Vec<Vec<Expr>>, QueryError> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    ctx.register_table("events", Arc::new(skipping::Shape::new(schema())))?;
    let plan = plan_sql(ctx, sql, options, started)
        .await?
        .into_optimized_plan()?;
    let mut scans = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if scan.table_name.table() == "events" {
                scans.push(scan.filters.clone());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(scans)
}

/// One frame over Parquet files that store `msg` whole and files that store it as tokens;
/// `None` when there are none. Filters on `msg` are pushed below the token files' projection
/// as filters on the rebuilt text: into the Parquet readers where pushdown is on (searches,
/// job lookups), above them otherwise. Row-group pruning cannot use them, as it cannot with
/// whole messages.
fn files_frame(
    ctx: &SessionContext,
    files: &[std::path::PathBuf],
    token_files: &[std::path::PathBuf],
) -> Result<Option<DataFrame>, QueryError> {
    let local = |paths: &[std::path::PathBuf]| {
        paths
            .iter()
            .map(|path| ListingTableUrl::parse(path.to_string_lossy()))
            .collect::<Result<Vec<_>, _>>()
    };
    // Local files: the object path is the absolute path without its leading `/`, and the
    // skip index lies beside the file.
    let index_of: skipping::IndexLocator =
        Arc::new(|path| SkipIndex::load(std::path::Path::new(&format!("/{path}"))));
    parquet_frame(
        ctx,
        local(files)?,
        local(token_files)?,
        ".parquet",
        index_of,
    )
}

/// One frame over the hot-store files of `snapshot` (of `tenant`): plain files read from
/// disk, sealed ones through [`SealedFiles`] (registered with `ctx`).
fn hot_files_frame(
    ctx: &SessionContext,
    hot: &HotStore,
    tenant: &str,
    snapshot: &Snapshot,
) -> Result<Option<DataFrame>, QueryError> {
    // (sealed, plain)
    let split = |paths: &[std::path::PathBuf]| -> (Vec<_>, Vec<_>) {
        paths
            .iter()
            .cloned()
            .partition(|path| snapshot.sealed.contains(path))
    };
    let (files, plain_files) = split(&snapshot.files);
    let (token_files, plain_token_files) = split(&snapshot.token_files);
    let plain = files_frame(ctx, &plain_files, &plain_token_files)?;
    if files.is_empty() && token_files.is_empty() {
        return Ok(plain);
    }
    let root = hot.root().to_path_buf();
    let opened = SealedFiles::open(
        &root,
        tenant,
        hot.keyring(),
        files.iter().chain(&token_files),
    )
    .map_err(|error| {
        QueryError::Internal(format!("cannot open a sealed hot-store file: {error}"))
    })?;
    let store = ReadOnlyStore::new("sealed-hot", "files", opened);
    let urls = |paths: &[std::path::PathBuf]| -> Result<Vec<ListingTableUrl>, QueryError> {
        paths
            .iter()
            .map(|path| {
                let location = sealed_files::location_of(&root, path)
                    .map_err(|error| QueryError::Internal(error.to_string()))?;
                Ok(ListingTableUrl::parse(store.url_of(&location))?)
            })
            .collect()
    };
    let (whole, tokens) = (urls(&files)?, urls(&token_files)?);
    ctx.register_object_store(&store.url().clone(), Arc::new(store));
    // Skip indexes lie beside the files, sealed as they are.
    let (tenant, keyring) = (tenant.to_string(), hot.keyring().clone());
    let index_of: skipping::IndexLocator =
        Arc::new(move |key| SkipIndex::load_of(&root.join(key.as_ref()), &tenant, &keyring));
    let sealed = parquet_frame(ctx, whole, tokens, ".parquet", index_of)?;
    union_of(plain, sealed)
}

/// A frame over the archived objects a query reads in ranges (registered with `ctx` as
/// [`QueryObjects`]), `None` when there are none.
fn ranged_objects_frame(
    ctx: &SessionContext,
    archive: &Arc<Archive>,
    tenant: &str,
    objects: Vec<(Arc<CachedFile>, ArchivedObject)>,
) -> Result<Option<DataFrame>, QueryError> {
    if objects.is_empty() {
        return Ok(None);
    }
    let (mut whole, mut tokens) = (Vec::new(), Vec::new());
    let store = ReadOnlyStore::new(
        "archive",
        "objects",
        QueryObjects::new(archive.clone(), objects.iter().cloned()),
    );
    for (_, object) in &objects {
        let url = ListingTableUrl::parse(store.url_of(&object.key))?;
        if object.msg_tokens {
            tokens.push(url);
        } else {
            whole.push(url);
        }
    }
    ctx.register_object_store(&store.url().clone(), Arc::new(store));
    let (keeper, tenant) = (archive.clone(), tenant.to_string());
    let index_of: skipping::IndexLocator =
        Arc::new(move |key| keeper.local_skip_index(&tenant, key.as_ref()));
    // Object keys end in `.parquet.enc`.
    parquet_frame(ctx, whole, tokens, ".enc", index_of)
}

/// A frame over Parquet files that store `msg` whole (read through their skip indexes,
/// found by `index_of`) and files that store it as tokens.
fn parquet_frame(
    ctx: &SessionContext,
    whole: Vec<ListingTableUrl>,
    tokens: Vec<ListingTableUrl>,
    extension: &str,
    index_of: skipping::IndexLocator,
) -> Result<Option<DataFrame>, QueryError> {
    let whole = read_parquet(ctx, whole, schema(), extension, Some(index_of))?;
    let tokens = match read_parquet(ctx, tokens, stored_schema(), extension, None)? {
        Some(frame) => Some(frame.select(event_columns())?),
        None => None,
    };
    union_of(tokens, whole)
}

/// One frame of `first` and `second`, either of which may be absent.
fn union_of(
    first: Option<DataFrame>,
    second: Option<DataFrame>,
) -> Result<Option<DataFrame>, QueryError> {
    Ok(match (first, second) {
        (Some(first), Some(second)) => Some(first.union(second)?),
        (first, second) => first.or(second),
    })
}

/// A frame over Parquet files at `urls` read as `schema`; `None` when there are none. With
/// `skipping`, through the files' skip indexes (files that store `msg` whole).
fn read_parquet(
    ctx: &SessionContext,
    urls: Vec<ListingTableUrl>,
    schema: datafusion::arrow::datatypes::SchemaRef,
    extension: &str,
    skipping: Option<skipping::IndexLocator>,
) -> Result<Option<DataFrame>, QueryError> {
    if urls.is_empty() {
        return Ok(None);
    }
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(extension);
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config)?;
    Ok(Some(match skipping {
        Some(index_of) => {
            ctx.read_table(Arc::new(skipping::SkippingTable::new(table, index_of)))?
        }
        None => ctx.read_table(Arc::new(table))?,
    }))
}

/// The event schema's columns over a scan of [`stored_schema`], with `msg` rebuilt from its
/// tokens.
fn event_columns() -> Vec<Expr> {
    let msg = msg_from_tokens();
    schema()
        .fields()
        .iter()
        .map(|field| {
            if field.name() == "msg" {
                let mut parts: Vec<Expr> = token_column_names().iter().map(col).collect();
                parts.push(col("msg"));
                msg.call(parts).alias("msg")
            } else {
                col(field.name())
            }
        })
        .collect()
}

fn timestamp_literal(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

fn search_filters(request: &SearchRequest) -> Vec<Expr> {
    let mut filters = Vec::new();
    if let Some(from) = request.from {
        filters.push(col("ts").gt_eq(timestamp_literal(from.timestamp_micros())));
    }
    if let Some(to) = request.to {
        filters.push(col("ts").lt(timestamp_literal(to.timestamp_micros())));
    }
    if let Some(text) = &request.text {
        // LIKE with our own escape character, so `%` and `_` in the search text are literal.
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        filters.push(Expr::Like(datafusion::logical_expr::expr::Like::new(
            false,
            Box::new(col("msg")),
            Box::new(lit(format!("%{escaped}%"))),
            Some('\\'),
            false,
        )));
    }
    if let Some(host) = &request.host {
        filters.push(col("host").eq(lit(host.clone())));
    }
    if let Some(pname) = &request.pname {
        filters.push(col("pname").eq(lit(pname.clone())));
    }
    if !request.severities.is_empty() {
        filters.push(col("severity").in_list(
            request.severities.iter().map(|code| lit(*code)).collect(),
            false,
        ));
    }
    if !request.facilities.is_empty() {
        filters.push(col("facility").in_list(
            request.facilities.iter().map(|code| lit(*code)).collect(),
            false,
        ));
    }
    if let Some((ts, event_id)) = &request.after {
        let before_cursor = col("ts").lt(timestamp_literal(*ts)).or(col("ts")
            .eq(timestamp_literal(*ts))
            .and(col("event_id").lt(lit(event_id.clone()))));
        filters.push(before_cursor);
    }
    filters
}

/// Deepest expression nesting accepted. A flat `1+1+…+1` is a tree as deep as it is long;
/// planning one of 12,000 terms took longer than any deadline, on a thread a deadline cannot
/// stop (planning never yields), so such statements are refused before they are planned.
const MAX_EXPRESSION_DEPTH: usize = 256;
/// Most expression nodes in one statement (an `IN` list of 9,000 values is 9,001).
const MAX_EXPRESSION_NODES: usize = 50_000;

/// Counts the expressions of a statement and their nesting, stopping at the limits.
#[derive(Default)]
struct ExpressionSize {
    depth: usize,
    deepest: usize,
    nodes: usize,
}

impl datafusion::sql::sqlparser::ast::Visitor for ExpressionSize {
    type Break = ();

    fn pre_visit_expr(
        &mut self,
        _expr: &datafusion::sql::sqlparser::ast::Expr,
    ) -> std::ops::ControlFlow<()> {
        self.depth += 1;
        self.nodes += 1;
        self.deepest = self.deepest.max(self.depth);
        if self.depth > MAX_EXPRESSION_DEPTH || self.nodes > MAX_EXPRESSION_NODES {
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_expr(
        &mut self,
        _expr: &datafusion::sql::sqlparser::ast::Expr,
    ) -> std::ops::ControlFlow<()> {
        self.depth -= 1;
        std::ops::ControlFlow::Continue(())
    }
}

/// Runs `work` on two threads of its own within `limits.timeout` (see
/// [`QueryEngine::run_untimed`]).
async fn on_query_threads<T: Send + 'static>(
    limits: &QueryLimits,
    on_thread_stop: fn(),
    work: impl std::future::Future<Output = Result<T, QueryError>> + Send + 'static,
) -> Result<T, QueryError> {
    let timeout = limits.timeout;
    // Each query gets its own two threads, so a runaway query (a cross join that never
    // yields) cannot hold threads the next query needs, nor starve ingest. The deadline
    // is kept here, on the caller's runtime, since a busy runtime would starve its own
    // timer. Aborting the task drops the DataFusion stream, which stops its operators at
    // their next batch.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("query")
        // Deep expression trees recurse: DataFusion's recursion protection grows the stack
        // where it must, and a roomier start keeps that rare (only touched pages count).
        .thread_stack_size(QUERY_THREAD_STACK_BYTES)
        .on_thread_start({
            let nice = limits.thread_nice;
            move || lower_thread_priority(nice)
        })
        .on_thread_stop(on_thread_stop)
        .enable_all()
        .build()
        .map_err(|error| QueryError::Internal(format!("cannot start query threads: {error}")))?;
    let runtime = QueryRuntime(Some(runtime));
    let Some(query_runtime) = runtime.0.as_ref() else {
        return Err(QueryError::Internal("query runtime missing".into()));
    };
    let mut handle = query_runtime.spawn(work);
    match tokio::time::timeout(timeout, &mut handle).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(QueryError::Internal(format!(
            "query task failed: {join_error}"
        ))),
        Err(_elapsed) => {
            handle.abort();
            Err(QueryError::Timeout(timeout))
        }
    }
}

/// A session for one query within `limits` (see [`QueryEngine::session`] for `selective`).
/// How much of a Parquet file's end a scan reads first (footer and page indexes).
pub const METADATA_SIZE_HINT: usize = 64 * 1024;

fn new_session(limits: &QueryLimits, selective: bool) -> Result<SessionContext, QueryError> {
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false)
        .with_batch_size(8192);
    let parquet = &mut config.options_mut().execution.parquet;
    // The first read of a file asks for this much of its end. Footers here are a few KB to
    // tens of KB; DataFusion's default (512 KiB) made each archived object's first read fetch
    // about half a MB through the S3 server for nothing (see `archive::ranged`).
    parquet.metadata_size_hint = Some(METADATA_SIZE_HINT);
    parquet.pushdown_filters = selective;
    parquet.reorder_filters = selective;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_bytes)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()?;
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(yielding::YieldAfterJoins))
        .build();
    let ctx = SessionContext::new_with_state(state);
    guards::install(&ctx, limits.memory_bytes);
    Ok(ctx)
}

/// Read-only SQL: no DDL, no DML, no `SET`.
fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Accepts exactly one read-only query statement, of bounded size.
fn check_single_select(sql: &str) -> Result<(), QueryError> {
    use datafusion::sql::sqlparser::ast::Visit;
    let statements =
        DFParser::parse_sql(sql).map_err(|error| QueryError::Invalid(error.to_string()))?;
    if statements.len() != 1 {
        return Err(QueryError::Invalid(format!(
            "expected exactly one SELECT statement, found {}",
            statements.len()
        )));
    }
    match statements.front() {
        Some(DfStatement::Statement(statement)) if matches!(**statement, SqlStatement::Query(_)) => {
            let mut size = ExpressionSize::default();
            if statement.visit(&mut size).is_break() {
                return Err(QueryError::Invalid(if size.deepest > MAX_EXPRESSION_DEPTH {
                    format!("an expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep; split it or use IN lists and functions")
                } else {
                    format!("the statement has more than {MAX_EXPRESSION_NODES} expressions")
                }));
            }
            Ok(())
        }
        _ => Err(QueryError::Invalid(
            "only SELECT queries over the `events` table are allowed (no DDL, DML, COPY, SET or EXPLAIN)".into(),
        )),
    }
}

/// Runs the frame and turns its rows into JSON objects, stopping (and saying so) at `max_rows`
/// rows or `max_bytes` bytes of JSON.
async fn collect_json(
    frame: DataFrame,
    max_rows: usize,
    max_bytes: usize,
) -> Result<QueryResult, QueryError> {
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let mut stream = frame.execute_stream().await?;
    let mut rows = Vec::new();
    let mut truncated = false;
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let mut buffer = Vec::new();
        {
            let mut writer = arrow_json::ArrayWriter::new(&mut buffer);
            writer
                .write(&batch)
                .map_err(|error| QueryError::Internal(error.to_string()))?;
            writer
                .finish()
                .map_err(|error| QueryError::Internal(error.to_string()))?;
        }
        if buffer.is_empty() {
            continue;
        }
        let values: Vec<Map<String, Value>> = serde_json::from_slice(&buffer)
            .map_err(|error| QueryError::Internal(error.to_string()))?;
        // Rows are counted at the batch's average size: the answer stops within a row or
        // so of the byte limit.
        let row_bytes = buffer.len() / values.len().max(1) + 1;
        drop(buffer);
        for row in values {
            if rows.len() == max_rows || bytes + row_bytes > max_bytes {
                truncated = true;
                break;
            }
            bytes += row_bytes;
            rows.push(row);
        }
        if truncated {
            break;
        }
    }
    Ok(QueryResult {
        columns,
        rows,
        truncated,
        unreadable: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_threads_run_below_ingest_and_only_they_do() {
        let priority =
            || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let before = priority();
        let lowered = std::thread::spawn(move || {
            super::lower_thread_priority(10);
            priority()
        })
        .join()
        .unwrap();
        // setpriority sets the nice value itself (not an increment); a process already
        // nicer than 10 may not be allowed to go back up.
        assert!(
            lowered == 10 || (before > 10 && lowered == before),
            "nice {lowered} (was {before})"
        );
        assert_eq!(priority(), before, "the caller's thread keeps its priority");
    }

    use super::*;

    #[test]
    fn archived_hours_are_pruned_only_by_text_every_row_a_scan_reads_must_hold() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        // Per scan of `events`, the text its rows must hold (sorted, for comparing).
        let required = |sql: &str| -> Vec<Vec<String>> {
            let scans = runtime
                .block_on(filters_of_scans(
                    &SessionContext::new(),
                    sql,
                    SQLOptions::new(),
                    Utc::now(),
                ))
                .unwrap();
            let mut texts: Vec<Vec<String>> = scans
                .iter()
                .map(|filters| {
                    filters
                        .iter()
                        .flat_map(skipping::required_text)
                        .map(|needle| String::from_utf8(needle).unwrap())
                        .collect()
                })
                .collect();
            texts.sort();
            texts
        };
        assert_eq!(
            required("SELECT count(*) FROM events WHERE msg LIKE '%abcd%' AND severity < 4"),
            [["abcd"]]
        );
        assert_eq!(
            required(
                "SELECT host FROM (SELECT * FROM events WHERE msg LIKE '%efgh%') GROUP BY host"
            ),
            [["efgh"]]
        );
        // A self-join whose every scan requires text reads only hours that may hold one
        // scan's text; one scan without text reads every hour.
        assert_eq!(
            required(
                "SELECT count(*) FROM events a JOIN events b ON a.host = b.host \
                 WHERE a.msg LIKE '%abcd%' AND b.msg LIKE '%wxyz%'"
            ),
            [["abcd"], ["wxyz"]]
        );
        assert_eq!(
            required(
                "SELECT count(*) FROM events a JOIN events b ON a.event_id = b.event_id WHERE a.msg LIKE '%abcd%'"
            ),
            [vec![], vec!["abcd".to_string()]]
        );
        assert_eq!(
            required(
                "SELECT count(*) FROM events WHERE msg LIKE '%abcd%' AND ts > (SELECT min(ts) FROM events)"
            ),
            [vec![], vec!["abcd".to_string()]]
        );
        assert_eq!(
            required("SELECT count(*) FROM events WHERE msg LIKE '%abcd%' OR severity = 1"),
            [Vec::<String>::new()]
        );
    }

    #[test]
    fn only_one_select_passes_the_statement_check() {
        for allowed in [
            "SELECT 1",
            "select count(*) from events",
            "WITH x AS (SELECT * FROM events) SELECT * FROM x",
        ] {
            assert!(check_single_select(allowed).is_ok(), "{allowed}");
        }
        for refused in [
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "SET datafusion.catalog.information_schema = true",
            "EXPLAIN SELECT * FROM events",
            "SELECT 1; SELECT 2",
            "INSERT INTO events VALUES (1)",
            "DROP TABLE events",
        ] {
            assert!(
                matches!(check_single_select(refused), Err(QueryError::Invalid(_))),
                "{refused}"
            );
        }
    }
}
