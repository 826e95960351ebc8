//! Reading the write-ahead log back after a start.
//!
//! Each segment newer than the last flush is read record by record:
//! - a whole, checksum-valid record whose events cannot be decoded (written by a newer
//!   version, say) is skipped, and the records after it still count;
//! - a record that fails its checksum or framing is damage. If a valid record follows it in
//!   the segment, the damage is in the middle (a bad sector, pages lost after a failed fsync):
//!   the damaged bytes are skipped, reading resumes at the next valid record, and a copy of the
//!   segment is kept in `wal/damaged/` for inspection (the original is deleted as usual once
//!   its events are in Parquet). Cutting there would throw away records that were
//!   acknowledged;
//! - if nothing valid follows, it is a torn tail (a crash mid-append): the segment is cut at
//!   the last whole record. Nothing after it was acknowledged, since records are fsynced in
//!   order.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use meniscus_record::columnar::{decode_payload, tenant_batches, TenantBatch};
use meniscus_record::frame::{decode_json_lines, next_valid_record, PayloadFormat, RecordError};
use meniscus_record::RecordCodec;

use super::{list_segments, DAMAGED_DIR};

/// What replay found.
#[derive(Debug, Default)]
pub struct Replay {
    pub batches: Vec<TenantBatch>,
    /// Highest segment number seen (`flushed_through` when there was none).
    pub last_seq: u64,
    /// Segments whose tail was cut, with the offset of the cut and why.
    pub repaired: Vec<(PathBuf, u64, String)>,
    /// Whole, checksummed records whose events could not be decoded: skipped so the records
    /// after them still count, with the offset and why.
    pub skipped: Vec<(PathBuf, u64, String)>,
    /// Damage in the middle of a segment: the segment, the offset and length of the bytes
    /// skipped, and why they could not be read.
    pub damaged: Vec<Damage>,
}

/// Unreadable bytes in the middle of a segment, skipped at replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: PathBuf,
    pub offset: u64,
    pub length: u64,
    pub reason: String,
    /// Where the copy kept for inspection is.
    pub kept_at: Option<PathBuf>,
}

/// The events of one opened record, whichever payload format it has.
fn decode_record(format: PayloadFormat, payload: &[u8]) -> Result<Vec<TenantBatch>, String> {
    match format {
        PayloadFormat::ArrowIpc => decode_payload(payload).map_err(|error| error.to_string()),
        PayloadFormat::JsonLines => {
            let events = decode_json_lines(payload).map_err(|error| error.to_string())?;
            tenant_batches(&events).map_err(|error| error.to_string())
        }
    }
}

fn describe(error: &RecordError) -> String {
    match error {
        RecordError::Incomplete { .. } => "torn write".to_string(),
        other => other.to_string(),
    }
}

/// Copies a damaged segment into `wal/damaged/` (once) and returns where.
fn keep_aside(dir: &Path, segment: &Path) -> io::Result<PathBuf> {
    let damaged = dir.join(DAMAGED_DIR);
    fs::create_dir_all(&damaged)?;
    let name = segment
        .file_name()
        .ok_or_else(|| io::Error::other("segment path has no file name"))?;
    let target = damaged.join(name);
    if !target.exists() {
        fs::copy(segment, &target)?;
        fs::File::open(&target)?.sync_all()?;
        fs::File::open(&damaged)?.sync_all()?;
    }
    Ok(target)
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
        let bytes = fs::read(&path)?;
        let mut offset = 0;
        let mut damaged_here = Vec::new();
        while offset < bytes.len() {
            match codec.open(&bytes[offset..]) {
                Ok((format, payload, consumed)) => {
                    match decode_record(format, &payload) {
                        Ok(batches) => replay.batches.extend(batches),
                        Err(reason) => replay.skipped.push((path.clone(), offset as u64, reason)),
                    }
                    offset += consumed;
                }
                // Whole and checksummed, but sealed with a key this store lacks: cutting or
                // skipping it would lose acknowledged events. Refuse, and say what to restore.
                Err(error @ (RecordError::KeyRequired | RecordError::Decrypt)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} holds a sealed record (events of an encrypted producer) at byte {offset} that does not open: {error}; restore the write-ahead log's key ({} in the key directory) and start again (nothing was cut)",
                            path.display(),
                            super::KEY_FILE
                        ),
                    ))
                }
                Err(error) => match next_valid_record(&bytes[offset..]) {
                    Some(resume) => {
                        damaged_here.push(Damage {
                            segment: path.clone(),
                            offset: offset as u64,
                            length: resume as u64,
                            reason: describe(&error),
                            kept_at: None,
                        });
                        offset += resume;
                    }
                    None => {
                        OpenOptions::new()
                            .write(true)
                            .open(&path)?
                            .set_len(offset as u64)?;
                        replay
                            .repaired
                            .push((path.clone(), offset as u64, describe(&error)));
                        break;
                    }
                },
            }
        }
        if !damaged_here.is_empty() {
            let kept_at = keep_aside(dir, &path)?;
            for mut damage in damaged_here {
                damage.kept_at = Some(kept_at.clone());
                replay.damaged.push(damage);
            }
        }
    }
    Ok(replay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::LocalDisk;
    use crate::wal::WalWriter;
    use meniscus_grid::{Correlation, Event, Producer, Transport};
    use meniscus_record::columnar::{batch_to_events, encode_payload};
    use std::sync::Arc;

    fn arrow_record(codec: &RecordCodec, events: &[Event]) -> Vec<u8> {
        let payload = encode_payload(&tenant_batches(events).unwrap()).unwrap();
        let mut record = Vec::new();
        codec
            .seal_into(PayloadFormat::ArrowIpc, payload, &mut record)
            .unwrap();
        record
    }

    fn writer(dir: &Path) -> WalWriter {
        WalWriter::new(Arc::new(LocalDisk), dir, 1)
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
        let mut writer = writer(dir.path());
        writer
            .append(&[arrow_record(&codec, &[event("a"), event("b")])])
            .unwrap();
        // Records written as JSON lines (older versions, tools) replay alike.
        writer
            .append(&[codec.encode(&[event("c")]).unwrap()])
            .unwrap();
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
        let mut writer = writer(dir.path());
        writer
            .append(&[arrow_record(&codec, &[event("a")])])
            .unwrap();
        let mut garbage = Vec::new();
        codec
            .seal_into(PayloadFormat::ArrowIpc, b"not arrow".to_vec(), &mut garbage)
            .unwrap();
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
        let mut writer = writer(dir.path());
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

    #[test]
    fn damage_in_the_middle_skips_only_the_damaged_record_and_keeps_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let codec = RecordCodec::plain();
        let first = arrow_record(&codec, &[event("a")]);
        let second = arrow_record(&codec, &[event("lost")]);
        let third = arrow_record(&codec, &[event("b")]);
        let mut writer = writer(dir.path());
        writer.append(&[&first, &second, &third]).unwrap();
        writer.sync().unwrap();
        let path = crate::wal::segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        // A bad sector in the middle record's payload.
        let middle = first.len() + meniscus_record::frame::HEADER_LEN + 10;
        bytes[middle..middle + 8].copy_from_slice(&[0; 8]);
        std::fs::write(&path, &bytes).unwrap();

        let replay = replay(dir.path(), &codec, 0).unwrap();
        assert_eq!(
            messages(&replay),
            ["a", "b"],
            "the record after the damage is kept"
        );
        assert!(
            replay.repaired.is_empty(),
            "damage in the middle is not a torn tail"
        );
        assert_eq!(replay.damaged.len(), 1);
        let damage = &replay.damaged[0];
        assert_eq!(damage.offset, first.len() as u64);
        assert_eq!(damage.length, second.len() as u64);
        let kept = damage.kept_at.clone().unwrap();
        assert_eq!(
            std::fs::read(&kept).unwrap(),
            bytes,
            "an exact copy is kept aside"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the segment itself is not cut"
        );
        // Deleting flushed segments leaves the copy alone.
        crate::wal::delete_through(dir.path(), 1).unwrap();
        assert!(kept.exists());
    }

    #[test]
    fn a_torn_tail_after_damage_is_still_cut() {
        let dir = tempfile::tempdir().unwrap();
        let codec = RecordCodec::plain();
        let first = arrow_record(&codec, &[event("a")]);
        let second = arrow_record(&codec, &[event("torn")]);
        let mut writer = writer(dir.path());
        writer
            .append(&[&first[..], &second[..second.len() - 5]])
            .unwrap();
        writer.sync().unwrap();
        let replay = replay(dir.path(), &codec, 0).unwrap();
        assert_eq!(messages(&replay), ["a"]);
        assert_eq!(replay.repaired.len(), 1);
        assert!(replay.damaged.is_empty());
    }
}
