//! One SQL statement over a tenant's events held by several storage workers (after a
//! failover, or with more than one storage copy): the grid's tenant API plans the statement
//! here, over a table whose scan asks each storage worker only for the columns the statement
//! reads and the rows its filters keep, as Arrow; the statement itself (aggregates, joins,
//! ordering, limits) then runs once over their union. A per-worker answer merged afterwards
//! would be wrong for most aggregates (an average of averages, a `count(DISTINCT …)`), so
//! nothing is merged that way.
//!
//! What must hold:
//! - the answer is the one a single store holding every event would give: filters are pushed
//!   to the workers as SQL (DataFusion's unparser) and applied again here, so a filter that
//!   cannot be written back as SQL is only applied here, never dropped;
//! - a worker's rows are never cut: an answer over the query memory limit is refused by the
//!   worker ([`ipc_stream`]) and the whole statement fails with its reason;
//! - a worker that cannot answer fails the statement ([`PartFailure`]) rather than leaving
//!   its rows out silently.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::Session;
use datafusion::common::Result as DfResult;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::future::BoxFuture;
use futures::StreamExt;

use super::{
    check_single_select, collect_json, new_session, on_query_threads, sql_options, QueryError,
    QueryLimits, QueryResult, UnreadableWindow,
};

/// Media type of a statement's rows as an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// What one storage worker answered to a fetch: its rows as an Arrow IPC stream, and the
/// windows it could not read.
pub struct PartAnswer {
    pub stream: Vec<u8>,
    pub unreadable: Vec<UnreadableWindow>,
}

/// A storage worker that did not give its rows: no answer (`status: None`), or a refusal
/// passed on as it came (a statement it finds invalid, 429 when busy).
#[derive(Debug, Clone)]
pub struct PartFailure {
    pub worker: String,
    pub status: Option<u16>,
    pub body: Vec<u8>,
}

impl fmt::Display for PartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(
                f,
                "storage worker {} answered {status}: {}",
                self.worker,
                String::from_utf8_lossy(&self.body)
            ),
            None => write!(
                f,
                "storage worker {} did not answer: {}",
                self.worker,
                String::from_utf8_lossy(&self.body)
            ),
        }
    }
}

impl std::error::Error for PartFailure {}

/// One storage worker holding some of the tenant's events.
pub trait EventPart: Send + Sync {
    /// Runs `sql` (a `SELECT … FROM events`) on the worker, every row as Arrow.
    fn fetch(&self, sql: String) -> BoxFuture<'static, Result<PartAnswer, PartFailure>>;
}

/// Why a statement across workers failed.
#[derive(Debug)]
pub enum AcrossError {
    Query(QueryError),
    Part(PartFailure),
}

impl From<QueryError> for AcrossError {
    fn from(error: QueryError) -> Self {
        AcrossError::Query(error)
    }
}

impl From<DataFusionError> for AcrossError {
    fn from(error: DataFusionError) -> Self {
        if let DataFusionError::External(inner) = error.find_root() {
            if let Some(failure) = inner.downcast_ref::<PartFailure>() {
                return AcrossError::Part(failure.clone());
            }
        }
        AcrossError::Query(error.into())
    }
}

/// Runs a tenant's `sql` over the events `parts` hold between them, within `limits` (the
/// same as on one storage worker: memory, deadline, rows and bytes of the answer).
pub async fn sql_across(
    parts: Vec<Arc<dyn EventPart>>,
    sql: &str,
    limits: &QueryLimits,
) -> Result<QueryResult, AcrossError> {
    if sql.len() > limits.max_statement_bytes {
        return Err(QueryError::Invalid(format!(
            "the statement is {} bytes long; at most {} are accepted",
            sql.len(),
            limits.max_statement_bytes
        ))
        .into());
    }
    let (sql, limits) = (sql.to_string(), limits.clone());
    let threads = limits.clone();
    // Parsed, planned and run on query threads of its own, as on a storage worker: a
    // statement that never yields, or nests deeply, holds those threads, not the caller's;
    // the deadline is kept from here.
    let work = async move { Ok(run_across(parts, &sql, &limits).await) };
    on_query_threads(&threads, || {}, work).await?
}

async fn run_across(
    parts: Vec<Arc<dyn EventPart>>,
    sql: &str,
    limits: &QueryLimits,
) -> Result<QueryResult, AcrossError> {
    check_single_select(sql)?;
    let Some(first) = parts.first() else {
        return Err(QueryError::Internal("no storage worker to ask".into()).into());
    };
    // The events table's columns, as the workers' SQL sees them.
    let shape = first
        .fetch("SELECT * FROM events LIMIT 0".to_string())
        .await
        .map_err(AcrossError::Part)?;
    let schema = StreamReader::try_new(Cursor::new(shape.stream), None)
        .map_err(|error| QueryError::Internal(format!("unreadable rows: {error}")))?
        .schema();
    let table = Arc::new(PartsTable {
        schema,
        parts,
        unreadable: Default::default(),
        failed: Default::default(),
        max_bytes: limits.memory_bytes,
    });
    let ctx = new_session(limits, false)?;
    ctx.register_table("events", table.clone())?;
    let (max_rows, max_bytes) = (limits.max_rows, limits.max_result_bytes);
    let run = async {
        let frame = ctx.sql_with_options(sql, sql_options()).await?;
        collect_json(frame, max_rows, max_bytes)
            .await
            .map_err(AcrossError::Query)
    };
    // A worker's failure reaches here wrapped in DataFusion's error: the table kept it.
    let mut result = run
        .await
        .map_err(|error| match table.failed.lock().take() {
            Some(failure) => AcrossError::Part(failure),
            None => error,
        })?;
    result.unreadable = std::mem::take(&mut *table.unreadable.lock());
    Ok(result)
}

/// The answer of `frame` as one Arrow IPC stream, refused once it passes `max_bytes`.
pub(super) async fn ipc_stream(frame: DataFrame, max_bytes: usize) -> Result<Vec<u8>, QueryError> {
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let mut stream = frame.execute_stream().await?;
    let internal =
        |error: datafusion::arrow::error::ArrowError| QueryError::Internal(error.to_string());
    let mut writer = StreamWriter::try_new(Vec::new(), &schema).map_err(internal)?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch?).map_err(internal)?;
        if writer.get_ref().len() > max_bytes {
            return Err(QueryError::Memory(Some(format!(
                "the rows this statement needs from one storage worker pass {} MB",
                max_bytes / 1_000_000
            ))));
        }
    }
    writer.into_inner().map_err(internal)
}

/// The tenant's events as the storage workers hold them: a scan fetches its columns and
/// rows from every worker.
struct PartsTable {
    schema: SchemaRef,
    parts: Vec<Arc<dyn EventPart>>,
    unreadable: parking_lot::Mutex<Vec<UnreadableWindow>>,
    failed: parking_lot::Mutex<Option<PartFailure>>,
    /// Most bytes of rows one scan may fetch from all workers together: they are held in
    /// memory here.
    max_bytes: usize,
}

impl fmt::Debug for PartsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartsTable")
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl PartsTable {
    /// The statement each worker runs for a scan: the columns, the filters that can be
    /// written back as SQL (the ones that cannot are applied here only), and the limit when
    /// every filter went along (with one left behind, a worker's first rows might not be
    /// the ones that pass it).
    async fn fetch_statement(
        &self,
        columns: &[String],
        filters: &[Expr],
        limit: Option<usize>,
    ) -> String {
        let select = columns
            .iter()
            .map(|name| format!("\"{}\"", name.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", ");
        let plain = format!("SELECT {select} FROM events");
        let written: Vec<String> = filters
            .iter()
            .filter_map(|filter| datafusion::sql::unparser::expr_to_sql(filter).ok())
            .map(|filter| format!("({filter})"))
            .collect();
        let mut statement = plain.clone();
        if !written.is_empty() {
            statement.push_str(" WHERE ");
            statement.push_str(&written.join(" AND "));
        }
        if let (Some(limit), true) = (limit, written.len() == filters.len()) {
            statement.push_str(&format!(" LIMIT {limit}"));
        }
        // Written back by the unparser, read again by the workers' parser: checked here
        // first over an empty table of the same shape, so a filter that does not survive the
        // round trip costs pushing it down, not the statement.
        if statement != plain && !self.plans(&statement).await {
            return plain;
        }
        statement
    }

    async fn plans(&self, statement: &str) -> bool {
        let ctx = SessionContext::new();
        let Ok(empty) = MemTable::try_new(self.schema.clone(), vec![Vec::new()]) else {
            return false;
        };
        if ctx.register_table("events", Arc::new(empty)).is_err() {
            return false;
        }
        match ctx.sql_with_options(statement, sql_options()).await {
            Ok(frame) => frame.create_physical_plan().await.is_ok(),
            Err(_) => false,
        }
    }
}

#[async_trait]
impl TableProvider for PartsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projected: SchemaRef = match projection {
            Some(projection) => Arc::new(self.schema.project(projection)?),
            None => self.schema.clone(),
        };
        let mut columns: Vec<String> = projected
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        // `count(*)` reads no column: rows are counted by the narrowest one.
        let counting_only = columns.is_empty();
        if counting_only {
            columns.push("ts".to_string());
        }
        let statement = self.fetch_statement(&columns, filters, limit).await;
        let answers =
            futures::future::join_all(self.parts.iter().map(|part| part.fetch(statement.clone())))
                .await;
        let mut batches = Vec::new();
        let mut fetched = 0usize;
        for answer in answers {
            let answer = answer.map_err(|failure| {
                *self.failed.lock() = Some(failure.clone());
                DataFusionError::External(Box::new(failure))
            })?;
            self.unreadable.lock().extend(answer.unreadable);
            fetched += answer.stream.len();
            if fetched > self.max_bytes {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "memory limit of {} MB: the rows this statement needs from the storage \
                     workers",
                    self.max_bytes / 1_000_000
                )));
            }
            let reader = StreamReader::try_new(Cursor::new(answer.stream), None)?;
            for batch in reader {
                let batch = batch?;
                let batch = if counting_only {
                    RecordBatch::try_new_with_options(
                        Arc::new(Schema::empty()),
                        Vec::new(),
                        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                    )?
                } else {
                    RecordBatch::try_new(projected.clone(), batch.columns().to_vec())?
                };
                batches.push(batch);
            }
        }
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            projected,
            None,
        )?)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: every filter runs here again on the rows the workers send.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};

    use super::*;

    fn table() -> PartsTable {
        PartsTable {
            schema: meniscus_record::columnar::schema(),
            parts: Vec::new(),
            unreadable: Default::default(),
            failed: Default::default(),
            max_bytes: 1 << 20,
        }
    }

    #[tokio::test]
    async fn workers_get_the_columns_and_filters_and_a_limit_only_when_every_filter_went() {
        let table = table();
        let columns = ["msg".to_string(), "ts".to_string()];
        let statement = table
            .fetch_statement(&columns, &[col("msg").eq(lit("a'b"))], Some(5))
            .await;
        assert_eq!(
            statement,
            "SELECT \"msg\", \"ts\" FROM events WHERE ((msg = 'a''b')) LIMIT 5"
        );
        // A filter that does not plan once written back is left to run here only, and then
        // a worker's first rows might not be the ones that pass it: no limit either.
        let statement = table
            .fetch_statement(&columns, &[col("no_such_column").eq(lit(1))], Some(5))
            .await;
        assert_eq!(statement, "SELECT \"msg\", \"ts\" FROM events");
        let statement = table.fetch_statement(&columns, &[], None).await;
        assert_eq!(statement, "SELECT \"msg\", \"ts\" FROM events");
    }
}
