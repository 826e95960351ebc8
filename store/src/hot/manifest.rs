//! The hot store's manifest: which Parquet files are live, and up to which write-ahead-log
//! segment their events reach. The single source of truth: a Parquet file it does not name
//! (left by a crash mid-flush) is deleted at start; replay starts after the segment it names,
//! so a flushed event is neither lost nor stored twice.
//!
//! A missing manifest next to Parquet files is not an empty store: starting would delete every
//! file as an orphan. The store refuses to start instead, and `meniscus recover-manifest`
//! rebuilds the manifest from the files themselves.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::disk::{replace_file, Disk};

pub const MANIFEST: &str = "MANIFEST.json";

/// One live Parquet file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub tenant: String,
    /// Window start, seconds since the epoch.
    pub window: i64,
    /// Path relative to the hot-store root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Written by compaction (sorted, compressed harder); flushed files are not.
    #[serde(default)]
    pub compacted: bool,
    /// When the file was written, seconds since the epoch (0 in manifests of older versions).
    #[serde(default)]
    pub created: i64,
    /// `msg` is stored as tokens (see `msg_tokens`); read with its stored schema.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub msg_tokens: bool,
    /// Sealed at rest (it holds rows of an `encrypted` producer; see `hot::sealed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Every WAL segment up to this number is fully in Parquet.
    pub wal_flushed_through: u64,
    pub next_flush_seq: u64,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "{manifest} is missing but {files} Parquet file(s) are under {root} (e.g. {example}): \
         starting would treat them all as left over from an interrupted flush and delete them. \
         Restore {manifest} from a backup, or rebuild it from the files with \
         `meniscus recover-manifest --data-dir DATA_DIR` (every Parquet file then counts as \
         live; events also still in the write-ahead log are deduplicated only if they were \
         written in the last minutes), then start again"
    )]
    Missing {
        manifest: PathBuf,
        root: PathBuf,
        files: usize,
        example: PathBuf,
    },
    #[error("corrupt hot-store manifest {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot read hot-store manifest {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

impl From<ManifestError> for io::Error {
    fn from(error: ManifestError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// Reads the manifest under `root`. A store without one is new only when it holds no Parquet
/// file.
pub fn read(root: &Path) -> Result<Manifest, ManifestError> {
    let path = root.join(MANIFEST);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ManifestError::Corrupt {
            path: path.clone(),
            source,
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let files = parquet_files(root).map_err(|source| ManifestError::Read {
                path: root.to_path_buf(),
                source,
            })?;
            match files.first() {
                None => Ok(Manifest {
                    version: 1,
                    ..Manifest::default()
                }),
                Some(example) => Err(ManifestError::Missing {
                    manifest: path.clone(),
                    root: root.to_path_buf(),
                    files: files.len(),
                    example: example.clone(),
                }),
            }
        }
        Err(source) => Err(ManifestError::Read { path, source }),
    }
}

/// Replaces the manifest atomically (temporary file, fsync, rename, directory fsync).
pub fn write(disk: &dyn Disk, root: &Path, manifest: &Manifest) -> io::Result<()> {
    let bytes = serde_json::to_vec(manifest).map_err(io::Error::other)?;
    replace_file(disk, &root.join(MANIFEST), &bytes)
}

/// Every `.parquet` file under `root`, sorted.
pub fn parquet_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    files_with_extensions(root, &["parquet"])
}

/// Every file under `root` whose extension is one of `extensions`, sorted.
pub fn files_with_extensions(root: &Path, extensions: &[&str]) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !root.exists() {
        return Ok(found);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|extension| extensions.iter().any(|wanted| extension == *wanted))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}
