//! The write-ahead log: numbered segment files of records (see `meniscus_grid::record`).
//!
//! A segment is never appended to after a restart: replay reads every segment newer than the
//! last flush, cuts a torn tail off at the last whole record, and writing continues in a new
//! segment. Segments whose events are all in Parquet are deleted by the flusher.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use meniscus_grid::record::{decode_json_lines, PayloadFormat, RecordCodec, RecordError};

use crate::columnar::{decode_payload, tenant_batches, ColumnarError, TenantBatch};

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

/// What replay found.
#[derive(Debug, Default)]
pub struct Replay {
    pub batches: Vec<TenantBatch>,
    /// Highest segment number seen (0 when there was none).
    pub last_seq: u64,
    /// Segments whose tail was cut, with the offset of the cut and why.
    pub repaired: Vec<(PathBuf, u64, String)>,
    /// Whole, checksummed records whose events could not be decoded (written by a newer
    /// version, say): skipped so the records after them still count, with the offset and why.
    pub skipped: Vec<(PathBuf, u64, String)>,
}

/// The events of one opened record, whichever payload format it has.
fn decode_record(format: PayloadFormat, payload: &[u8]) -> Result<Vec<TenantBatch>, String> {
    match format {
        PayloadFormat::ArrowIpc => decode_payload(payload).map_err(|error| error.to_string()),
        PayloadFormat::JsonLines => {
            let events = decode_json_lines(payload).map_err(|error| error.to_string())?;
            tenant_batches(&events).map_err(|error: ColumnarError| error.to_string())
        }
    }
}

/// Deletes segments up to `flushed_through` (already in Parquet) and reads the rest.
pub fn replay(dir: &Path, codec: &RecordCodec, flushed_through: u64) -> io::Result<Replay> {
    let mut replay = Replay {
        last_seq: flushed_through,
        ..Replay::default()
    };
    for (seq, path) in list_segments(dir)? {
        replay.last_seq = replay.last_seq.max(seq);
        if seq <= flushed_through {
            fs::remove_file(&path)?;
            continue;
        }
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        let mut offset = 0;
        while offset < bytes.len() {
            match codec.open(&bytes[offset..]) {
                Ok((format, payload, consumed)) => {
                    match decode_record(format, &payload) {
                        Ok(batches) => replay.batches.extend(batches),
                        Err(reason) => replay.skipped.push((path.clone(), offset as u64, reason)),
                    }
                    offset += consumed;
                }
                Err(error) => {
                    // A crash mid-append leaves a partial record; a checksum failure is a torn
                    // or corrupted tail. Everything before it was acknowledged and is kept;
                    // nothing after it was acknowledged (records are fsynced in order).
                    let reason = match &error {
                        RecordError::Incomplete { .. } => "torn write".to_string(),
                        other => other.to_string(),
                    };
                    OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(offset as u64)?;
                    replay.repaired.push((path.clone(), offset as u64, reason));
                    break;
                }
            }
        }
    }
    Ok(replay)
}

/// The open segment being appended to.
pub struct WalWriter {
    dir: PathBuf,
    file: File,
    seq: u64,
    /// Bytes of whole records in the file: where a failed append is cut back to.
    len: u64,
    unsynced_bytes: u64,
}

impl WalWriter {
    pub fn create(dir: &Path, seq: u64) -> io::Result<WalWriter> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(dir, seq))?;
        sync_dir(dir)?;
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            file,
            seq,
            len: 0,
            unsynced_bytes: 0,
        })
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Appends whole records. When a write fails (a full disk), everything this call wrote is
    /// cut off again, so later records are not hidden behind a partial one at replay.
    pub fn append<R: AsRef<[u8]>>(&mut self, records: &[R]) -> io::Result<()> {
        let mut written = 0u64;
        let mut result = Ok(());
        for record in records {
            let bytes = record.as_ref();
            if let Err(error) = self.file.write_all(bytes) {
                result = Err(error);
                break;
            }
            written += bytes.len() as u64;
        }
        if let Err(error) = result {
            if let Err(cut_error) = self.file.set_len(self.len) {
                // Cannot cut: continue in a fresh segment. Replay cuts this one at the partial
                // record, after which it holds nothing.
                tracing::error!(%cut_error, "cannot cut a failed write-ahead log append; rotating");
                *self = WalWriter::create(&self.dir, self.seq + 1)?;
            }
            return Err(error);
        }
        self.len += written;
        self.unsynced_bytes += written;
        Ok(())
    }

    /// Makes everything appended so far survive a crash of the process or the machine.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced_bytes > 0 {
            self.file.sync_data()?;
            self.unsynced_bytes = 0;
        }
        Ok(())
    }

    /// Syncs and closes this segment and starts the next; returns the closed segment's number.
    pub fn rotate(&mut self) -> io::Result<u64> {
        self.sync()?;
        let next = WalWriter::create(&self.dir, self.seq + 1)?;
        let closed = self.seq;
        *self = next;
        Ok(closed)
    }
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

/// Makes a file's creation, rename or removal in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::{batch_to_events, encode_payload};
    use meniscus_grid::{Correlation, Event, Producer, Transport};

    fn arrow_record(codec: &RecordCodec, events: &[Event]) -> Vec<u8> {
        let payload = encode_payload(&tenant_batches(events).unwrap()).unwrap();
        let mut record = Vec::new();
        codec.seal_into(PayloadFormat::ArrowIpc, payload, &mut record);
        record
    }

    fn messages(replay: &Replay) -> Vec<String> {
        replay
            .batches
            .iter()
            .flat_map(|group| batch_to_events(&group.batch, group.tenant.as_str()))
            .map(|event| event.msg)
            .collect()
    }

    fn event(msg: &str) -> Event {
        let mut producer = Producer::plain("default");
        producer.durable = true;
        let correlation = Correlation::new("t", &producer, Transport::Http, chrono::Utc::now());
        let mut event = Event::from_message(msg.into(), correlation);
        event.pri = Some(13);
        event
    }

    #[test]
    fn replay_keeps_whole_records_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let codec = RecordCodec::plain();
        let mut writer = WalWriter::create(dir.path(), 1).unwrap();
        writer
            .append(&[arrow_record(&codec, &[event("a"), event("b")])])
            .unwrap();
        // Records written as JSON lines (older versions, tools) replay alike.
        writer.append(&[codec.encode(&[event("c")])]).unwrap();
        let partial = arrow_record(&codec, &[event("lost")]);
        writer.append(&[&partial[..partial.len() / 2]]).unwrap();
        writer.sync().unwrap();

        let replay = replay(dir.path(), &codec, 0).unwrap();
        assert_eq!(messages(&replay), ["a", "b", "c"]);
        assert_eq!(replay.repaired.len(), 1);
        assert_eq!(replay.last_seq, 1);
        // The cut is permanent: a second replay finds a clean file.
        let again = super::replay(dir.path(), &codec, 0).unwrap();
        assert_eq!(messages(&again).len(), 3);
        assert!(again.repaired.is_empty());
    }

    #[test]
    fn an_undecodable_record_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let codec = RecordCodec::plain();
        let mut writer = WalWriter::create(dir.path(), 1).unwrap();
        writer
            .append(&[arrow_record(&codec, &[event("a")])])
            .unwrap();
        let mut garbage = Vec::new();
        codec.seal_into(PayloadFormat::ArrowIpc, b"not arrow".to_vec(), &mut garbage);
        writer.append(&[garbage]).unwrap();
        writer
            .append(&[arrow_record(&codec, &[event("b")])])
            .unwrap();
        writer.sync().unwrap();
        let replay = replay(dir.path(), &codec, 0).unwrap();
        assert_eq!(messages(&replay), ["a", "b"]);
        assert_eq!(replay.skipped.len(), 1);
        assert!(replay.repaired.is_empty());
    }

    #[test]
    fn flushed_segments_are_deleted_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let codec = RecordCodec::plain();
        let mut writer = WalWriter::create(dir.path(), 1).unwrap();
        writer
            .append(&[arrow_record(&codec, &[event("old")])])
            .unwrap();
        assert_eq!(writer.rotate().unwrap(), 1);
        writer
            .append(&[arrow_record(&codec, &[event("new")])])
            .unwrap();
        writer.sync().unwrap();
        let replay = replay(dir.path(), &codec, 1).unwrap();
        assert_eq!(messages(&replay), ["new"]);
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    }
}
