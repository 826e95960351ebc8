//! Appending to the write-ahead log.
//!
//! One segment is open at a time. A failed append or fsync *retires* it: the file is closed
//! and never written again, and the next append opens a new segment (its directory entry
//! fsynced before anything in it is acknowledged). After a failed fsync Linux reports the
//! writeback error once and marks the pages clean, so a later fsync of the same file would
//! report success for data that may never reach the disk (PostgreSQL's "fsyncgate"); a
//! retired segment is only ever read again, by replay.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::segment_path;
use crate::disk::{Disk, DiskFile};

/// The open segment being appended to.
pub struct WalWriter {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    /// `None` once the segment was closed (rotated or retired) until the next is opened.
    file: Option<Box<dyn DiskFile>>,
    /// The open segment's number; when none is open, the last one used.
    seq: u64,
    /// The number the next segment gets.
    next_seq: u64,
    unsynced_bytes: u64,
}

impl WalWriter {
    /// A writer whose first segment is `first_seq` (opened on the first append).
    pub fn new(disk: Arc<dyn Disk>, dir: &Path, first_seq: u64) -> WalWriter {
        WalWriter {
            disk,
            dir: dir.to_path_buf(),
            file: None,
            seq: first_seq.saturating_sub(1),
            next_seq: first_seq,
            unsynced_bytes: 0,
        }
    }

    /// The open segment's number (the last one used when none is open).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Opens a new segment if none is open: created, then its directory fsynced, so a crash
    /// cannot lose the file with records acknowledged from it. A number whose creation failed
    /// is not tried again (the file may exist, empty).
    pub fn ensure_open(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let file = self.disk.create_new(&segment_path(&self.dir, seq))?;
        self.disk.sync_dir(&self.dir)?;
        self.file = Some(file);
        self.seq = seq;
        self.unsynced_bytes = 0;
        Ok(())
    }

    /// Closes the open segment for good after a failure; the next append opens another.
    fn retire(&mut self, operation: &str, error: &io::Error) {
        if self.file.take().is_some() {
            tracing::error!(
                segment = self.seq,
                operation,
                %error,
                "write-ahead log segment retired after a failed {operation}; writing continues in a new segment"
            );
        }
        self.unsynced_bytes = 0;
    }

    /// Appends whole records, opening a segment first if none is open. A failed write retires
    /// the segment (replay cuts the partial record at its end) and returns the error.
    pub fn append<R: AsRef<[u8]>>(&mut self, records: &[R]) -> io::Result<u64> {
        self.ensure_open()?;
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("no open write-ahead log segment"));
        };
        let mut written = 0u64;
        for record in records {
            let bytes = record.as_ref();
            if let Err(error) = file.write_all(bytes) {
                self.retire("write", &error);
                return Err(error);
            }
            written += bytes.len() as u64;
        }
        self.unsynced_bytes += written;
        Ok(written)
    }

    /// Makes everything appended so far survive a crash of the process or the machine. A
    /// failed fsync retires the segment.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced_bytes == 0 {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        match file.sync_data() {
            Ok(()) => {
                self.unsynced_bytes = 0;
                Ok(())
            }
            Err(error) => {
                self.retire("fsync", &error);
                Err(error)
            }
        }
    }

    /// Syncs and closes the open segment, so a flush can cover it; the next append opens the
    /// next segment. Returns the number of the last segment written.
    pub fn rotate(&mut self) -> io::Result<u64> {
        self.sync()?;
        self.file = None;
        Ok(self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::faults::{FaultyDisk, Op};
    use crate::wal::list_segments;

    #[test]
    fn a_failed_fsync_retires_the_segment_and_writing_goes_on_in_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::default();
        let mut writer = WalWriter::new(Arc::new(disk.clone()), dir.path(), 1);
        writer.append(&[b"one"]).unwrap();
        writer.sync().unwrap();
        assert_eq!(writer.seq(), 1);
        writer.append(&[b"two"]).unwrap();
        disk.fail(Op::SyncFile, 1, None);
        assert!(writer.sync().is_err());
        assert!(
            !writer.is_open(),
            "a segment whose fsync failed is never written again"
        );
        writer.append(&[b"three"]).unwrap();
        writer.sync().unwrap();
        assert_eq!(writer.seq(), 2);
        let log = disk.log();
        let created_second = log
            .iter()
            .position(|(op, path, ok)| {
                *op == Op::Create && *ok && path.ends_with("0000000000000002.wal")
            })
            .unwrap();
        assert!(
            log[created_second..]
                .iter()
                .any(|(op, _, ok)| *op == Op::SyncDir && *ok),
            "the new segment's directory entry is fsynced: {log:?}"
        );
        let segments = list_segments(dir.path()).unwrap();
        assert_eq!(segments.len(), 2);
        assert_eq!(std::fs::read(&segments[1].1).unwrap(), b"three");
    }

    #[test]
    fn a_failed_write_retires_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::default();
        let mut writer = WalWriter::new(Arc::new(disk.clone()), dir.path(), 7);
        writer.append(&[b"a"]).unwrap();
        disk.fail(Op::Write, 1, None);
        assert!(writer.append(&[b"b"]).is_err());
        assert!(!writer.is_open());
        writer.append(&[b"c"]).unwrap();
        assert_eq!(writer.seq(), 8);
    }

    #[test]
    fn a_segment_that_cannot_be_created_is_an_error_and_the_next_number_is_tried() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::default();
        let mut writer = WalWriter::new(Arc::new(disk.clone()), dir.path(), 1);
        disk.fail(Op::SyncDir, 1, None);
        assert!(
            writer.append(&[b"x"]).is_err(),
            "no append without a durable directory entry"
        );
        assert!(!writer.is_open());
        writer.append(&[b"y"]).unwrap();
        assert_eq!(writer.seq(), 2);
    }
}
