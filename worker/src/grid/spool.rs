//! A link's spool: the records a worker has accepted for one downstream worker and that this
//! worker has not yet seen acknowledged, on disk, in order.
//!
//! What must hold:
//! - a record is in the spool before its batch is acknowledged upstream; a durable one is
//!   fsynced first (writers that arrive together share one fsync);
//! - a record leaves only once the downstream acknowledged it; after a crash, everything from
//!   the saved cursor on is sent again (at-least-once: storage dedupes on `event_id`);
//! - a torn record at the tail (a crash mid-append) is dropped, never sent: it was never
//!   acknowledged upstream;
//! - all spools of a worker share one disk quota ([`Quota`]); past it, appends are refused
//!   and the refusal reaches the senders as backpressure.
//!
//! Layout under the spool's directory: `NNNNNNNNNNNNNNNN.spool` segments of whole records
//! (the one record format, so a spool can be read with the WAL's tools) and `cursor`, the
//! position of the first record not yet acknowledged. The newest pending records are also
//! kept in memory, up to a budget all of a worker's spools share ([`Quota`]), so a link that
//! keeps up sends what it just wrote without reading it back (a read, a fresh zeroed buffer
//! and a copy per record were a tenth of a correlator's CPU); older ones are read back from
//! the segment when sent, so a long outage costs disk, not memory.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use meniscus_record::frame::{split_record, HEADER_LEN};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// A new segment is started past this size, so acknowledged records are freed a segment at a
/// time.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Memory a worker's spools may hold copies of pending records in, together: at most this,
/// and at most a quarter of the disk quota.
const MAX_CACHED_BYTES: u64 = 64 * 1024 * 1024;

/// The disk all of a worker's spools may use together, and the memory they may keep copies
/// of pending records in.
pub struct Quota {
    used: AtomicU64,
    limit: u64,
    freed: Notify,
    cached: AtomicU64,
    cache_limit: u64,
}

impl Quota {
    pub fn new(limit: u64) -> Arc<Quota> {
        Arc::new(Quota {
            used: AtomicU64::new(0),
            limit,
            freed: Notify::new(),
            cached: AtomicU64::new(0),
            cache_limit: MAX_CACHED_BYTES.min(limit / 4),
        })
    }

    /// Takes `bytes` of the memory budget, or refuses when they do not fit.
    fn try_cache(&self, bytes: u64) -> bool {
        self.cached
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cached| {
                (cached + bytes <= self.cache_limit).then_some(cached + bytes)
            })
            .is_ok()
    }

    fn uncache(&self, bytes: u64) {
        self.cached.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `bytes` of the quota, or refuses when they do not fit. A record larger than the
    /// whole quota still fits into an empty spool set, so one big batch cannot wedge a link.
    pub fn try_reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used + bytes <= self.limit).then_some(used + bytes)
            })
            .is_ok()
    }

    /// Takes `bytes` whatever the limit: for records moved from one spool to another, whose
    /// old copies are given back right after.
    pub fn take(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Waits until [`Quota::try_reserve`] succeeds.
    pub async fn reserve(&self, bytes: u64) {
        loop {
            let freed = self.freed.notified();
            if self.try_reserve(bytes) {
                return;
            }
            freed.await;
        }
    }

    pub fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.freed.notify_waiters();
    }
}

/// Where one pending record lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

impl Entry {
    fn end(&self) -> (u64, u64) {
        (self.segment, self.offset + self.len)
    }
}

/// A pending record: where it lies, and its bytes while they are kept in memory.
struct Pending {
    entry: Entry,
    cached: Option<Bytes>,
}

struct Writer {
    segment: u64,
    file: Arc<File>,
    offset: u64,
}

struct Inner {
    pending: VecDeque<Pending>,
    writer: Option<Writer>,
    /// The segment after the last one seen, for the next writer.
    next_segment: u64,
    /// Open segment files, for reading back.
    files: HashMap<u64, Arc<File>>,
    /// Everything up to this position is on disk.
    synced: (u64, u64),
    /// The `cursor` file, kept open: rewritten in place on every acknowledgement.
    cursor: Option<File>,
}

pub struct Spool {
    dir: PathBuf,
    quota: Arc<Quota>,
    inner: Mutex<Inner>,
    /// Held while an fsync runs, so writers that arrive meanwhile share the next one.
    syncing: tokio::sync::Mutex<()>,
    appended: Notify,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

impl Spool {
    /// Opens (or creates) the spool in `dir`: the records after the saved cursor are pending
    /// again, their bytes taken from `quota`.
    pub fn open(dir: &Path, quota: Arc<Quota>) -> Result<Arc<Spool>, SpoolError> {
        let io = |source| SpoolError::Io {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let cursor = read_cursor(dir);
        let mut segments: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".spool")?.parse().ok()
            })
            .collect();
        segments.sort_unstable();
        let mut pending = VecDeque::new();
        let mut files = HashMap::new();
        for &segment in &segments {
            let path = segment_path(dir, segment);
            if segment < cursor.0 {
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io)?;
            let mut offset = if segment == cursor.0 {
                cursor.1 as usize
            } else {
                0
            };
            let mut kept = 0;
            while offset < bytes.len() {
                match split_record(&bytes[offset..]) {
                    Ok((_, _, _, consumed)) => {
                        pending.push_back(Pending {
                            entry: Entry {
                                segment,
                                offset: offset as u64,
                                len: consumed as u64,
                            },
                            cached: None,
                        });
                        offset += consumed;
                        kept += 1;
                    }
                    Err(error) => {
                        // A torn tail: this record was never acknowledged upstream.
                        tracing::warn!(path = %path.display(), offset, %error, "dropping a torn record at the end of a spool segment");
                        break;
                    }
                }
            }
            if kept == 0 {
                std::fs::remove_file(&path).map_err(io)?;
            } else {
                files.insert(segment, Arc::new(File::open(&path).map_err(io)?));
            }
        }
        let bytes: u64 = pending.iter().map(|pending| pending.entry.len).sum();
        quota.used.fetch_add(bytes, Ordering::AcqRel);
        let next_segment = segments.last().map_or(1, |last| last + 1);
        Ok(Arc::new(Spool {
            dir: dir.to_path_buf(),
            quota,
            inner: Mutex::new(Inner {
                pending,
                writer: None,
                next_segment,
                files,
                synced: (0, 0),
                cursor: None,
            }),
            syncing: tokio::sync::Mutex::new(()),
            appended: Notify::new(),
        }))
    }

    fn io(&self, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            dir: self.dir.display().to_string(),
            source,
        }
    }

    /// Records pending, and their bytes.
    pub fn depth(&self) -> (usize, u64) {
        let inner = self.inner.lock();
        (
            inner.pending.len(),
            inner.pending.iter().map(|pending| pending.entry.len).sum(),
        )
    }

    /// Appends one whole record whose bytes the caller has already reserved from the quota;
    /// with `durable`, returns once it is fsynced. On an error the reservation is given back.
    pub async fn append(&self, record: Bytes, durable: bool) -> Result<(), SpoolError> {
        let len = record.len() as u64;
        let written = self.write(record);
        let end = match written {
            Ok(end) => end,
            Err(error) => {
                self.quota.release(len);
                return Err(error);
            }
        };
        if durable {
            self.sync_to(end).await?;
        }
        self.appended.notify_one();
        Ok(())
    }

    fn write(&self, record: Bytes) -> Result<(u64, u64), SpoolError> {
        let mut inner = self.inner.lock();
        let full = inner
            .writer
            .as_ref()
            .is_none_or(|writer| writer.offset >= SEGMENT_BYTES);
        if full {
            if let Some(old) = inner.writer.take() {
                // What is in a segment that is left behind is made durable now, so a later
                // fsync of the new segment covers every earlier append.
                old.file.sync_data().map_err(|error| self.io(error))?;
            }
            let segment = inner.next_segment;
            inner.next_segment += 1;
            let path = segment_path(&self.dir, segment);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .read(true)
                .open(&path)
                .map_err(|error| self.io(error))?;
            // The new name must survive a crash too.
            File::open(&self.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| self.io(error))?;
            let file = Arc::new(file);
            inner.files.insert(segment, file.clone());
            inner.writer = Some(Writer {
                segment,
                file,
                offset: 0,
            });
        }
        let writer = inner.writer.as_mut().expect("a writer was just made");
        let mut file = &*writer.file;
        if let Err(error) = file.write_all(&record) {
            // A partial append would leave a torn record in the middle of the segment: start
            // the next record in a new one. Replay drops the torn tail.
            inner.writer = None;
            return Err(self.io(error));
        }
        let entry = Entry {
            segment: writer.segment,
            offset: writer.offset,
            len: record.len() as u64,
        };
        writer.offset += entry.len;
        let cached = self.quota.try_cache(entry.len).then_some(record);
        inner.pending.push_back(Pending { entry, cached });
        Ok(entry.end())
    }

    /// fsyncs the writer's segment unless `end` is already on disk; concurrent callers share
    /// one fsync.
    async fn sync_to(&self, end: (u64, u64)) -> Result<(), SpoolError> {
        let _turn = self.syncing.lock().await;
        let (file, upto) = {
            let inner = self.inner.lock();
            if inner.synced >= end {
                return Ok(());
            }
            match &inner.writer {
                Some(writer) => (writer.file.clone(), (writer.segment, writer.offset)),
                // The segment was closed (and fsynced) when the writer moved on.
                None => return Ok(()),
            }
        };
        if upto.0 > end.0 {
            // A newer segment exists: the old one was fsynced when it was left.
            return Ok(());
        }
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|error| self.io(std::io::Error::other(error)))?
            .map_err(|error| self.io(error))?;
        let mut inner = self.inner.lock();
        inner.synced = inner.synced.max(upto);
        Ok(())
    }

    /// Waits until a record is pending.
    pub async fn wait_pending(&self) {
        loop {
            let appended = self.appended.notified();
            if !self.inner.lock().pending.is_empty() {
                return;
            }
            appended.await;
        }
    }

    /// Up to `max` of the oldest pending records, with their bytes.
    pub fn peek(&self, max: usize) -> Result<Vec<(Entry, Bytes)>, SpoolError> {
        self.peek_after(None, max)
    }

    /// Up to `max` of the oldest pending records that come after `after` (all of them with
    /// `None`), with their bytes: what a sender with records in flight sends next.
    pub fn peek_after(
        &self,
        after: Option<Entry>,
        max: usize,
    ) -> Result<Vec<(Entry, Bytes)>, SpoolError> {
        let after = after.map(|entry| (entry.segment, entry.offset));
        let entries: Vec<(Entry, Result<Bytes, Arc<File>>)> = {
            let inner = self.inner.lock();
            inner
                .pending
                .iter()
                .skip_while(|pending| {
                    after
                        .is_some_and(|after| (pending.entry.segment, pending.entry.offset) <= after)
                })
                .take(max)
                .filter_map(|pending| {
                    let bytes = match &pending.cached {
                        Some(bytes) => Ok(bytes.clone()),
                        None => Err(inner.files.get(&pending.entry.segment)?.clone()),
                    };
                    Some((pending.entry, bytes))
                })
                .collect()
        };
        entries
            .into_iter()
            .map(|(entry, bytes)| match bytes {
                Ok(bytes) => Ok((entry, bytes)),
                Err(file) => {
                    let mut bytes = vec![0; entry.len as usize];
                    file.read_exact_at(&mut bytes, entry.offset)
                        .map_err(|error| self.io(error))?;
                    debug_assert!(bytes.len() >= HEADER_LEN);
                    Ok((entry, Bytes::from(bytes)))
                }
            })
            .collect()
    }

    /// The oldest pending record was acknowledged downstream (or set aside): it leaves the
    /// spool, the cursor moves past it, and segments left with nothing pending are deleted.
    pub fn acknowledged(&self, entry: Entry) -> Result<(), SpoolError> {
        let (saved, unused) = {
            let mut inner = self.inner.lock();
            if inner.pending.front().map(|pending| pending.entry) != Some(entry) {
                return Ok(());
            }
            if let Some(Pending {
                cached: Some(bytes),
                ..
            }) = inner.pending.pop_front()
            {
                self.quota.uncache(bytes.len() as u64);
            }
            let cursor = match inner.pending.front() {
                Some(next) => (next.entry.segment, next.entry.offset),
                None => inner
                    .writer
                    .as_ref()
                    .map_or((inner.next_segment, 0), |writer| {
                        (writer.segment, writer.offset)
                    }),
            };
            let writing = inner.writer.as_ref().map(|writer| writer.segment);
            let unused: Vec<u64> = inner
                .files
                .keys()
                .copied()
                .filter(|&segment| segment < cursor.0 && Some(segment) != writing)
                .collect();
            for segment in &unused {
                inner.files.remove(segment);
            }
            (self.save_cursor(&mut inner, cursor), unused)
        };
        // The record has left the spool, whether or not the cursor could be written.
        self.quota.release(entry.len);
        saved?;
        for segment in unused {
            let _ = std::fs::remove_file(segment_path(&self.dir, segment));
        }
        Ok(())
    }

    /// Writes the cursor over the old one, in place, at a fixed width so nothing of a longer
    /// old value is left behind. Not fsynced, and not written to a temporary file renamed
    /// over it: on ext4 such a rename forces the new file's data out, and that per
    /// acknowledgement was a twentieth of a correlator's CPU. A cursor lost or torn in a
    /// crash sends records again, which storage dedupes (an unreadable one, the whole spool);
    /// a cursor past an unacknowledged record cannot happen: the line is one write within
    /// the file's first sector, which neither a killed process nor a power cut splits.
    fn save_cursor(&self, inner: &mut Inner, cursor: (u64, u64)) -> Result<(), SpoolError> {
        if inner.cursor.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.dir.join("cursor"))
                .map_err(|error| self.io(error))?;
            inner.cursor = Some(file);
        }
        let line = format!("{:020} {:020}\n", cursor.0, cursor.1);
        let file = inner.cursor.as_ref().expect("opened above");
        file.write_all_at(line.as_bytes(), 0)
            .map_err(|error| self.io(error))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let cached: u64 = self
            .inner
            .get_mut()
            .pending
            .iter()
            .filter_map(|pending| pending.cached.as_ref())
            .map(|bytes| bytes.len() as u64)
            .sum();
        self.quota.uncache(cached);
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016}.spool"))
}

/// The saved cursor: (segment, offset) of the first record not acknowledged.
fn read_cursor(dir: &Path) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(dir.join("cursor")) else {
        return (0, 0);
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => (segment, offset),
        _ => {
            tracing::warn!(dir = %dir.display(), "unreadable spool cursor: sending the whole spool again (storage dedupes)");
            (0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meniscus_record::frame::{PayloadFormat, RecordCodec};

    fn record(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        RecordCodec::plain()
            .seal_into(PayloadFormat::JsonLines, text.as_bytes().to_vec(), &mut out)
            .unwrap();
        out
    }

    async fn append(spool: &Spool, quota: &Quota, text: &str) {
        let record = record(text);
        assert!(quota.try_reserve(record.len() as u64));
        spool.append(record.into(), true).await.unwrap();
    }

    fn payloads(spool: &Spool) -> Vec<String> {
        spool
            .peek(100)
            .unwrap()
            .into_iter()
            .map(|(_, bytes)| {
                let (_, payload, _) = RecordCodec::plain().open(&bytes).unwrap();
                String::from_utf8(payload).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn pending_records_survive_a_reopen_and_acknowledged_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let quota = Quota::new(1 << 20);
        let spool = Spool::open(dir.path(), quota.clone()).unwrap();
        for text in ["one", "two", "three"] {
            append(&spool, &quota, text).await;
        }
        let first = spool.peek(1).unwrap()[0].0;
        spool.acknowledged(first).unwrap();
        assert_eq!(payloads(&spool), ["two", "three"]);
        drop(spool);

        let quota = Quota::new(1 << 20);
        let spool = Spool::open(dir.path(), quota.clone()).unwrap();
        assert_eq!(payloads(&spool), ["two", "three"]);
        assert_eq!(quota.used(), spool.depth().1);
        append(&spool, &quota, "four").await;
        assert_eq!(payloads(&spool), ["two", "three", "four"]);
        for (entry, _) in spool.peek(10).unwrap() {
            spool.acknowledged(entry).unwrap();
        }
        assert_eq!(quota.used(), 0);
        drop(spool);
        let spool = Spool::open(dir.path(), Quota::new(1 << 20)).unwrap();
        assert!(payloads(&spool).is_empty());
    }

    /// Overwrites every segment of the spool in `dir` with zeros: what is read back from
    /// disk no longer opens.
    fn blank_segments(dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "spool") {
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                std::fs::write(&path, vec![0u8; len]).unwrap();
            }
        }
    }

    #[tokio::test]
    async fn the_newest_records_are_sent_from_memory_within_the_shared_budget() {
        // A 1 MiB quota keeps at most 256 KiB in memory, across both spools.
        let dir = tempfile::tempdir().unwrap();
        let quota = Quota::new(1 << 20);
        let spool = Spool::open(&dir.path().join("a"), quota.clone()).unwrap();
        let other = Spool::open(&dir.path().join("b"), quota.clone()).unwrap();
        append(&spool, &quota, "kept in memory").await;
        // Takes nearly all of the budget, in the other spool.
        append(&other, &quota, &"x".repeat(250 << 10)).await;
        append(&spool, &quota, &"past the budget ".repeat(1000)).await;
        blank_segments(&dir.path().join("a"));
        let records = spool.peek(10).unwrap();
        let (_, payload, _) = RecordCodec::plain().open(&records[0].1).unwrap();
        assert_eq!(payload, b"kept in memory", "sent without reading the disk");
        assert!(
            RecordCodec::plain().open(&records[1].1).is_err(),
            "past the budget: read back from the (blanked) segment"
        );
        // Acknowledged records give their memory back; a dropped spool too.
        let cached_before = quota.cached.load(Ordering::Relaxed);
        assert!(cached_before > 0);
        spool.acknowledged(records[0].0).unwrap();
        assert!(quota.cached.load(Ordering::Relaxed) < cached_before);
        drop((spool, other));
        assert_eq!(quota.cached.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_torn_tail_is_dropped_and_the_records_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let quota = Quota::new(1 << 20);
        let spool = Spool::open(dir.path(), quota.clone()).unwrap();
        append(&spool, &quota, "whole").await;
        drop(spool);
        let segment = segment_path(dir.path(), 1);
        let torn = record("torn");
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&torn[..torn.len() - 2]).unwrap();
        drop(file);
        let spool = Spool::open(dir.path(), Quota::new(1 << 20)).unwrap();
        assert_eq!(payloads(&spool), ["whole"]);
    }

    #[test]
    fn the_quota_refuses_past_its_limit_but_never_an_empty_spool_set() {
        let quota = Quota::new(100);
        assert!(quota.try_reserve(60));
        assert!(!quota.try_reserve(60));
        quota.release(60);
        assert!(quota.try_reserve(500), "one record larger than the quota");
        assert!(!quota.try_reserve(1));
    }
}
