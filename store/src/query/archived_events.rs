//! A table over the archived objects one query reads that are in the archive's own format
//! ([`crate::archive::format`]): each object's header, then only the streams of the columns
//! the query uses, fetched by range through the object's sparse copy in the local cache and
//! decoded one object at a time.
//!
//! Filters are not applied here (DataFusion applies them to the rows read): the objects were
//! already chosen by time range and skip index (`Archive::objects_for_query`), and an object
//! holds one hour.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::{StreamExt, TryStreamExt};

use crate::archive::cache::CachedFile;
use crate::archive::manifest::ArchivedObject;
use crate::archive::ranged::ARCHIVE_READ_FAILED;
use crate::archive::Archive;

/// Rows per batch handed to the query: an object decodes whole, then goes out in slices.
const BATCH_ROWS: usize = 8192;

pub struct ArchivedEvents {
    archive: Arc<Archive>,
    schema: SchemaRef,
    objects: Vec<(Arc<CachedFile>, ArchivedObject)>,
}

impl fmt::Debug for ArchivedEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchivedEvents")
            .field("objects", &self.objects.len())
            .finish_non_exhaustive()
    }
}

impl ArchivedEvents {
    pub fn new(
        archive: Arc<Archive>,
        schema: SchemaRef,
        objects: Vec<(Arc<CachedFile>, ArchivedObject)>,
    ) -> ArchivedEvents {
        ArchivedEvents {
            archive,
            schema,
            objects,
        }
    }
}

#[async_trait]
impl TableProvider for ArchivedEvents {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => self.schema.clone(),
        };
        // A few partitions, each reading its objects one after another: every object of a
        // long range decoded at once would hold them all in memory.
        let partitions = state
            .config()
            .target_partitions()
            .clamp(1, self.objects.len().max(1));
        let mut shares: Vec<Vec<(Arc<CachedFile>, ArchivedObject)>> = vec![Vec::new(); partitions];
        for (at, object) in self.objects.iter().enumerate() {
            shares[at % partitions].push(object.clone());
        }
        let streams: Vec<Arc<dyn PartitionStream>> = shares
            .into_iter()
            .map(|objects| {
                Arc::new(Share {
                    archive: self.archive.clone(),
                    schema: schema.clone(),
                    objects,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            streams,
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }
}

/// The objects one partition reads.
struct Share {
    archive: Arc<Archive>,
    schema: SchemaRef,
    objects: Vec<(Arc<CachedFile>, ArchivedObject)>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("objects", &self.objects.len())
            .finish_non_exhaustive()
    }
}

impl PartitionStream for Share {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (archive, schema) = (self.archive.clone(), self.schema.clone());
        let batches = futures::stream::iter(self.objects.clone())
            .then(move |(file, object)| {
                let (archive, schema) = (archive.clone(), schema.clone());
                async move {
                    read_object(archive, file, &object, schema)
                        .await
                        .map_err(|error| {
                            DataFusionError::External(
                                format!("{ARCHIVE_READ_FAILED}: {}: {error:#}", object.key).into(),
                            )
                        })
                }
            })
            .map_ok(|batch| {
                let slices: Vec<DfResult<RecordBatch>> = (0..batch.num_rows())
                    .step_by(BATCH_ROWS)
                    .map(|start| Ok(batch.slice(start, BATCH_ROWS.min(batch.num_rows() - start))))
                    .collect();
                futures::stream::iter(slices)
            })
            .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// The columns of `schema` of one object: its header, then the streams they need.
async fn read_object(
    archive: Arc<Archive>,
    file: Arc<CachedFile>,
    object: &ArchivedObject,
    schema: SchemaRef,
) -> anyhow::Result<RecordBatch> {
    let directory = archive.events_directory(&object.key, &file).await?;
    let ranges: Vec<std::ops::Range<u64>> = directory
        .streams_for(&schema)?
        .iter()
        .map(|stream| stream.range.clone())
        .collect();
    let stored = archive.read_ranges(&object.key, &file, &ranges).await?;
    // Decompressing and decoding are CPU work: off the async threads.
    let batch = tokio::task::spawn_blocking(move || {
        let stored: Vec<&[u8]> = stored.iter().map(|bytes| bytes.as_ref()).collect();
        directory.decode(&schema, &stored)
    })
    .await??;
    Ok(batch)
}
