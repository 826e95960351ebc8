//! The table over a tenant's Parquet files that opens only what a substring filter on `msg`
//! may match, by the files' skip indexes ([`crate::skip_index`]).
//!
//! It wraps DataFusion's listing table: the filters DataFusion pushes to the scan are read
//! for text every matching message must contain (`msg LIKE '%text%'`, as searches, LogQL's
//! `|=` and SQL write it, or `msg = 'text'`); each file's granules that lack that text are
//! skipped by a row selection, and a file with none left is not opened at all. The filters
//! themselves still run on what is read, so pruning can only save work, never change an
//! answer — which is why anything not understood (`OR`, `NOT LIKE`, `ILIKE`, regexes) is
//! simply not used for pruning.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;

use crate::skip_index::SkipIndex;

/// The skip index of a scanned file, by the file's object path (`None`: the file has none,
/// or it does not check out).
pub(super) type IndexLocator =
    Arc<dyn Fn(&object_store::path::Path) -> Option<SkipIndex> + Send + Sync>;

/// Parquet files that store `msg` whole, read through their skip indexes.
pub(super) struct SkippingTable {
    inner: ListingTable,
    index_of: IndexLocator,
}

impl fmt::Debug for SkippingTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkippingTable").finish_non_exhaustive()
    }
}

impl SkippingTable {
    pub(super) fn new(inner: ListingTable, index_of: IndexLocator) -> SkippingTable {
        SkippingTable { inner, index_of }
    }
}

#[async_trait]
impl TableProvider for SkippingTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        let needles: Vec<Vec<u8>> = filters.iter().flat_map(required_text).collect();
        if needles.is_empty() {
            return Ok(plan);
        }
        Ok(skip_granules(plan, &needles, &self.index_of))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: DataFusion still applies every filter to the rows read.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

/// An empty table of the events' shape that takes every filter pushed to it: planning a
/// statement over it shows which filters reach the scan (see `required_text_filters`).
#[derive(Debug)]
pub(super) struct Shape {
    schema: SchemaRef,
}

impl Shape {
    pub(super) fn new(schema: SchemaRef) -> Shape {
        Shape { schema }
    }
}

#[async_trait]
impl TableProvider for Shape {
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
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(projection) => Arc::new(self.schema.project(projection)?),
            None => self.schema.clone(),
        };
        Ok(Arc::new(EmptyExec::new(schema)))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

/// The scan with each indexed file narrowed to the granules that may hold every needle.
fn skip_granules(
    plan: Arc<dyn ExecutionPlan>,
    needles: &[Vec<u8>],
    index_of: &IndexLocator,
) -> Arc<dyn ExecutionPlan> {
    let Some(config) = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
    else {
        return plan;
    };
    let mut config = config.clone();
    let mut groups = Vec::new();
    for group in &config.file_groups {
        let mut files = Vec::new();
        for file in group.iter() {
            let Some(index) = index_of(file.path()) else {
                files.push(file.clone());
                continue;
            };
            let granules = index.granules_to_read(needles);
            if granules.iter().all(|(_, read)| *read) {
                files.push(file.clone());
            } else if granules.iter().any(|(_, read)| *read) {
                let selection: Vec<RowSelector> = granules
                    .iter()
                    .map(|(rows, read)| {
                        if *read {
                            RowSelector::select(*rows)
                        } else {
                            RowSelector::skip(*rows)
                        }
                    })
                    .collect();
                files.push(
                    file.clone()
                        .with_extension(ParquetRowSelection::new(RowSelection::from(selection))),
                );
            }
        }
        if !files.is_empty() {
            groups.push(FileGroup::new(files));
        }
    }
    if groups.is_empty() {
        return Arc::new(EmptyExec::new(plan.schema()));
    }
    config.file_groups = groups;
    DataSourceExec::from_data_source(config)
}

/// Text every row that passes `filter` has in its `msg`; empty when the filter does not say.
pub(super) fn required_text(filter: &Expr) -> Vec<Vec<u8>> {
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut needles = required_text(left);
            needles.extend(required_text(right));
            needles
        }
        Expr::Like(like) if !like.negated && !like.case_insensitive && is_msg(&like.expr) => {
            match string_literal(&like.pattern) {
                Some(pattern) => like_literals(pattern, like.escape_char),
                None => Vec::new(),
            }
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let text = match (is_msg(left), is_msg(right)) {
                (true, _) => string_literal(right),
                (_, true) => string_literal(left),
                _ => None,
            };
            text.map(|text| vec![text.as_bytes().to_vec()])
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn is_msg(expr: &Expr) -> bool {
    match expr {
        Expr::Column(column) => column.name == "msg",
        // A cast between string types keeps the bytes.
        Expr::Cast(cast) => cast.field.data_type().is_string() && is_msg(&cast.expr),
        _ => false,
    }
}

fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(text))
            | ScalarValue::Utf8View(Some(text))
            | ScalarValue::LargeUtf8(Some(text)),
            _,
        ) => Some(text),
        Expr::Cast(cast) => string_literal(&cast.expr),
        _ => None,
    }
}

/// The literal runs of a LIKE pattern (between its `%` and `_` wildcards, escapes undone):
/// a matching text contains each. Without an escape character, a backslash's meaning is the
/// engine's to decide, so such patterns give nothing.
fn like_literals(pattern: &str, escape: Option<char>) -> Vec<Vec<u8>> {
    if escape.is_none() && pattern.contains('\\') {
        return Vec::new();
    }
    let mut runs = Vec::new();
    let mut run = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(escaped) => run.push(escaped),
                // A trailing escape: unclear, use nothing.
                None => return Vec::new(),
            }
        } else if c == '%' || c == '_' {
            if !run.is_empty() {
                runs.push(std::mem::take(&mut run).into_bytes());
            }
        } else {
            run.push(c);
        }
    }
    if !run.is_empty() {
        runs.push(run.into_bytes());
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::expr::Like;
    use datafusion::logical_expr::{col, lit};

    fn like(pattern: &str, escape: Option<char>) -> Expr {
        Expr::Like(Like::new(
            false,
            Box::new(col("msg")),
            Box::new(lit(pattern)),
            escape,
            false,
        ))
    }

    fn texts(needles: Vec<Vec<u8>>) -> Vec<String> {
        needles
            .into_iter()
            .map(|needle| String::from_utf8(needle).unwrap())
            .collect()
    }

    #[test]
    fn the_text_a_filter_requires_is_found_and_nothing_else() {
        assert_eq!(
            texts(required_text(&like("%qzx7RARE%", Some('\\')))),
            ["qzx7RARE"]
        );
        assert_eq!(
            texts(required_text(&like("%50\\% off_now%", Some('\\')))),
            ["50% off", "now"]
        );
        assert_eq!(
            texts(required_text(
                &like("a%bcd", None).and(col("msg").eq(lit("whole")))
            )),
            ["a", "bcd", "whole"]
        );
        // Not a requirement on msg's text: nothing.
        let negated = Expr::Like(Like::new(
            true,
            Box::new(col("msg")),
            Box::new(lit("%x%")),
            None,
            false,
        ));
        let insensitive = Expr::Like(Like::new(
            false,
            Box::new(col("msg")),
            Box::new(lit("%x%")),
            None,
            true,
        ));
        let other_column = Expr::Like(Like::new(
            false,
            Box::new(col("host")),
            Box::new(lit("%web%")),
            None,
            false,
        ));
        for filter in [
            negated,
            insensitive,
            other_column,
            like("%abcd%", Some('\\')).or(like("%efgh%", Some('\\'))),
            like("%a\\b%", None),
            like("%abc\\", Some('\\')),
        ] {
            assert!(required_text(&filter).is_empty(), "{filter}");
        }
    }

    /// A compacted file of three granules with a rare token in the middle one, queried
    /// through search and SQL; then with its index swapped for one that lies (the token is
    /// no longer found: the index is what decides what is read) and for a damaged one
    /// (ignored: found again).
    #[test]
    fn queries_read_through_the_index_and_never_trust_a_damaged_one() {
        use crate::compaction::CompactionOptions;
        use crate::disk::LocalDisk;
        use crate::hot::{window_of, HotStore, WINDOW_SECONDS};
        use crate::metrics::StoreMetrics;
        use crate::query::{QueryEngine, QueryLimits, SearchRequest};
        use crate::skip_index::{sidecar_path, Builder, GRANULE_ROWS};
        use chrono::{TimeZone, Utc};
        use meniscus_grid::{Correlation, Event, Producer, TenantId, Transport};
        use meniscus_record::columnar::tenant_batches;
        use std::time::Duration;

        const TOKEN: &str = "qzx7RAREb4f1";
        let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let hot = Arc::new(
            HotStore::open(
                dir.path(),
                Arc::new(LocalDisk),
                Duration::from_secs(600),
                Arc::new(crate::archive::crypto::Keyring::open(&keys.path().join("keys")).unwrap()),
            )
            .unwrap()
            .0,
        );
        let start = Utc
            .timestamp_opt(window_of(Utc::now()) - 3 * WINDOW_SECONDS, 0)
            .unwrap();
        let total = 2 * GRANULE_ROWS + 100;
        let token_row = GRANULE_ROWS + 40;
        let message = |row: usize| {
            if row == token_row {
                format!("request {row} carried {TOKEN} in its header")
            } else {
                format!(
                    "GET /api/v1/items/{} 200 {}ms",
                    row * 7919 % 100_003,
                    row % 997
                )
            }
        };
        let producer = Producer::plain("default");
        let events: Vec<Event> = (0..total)
            .map(|row| {
                let correlation = Correlation::new("acme", &producer, Transport::Tcp, Utc::now());
                let mut event = Event::from_message(message(row), correlation);
                event.time =
                    Some((start + chrono::Duration::milliseconds(row as i64)).fixed_offset());
                event.pname = Some("app".into());
                event
            })
            .collect();
        hot.insert(tenant_batches(&events).unwrap());
        let frozen = hot.freeze(1).unwrap();
        hot.flush(&frozen).unwrap();
        let options = CompactionOptions::default();
        let groups =
            crate::compaction::plan(&hot.file_entries(), Utc::now().timestamp() + 600, &options);
        let entry = hot.compact(&groups[0], &options).unwrap().unwrap();
        let parquet = dir.path().join(&entry.path);
        let sidecar = sidecar_path(&parquet);
        assert!(sidecar.exists(), "compaction writes the index");

        let registry = meniscus_metrics::Registry::new();
        let engine = QueryEngine::new(
            hot.clone(),
            QueryLimits::default(),
            Arc::new(StoreMetrics::register(&registry)),
        );
        let tenant = TenantId::parse("acme").unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let found = |text: &str| {
            let request = SearchRequest {
                text: Some(text.to_string()),
                limit: 10,
                ..SearchRequest::default()
            };
            let page = runtime.block_on(engine.search(&tenant, request)).unwrap();
            let sql = format!("SELECT count(*) AS n FROM events WHERE msg LIKE '%{text}%'");
            let counted = runtime.block_on(engine.sql(&tenant, &sql)).unwrap();
            let counted = counted.rows[0]["n"].as_u64().unwrap() as usize;
            assert_eq!(
                page.events.len().min(10),
                counted.min(10),
                "search and SQL agree on {text}"
            );
            counted
        };
        assert_eq!(found(TOKEN), 1);
        assert_eq!(found("7RAREb"), 1, "part of a word");
        assert_eq!(found(" 200 "), total - 1);

        // An index that says no granule holds the token: the token is no longer read.
        let mut lying = Builder::default();
        let batch = datafusion::arrow::array::RecordBatch::try_new(
            Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                datafusion::arrow::datatypes::Field::new(
                    "msg",
                    datafusion::arrow::datatypes::DataType::Utf8,
                    false,
                ),
            ])),
            vec![Arc::new(datafusion::arrow::array::StringArray::from(
                (0..total)
                    .map(|row| {
                        if row == token_row {
                            message(0)
                        } else {
                            message(row)
                        }
                    })
                    .collect::<Vec<_>>(),
            ))],
        )
        .unwrap();
        lying.add(&batch).unwrap();
        let good = std::fs::read(&sidecar).unwrap();
        std::fs::write(&sidecar, lying.finish().encode()).unwrap();
        assert_eq!(found(TOKEN), 0, "the index decides which granules are read");
        assert_eq!(found(" 200 "), total - 1);

        // A damaged index is ignored: the whole file is read.
        let mut damaged = good.clone();
        damaged[20] ^= 0x40;
        std::fs::write(&sidecar, damaged).unwrap();
        assert_eq!(found(TOKEN), 1);
        std::fs::write(&sidecar, good).unwrap();
        assert_eq!(found(TOKEN), 1);
    }
}
