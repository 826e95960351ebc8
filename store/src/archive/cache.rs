//! A bounded local cache of fetched, decrypted objects, so a query that reads an hour of the
//! archive again does not fetch it again.
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

/// One decrypted object on local disk, deleted when the last handle goes.
#[derive(Debug)]
pub struct CachedFile {
    pub path: PathBuf,
    bytes: u64,
    last_used: AtomicU64,
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
        let name = self.next_name.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{name:012}.parquet"));
        fs::write(&path, bytes)?;
        let file = Arc::new(CachedFile {
            path,
            bytes: bytes.len() as u64,
            last_used: AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed)),
        });
        let mut entries = self.entries.lock();
        entries.insert(key.to_string(), file.clone());
        let mut total: u64 = entries.values().map(|file| file.bytes).sum();
        while total > self.capacity && entries.len() > 1 {
            let Some(oldest) = entries
                .iter()
                .filter(|(candidate, _)| *candidate != key)
                .min_by_key(|(_, file)| file.last_used.load(Ordering::Relaxed))
                .map(|(candidate, _)| candidate.clone())
            else {
                break;
            };
            if let Some(evicted) = entries.remove(&oldest) {
                total -= evicted.bytes;
            }
        }
        Ok(file)
    }

    /// Forgets the copy of `key` (its object was deleted).
    pub fn remove(&self, key: &str) {
        self.entries.lock().remove(key);
    }

    /// Bytes the cache holds now.
    pub fn bytes(&self) -> u64 {
        self.entries.lock().values().map(|file| file.bytes).sum()
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
}
