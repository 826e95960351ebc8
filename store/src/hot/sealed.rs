//! Hot-store files sealed at rest: every file a flush or a compaction writes with a row of a
//! producer marked `encrypted` is sealed whole, as it is written.
//!
//! The layout is the archive's (see `archive::crypto`): AES-256-GCM over chunks of
//! [`CHUNK_BYTES`], each opened on its own, so Parquet readers still read only the ranges
//! they ask for (a count decrypts its two columns, not the file). Each file has a random data
//! key, wrapped by the tenant's key and kept in the file's fixed-size header with the tenant
//! key's id: a key rotation re-wraps the header in place, and a purge, which deletes the
//! tenant's key, leaves nothing that opens. Chunks and the wrapped key are bound to the
//! tenant and the file's name, so a file moved into another tenant's directory, or put in
//! place of another file, does not open.
//!
//! ```text
//! "MNSHOT1\n" | chunk size (u32 LE) | key id (u8 length, 63 bytes) | wrapped data key (60)
//! | chunk 0 ‖ tag | chunk 1 ‖ tag | … | last chunk ‖ tag
//! ```
//!
//! Why the whole file and not only the rows of `encrypted` producers: a file is one tenant's
//! window, and sealing it whole keeps every reader a reader of one file. Files of tenants
//! without such rows stay plain Parquet (no cost to them).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::reader::{ChunkReader, Length};

use crate::archive::crypto::{
    ChunkLayout, CryptoError, DataKey, Keyring, TenantKey, CHUNKED_HEADER_BYTES, CHUNK_BYTES,
    WRAPPED_KEY_BYTES,
};

/// The first bytes of a sealed hot-store file (a plain one starts with Parquet's `PAR1`).
pub const SEALED_MAGIC: &[u8; 8] = b"MNSHOT1\n";
/// The key id field: its length, then the id, zero-padded.
const KEY_ID_FIELD: usize = 64;
const KEY_ID_AT: usize = SEALED_MAGIC.len() + 4;
const WRAPPED_AT: usize = KEY_ID_AT + KEY_ID_FIELD;
/// Bytes before the first chunk.
pub const HEADER_BYTES: usize = WRAPPED_AT + WRAPPED_KEY_BYTES;
/// Where a chunk lies in a sealed file relative to where [`ChunkLayout`] (made for archived
/// objects, whose header is shorter) puts it.
const SHIFT: u64 = HEADER_BYTES as u64 - CHUNKED_HEADER_BYTES;

/// What a file's chunks are bound to: its tenant and its name in the hot store, so it opens
/// neither for another tenant nor in place of another file (another hour, say).
fn chunk_aad(tenant: &str, name: &str) -> String {
    format!("meniscus-hot-file:{tenant}/{name}")
}

/// What a file's wrapped data key is bound to (as its chunks are).
fn wrap_aad(tenant: &str, name: &str) -> Vec<u8> {
    format!("meniscus-hot-data-key:{tenant}/{name}").into_bytes()
}

/// A hot-store file's name under its tenant's directory: `WINDOW/FILE`, the last two parts
/// of its path (written under a temporary name, a file is bound to the one it is renamed to).
pub fn name_of(path: &Path) -> io::Result<String> {
    let file = path.file_name().and_then(|name| name.to_str());
    let window = path
        .parent()
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str());
    match (window, file) {
        (Some(window), Some(file)) => Ok(format!("{window}/{file}")),
        _ => Err(invalid(format!(
            "{} is not a hot-store file path",
            path.display()
        ))),
    }
}

fn invalid(path_or_reason: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, path_or_reason.to_string())
}

fn crypto_error(error: CryptoError) -> io::Error {
    match error {
        CryptoError::Io(error) => error,
        other => invalid(format!("sealed hot-store file: {other}")),
    }
}

fn header(key: &TenantKey, wrapped: &[u8]) -> io::Result<[u8; HEADER_BYTES]> {
    let id = key.id.as_bytes();
    if id.len() >= KEY_ID_FIELD {
        return Err(invalid(format!(
            "tenant key id {:?} is longer than {} bytes",
            key.id,
            KEY_ID_FIELD - 1
        )));
    }
    let mut header = [0u8; HEADER_BYTES];
    header[..SEALED_MAGIC.len()].copy_from_slice(SEALED_MAGIC);
    header[SEALED_MAGIC.len()..KEY_ID_AT].copy_from_slice(&CHUNK_BYTES.to_le_bytes());
    header[KEY_ID_AT] = id.len() as u8;
    header[KEY_ID_AT + 1..KEY_ID_AT + 1 + id.len()].copy_from_slice(id);
    header[WRAPPED_AT..].copy_from_slice(wrapped);
    Ok(header)
}

/// A parsed header: chunk size, key id, wrapped data key.
struct Header {
    chunk_bytes: u32,
    key_id: String,
    wrapped: [u8; WRAPPED_KEY_BYTES],
}

fn parse_header(bytes: &[u8; HEADER_BYTES]) -> io::Result<Header> {
    if &bytes[..SEALED_MAGIC.len()] != SEALED_MAGIC {
        return Err(invalid("not a sealed hot-store file"));
    }
    let chunk_bytes = u32::from_le_bytes(bytes[SEALED_MAGIC.len()..KEY_ID_AT].try_into().unwrap());
    let id_len = usize::from(bytes[KEY_ID_AT]);
    if chunk_bytes == 0 || id_len >= KEY_ID_FIELD {
        return Err(invalid("sealed hot-store file: a damaged header"));
    }
    let key_id = std::str::from_utf8(&bytes[KEY_ID_AT + 1..KEY_ID_AT + 1 + id_len])
        .map_err(|_| invalid("sealed hot-store file: a damaged header"))?
        .to_string();
    Ok(Header {
        chunk_bytes,
        key_id,
        wrapped: bytes[WRAPPED_AT..].try_into().unwrap(),
    })
}

fn read_header(file: &File) -> io::Result<Option<[u8; HEADER_BYTES]>> {
    let mut bytes = [0u8; HEADER_BYTES];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) if &bytes[..SEALED_MAGIC.len()] == SEALED_MAGIC => Ok(Some(bytes)),
        Ok(()) => Ok(None),
        // Shorter than a header: not a sealed file (an empty or a tiny plain one).
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(error) => Err(error),
    }
}

/// Writes a sealed file through `inner`: the header first, then each chunk as soon as the
/// next byte shows it is not the last. [`SealingWriter::finish`] seals the last one.
pub struct SealingWriter<W: Write> {
    inner: W,
    data_key: DataKey,
    aad: String,
    index: u64,
    /// Plain bytes of the chunk being filled (at most [`CHUNK_BYTES`]).
    pending: Vec<u8>,
}

impl<W: Write> SealingWriter<W> {
    /// Starts the file `name` (see [`name_of`]) of `tenant`, sealed under a new data key
    /// wrapped by `key`.
    pub fn new(
        mut inner: W,
        tenant: &str,
        name: &str,
        key: &TenantKey,
    ) -> io::Result<SealingWriter<W>> {
        let data_key = DataKey::random();
        inner.write_all(&header(
            key,
            &data_key.wrap_with(key, &wrap_aad(tenant, name)),
        )?)?;
        Ok(SealingWriter {
            inner,
            data_key,
            aad: chunk_aad(tenant, name),
            index: 0,
            pending: Vec::with_capacity(CHUNK_BYTES as usize),
        })
    }

    fn seal_pending(&mut self, last: bool) -> io::Result<()> {
        let tag =
            self.data_key
                .seal_chunk(self.aad.as_bytes(), self.index, last, &mut self.pending);
        self.inner.write_all(&self.pending)?;
        self.inner.write_all(&tag)?;
        self.pending.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer (not yet synced).
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_pending(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let written = buf.len();
        let chunk = CHUNK_BYTES as usize;
        // A full chunk is sealed only once a byte after it arrives: until then it may be the
        // last, whose nonce says so.
        while self.pending.len() + buf.len() > chunk {
            let room = chunk - self.pending.len();
            self.pending.extend_from_slice(&buf[..room]);
            buf = &buf[room..];
            self.seal_pending(false)?;
        }
        self.pending.extend_from_slice(buf);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file sealed in chunks opened for reading: any plain byte range, decrypting only its
/// chunks. A sealed hot-store file, or the archive's local copy of an object (which keeps the
/// object's sealed bytes at their own offsets, so nothing decrypted rests in its cache).
pub struct SealedFile {
    file: File,
    layout: ChunkLayout,
    data_key: DataKey,
    aad: String,
    /// Where chunks lie in the file beyond where [`ChunkLayout`] puts them in an object.
    shift: u64,
    /// The last chunk opened, by index: Parquet reads a page's header and then its data, and
    /// the next page's header, from one chunk (a file of small pages opened every chunk a few
    /// times over without this: compaction of sealed files took 3x the plain time).
    last: parking_lot::Mutex<Option<(u64, Bytes)>>,
}

impl SealedFile {
    /// Opens `file`, whose header (already read) is `first`, as the file `name` of `tenant`.
    fn open(
        file: File,
        first: &[u8; HEADER_BYTES],
        tenant: &str,
        name: &str,
        keyring: &Keyring,
    ) -> io::Result<SealedFile> {
        let stored = file.metadata()?.len();
        let aad = wrap_aad(tenant, name);
        let open_header = |bytes: &[u8; HEADER_BYTES]| -> io::Result<(Header, DataKey)> {
            let header = parse_header(bytes)?;
            let data_key = keyring
                .key(tenant, &header.key_id)
                .and_then(|key| DataKey::unwrap_with(&header.wrapped, &key, &aad))
                .map_err(crypto_error)?;
            Ok((header, data_key))
        };
        // A rotation may be re-writing the header this very moment (in place, one write), or
        // have just dropped the key it named: read it again once before giving up.
        let (header, data_key) = match open_header(first) {
            Ok(opened) => opened,
            Err(_) => {
                let again = read_header(&file)?.ok_or_else(|| invalid("not a sealed file"))?;
                open_header(&again)?
            }
        };
        if header.chunk_bytes != CHUNK_BYTES {
            return Err(invalid(format!(
                "sealed hot-store file: chunks of {} bytes (this version writes {CHUNK_BYTES})",
                header.chunk_bytes
            )));
        }
        let layout = ChunkLayout::of_stored(
            stored
                .checked_sub(SHIFT)
                .ok_or_else(|| invalid("sealed file cut short"))?,
            header.chunk_bytes,
        )
        .map_err(crypto_error)?;
        Ok(SealedFile {
            file,
            layout,
            data_key,
            aad: chunk_aad(tenant, name),
            shift: SHIFT,
            last: parking_lot::Mutex::new(None),
        })
    }

    /// A copy of the archived object `object_key` (its stored bytes at their offsets in the
    /// object) opened with the object's data key.
    pub fn over_object(
        file: File,
        layout: ChunkLayout,
        data_key: DataKey,
        object_key: &str,
    ) -> SealedFile {
        SealedFile {
            file,
            layout,
            data_key,
            aad: object_key.to_string(),
            shift: 0,
            last: parking_lot::Mutex::new(None),
        }
    }

    /// Plain bytes in the file.
    pub fn plain_len(&self) -> u64 {
        self.layout.plain_bytes
    }

    /// The plain bytes `range` (within [`SealedFile::plain_len`]).
    pub fn read(&self, range: Range<u64>) -> io::Result<Bytes> {
        if range.start > range.end || range.end > self.layout.plain_bytes {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "bytes {range:?} of a sealed file of {} bytes",
                    self.layout.plain_bytes
                ),
            ));
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let chunks = self.layout.chunks_of(&range);
        let chunk_bytes = self.layout.chunk_bytes;
        let start = (range.start - chunks.start * chunk_bytes) as usize;
        let length = (range.end - range.start) as usize;
        let cached = self.last.lock().clone();
        let mut first = chunks.start;
        let mut plain = Vec::new();
        if let Some((index, bytes)) = cached {
            if index == chunks.start {
                if chunks.end == index + 1 {
                    return Ok(bytes.slice(start..start + length));
                }
                plain.reserve(((chunks.end - chunks.start) * chunk_bytes) as usize);
                plain.extend_from_slice(&bytes);
                first += 1;
            }
        }
        let opened = self.open_chunks(first..chunks.end)?;
        let last_start = ((chunks.end - 1 - first) * chunk_bytes) as usize;
        let opened = Bytes::from(opened);
        // A copy, so the cache holds one chunk, not the whole run it came with.
        *self.last.lock() = Some((
            chunks.end - 1,
            Bytes::copy_from_slice(&opened[last_start..]),
        ));
        if plain.is_empty() {
            return Ok(opened.slice(start..start + length));
        }
        plain.extend_from_slice(&opened);
        Ok(Bytes::from(plain).slice(start..start + length))
    }

    /// The plain bytes of `chunks` (consecutive, at least one), read and opened.
    fn open_chunks(&self, chunks: Range<u64>) -> io::Result<Vec<u8>> {
        let sealed = self.layout.sealed_range(&chunks);
        let mut stored = vec![0u8; (sealed.end - sealed.start) as usize];
        self.file
            .read_exact_at(&mut stored, sealed.start + self.shift)?;
        crate::archive::crypto::open_chunks(
            &stored,
            chunks,
            &self.layout,
            &self.data_key,
            &self.aad,
        )
        .map_err(crypto_error)
    }
}

/// A hot-store file opened for reading, sealed or plain: what Parquet readers are given.
#[derive(Clone)]
pub enum HotFile {
    Plain(Arc<File>),
    Sealed(Arc<SealedFile>),
}

impl HotFile {
    /// Opens `path`, a file of `tenant`, unsealing it with the tenant's key when it is sealed.
    pub fn open(path: &Path, tenant: &str, keyring: &Keyring) -> io::Result<HotFile> {
        let file = File::open(path)?;
        Ok(match read_header(&file)? {
            Some(header) => HotFile::Sealed(Arc::new(
                SealedFile::open(file, &header, tenant, &name_of(path)?, keyring).map_err(
                    |error| io::Error::new(error.kind(), format!("{}: {error}", path.display())),
                )?,
            )),
            None => HotFile::Plain(Arc::new(file)),
        })
    }

    pub fn is_sealed(&self) -> bool {
        matches!(self, HotFile::Sealed(_))
    }

    /// The plain bytes `range`.
    pub fn read(&self, range: Range<u64>) -> io::Result<Bytes> {
        match self {
            HotFile::Plain(file) => {
                let mut bytes = vec![0u8; (range.end - range.start) as usize];
                file.read_exact_at(&mut bytes, range.start)?;
                Ok(Bytes::from(bytes))
            }
            HotFile::Sealed(file) => file.read(range),
        }
    }

    /// Every plain byte (the Parquet file as it would be unsealed).
    pub fn read_all(&self) -> io::Result<Bytes> {
        self.read(0..Length::len(self))
    }
}

impl Length for HotFile {
    fn len(&self) -> u64 {
        match self {
            HotFile::Plain(file) => file.metadata().map(|meta| meta.len()).unwrap_or(0),
            HotFile::Sealed(file) => file.plain_len(),
        }
    }
}

/// Reads a [`HotFile`] onwards from an offset, a chunk at a time (Parquet reads page headers
/// through this, a few bytes per call).
pub struct HotFileReader {
    file: HotFile,
    at: u64,
    buffer: Bytes,
}

impl Read for HotFileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buffer.is_empty() {
            let end = Length::len(&self.file);
            if self.at >= end {
                return Ok(0);
            }
            // To the end of the chunk holding `at` (sealed), or 64 KiB (plain).
            let step = u64::from(CHUNK_BYTES);
            let until = ((self.at / step + 1) * step).min(end);
            self.buffer = self.file.read(self.at..until)?;
            self.at = until;
        }
        let taken = out.len().min(self.buffer.len());
        out[..taken].copy_from_slice(&self.buffer[..taken]);
        self.buffer = self.buffer.slice(taken..);
        Ok(taken)
    }
}

impl ChunkReader for HotFile {
    type T = HotFileReader;

    fn get_read(&self, start: u64) -> Result<HotFileReader, ParquetError> {
        Ok(HotFileReader {
            file: self.clone(),
            at: start,
            buffer: Bytes::new(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        self.read(start..start + length as u64)
            .map_err(|error| ParquetError::External(Box::new(error)))
    }
}

/// Whether `batch` holds a row of a producer marked `encrypted`: a file with one is sealed.
pub fn holds_encrypted_rows(batch: &RecordBatch) -> bool {
    batch
        .column_by_name("encrypted")
        .and_then(|column| column.as_any().downcast_ref::<BooleanArray>())
        .is_some_and(|encrypted| encrypted.true_count() > 0)
}

/// The id of the tenant key a sealed file's data key is wrapped with; `None` for a plain file.
pub fn key_id_of(path: &Path) -> io::Result<Option<String>> {
    match read_header(&File::open(path)?)? {
        Some(bytes) => Ok(Some(parse_header(&bytes)?.key_id)),
        None => Ok(None),
    }
}

/// Re-wraps the data key of the sealed file `path` (of `tenant`) with `key`, in place (one
/// write of the header's key fields, then an fsync); the file's chunks are untouched. False
/// when the file is plain or already wrapped with `key`.
pub fn rewrap(path: &Path, tenant: &str, keyring: &Keyring, key: &TenantKey) -> io::Result<bool> {
    // Never created: a file compaction deleted meanwhile stays deleted.
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let Some(bytes) = read_header(&file)? else {
        return Ok(false);
    };
    let header = parse_header(&bytes)?;
    if header.key_id == key.id {
        return Ok(false);
    }
    let aad = wrap_aad(tenant, &name_of(path)?);
    let old = keyring.key(tenant, &header.key_id).map_err(crypto_error)?;
    let data_key = DataKey::unwrap_with(&header.wrapped, &old, &aad).map_err(crypto_error)?;
    let fresh = self::header(key, &data_key.wrap_with(key, &aad))?;
    file.write_all_at(&fresh[KEY_ID_AT..], KEY_ID_AT as u64)?;
    file.sync_data()?;
    Ok(true)
}

/// The files under `dir` that may be sealed: Parquet files and their skip indexes.
fn sealable_files(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    super::manifest::files_with_extensions(dir, &["parquet", "skip"])
}

/// Re-wraps every sealed file of `tenant` under the hot-store `root` (Parquet files and skip
/// indexes) with `key` (a key rotation); returns how many were re-wrapped. A file deleted
/// meanwhile (compaction, retention) is skipped.
pub fn rewrap_tenant(
    root: &Path,
    tenant: &str,
    keyring: &Keyring,
    key: &TenantKey,
) -> io::Result<usize> {
    let mut rewrapped = 0;
    for path in sealable_files(&root.join(tenant))? {
        match rewrap(&path, tenant, keyring, key) {
            Ok(true) => rewrapped += 1,
            Ok(false) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("{}: {error}", path.display()),
                ))
            }
        }
    }
    Ok(rewrapped)
}

/// Sealed files of `tenant` under the hot-store `root` whose data key is wrapped with a key
/// other than `key_id` (they would not open once older keys are dropped).
pub fn sealed_with_other_keys(
    root: &Path,
    tenant: &str,
    key_id: &str,
) -> io::Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    for path in sealable_files(&root.join(tenant))? {
        match key_id_of(&path) {
            Ok(Some(id)) if id != key_id => found.push(path),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(plain: &[u8], tenant: &str, keyring: &Keyring) -> Vec<u8> {
        let key = keyring.current(tenant).unwrap();
        let mut writer = SealingWriter::new(Vec::new(), tenant, "w1/f.parquet", &key).unwrap();
        // Odd write sizes, as Parquet's writer makes them.
        for piece in plain.chunks(7_001) {
            writer.write_all(piece).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn every_range_of_a_sealed_file_reads_back_and_nothing_of_it_is_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(&dir.path().join("keys")).unwrap();
        let chunk = CHUNK_BYTES as usize;
        for size in [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, 3 * chunk + 17] {
            let plain: Vec<u8> = (0..size).map(|at| b"secret line "[at % 12]).collect();
            let stored = sealed(&plain, "acme", &keyring);
            if size >= 12 {
                assert!(!stored.windows(12).any(|window| window == b"secret line "));
            }
            let path = dir.path().join("w1/f.parquet");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &stored).unwrap();
            let file = HotFile::open(&path, "acme", &keyring).unwrap();
            assert!(file.is_sealed());
            assert_eq!(Length::len(&file), size as u64, "size {size}");
            assert_eq!(file.read_all().unwrap().as_ref(), plain.as_slice());
            for range in [0..size.min(5), size / 2..size, size.saturating_sub(3)..size] {
                let range = range.start as u64..range.end as u64;
                let read = file.read(range.clone()).unwrap();
                assert_eq!(
                    read.as_ref(),
                    &plain[range.start as usize..range.end as usize]
                );
            }
            let mut streamed = Vec::new();
            file.get_read(0)
                .unwrap()
                .read_to_end(&mut streamed)
                .unwrap();
            assert_eq!(streamed, plain);
        }
    }

    #[test]
    fn a_sealed_file_does_not_open_for_another_tenant_cut_short_or_altered() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(&dir.path().join("keys")).unwrap();
        let plain = vec![7u8; 3 * CHUNK_BYTES as usize];
        let stored = sealed(&plain, "acme", &keyring);
        let path = dir.path().join("w1/f.parquet");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &stored).unwrap();
        // Another tenant has a key of its own, which does not open acme's data key.
        keyring.current("other").unwrap();
        assert!(HotFile::open(&path, "other", &keyring).is_err());
        // Nor does the file open under another name (in place of another hour's file).
        let elsewhere = dir.path().join("w2/f.parquet");
        std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
        std::fs::copy(&path, &elsewhere).unwrap();
        assert!(HotFile::open(&elsewhere, "acme", &keyring).is_err());
        // Cut after a whole chunk: the new last chunk's nonce does not say "last".
        let whole_chunk = HEADER_BYTES + CHUNK_BYTES as usize + 16;
        std::fs::write(&path, &stored[..whole_chunk]).unwrap();
        let cut = HotFile::open(&path, "acme", &keyring).unwrap();
        assert!(cut.read_all().is_err());
        // One flipped bit in a chunk fails that chunk, not its neighbours.
        let mut altered = stored.clone();
        altered[HEADER_BYTES + 10] ^= 1;
        std::fs::write(&path, &altered).unwrap();
        let file = HotFile::open(&path, "acme", &keyring).unwrap();
        assert!(file.read(0..10).is_err());
        let second = u64::from(CHUNK_BYTES);
        assert_eq!(file.read(second..second + 10).unwrap().as_ref(), &[7u8; 10]);
    }

    #[test]
    fn a_rewrapped_file_opens_with_the_new_key_alone() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(&dir.path().join("keys")).unwrap();
        let plain = b"a line of an encrypted producer".repeat(5_000);
        let path = dir.path().join("w1/f.parquet");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, sealed(&plain, "acme", &keyring)).unwrap();
        let old = keyring.current("acme").unwrap();
        assert_eq!(key_id_of(&path).unwrap(), Some(old.id.clone()));
        let new = keyring.rotate("acme").unwrap();
        assert!(rewrap(&path, "acme", &keyring, &new).unwrap());
        assert!(
            !rewrap(&path, "acme", &keyring, &new).unwrap(),
            "already re-wrapped"
        );
        assert_eq!(key_id_of(&path).unwrap(), Some(new.id.clone()));
        keyring.retire_old("acme").unwrap();
        let file = HotFile::open(&path, "acme", &keyring).unwrap();
        assert_eq!(file.read_all().unwrap().as_ref(), plain.as_slice());
        // A plain file is left alone.
        let plain_path = dir.path().join("w1/p.parquet");
        std::fs::write(&plain_path, b"PAR1 and more").unwrap();
        assert!(!rewrap(&plain_path, "acme", &keyring, &new).unwrap());
        assert!(!HotFile::open(&plain_path, "acme", &keyring)
            .unwrap()
            .is_sealed());
    }
}
