//! Queries over one tenant's events: SQL, search and counts.
//!
//! Every query gets a fresh DataFusion session that holds exactly one table, `events`, built
//! from that tenant's in-memory batches and Parquet files; nothing else is registered, so no
//! statement can name another tenant's data. On top of that: only a single `SELECT` (or `WITH`)
//! is accepted (no DDL, DML, `COPY`, `SET`, `EXPLAIN`), URL tables are off, spilling to disk is
//! off, memory is capped and the query has a deadline. Each query runs on its own small runtime
//! so a heavy query cannot starve ingest.

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

use crate::hot::{HotStore, Unreadable};
use crate::metrics::StoreMetrics;
use crate::msg_tokens::{msg_from_tokens, stored_schema, token_column_names};

#[derive(Clone, Debug)]
pub struct QueryLimits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub max_rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The tenant's query is wrong or not allowed; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("query exceeded its time limit of {0:?}; narrow the time range or add filters")]
    Timeout(Duration),
    #[error("query exceeded its memory limit; narrow the time range, add filters or aggregate")]
    Memory,
    #[error("internal query error: {0}")]
    Internal(String),
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        let text = error.to_string();
        match error.find_root() {
            DataFusionError::ResourcesExhausted(_) => QueryError::Memory,
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => QueryError::Invalid(text),
            _ if text.contains("Resources exhausted") => QueryError::Memory,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

pub struct QueryEngine {
    hot: Arc<HotStore>,
    limits: QueryLimits,
    metrics: Arc<StoreMetrics>,
    /// Run by each query thread as it exits (the binary returns the thread's memory to the
    /// OS there).
    on_thread_stop: fn(),
}

/// A query's own runtime, shut down without waiting when the query ends or times out.
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
            limits,
            metrics,
            on_thread_stop: || {},
        }
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
        let mut config = SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(false)
            .with_batch_size(8192);
        let parquet = &mut config.options_mut().execution.parquet;
        parquet.pushdown_filters = selective;
        parquet.reorder_filters = selective;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(self.limits.memory_bytes)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        Ok(SessionContext::new_with_config_rt(config, runtime))
    }

    /// The tenant's events between `from` and `to` (by window; rows are filtered further by
    /// the caller) as one data frame.
    fn events_frame(
        &self,
        ctx: &SessionContext,
        tenant: &TenantId,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<(DataFrame, Vec<UnreadableWindow>), QueryError> {
        let snapshot = self.hot.snapshot(tenant.as_str(), from, to);
        let unreadable = unreadable_windows(snapshot.unreadable);
        let memory = MemTable::try_new(schema(), vec![snapshot.batches])?;
        let mut frame = ctx.read_table(Arc::new(memory))?;
        if let Some(files) = read_parquet(ctx, &snapshot.files, schema())? {
            frame = files.union(frame)?;
        }
        // Filters on `msg` are pushed below the projection as filters on the rebuilt text: into
        // the Parquet readers where pushdown is on (searches, job lookups), above them
        // otherwise. Row-group pruning cannot use them, as it cannot with whole messages.
        if let Some(files) = read_parquet(ctx, &snapshot.token_files, stored_schema())? {
            frame = files.select(event_columns())?.union(frame)?;
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
            Err(QueryError::Memory) => "memory",
            Err(QueryError::Internal(_)) => "error",
        };
        self.metrics.query_requests.inc(&[kind, outcome]);
        result
    }

    async fn run_untimed<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, QueryError>> + Send + 'static,
    ) -> Result<T, QueryError> {
        let timeout = self.limits.timeout;
        // Each query gets its own two threads, so a runaway query (a cross join that never
        // yields) cannot hold threads the next query needs, nor starve ingest. The deadline
        // is kept here, on the caller's runtime, since a busy runtime would starve its own
        // timer. Aborting the task drops the DataFusion stream, which stops its operators at
        // their next batch.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("query")
            .on_thread_stop(self.on_thread_stop)
            .enable_all()
            .build()
            .map_err(|error| {
                QueryError::Internal(format!("cannot start query threads: {error}"))
            })?;
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

    /// A tenant's SQL over its `events` table.
    pub async fn sql(&self, tenant: &TenantId, sql: &str) -> Result<QueryResult, QueryError> {
        check_single_select(sql)?;
        let ctx = self.session(false)?;
        let (frame, unreadable) = self.events_frame(&ctx, tenant, None, None)?;
        ctx.register_table("events", frame.into_view())?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let sql = sql.to_string();
        let max_rows = self.limits.max_rows;
        self.run("sql", async move {
            let frame = ctx.sql_with_options(&sql, options).await?;
            let mut result = collect_json(frame, max_rows).await?;
            result.unreadable = unreadable;
            Ok(result)
        })
        .await
    }

    /// Events matching the filters, newest first, one page.
    pub async fn search(
        &self,
        tenant: &TenantId,
        request: SearchRequest,
    ) -> Result<SearchPage, QueryError> {
        let ctx = self.session(true)?;
        let (mut frame, unreadable) = self.events_frame(&ctx, tenant, request.from, request.to)?;
        for filter in search_filters(&request) {
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
        let ctx = self.session(false)?;
        let (frame, unreadable) = self.events_frame(&ctx, tenant, Some(from), Some(to))?;
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
        self.run("counts", async move {
            let frame = ctx.sql(&sql).await?;
            let mut result = collect_json(frame, max_rows).await?;
            result.unreadable = unreadable;
            Ok(result)
        })
        .await
    }

    /// How many events of this job the store holds (0 when none).
    pub async fn job_events(&self, tenant: &TenantId, job_id: &str) -> Result<u64, QueryError> {
        let ctx = self.session(true)?;
        let (frame, _) = self.events_frame(&ctx, tenant, None, None)?;
        let frame = frame.filter(col("job_id").eq(lit(job_id)))?;
        self.run("jobs", async move { Ok(frame.count().await? as u64) })
            .await
    }
}

/// A frame over Parquet `files` read as `schema`; `None` when there are none.
fn read_parquet(
    ctx: &SessionContext,
    files: &[std::path::PathBuf],
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<Option<DataFrame>, QueryError> {
    if files.is_empty() {
        return Ok(None);
    }
    let urls = files
        .iter()
        .map(|path| ListingTableUrl::parse(path.to_string_lossy()))
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Some(
        ctx.read_table(Arc::new(ListingTable::try_new(config)?))?,
    ))
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

/// Accepts exactly one read-only query statement.
fn check_single_select(sql: &str) -> Result<(), QueryError> {
    let statements =
        DFParser::parse_sql(sql).map_err(|error| QueryError::Invalid(error.to_string()))?;
    if statements.len() != 1 {
        return Err(QueryError::Invalid(format!(
            "expected exactly one SELECT statement, found {}",
            statements.len()
        )));
    }
    match statements.front() {
        Some(DfStatement::Statement(statement)) if matches!(**statement, SqlStatement::Query(_)) => Ok(()),
        _ => Err(QueryError::Invalid(
            "only SELECT queries over the `events` table are allowed (no DDL, DML, COPY, SET or EXPLAIN)".into(),
        )),
    }
}

async fn collect_json(frame: DataFrame, max_rows: usize) -> Result<QueryResult, QueryError> {
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let mut stream = frame.execute_stream().await?;
    let mut rows = Vec::new();
    let mut truncated = false;
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
        for row in values {
            if rows.len() == max_rows {
                truncated = true;
                break;
            }
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
    use super::*;

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
