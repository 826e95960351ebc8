//! Sealed hot-store files (those holding rows of an `encrypted` producer) as one query reads
//! them: DataFusion's Parquet reader asks for byte ranges, and each is served by opening only
//! the chunks that hold it (see `hot::sealed`). Registered with the query's session as a
//! [`crate::read_only_store::ReadOnlyStore`] (`sealed-hot://files-N/`); a file's location is its
//! path under the hot-store root.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use object_store::path::Path as ObjectPath;
use object_store::ObjectMeta;

use crate::archive::crypto::Keyring;
use crate::hot::sealed::HotFile;
use crate::read_only_store::RangeSource;

/// The sealed files of one tenant one query reads, opened (their data keys unwrapped).
pub struct SealedFiles {
    /// By path under the hot-store root.
    files: HashMap<String, (HotFile, ObjectMeta)>,
}

impl SealedFiles {
    /// Opens `paths` (files of `tenant` under the hot-store `root`) with the tenant's keys.
    pub fn open<'a>(
        root: &Path,
        tenant: &str,
        keyring: &Keyring,
        paths: impl IntoIterator<Item = &'a PathBuf>,
    ) -> io::Result<SealedFiles> {
        let mut files = HashMap::new();
        for path in paths {
            let key = location_of(root, path)?;
            let file = HotFile::open(path, tenant, keyring)?;
            let modified = std::fs::metadata(path)?.modified()?;
            let meta = ObjectMeta {
                location: ObjectPath::from(key.as_str()),
                last_modified: Utc
                    .timestamp_opt(
                        modified
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |age| age.as_secs() as i64),
                        0,
                    )
                    .single()
                    .unwrap_or_default(),
                size: datafusion::parquet::file::reader::Length::len(&file),
                e_tag: None,
                version: None,
            };
            files.insert(key, (file, meta));
        }
        Ok(SealedFiles { files })
    }

    fn find(&self, location: &ObjectPath) -> object_store::Result<&(HotFile, ObjectMeta)> {
        self.files
            .get(location.as_ref())
            .ok_or_else(|| object_store::Error::NotFound {
                path: location.to_string(),
                source: "not a sealed hot-store file of this query".into(),
            })
    }
}

/// The location of the file at `path` (under the hot-store `root`) in a [`SealedFiles`].
pub fn location_of(root: &Path, path: &Path) -> io::Result<String> {
    Ok(path
        .strip_prefix(root)
        .map_err(io::Error::other)?
        .to_string_lossy()
        .into_owned())
}

#[async_trait]
impl RangeSource for SealedFiles {
    const NAME: &'static str = "sealed hot-store files";

    fn metas(&self) -> Vec<ObjectMeta> {
        self.files.values().map(|(_, meta)| meta.clone()).collect()
    }

    fn meta(&self, location: &ObjectPath) -> object_store::Result<ObjectMeta> {
        Ok(self.find(location)?.1.clone())
    }

    async fn read(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let file = self.find(location)?.0.clone();
        let ranges = ranges.to_vec();
        let path = location.to_string();
        // Reads and decryption block: off the query's async threads, as local files are read.
        tokio::task::spawn_blocking(move || {
            ranges
                .into_iter()
                .map(|range| file.read(range))
                .collect::<io::Result<Vec<Bytes>>>()
        })
        .await
        .map_err(|error| object_store::Error::Generic {
            store: Self::NAME,
            source: error.into(),
        })?
        .map_err(|error| object_store::Error::Generic {
            store: Self::NAME,
            source: format!("{path}: {error}").into(),
        })
    }
}

impl fmt::Debug for SealedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedFiles")
            .field("files", &self.files.len())
            .finish()
    }
}

impl fmt::Display for SealedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sealed hot-store files of one query ({})",
            self.files.len()
        )
    }
}
