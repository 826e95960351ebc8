//! Where the bytes of Parquet files go: per column, the compressed bytes of its pages (and
//! their share), plus what the files spend outside pages (footers, page indexes, bloom
//! filters); then the same rows as archive objects (`meniscus_store::archive::format`), per
//! stream, before sealing. For the bytes-at-rest work: `cargo run --release -p meniscus-store
//! --example parquet_sizes -- FILE.parquet...` (e.g. a hot store's compacted files).

use std::collections::BTreeMap;
use std::fs::File;

use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        return Err("usage: parquet_sizes FILE.parquet...".into());
    }
    let (mut columns, mut total, mut rows) = (BTreeMap::<String, u64>::new(), 0u64, 0i64);
    for path in &paths {
        total += std::fs::metadata(path)?.len();
        let reader = SerializedFileReader::new(File::open(path)?)?;
        for group in reader.metadata().row_groups() {
            rows += group.num_rows();
            for column in group.columns() {
                *columns.entry(column.column_path().string()).or_default() +=
                    column.compressed_size() as u64;
            }
        }
    }
    let pages: u64 = columns.values().sum();
    println!("{} files, {rows} rows, {total} bytes", paths.len());
    let mut sorted: Vec<_> = columns.into_iter().collect();
    sorted.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    for (name, bytes) in sorted {
        println!(
            "{name:<24} {bytes:>12} {:>6.1} % {:>8.2} B/row",
            100.0 * bytes as f64 / total as f64,
            bytes as f64 / rows.max(1) as f64
        );
    }
    let other = total - pages;
    println!(
        "{:<24} {other:>12} {:>6.1} % {:>8.2} B/row",
        "(outside pages)",
        100.0 * other as f64 / total as f64,
        other as f64 / rows.max(1) as f64
    );
    archive_sizes(&paths)
}

/// The files' rows as archive objects: bytes per stream, and in all.
fn archive_sizes(paths: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    use meniscus_store::archive::format;
    let schema = meniscus_record::columnar::schema();
    let (mut streams, mut total) = (BTreeMap::<String, u64>::new(), 0u64);
    for path in paths {
        let batches = meniscus_store::hot::read_batches(std::path::Path::new(path))?;
        let batch = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
        let object = format::encode(&batch)?;
        total += object.len() as u64;
        for (name, bytes) in format::stream_sizes(&object)? {
            *streams.entry(name).or_default() += bytes;
        }
    }
    println!("as archive objects (before sealing): {total} bytes");
    for (name, bytes) in streams {
        println!("{name:<24} {bytes:>12}");
    }
    Ok(())
}
