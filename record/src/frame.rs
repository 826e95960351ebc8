//! The one record format for the write-ahead log, the spool and the wire.
//!
//! A record is a batch of events, framed and checksummed, optionally compressed (zstd) and
//! encrypted (AES-256-GCM):
//!
//! ```text
//! magic "MNR2" | flags u8 | format u8 | 2 reserved bytes | payload length u32 LE | crc32c u32 LE | payload
//! ```
//!
//! The checksum covers the eight header bytes after the magic (flags, format, reserved,
//! length) and the payload as stored: a flipped flag or format bit is caught like a flipped
//! payload bit, before any decryption or decompression is attempted. Records of the first
//! version (magic `MNR1`) checksummed the payload only; they are still read.
//!
//! The payload is the events in one of two [`PayloadFormat`]s — JSON lines (readable, for
//! tools and small volumes) or Arrow IPC batches grouped by tenant (see [`crate::columnar`]:
//! the columnar form the hot store keeps, so nothing is re-encoded between WAL and store) —
//! then zstd when `FLAG_ZSTD`, then `nonce (12 bytes) || AES-256-GCM ciphertext` when
//! `FLAG_AES_GCM`.
//!
//! Writers and readers share one size limit, [`MAX_PAYLOAD_LEN`]: a writer refuses to seal a
//! larger payload (callers split their batch) instead of writing a record replay would reject.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::Aes256Gcm;

use meniscus_grid::Event;

/// The magic of records written now: the checksum covers header and payload.
pub const MAGIC: &[u8; 4] = b"MNR2";
/// The magic of first-version records: the checksum covers the payload only. Read, not written.
pub const MAGIC_V1: &[u8; 4] = b"MNR1";
pub const HEADER_LEN: usize = 16;
/// Where a record's flags byte ([`FLAG_ZSTD`], [`FLAG_AES_GCM`]) lies in its header.
pub const FLAGS_AT: usize = 4;
pub const FLAG_ZSTD: u8 = 0b01;
pub const FLAG_AES_GCM: u8 = 0b10;
/// The largest payload a record may hold, for writers and readers alike. A reader refuses a
/// larger declared length (a corrupt length must not make it allocate gigabytes); a writer
/// refuses to seal one, so nothing is acknowledged that replay would throw away.
pub const MAX_PAYLOAD_LEN: usize = 256 * 1024 * 1024;
const NONCE_LEN: usize = 12;

/// How the events inside a record's payload are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// One CEE event as JSON per line.
    JsonLines,
    /// Arrow IPC streams, one per tenant (see the worker's `columnar` module).
    ArrowIpc,
}

impl PayloadFormat {
    fn code(self) -> u8 {
        match self {
            PayloadFormat::JsonLines => 0,
            PayloadFormat::ArrowIpc => 1,
        }
    }

    /// The format a record header's format byte names.
    pub fn from_code(code: u8) -> Result<PayloadFormat, RecordError> {
        match code {
            0 => Ok(PayloadFormat::JsonLines),
            1 => Ok(PayloadFormat::ArrowIpc),
            other => Err(RecordError::UnknownFormat(other)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the header or the declared payload: a torn write at the tail.
    #[error("incomplete record: need {needed} bytes, have {available}")]
    Incomplete { needed: usize, available: usize },
    #[error("bad record magic {found:?}")]
    BadMagic { found: [u8; 4] },
    #[error("record payload format {0} is not known to this version")]
    UnknownFormat(u8),
    #[error("record holds {found:?}, expected {expected:?}")]
    WrongFormat {
        found: PayloadFormat,
        expected: PayloadFormat,
    },
    #[error("record payload of {0} bytes exceeds the limit of {MAX_PAYLOAD_LEN} bytes")]
    TooLarge(usize),
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("record is encrypted but no key was given")]
    KeyRequired,
    #[error("record could not be decrypted: wrong key or tampered data")]
    Decrypt,
    #[error("record could not be decompressed: {0}")]
    Decompress(std::io::Error),
    #[error("record holds an invalid event on line {line}: {source}")]
    Event {
        line: usize,
        source: serde_json::Error,
    },
}

/// How records are written: compression and, with a key, encryption.
#[derive(Clone)]
pub struct RecordCodec {
    zstd_level: Option<i32>,
    cipher: Option<Aes256Gcm>,
}

impl std::fmt::Debug for RecordCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCodec")
            .field("zstd_level", &self.zstd_level)
            .field("encrypted", &self.cipher.is_some())
            .finish()
    }
}

impl RecordCodec {
    /// True when records are sealed with neither compression nor encryption.
    pub fn is_plain(&self) -> bool {
        self.zstd_level.is_none() && self.cipher.is_none()
    }

    pub fn plain() -> Self {
        RecordCodec {
            zstd_level: None,
            cipher: None,
        }
    }

    pub fn with_zstd(mut self, level: i32) -> Self {
        self.zstd_level = Some(level);
        self
    }

    pub fn with_key(mut self, key: &[u8; 32]) -> Self {
        self.cipher = Some(Aes256Gcm::new(key.into()));
        self
    }

    /// Appends one record holding `events` as JSON lines to `out`.
    pub fn encode_into(&self, events: &[Event], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let mut payload = Vec::with_capacity(events.len() * 256);
        for event in events {
            // Events are plain data; serialisation into a Vec cannot fail.
            serde_json::to_writer(&mut payload, event).unwrap_or_default();
            payload.push(b'\n');
        }
        self.seal_into(PayloadFormat::JsonLines, payload, out)
    }

    /// Turns `buffer` — [`HEADER_LEN`] bytes of room followed by the payload — into a whole
    /// record. Without compression or encryption the payload is not copied: ingest builds its
    /// payload straight into the buffer that becomes the WAL record.
    pub fn seal_prefixed(
        &self,
        format: PayloadFormat,
        mut buffer: Vec<u8>,
    ) -> Result<Vec<u8>, RecordError> {
        if self.zstd_level.is_some() || self.cipher.is_some() || buffer.len() < HEADER_LEN {
            let payload = buffer.split_off(HEADER_LEN.min(buffer.len()));
            let mut out = Vec::new();
            self.seal_into(format, payload, &mut out)?;
            return Ok(out);
        }
        let (head, payload) = buffer.split_at_mut(HEADER_LEN);
        write_header(head, 0, format, payload)?;
        Ok(buffer)
    }

    /// Frames `payload` (compressing and encrypting it as configured) and appends the record
    /// to `out`. Refuses a payload over [`MAX_PAYLOAD_LEN`] (as stored) with nothing appended.
    pub fn seal_into(
        &self,
        format: PayloadFormat,
        mut payload: Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let mut flags = 0u8;
        if let Some(level) = self.zstd_level {
            // Compressing an in-memory buffer only fails on allocation failure.
            if let Ok(compressed) = zstd::bulk::compress(&payload, level) {
                payload = compressed;
                flags |= FLAG_ZSTD;
            }
        }
        if let Some(cipher) = &self.cipher {
            let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
            // Encryption of an in-memory buffer cannot fail for sizes below the GCM limit,
            // which is far above MAX_PAYLOAD_LEN.
            let ciphertext = cipher
                .encrypt(&nonce, payload.as_slice())
                .map_err(|_| RecordError::TooLarge(payload.len()))?;
            let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
            sealed.extend_from_slice(&nonce);
            sealed.extend_from_slice(&ciphertext);
            payload = sealed;
            flags |= FLAG_AES_GCM;
        }
        let mut header = [0u8; HEADER_LEN];
        write_header(&mut header, flags, format, &payload)?;
        out.reserve(HEADER_LEN + payload.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&payload);
        Ok(())
    }

    /// One record holding `events` as JSON lines.
    pub fn encode(&self, events: &[Event]) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::new();
        self.encode_into(events, &mut out)?;
        Ok(out)
    }

    /// Opens the record at the start of `buf`: its format, its payload (decrypted and
    /// decompressed) and the number of bytes consumed.
    pub fn open(&self, buf: &[u8]) -> Result<(PayloadFormat, Vec<u8>, usize), RecordError> {
        let (stored, flags, format, consumed) = split_record(buf)?;
        let format = PayloadFormat::from_code(format)?;
        let mut payload = stored.to_vec();
        if flags & FLAG_AES_GCM != 0 {
            let cipher = self.cipher.as_ref().ok_or(RecordError::KeyRequired)?;
            if payload.len() < NONCE_LEN {
                return Err(RecordError::Decrypt);
            }
            let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
            payload = cipher
                .decrypt(nonce.into(), ciphertext)
                .map_err(|_| RecordError::Decrypt)?;
        }
        if flags & FLAG_ZSTD != 0 {
            payload =
                zstd::stream::decode_all(payload.as_slice()).map_err(RecordError::Decompress)?;
        }
        Ok((format, payload, consumed))
    }

    /// Decodes a JSON-lines record at the start of `buf`: the events and the number of bytes
    /// consumed.
    pub fn decode(&self, buf: &[u8]) -> Result<(Vec<Event>, usize), RecordError> {
        let (format, payload, consumed) = self.open(buf)?;
        if format != PayloadFormat::JsonLines {
            return Err(RecordError::WrongFormat {
                found: format,
                expected: PayloadFormat::JsonLines,
            });
        }
        Ok((decode_json_lines(&payload)?, consumed))
    }
}

/// The events of a JSON-lines payload.
pub fn decode_json_lines(payload: &[u8]) -> Result<Vec<Event>, RecordError> {
    let mut events = Vec::new();
    for (index, line) in payload.split(|byte| *byte == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let event = serde_json::from_slice(line).map_err(|source| RecordError::Event {
            line: index + 1,
            source,
        })?;
        events.push(event);
    }
    Ok(events)
}

/// Fills a record header for `payload` (as stored): magic, flags, format, length and the
/// checksum over the header fields and the payload.
fn write_header(
    header: &mut [u8],
    flags: u8,
    format: PayloadFormat,
    payload: &[u8],
) -> Result<(), RecordError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(RecordError::TooLarge(payload.len()));
    }
    let length = u32::try_from(payload.len()).map_err(|_| RecordError::TooLarge(payload.len()))?;
    header[..4].copy_from_slice(MAGIC);
    header[FLAGS_AT] = flags;
    header[5] = format.code();
    header[6..8].copy_from_slice(&[0, 0]);
    header[8..12].copy_from_slice(&length.to_le_bytes());
    let checksum = crc32c::crc32c_append(crc32c::crc32c(&header[4..12]), payload);
    header[12..16].copy_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// Checks framing and checksum of the record at the start of `buf` without decoding it.
/// Returns the stored payload, the flags, the format code and the record's total length.
pub fn split_record(buf: &[u8]) -> Result<(&[u8], u8, u8, usize), RecordError> {
    if buf.len() < HEADER_LEN {
        return Err(RecordError::Incomplete {
            needed: HEADER_LEN,
            available: buf.len(),
        });
    }
    let magic: [u8; 4] = [buf[0], buf[1], buf[2], buf[3]];
    let header_checked = match &magic {
        MAGIC => true,
        MAGIC_V1 => false,
        _ => return Err(RecordError::BadMagic { found: magic }),
    };
    let flags = buf[FLAGS_AT];
    let format = buf[5];
    let payload_len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(RecordError::TooLarge(payload_len));
    }
    let stored = u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]);
    let total = HEADER_LEN + payload_len;
    if buf.len() < total {
        return Err(RecordError::Incomplete {
            needed: total,
            available: buf.len(),
        });
    }
    let payload = &buf[HEADER_LEN..total];
    let computed = if header_checked {
        crc32c::crc32c_append(crc32c::crc32c(&buf[4..12]), payload)
    } else {
        crc32c::crc32c(payload)
    };
    if computed != stored {
        return Err(RecordError::Checksum { stored, computed });
    }
    Ok((payload, flags, format, total))
}

/// The offset of the next whole, checksum-valid record in `buf` after its first byte, if any:
/// where reading can go on after a damaged record. `None` means nothing valid follows, so the
/// damage is a torn tail.
pub fn next_valid_record(buf: &[u8]) -> Option<usize> {
    let mut from = 1;
    while from < buf.len() {
        let rest = &buf[from..];
        let candidate = [
            memchr::memmem::find(rest, MAGIC),
            memchr::memmem::find(rest, MAGIC_V1),
        ]
        .into_iter()
        .flatten()
        .min()?;
        let offset = from + candidate;
        if split_record(&buf[offset..]).is_ok() {
            return Some(offset);
        }
        from = offset + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use meniscus_grid::{Correlation, Producer, Transport};
    use proptest::prelude::*;

    fn event(msg: &str) -> Event {
        let producer = Producer::plain("default");
        let mut event = Event::from_message(
            msg.into(),
            Correlation::new("t", &producer, Transport::Udp, Utc::now()),
        );
        event.host = Some("h".into());
        event.pri = Some(13);
        event
    }

    #[test]
    fn every_codec_round_trips() {
        let events = vec![event("one"), event("two\nlines"), event("")];
        let key = [7u8; 32];
        for codec in [
            RecordCodec::plain(),
            RecordCodec::plain().with_zstd(3),
            RecordCodec::plain().with_zstd(1).with_key(&key),
        ] {
            let bytes = codec.encode(&events).unwrap();
            let (back, consumed) = codec.decode(&bytes).unwrap();
            assert_eq!(back, events, "{codec:?}");
            assert_eq!(consumed, bytes.len());
        }
    }

    #[test]
    fn a_record_sealed_in_place_equals_one_sealed_by_copy() {
        let payload = b"columnar bytes".to_vec();
        for codec in [
            RecordCodec::plain(),
            RecordCodec::plain().with_zstd(3).with_key(&[9; 32]),
        ] {
            let mut prefixed = vec![0u8; HEADER_LEN];
            prefixed.extend_from_slice(&payload);
            let sealed = codec
                .seal_prefixed(PayloadFormat::ArrowIpc, prefixed)
                .unwrap();
            let (format, opened, consumed) = codec.open(&sealed).unwrap();
            assert_eq!(format, PayloadFormat::ArrowIpc);
            assert_eq!(opened, payload);
            assert_eq!(consumed, sealed.len());
        }
        let mut copied = Vec::new();
        RecordCodec::plain()
            .seal_into(PayloadFormat::ArrowIpc, payload.clone(), &mut copied)
            .unwrap();
        let mut prefixed = vec![0u8; HEADER_LEN];
        prefixed.extend_from_slice(&payload);
        assert_eq!(
            RecordCodec::plain()
                .seal_prefixed(PayloadFormat::ArrowIpc, prefixed)
                .unwrap(),
            copied
        );
    }

    #[test]
    fn a_torn_tail_is_incomplete_not_garbage() {
        let bytes = RecordCodec::plain().encode(&[event("x")]).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    RecordCodec::plain().decode(&bytes[..cut]),
                    Err(RecordError::Incomplete { .. })
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_checksum() {
        let mut bytes = RecordCodec::plain().encode(&[event("payload")]).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        assert!(matches!(
            RecordCodec::plain().decode(&bytes),
            Err(RecordError::Checksum { .. })
        ));
    }

    #[test]
    fn a_flipped_flag_format_or_length_bit_is_caught_too() {
        let bytes = RecordCodec::plain().encode(&[event("payload")]).unwrap();
        // Flags (a record claiming zstd it does not have), format, reserved and length bytes.
        for index in 4..12 {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x01;
            let outcome = RecordCodec::plain().decode(&damaged);
            assert!(
                matches!(
                    outcome,
                    Err(RecordError::Checksum { .. }) | Err(RecordError::Incomplete { .. })
                ),
                "byte {index}: {outcome:?}"
            );
        }
    }

    /// A first-version record, built as the old writer built it: checksum over the payload.
    fn v1_record(format: PayloadFormat, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC_V1);
        out.push(0);
        out.push(format.code());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn first_version_records_are_still_read() {
        let line = serde_json::to_vec(&event("old")).unwrap();
        let record = v1_record(PayloadFormat::JsonLines, &line);
        let (events, consumed) = RecordCodec::plain().decode(&record).unwrap();
        assert_eq!(events[0].msg, "old");
        assert_eq!(consumed, record.len());
    }

    #[test]
    fn a_payload_over_the_limit_is_refused_by_the_writer() {
        let mut out = Vec::new();
        let too_large = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert!(matches!(
            RecordCodec::plain().seal_into(PayloadFormat::ArrowIpc, too_large, &mut out),
            Err(RecordError::TooLarge(_))
        ));
        assert!(out.is_empty(), "nothing is appended for a refused record");
        let mut prefixed = vec![0u8; HEADER_LEN];
        prefixed.resize(HEADER_LEN + MAX_PAYLOAD_LEN + 1, 0);
        assert!(RecordCodec::plain()
            .seal_prefixed(PayloadFormat::ArrowIpc, prefixed)
            .is_err());
    }

    #[test]
    fn reading_resumes_at_the_next_valid_record() {
        let codec = RecordCodec::plain();
        let first = codec.encode(&[event("one")]).unwrap();
        let second = codec.encode(&[event("two")]).unwrap();
        let mut log = first.clone();
        // Damage inside the first record's payload.
        log[HEADER_LEN + 3] ^= 0xff;
        log.extend_from_slice(&second);
        assert!(codec.decode(&log).is_err());
        let resume = next_valid_record(&log).unwrap();
        assert_eq!(resume, first.len());
        assert_eq!(codec.decode(&log[resume..]).unwrap().0[0].msg, "two");
        // A torn tail has nothing valid after it.
        let torn = &second[..second.len() - 1];
        assert_eq!(next_valid_record(torn), None);
        let mut garbage_then_torn = vec![b'M'; 40];
        garbage_then_torn.extend_from_slice(torn);
        assert_eq!(next_valid_record(&garbage_then_torn), None);
    }

    #[test]
    fn encrypted_records_need_the_right_key() {
        let bytes = RecordCodec::plain()
            .with_key(&[1; 32])
            .encode(&[event("secret")])
            .unwrap();
        assert!(matches!(
            RecordCodec::plain().decode(&bytes),
            Err(RecordError::KeyRequired)
        ));
        assert!(matches!(
            RecordCodec::plain().with_key(&[2; 32]).decode(&bytes),
            Err(RecordError::Decrypt)
        ));
        assert!(!bytes.windows(6).any(|window| window == b"secret"));
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RecordCodec::plain().with_key(&[0; 32]).decode(&bytes);
            let _ = next_valid_record(&bytes);
        }

        #[test]
        fn messages_survive_any_text(msgs in proptest::collection::vec(".*", 0..8)) {
            let events: Vec<Event> = msgs.iter().map(|msg| event(msg)).collect();
            let codec = RecordCodec::plain().with_zstd(1);
            let (back, _) = codec.decode(&codec.encode(&events).unwrap()).unwrap();
            prop_assert_eq!(back, events);
        }
    }
}
