//! The write-ahead log: numbered segment files of records (see `meniscus_record::frame`).
//!
//! Every batch is appended before it is acknowledged; durable ones are fsynced first. A
//! segment is never appended to after a restart or after a failed write or fsync: replay reads
//! every segment newer than the last flush, and writing continues in a new segment. Segments
//! whose events are all in Parquet are deleted by the flusher.
//!
//! - [`writer`]: appends, group-commit syncs, rotation, and retiring a segment whose write or
//!   fsync failed (after a failed fsync Linux may have dropped the dirty pages and will report
//!   success next time, so nothing acknowledged later may depend on that file).
//! - [`replay`]: reads segments back after a start: skips records it cannot decode, skips
//!   damage in the middle of a segment (and keeps a copy of that segment for inspection), and
//!   cuts only a torn tail.

pub mod replay;
pub mod writer;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use replay::{replay, Replay};
pub use writer::WalWriter;

/// Where segments with damage in the middle are copied for inspection.
pub const DAMAGED_DIR: &str = "damaged";

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

/// Segments in `dir`, oldest first. Files that are not segments are ignored.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".wal"))
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(seq) = seq {
            segments.push((seq, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Deletes every segment up to and including `seq`.
pub fn delete_through(dir: &Path, seq: u64) -> io::Result<()> {
    for (segment, path) in list_segments(dir)? {
        if segment <= seq {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}
