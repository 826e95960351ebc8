//! The archive's manifest: which objects hold which hot-store file. The single source of truth
//! for queries and retention, written atomically under the data directory.
//!
//! An entry is added only after its object and sidecar were uploaded and verified. Before the
//! upload starts, the manifest names it in `uploading`: after a crash the file is pinned again
//! and uploaded under the same name, or, when the file is gone meanwhile (compacted into
//! another, expired), the half-done object is deleted. An entry that leaves while its object
//! stays (a hand-off) is named in `deleting` in the same write, until the object is gone. So
//! the target holds no object of this archive that the manifest does not account for, and a
//! listing of it can stand in for a lost manifest (`recovery`).

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::disk::{replace_file, Disk};

pub const MANIFEST: &str = "ARCHIVE.json";

/// How an object stores its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectFormat {
    /// The hot-store Parquet file as it was (objects uploaded before the archive format).
    #[default]
    Parquet,
    /// Re-encoded in the archive's own format ([`super::format`]), about half the bytes.
    Events,
}

impl ObjectFormat {
    /// The end of the key of an object in this format.
    pub fn suffix(self) -> &'static str {
        match self {
            ObjectFormat::Parquet => PARQUET_SUFFIX,
            ObjectFormat::Events => EVENTS_SUFFIX,
        }
    }

    /// The format an object key names, and the key without its suffix.
    pub fn of_key(key: &str) -> Option<(ObjectFormat, &str)> {
        [ObjectFormat::Events, ObjectFormat::Parquet]
            .into_iter()
            .find_map(|format| Some((format, key.strip_suffix(format.suffix())?)))
    }
}

pub const PARQUET_SUFFIX: &str = ".parquet.enc";
pub const EVENTS_SUFFIX: &str = ".events.enc";

/// One archived object: a copy of one hot-store file, row for row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedObject {
    pub tenant: String,
    /// Window start, seconds since the epoch.
    pub window: i64,
    /// The hot-store file it copies (path relative to the hot-store root). Queries read the
    /// object only while that file is not live: never both.
    pub source: String,
    /// The object's key in the target (its sidecar is `key` + [`SIDECAR_SUFFIX`]).
    pub key: String,
    pub rows: u64,
    /// Bytes of the object before encryption.
    pub plain_bytes: u64,
    /// Bytes of the object as stored.
    pub stored_bytes: u64,
    /// Whether `msg` is stored as tokens (read with the stored schema; Parquet objects only).
    #[serde(default)]
    pub msg_tokens: bool,
    /// How the rows are stored (absent in manifests written before the archive format).
    #[serde(default)]
    pub format: ObjectFormat,
    /// When it was uploaded, seconds since the epoch.
    pub uploaded: i64,
    /// Whether its skip index was uploaded with it (as [`skip_index_key`]).
    #[serde(default)]
    pub skip_index: bool,
}

pub const SIDECAR_SUFFIX: &str = ".key";

/// The key of an object's skip index in the target: `NAME.events.enc` (or `.parquet.enc`)
/// -> `NAME.skip.enc`, sealed with the object's data key (see `crypto::seal_companion`).
pub fn skip_index_key(object_key: &str) -> String {
    let stem = ObjectFormat::of_key(object_key).map_or(object_key, |(_, stem)| stem);
    format!("{stem}.skip.enc")
}

/// An upload begun and not yet recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    pub tenant: String,
    /// The hot-store file being uploaded.
    pub source: String,
    /// The object key it goes to.
    pub key: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ArchiveManifest {
    pub version: u32,
    pub objects: Vec<ArchivedObject>,
    /// Uploads begun and not recorded yet (see the module's comment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uploading: Vec<Upload>,
    /// Keys of objects no entry holds any more that may still be in the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleting: Vec<String>,
}

pub fn read(dir: &Path) -> io::Result<ArchiveManifest> {
    match fs::read(dir.join(MANIFEST)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "corrupt archive manifest {}: {error}",
                    dir.join(MANIFEST).display()
                ),
            )
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(ArchiveManifest {
            version: 1,
            ..ArchiveManifest::default()
        }),
        Err(error) => Err(error),
    }
}

pub fn write(disk: &dyn Disk, dir: &Path, manifest: &ArchiveManifest) -> io::Result<()> {
    let bytes = serde_json::to_vec(manifest).map_err(io::Error::other)?;
    replace_file(disk, &dir.join(MANIFEST), &bytes)
}
