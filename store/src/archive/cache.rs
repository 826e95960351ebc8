//! A bounded local cache of fetched objects, so a query that reads an hour of the archive
//! again does not fetch it again.
//!
//! An object sealed in chunks is cached as a sparse file of its stored size, filled chunk by
//! chunk, as stored (sealed), as queries read ranges of it (`ranged`): only what was read
//! takes space, and chunks are opened each time they are read, so nothing an `encrypted`
//! producer sent rests decrypted here. One sealed whole (archived before chunks) is fetched,
//! opened and written whole.
//!
//! Files are handed out as shared handles: eviction drops the cache's handle, and the file is
//! deleted when the last query holding it lets go, never under a running query. The cache is
//! emptied at start (it holds nothing the archive does not).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::crypto::{ChunkLayout, DataKey};
use crate::hot::sealed::{HotFile, SealedFile};

/// One fetched object on local disk (chunks kept sealed, or, archived before chunks, the
/// object decrypted whole), deleted when the last handle goes.
#[derive(Debug)]
pub struct CachedFile {
    pub path: PathBuf,
    /// Plain bytes on disk now.
    bytes: AtomicU64,
    last_used: AtomicU64,
    /// For an object sealed in chunks: its sparse copy, filled as it is read.
    pub chunked: Option<ChunkedCopy>,
}

/// The sparse local copy of an object sealed in chunks (at its [`CachedFile::path`], opened
/// for each read or fill: a cache of thousands of small copies holds no descriptors). It
/// holds the chunks as stored, sealed, at their offsets in the object, and they are opened as
/// they are read: what `encrypted` producers sent never rests decrypted in the cache.
#[derive(Debug)]
pub struct ChunkedCopy {
    pub layout: ChunkLayout,
    pub data_key: DataKey,
    /// Which chunks the file holds.
    present: Mutex<Vec<bool>>,
    /// One fill at a time: reads of the same chunks by concurrent scans fetch them once.
    pub filling: tokio::sync::Mutex<()>,
}

impl ChunkedCopy {
    /// Of `chunks`, the ones not on disk yet.
    pub fn missing(&self, chunks: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let present = self.present.lock();
        chunks
            .into_iter()
            .filter(|index| !present[*index as usize])
            .collect()
    }

    /// Records chunk `index` as on disk; false when it already was.
    pub fn mark_present(&self, index: u64) -> bool {
        !std::mem::replace(&mut self.present.lock()[index as usize], true)
    }
}

impl CachedFile {
    /// The copy opened for reading its plain bytes (`key`: the object's): a sparse copy's
    /// chunks are opened as they are read, so only chunks already filled can be.
    pub fn reader(&self, key: &str) -> io::Result<HotFile> {
        let file = fs::File::open(&self.path)?;
        Ok(match &self.chunked {
            Some(copy) => HotFile::Sealed(Arc::new(SealedFile::over_object(
                file,
                copy.layout,
                copy.data_key.clone(),
                key,
            ))),
            None => HotFile::Plain(Arc::new(file)),
        })
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// `added` more bytes are on disk (counted where they are written, so a query cancelled
    /// meanwhile leaves nothing uncounted; [`ObjectCache::evict_for`] then makes room).
    pub fn add_bytes(&self, added: u64) {
        self.bytes.fetch_add(added, Ordering::Relaxed);
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(crate::skip_index::sidecar_path(&self.path));
        let _ = fs::remove_file(&self.path);
    }
}

pub struct ObjectCache {
    dir: PathBuf,
    capacity: u64,
    clock: AtomicU64,
    next_name: AtomicU64,
    entries: Mutex<HashMap<String, Arc<CachedFile>>>,
}

impl ObjectCache {
    pub fn open(dir: &Path, capacity: u64) -> io::Result<ObjectCache> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir)?;
        Ok(ObjectCache {
            dir: dir.to_path_buf(),
            capacity,
            clock: AtomicU64::new(0),
            next_name: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The cached copy of the object `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<CachedFile>> {
        let entries = self.entries.lock();
        let file = entries.get(key)?.clone();
        file.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Some(file)
    }

    /// Writes `bytes` as the cached copy of `key` and returns it; evicts the least recently
    /// used copies beyond the capacity (the new one is kept even when alone over it).
    pub fn insert(&self, key: &str, bytes: &[u8]) -> io::Result<Arc<CachedFile>> {
        let path = self.new_path();
        fs::write(&path, bytes)?;
        let file = Arc::new(CachedFile {
            path,
            bytes: AtomicU64::new(bytes.len() as u64),
            last_used: AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed)),
            chunked: None,
        });
        let mut entries = self.entries.lock();
        entries.insert(key.to_string(), file.clone());
        self.evict_beyond_capacity(&mut entries, key);
        Ok(file)
    }

    /// An empty sparse copy of the object `key`, sealed in chunks as `layout` says, to be
    /// filled by ranged reads (see [`ObjectCache::evict_for`]).
    pub fn insert_chunked(
        &self,
        key: &str,
        layout: ChunkLayout,
        data_key: DataKey,
    ) -> io::Result<Arc<CachedFile>> {
        let path = self.new_path();
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        // A hole of the object's size: chunks land at their own offsets, sealed.
        file.set_len(layout.sealed_range(&(0..layout.chunks())).end)?;
        drop(file);
        let chunks = layout.chunks() as usize;
        let cached = Arc::new(CachedFile {
            path,
            bytes: AtomicU64::new(0),
            last_used: AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed)),
            chunked: Some(ChunkedCopy {
                layout,
                data_key,
                present: Mutex::new(vec![false; chunks]),
                filling: tokio::sync::Mutex::new(()),
            }),
        });
        self.entries.lock().insert(key.to_string(), cached.clone());
        Ok(cached)
    }

    /// The copy of `key` grew ([`CachedFile::add_bytes`]): evicts others beyond the capacity.
    pub fn evict_for(&self, key: &str) {
        let mut entries = self.entries.lock();
        self.evict_beyond_capacity(&mut entries, key);
    }

    fn new_path(&self) -> PathBuf {
        let name = self.next_name.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{name:012}.parquet"))
    }

    /// Drops the least recently used copies but `keep` while the cache holds more than its
    /// capacity (the one kept may be over it alone).
    fn evict_beyond_capacity(&self, entries: &mut HashMap<String, Arc<CachedFile>>, keep: &str) {
        let mut total: u64 = entries.values().map(|file| file.bytes()).sum();
        while total > self.capacity && entries.len() > 1 {
            let Some(oldest) = entries
                .iter()
                .filter(|(candidate, _)| *candidate != keep)
                .min_by_key(|(_, file)| file.last_used.load(Ordering::Relaxed))
                .map(|(candidate, _)| candidate.clone())
            else {
                break;
            };
            if let Some(evicted) = entries.remove(&oldest) {
                total -= evicted.bytes();
            }
        }
    }

    /// Forgets the copy of `key` (its object was deleted).
    pub fn remove(&self, key: &str) {
        self.entries.lock().remove(key);
    }

    /// Bytes the cache holds now.
    pub fn bytes(&self) -> u64 {
        self.entries.lock().values().map(|file| file.bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_files_in_use_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ObjectCache::open(&dir.path().join("cache"), 10).unwrap();
        let first = cache.insert("a", b"123456").unwrap();
        let _second = cache.insert("b", b"123456").unwrap();
        // Over capacity: "a" leaves the cache, but a query still reads it.
        assert!(cache.get("a").is_none());
        assert!(first.path.exists());
        let path = first.path.clone();
        drop(first);
        assert!(!path.exists());
        assert!(cache.get("b").is_some());
        assert_eq!(cache.bytes(), 6);
    }

    /// A sparse copy takes room only as its chunks arrive, and pushes older copies out then.
    #[test]
    fn a_sparse_copy_counts_only_its_filled_chunks() {
        use crate::archive::crypto::{self, Keyring};
        let dir = tempfile::tempdir().unwrap();
        let keyring = Keyring::open(&dir.path().join("keys")).unwrap();
        let key = keyring.current("a").unwrap();
        let (_, sidecar, _) = crypto::seal(&[0u8; 1000], "a", "big", &key);
        let data_key = crypto::unwrap(&sidecar, "a", "big", &keyring).unwrap();
        let cache = ObjectCache::open(&dir.path().join("cache"), 10).unwrap();
        let small = cache.insert("small", b"12345").unwrap();
        let layout = ChunkLayout {
            plain_bytes: 1 << 20,
            chunk_bytes: 64 * 1024,
        };
        let sparse = cache.insert_chunked("big", layout, data_key).unwrap();
        let stored = layout.sealed_range(&(0..layout.chunks())).end;
        assert_eq!(std::fs::metadata(&sparse.path).unwrap().len(), stored);
        let copy = sparse.chunked.as_ref().unwrap();
        assert_eq!(copy.missing(0..16).len(), 16, "no chunk filled yet");
        // Nothing filled yet: both fit.
        assert_eq!(cache.bytes(), 5);
        assert!(cache.get("small").is_some());
        assert_eq!(copy.missing([0, 3]), vec![0, 3]);
        assert!(copy.mark_present(3));
        assert!(!copy.mark_present(3), "already there");
        assert_eq!(copy.missing([0, 3]), vec![0]);
        sparse.add_bytes(64 * 1024);
        cache.evict_for("big");
        assert!(cache.get("small").is_none(), "evicted for the filled chunk");
        assert!(small.path.exists(), "still held");
        assert_eq!(cache.bytes(), 64 * 1024);
    }
}
