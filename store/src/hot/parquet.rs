//! Writing hot-store Parquet files: the writer settings measured for this data, and the
//! durable write itself (temporary name, fsync, rename, directory fsync; new directories
//! fsynced in their parents first), sealed when a tenant's `encrypted` producer has rows in it.

use std::io;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use super::sealed::{name_of, SealingWriter};
use crate::archive::crypto::TenantKey;
use crate::disk::{create_dirs_durably, Disk};
use crate::msg_tokens;

/// How a file is written: a flush favours speed (it runs while ingest goes on, and compaction
/// rewrites an hour's flushed files once the hour has ended); compaction favours size and
/// pruning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Flush,
    Compacted { zstd_level: i32 },
}

/// Columns where nearly every value differs: a dictionary only costs time (interning every
/// value until the dictionary overflows) and space (the abandoned dictionary page).
const UNIQUE_COLUMNS: [&str; 7] = [
    "ts",
    "received_at",
    "event_id",
    "msg",
    "native",
    "raw",
    "normalized",
];

const FREE_TEXT_COLUMNS: [&str; 4] = ["msg", "native", "raw", "normalized"];

/// Columns the API's filters do not use (searches, counts and tails filter on time, host,
/// program, severity, facility, job id and the cursor's event id).
const LESS_FILTERED_COLUMNS: [&str; 14] = [
    "time_offset",
    "pid",
    "msgid",
    "pri",
    "ver",
    "tags",
    "producer",
    "pattern",
    "durable",
    "encrypted",
    "transport",
    "parse_error",
    "raw_encoding",
    "truncated_from",
];

/// Flushed files: zstd 1 (LZ4 measured no cheaper here, at twice the size), no dictionaries and
/// min/max statistics on the time columns only. In arrival order a page's smallest and largest
/// host or event id prune nothing, and interning every value into dictionaries and comparing
/// it against the page's statistics took about a quarter of the flush (bench/e2e profile:
/// the parquet interner and memcmp at 8 % of the server's CPU); the files are rewritten with
/// both once their hour is compacted.
fn flush_properties() -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_max_row_group_row_count(Some(256 * 1024))
        .set_column_bloom_filter_enabled(ColumnPath::from("job_id"), true);
    for name in ["ts", "received_at"] {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::Page)
            .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    builder
        .set_column_encoding(ColumnPath::from("event_id"), Encoding::DELTA_BYTE_ARRAY)
        .build()
}

fn writer_properties(kind: FileKind) -> WriterProperties {
    let zstd_level = match kind {
        FileKind::Flush => return flush_properties(),
        FileKind::Compacted { zstd_level } => zstd_level,
    };
    let compression = Compression::ZSTD(ZstdLevel::try_new(zstd_level).unwrap_or_default());
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(256 * 1024))
        // A job lookup reads only files that may hold the job id.
        .set_column_bloom_filter_enabled(ColumnPath::from("job_id"), true);
    // Message tokens (compacted files only) are free text too; a dictionary made them
    // larger, not smaller, on bench/query's corpus.
    let tokens = msg_tokens::token_column_names().iter().map(String::as_str);
    for name in UNIQUE_COLUMNS.into_iter().chain(tokens.clone()) {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    // Free text: the smallest and largest message of a page prune nothing (searches look
    // inside the text), and comparing every value to find them cost ~10 % of a flush.
    for name in FREE_TEXT_COLUMNS.into_iter().chain(tokens) {
        builder =
            builder.set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None);
    }
    // Columns searches, counts and tails do not filter on keep statistics per column chunk
    // only: a page index entry per column costs every file its bytes (a 2,000-line hour of
    // loghub's logs spent ~1 KB on page indexes), and a filter on them still skips row groups.
    for name in LESS_FILTERED_COLUMNS {
        builder =
            builder.set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::Chunk);
    }
    // Times arrive nearly in order and monotonic ULIDs share long prefixes: stored as
    // differences they take a byte or two per row instead of eight and twenty-six
    // (bench/query corpus: 0.242 -> 0.208 of raw with the dictionaries above).
    for name in ["ts", "received_at"] {
        builder =
            builder.set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    builder
        .set_column_encoding(ColumnPath::from("event_id"), Encoding::DELTA_BYTE_ARRAY)
        .build()
}

/// Writes batches, made one at a time, to `root/relative` as one Parquet file and returns its
/// size. Durable before it returns: a manifest may name it next. With `seal` (a tenant and its
/// key), the file is sealed as it is written (see [`super::sealed`]).
pub fn write_parquet(
    disk: &dyn Disk,
    root: &Path,
    relative: &str,
    schema: SchemaRef,
    batches: impl Iterator<Item = io::Result<RecordBatch>>,
    kind: FileKind,
    seal: Option<(&str, &TenantKey)>,
) -> io::Result<u64> {
    let relative = Path::new(relative);
    let parent = relative
        .parent()
        .ok_or_else(|| io::Error::other("parquet path has no parent"))?;
    create_dirs_durably(disk, root, parent)?;
    let path = root.join(relative);
    let dir = root.join(parent);
    let temporary = path.with_extension("parquet.tmp");
    let file = disk.create(&temporary)?;
    // No Arrow schema in the footer: every reader is given the event schema (or the stored
    // one), and the Parquet types map back to it exactly; the serialized copy was ~1.8 KB per
    // file, a tenth of a 2,000-line hour of loghub's logs.
    let options = ArrowWriterOptions::new()
        .with_properties(writer_properties(kind))
        .with_skip_arrow_metadata(true);
    let mut file = match seal {
        None => write_batches(file, schema, options, batches)?,
        Some((tenant, key)) => {
            let sealing = SealingWriter::new(file, tenant, &name_of(relative)?, key)?;
            write_batches(sealing, schema, options, batches)?.finish()?
        }
    };
    file.sync_all()?;
    let bytes = file.size()?;
    drop(file);
    disk.rename(&temporary, &path)?;
    disk.sync_dir(&dir)?;
    Ok(bytes)
}

/// Writes `batches` as Parquet to `out` and returns it.
fn write_batches<W: io::Write + Send>(
    out: W,
    schema: SchemaRef,
    options: ArrowWriterOptions,
    batches: impl Iterator<Item = io::Result<RecordBatch>>,
) -> io::Result<W> {
    let mut writer =
        ArrowWriter::try_new_with_options(out, schema, options).map_err(io::Error::other)?;
    for batch in batches {
        writer.write(&batch?).map_err(io::Error::other)?;
    }
    writer.into_inner().map_err(io::Error::other)
}
