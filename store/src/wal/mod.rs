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

/// The key sealing records that hold rows of an `encrypted` producer, kept in the key
/// directory (`archive.keyDir`) with the tenant keys: whoever holds the data directory alone
/// opens neither.
pub const KEY_FILE: &str = "wal.key";

/// The log's record key, read from `key_dir`, made there on first use (random, mode 0600,
/// fsynced with its directory). `None` when it is missing and the directory is read-only (a
/// mounted Secret without it): records of `encrypted` producers are then refused, never
/// written in clear.
pub fn record_key(key_dir: &Path) -> io::Result<Option<[u8; 32]>> {
    let path = key_dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            return bytes.try_into().map(Some).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte key", path.display()),
                )
            })
        }
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        Err(_) => {}
    }
    let key = crate::archive::crypto::DataKey::random_bytes();
    let temporary = key_dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
    let written = (|| {
        use std::io::Write;
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&temporary)?;
        out.write_all(&key)?;
        out.sync_all()?;
        // Never over a key another process made meanwhile: records may be sealed with it.
        fs::hard_link(&temporary, &path)?;
        fs::remove_file(&temporary)?;
        fs::File::open(key_dir)?.sync_all()
    })();
    match written {
        Ok(()) => Ok(Some(key)),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&temporary);
            record_key(key_dir)
        }
        Err(error) if crate::disk::is_read_only(&error) => {
            tracing::warn!(path = %path.display(), %error, "no write-ahead log key and the key directory is read-only: events of encrypted producers will be refused");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

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
