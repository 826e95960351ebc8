//! The token skip index of a compacted file: for every granule of [`GRANULE_ROWS`] rows (in
//! file order), a one-hash Bloom filter of the 4-byte sequences (4-grams) of its messages.
//! A substring search opens only the granules that hold every 4-gram of the searched text:
//! a granule that lacks one cannot hold the text. Searches, LogQL line filters and SQL
//! `LIKE '%…%'` on `msg` are substring matches, so n-grams (as ClickHouse's `ngrambf_v1` and
//! Loki's blooms use) rather than whole words: a token filter could not answer a search for
//! part of a word, which `grep -F` users expect to work.
//!
//! Why one hash, folded: each granule's filter starts at 2^20 bits and is folded in half
//! (OR of the halves, exact for a one-hash filter indexed by the low bits) while it stays at
//! most [`TARGET_FILL`] full, so its size follows what the granule holds. A missing 4-gram
//! then passes with probability ~[`TARGET_FILL`]; a rare token's text brings several missing
//! 4-grams, each one dividing the chance of reading a granule for nothing.
//!
//! Measured on bench/query's corpus: ~140,000 distinct 4-grams per 32 Ki rows, 64 KiB of
//! filter per granule, about 2 bytes per event (~1 % of the raw text).
//!
//! Stored as a sidecar next to the Parquet file (`NAME.skip`, see [`sidecar_path`]), written
//! durably before the manifest names the file; a file without one (flushed files, files of
//! older versions) is simply read in full. The format is versioned and checksummed: an index
//! that does not check out is ignored, never trusted. The sidecar of a sealed file is sealed
//! the same way ([`seal`]), and so are the archive's local copies of objects' indexes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::archive::crypto::{Keyring, TenantKey};
use crate::hot::sealed::{name_of, HotFile, SealingWriter};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;

/// Length of the indexed byte sequences. Searched text shorter than this cannot be looked up
/// and reads every granule.
pub const GRAM: usize = 4;
/// Rows per granule: a rare token's rows cost at most this many rows' worth of reading each.
/// Smaller granules prune finer but each holds nearly as many distinct 4-grams as a large one
/// (bench/query: ~96,000 per 8 Ki rows, ~160,000 per 64 Ki), so the index grows quickly.
pub const GRANULE_ROWS: usize = 32 * 1024;
/// Largest filter per granule, as a power of two of bits (128 KiB).
const MAX_BITS_LOG2: u8 = 20;
/// Smallest filter per granule (512 bytes): a granule of few distinct 4-grams keeps a
/// filter that is nearly empty, so a missing 4-gram rarely passes (at 128 bytes, one in
/// fourteen did for a 50-line granule).
const MIN_BITS_LOG2: u8 = 12;
/// Fraction of bits set at which folding stops: the chance that a 4-gram a granule lacks
/// still passes.
const TARGET_FILL: f64 = 0.25;

const MAGIC: &[u8; 8] = b"MNSKIP01";

/// The sidecar of a Parquet file: `…/NAME.parquet` -> `…/NAME.skip`.
pub fn sidecar_path(parquet: &Path) -> PathBuf {
    parquet.with_extension("skip")
}

/// One granule's filter.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Granule {
    rows: u32,
    bits_log2: u8,
    words: Vec<u64>,
}

impl Granule {
    fn may_contain(&self, gram: u32) -> bool {
        let bit = slot(gram) & ((1u32 << self.bits_log2) - 1);
        self.words[(bit / 64) as usize] & (1u64 << (bit % 64)) != 0
    }
}

/// The skip index of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkipIndex {
    granules: Vec<Granule>,
}

/// Where a 4-gram's bit is: murmur3's 32-bit finaliser, whose low bits depend on all input
/// bits (folding keeps only the low ones).
fn slot(gram: u32) -> u32 {
    let mut h = gram;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn gram_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The distinct 4-grams of `needle`; empty when it is shorter than [`GRAM`].
fn grams(needle: &[u8]) -> Vec<u32> {
    let mut grams: Vec<u32> = (0..needle.len().saturating_sub(GRAM - 1))
        .map(|at| gram_at(needle, at))
        .collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// Builds a file's index from its rows, in the order they are written.
pub struct Builder {
    granules: Vec<Granule>,
    bits: Vec<u64>,
    rows: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            granules: Vec::new(),
            bits: vec![0; (1usize << MAX_BITS_LOG2) / 64],
            rows: 0,
        }
    }
}

impl Builder {
    /// Adds a batch's `msg` column (every row counts, null or not, so granules line up with
    /// the file's rows).
    pub fn add(&mut self, batch: &RecordBatch) -> io::Result<()> {
        let column = batch
            .column_by_name("msg")
            .ok_or_else(|| io::Error::other("skip index: the batch has no msg column"))?;
        if column.data_type() != &DataType::Utf8 {
            return Err(io::Error::other("skip index: msg is not Utf8"));
        }
        let messages = column.as_string::<i32>();
        let mask = (1u32 << MAX_BITS_LOG2) - 1;
        for row in 0..messages.len() {
            if !messages.is_null(row) {
                let bytes = messages.value(row).as_bytes();
                if bytes.len() >= GRAM {
                    // The 4-gram ending at each byte, rolled in a byte at a time (little-endian,
                    // as `gram_at` reads it).
                    let mut gram = gram_at(bytes, 0);
                    self.set(slot(gram) & mask);
                    for &byte in &bytes[GRAM..] {
                        gram = (gram >> 8) | (u32::from(byte) << 24);
                        self.set(slot(gram) & mask);
                    }
                }
            }
            self.rows += 1;
            if self.rows == GRANULE_ROWS {
                self.seal();
            }
        }
        Ok(())
    }

    fn set(&mut self, bit: u32) {
        self.bits[(bit / 64) as usize] |= 1u64 << (bit % 64);
    }

    fn seal(&mut self) {
        let mut words = std::mem::replace(&mut self.bits, vec![0; (1usize << MAX_BITS_LOG2) / 64]);
        let mut bits_log2 = MAX_BITS_LOG2;
        while bits_log2 > MIN_BITS_LOG2 {
            let half = words.len() / 2;
            let folded: Vec<u64> = (0..half).map(|i| words[i] | words[i + half]).collect();
            let set: u64 = folded.iter().map(|word| u64::from(word.count_ones())).sum();
            if set as f64 > TARGET_FILL * (half * 64) as f64 {
                break;
            }
            words = folded;
            bits_log2 -= 1;
        }
        self.granules.push(Granule {
            rows: self.rows as u32,
            bits_log2,
            words,
        });
        self.rows = 0;
    }

    pub fn finish(mut self) -> SkipIndex {
        if self.rows > 0 {
            self.seal();
        }
        SkipIndex {
            granules: self.granules,
        }
    }
}

impl SkipIndex {
    /// Rows the index covers.
    pub fn rows(&self) -> u64 {
        self.granules.iter().map(|g| u64::from(g.rows)).sum()
    }

    /// Per granule, in file order: its row count and whether it may hold every one of
    /// `needles` (byte strings a matching row contains). Needles shorter than [`GRAM`]
    /// constrain nothing.
    pub fn granules_to_read(&self, needles: &[Vec<u8>]) -> Vec<(usize, bool)> {
        let grams: Vec<u32> = needles.iter().flat_map(|needle| grams(needle)).collect();
        self.granules
            .iter()
            .map(|granule| {
                let read = grams.iter().all(|gram| granule.may_contain(*gram));
                (granule.rows as usize, read)
            })
            .collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            16 + self
                .granules
                .iter()
                .map(|g| 5 + g.words.len() * 8)
                .sum::<usize>(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.granules.len() as u32).to_le_bytes());
        for granule in &self.granules {
            out.extend_from_slice(&granule.rows.to_le_bytes());
            out.push(granule.bits_log2);
            for word in &granule.words {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> io::Result<SkipIndex> {
        let invalid =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("skip index: {what}"));
        if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(invalid("not a skip index of this version"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(invalid("checksum mismatch"));
        }
        let mut at = MAGIC.len();
        let mut take = |n: usize| -> io::Result<&[u8]> {
            let slice = body.get(at..at + n).ok_or_else(|| invalid("truncated"))?;
            at += n;
            Ok(slice)
        };
        let count = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default()) as usize;
        let mut granules = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let rows = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default());
            let bits_log2 = take(1)?[0];
            if !(MIN_BITS_LOG2..=MAX_BITS_LOG2).contains(&bits_log2) {
                return Err(invalid("filter size out of range"));
            }
            let words = take((1usize << bits_log2) / 8)?
                .chunks_exact(8)
                .map(|word| u64::from_le_bytes(word.try_into().unwrap_or_default()))
                .collect();
            granules.push(Granule {
                rows,
                bits_log2,
                words,
            });
        }
        if at != body.len() {
            return Err(invalid("trailing bytes"));
        }
        Ok(SkipIndex { granules })
    }

    /// Reads a file's sidecar: `None` when it has none or it does not check out (the file
    /// is then read in full).
    pub fn load(parquet: &Path) -> Option<SkipIndex> {
        let path = sidecar_path(parquet);
        Self::decode_read(&path, std::fs::read(&path))
    }

    /// Reads the sidecar of a file of `tenant`, sealed or plain (see [`seal`]), as
    /// [`SkipIndex::load`] does.
    pub fn load_of(parquet: &Path, tenant: &str, keyring: &Keyring) -> Option<SkipIndex> {
        Self::load_noting_sealed(parquet, tenant, keyring).map(|(index, _)| index)
    }

    /// [`SkipIndex::load_of`], and whether the sidecar was sealed.
    pub fn load_noting_sealed(
        parquet: &Path,
        tenant: &str,
        keyring: &Keyring,
    ) -> Option<(SkipIndex, bool)> {
        let path = sidecar_path(parquet);
        let (read, sealed) = match read_opened(&path, tenant, keyring) {
            Ok((bytes, sealed)) => (Ok(bytes), sealed),
            Err(error) => (Err(error), false),
        };
        Some((Self::decode_read(&path, read)?, sealed))
    }

    fn decode_read(path: &Path, read: io::Result<Vec<u8>>) -> Option<SkipIndex> {
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read a skip index; the file is read in full");
                return None;
            }
        };
        match SkipIndex::decode(&bytes) {
            Ok(index) => Some(index),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring a damaged skip index; the file is read in full");
                None
            }
        }
    }
}

/// The encoded index in the sidecar `path` of a file of `tenant`, unsealed if it is sealed.
pub fn read_plain(path: &Path, tenant: &str, keyring: &Keyring) -> io::Result<Vec<u8>> {
    read_opened(path, tenant, keyring).map(|(bytes, _)| bytes)
}

/// [`read_plain`], and whether the sidecar was sealed.
fn read_opened(path: &Path, tenant: &str, keyring: &Keyring) -> io::Result<(Vec<u8>, bool)> {
    let file = HotFile::open(path, tenant, keyring)?;
    Ok((file.read_all()?.into(), file.is_sealed()))
}

/// An encoded index sealed as a hot-store file is (see [`crate::hot::sealed`]), for the
/// sidecar `path` of a file of `tenant`: the index of a sealed file is sealed too. Its
/// 4-grams are hashed, but a guessed text could be tested against a Bloom filter in clear.
pub fn seal(encoded: &[u8], path: &Path, tenant: &str, key: &TenantKey) -> io::Result<Vec<u8>> {
    let mut writer = SealingWriter::new(Vec::new(), tenant, &name_of(path)?, key)?;
    writer.write_all(encoded)?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(messages: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("msg", DataType::Utf8, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(messages.to_vec()))]).unwrap()
    }

    fn needles(texts: &[&str]) -> Vec<Vec<u8>> {
        texts.iter().map(|text| text.as_bytes().to_vec()).collect()
    }

    /// Granules of many ordinary lines, one of which holds a rare token.
    fn index_with_token_in_granule(granules: usize, token_granule: usize) -> SkipIndex {
        let mut builder = Builder::default();
        for granule in 0..granules {
            let lines: Vec<String> = (0..GRANULE_ROWS)
                .map(|row| {
                    if granule == token_granule && row == 77 {
                        format!("request {row} carried qzx7RAREb4f1 in its header")
                    } else {
                        format!(
                            "GET /api/v1/items/{} 200 {}ms user=u{}",
                            row * 7919 % 100_003,
                            row % 997,
                            row % 50
                        )
                    }
                })
                .collect();
            let refs: Vec<Option<&str>> = lines.iter().map(|line| Some(line.as_str())).collect();
            builder.add(&batch(&refs)).unwrap();
        }
        builder.finish()
    }

    #[test]
    fn only_the_granule_holding_the_text_is_read() {
        let index = index_with_token_in_granule(4, 2);
        let plan = index.granules_to_read(&needles(&["qzx7RAREb4f1"]));
        assert_eq!(
            plan.iter().map(|(rows, _)| rows).sum::<usize>(),
            4 * GRANULE_ROWS
        );
        assert_eq!(
            plan.iter().map(|(_, read)| *read).collect::<Vec<_>>(),
            vec![false, false, true, false]
        );
        // Part of a word is found too: a substring search must not miss it.
        let plan = index.granules_to_read(&needles(&["7RAREb"]));
        assert!(plan[2].1);
        // Text every granule holds reads every granule; text shorter than a gram constrains nothing.
        assert!(index
            .granules_to_read(&needles(&["/api/v1/items"]))
            .iter()
            .all(|(_, read)| *read));
        assert!(index
            .granules_to_read(&needles(&["qzx"]))
            .iter()
            .all(|(_, read)| *read));
        assert!(index.granules_to_read(&[]).iter().all(|(_, read)| *read));
    }

    #[test]
    fn filters_shrink_to_what_a_granule_holds_and_round_trip() {
        let mut builder = Builder::default();
        builder
            .add(&batch(&[Some("tiny"), None, Some("another short line")]))
            .unwrap();
        let index = builder.finish();
        assert_eq!(index.rows(), 3);
        assert_eq!(index.granules[0].bits_log2, MIN_BITS_LOG2);
        let bytes = index.encode();
        assert!(bytes.len() <= 512 + 32, "{} bytes", bytes.len());
        assert_eq!(SkipIndex::decode(&bytes).unwrap(), index);
        assert!(index.granules_to_read(&needles(&["short"]))[0].1);
        assert!(!index.granules_to_read(&needles(&["absent words"]))[0].1);
    }

    #[test]
    fn a_damaged_index_is_refused() {
        let bytes = index_with_token_in_granule(1, 0).encode();
        let mut flipped = bytes.clone();
        flipped[100] ^= 1;
        assert!(SkipIndex::decode(&flipped).is_err());
        assert!(SkipIndex::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(SkipIndex::decode(b"MNSKIP99\0\0\0\0\0\0\0\0").is_err());
        assert!(SkipIndex::decode(&bytes).is_ok());
    }

    #[test]
    fn every_message_is_found_in_its_own_granule() {
        // No false negatives, whatever the text: every 4-gram of every row is in its granule.
        let mut builder = Builder::default();
        let lines: Vec<String> = (0..GRANULE_ROWS + 500)
            .map(|i| format!("évènement n°{i} ✓ {}", i * 31))
            .collect();
        let refs: Vec<Option<&str>> = lines.iter().map(|line| Some(line.as_str())).collect();
        builder.add(&batch(&refs)).unwrap();
        let index = builder.finish();
        assert_eq!(index.granules.len(), 2);
        for (i, line) in lines.iter().enumerate().step_by(997) {
            let plan = index.granules_to_read(&needles(&[line]));
            assert!(plan[i / GRANULE_ROWS].1, "row {i} not found");
        }
    }

    #[test]
    fn a_sealed_index_opens_for_its_tenant_only_and_holds_nothing_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(&dir.path().join("keys")).unwrap();
        let mut builder = Builder::default();
        builder
            .add(&batch(&[Some("alpha secret-token beta"); 3]))
            .unwrap();
        let index = builder.finish();
        let parquet = dir.path().join("acme/20261204T10/000001-compacted.parquet");
        std::fs::create_dir_all(parquet.parent().unwrap()).unwrap();
        let sidecar = sidecar_path(&parquet);
        let key = keyring.current("acme").unwrap();
        let sealed = seal(&index.encode(), &sidecar, "acme", &key).unwrap();
        assert!(!sealed.windows(8).any(|window| window == MAGIC));
        std::fs::write(&sidecar, &sealed).unwrap();

        assert_eq!(
            SkipIndex::load_of(&parquet, "acme", &keyring),
            Some(index.clone())
        );
        // Another tenant's key does not open it, nor does the plain reader take it.
        assert_eq!(SkipIndex::load_of(&parquet, "beta", &keyring), None);
        assert_eq!(SkipIndex::load(&parquet), None);
        // Moved beside another file, it does not open either (bound to its name).
        let other = parquet.with_file_name("000002-compacted.parquet");
        std::fs::copy(&sidecar, sidecar_path(&other)).unwrap();
        assert_eq!(SkipIndex::load_of(&other, "acme", &keyring), None);
        // A plain index reads through the same call.
        std::fs::write(&sidecar, index.encode()).unwrap();
        assert_eq!(SkipIndex::load_of(&parquet, "acme", &keyring), Some(index));
    }
}
