//! Range reads of archived objects sealed in chunks: a query fetches only the chunks holding
//! the bytes Parquet asks for (the footer, the column chunks of the row groups it reads), opens
//! them, and keeps them in the object's sparse copy in the local cache.
//!
//! [`QueryObjects`] is what a query's DataFusion session reads archived objects through (as a
//! [`crate::read_only_store::ReadOnlyStore`], at `archive://objects-N/KEY`): it serves plain
//! byte ranges of exactly the objects the query was given, each held in the cache until the
//! query ends.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use object_store::path::Path as ObjectPath;
use object_store::ObjectMeta;

use super::cache::CachedFile;
use super::crypto;
use super::format;
use super::manifest::{ArchivedObject, ObjectFormat};
use super::Archive;
use crate::read_only_store::RangeSource;

/// How a query's error says an archived object could not be read mid-scan (found in
/// DataFusion's error text, which wraps the object store's).
pub const ARCHIVE_READ_FAILED: &str = "an archived hour could not be read";

/// Missing chunks this close together are fetched in one request, the ones between included:
/// a request costs more than 256 KB of loopback or in-region transfer.
const MERGE_GAP_CHUNKS: u64 = 4;

impl Archive {
    /// Plain bytes `ranges` of the object `key`, whose sparse copy is `file`; the chunks they
    /// need that the copy lacks are fetched (one ranged GET per run of chunks), opened and
    /// written to it first.
    pub async fn read_ranges(
        &self,
        key: &str,
        file: &Arc<CachedFile>,
        ranges: &[Range<u64>],
    ) -> anyhow::Result<Vec<Bytes>> {
        let copy = file
            .chunked
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{key} is not read in chunks"))?;
        let layout = copy.layout;
        for range in ranges {
            if range.start > range.end || range.end > layout.plain_bytes {
                anyhow::bail!(
                    "range {range:?} is outside {key} ({} bytes)",
                    layout.plain_bytes
                );
            }
        }
        let mut wanted: Vec<u64> = ranges
            .iter()
            .filter(|range| range.start < range.end)
            .flat_map(|range| layout.chunks_of(range))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        self.ensure_chunks(key, file, wanted).await?;
        let (reading, key, ranges) = (file.clone(), key.to_string(), ranges.to_vec());
        // Reading and opening chunks block: off the async threads.
        tokio::task::spawn_blocking(move || {
            let copy = reading.reader(&key)?;
            ranges
                .into_iter()
                .map(|range| copy.read(range))
                .collect::<std::io::Result<Vec<Bytes>>>()
        })
        .await?
        .map_err(Into::into)
    }

    /// Every chunk of `file` on disk: it can then be read whole ([`CachedFile::reader`]).
    pub async fn fill_all(&self, key: &str, file: &Arc<CachedFile>) -> anyhow::Result<()> {
        let Some(copy) = file.chunked.as_ref() else {
            return Ok(());
        };
        self.ensure_chunks(key, file, (0..copy.layout.chunks()).collect())
            .await
    }

    /// The chunks `wanted` (sorted) on disk in `file`, the missing ones fetched first.
    async fn ensure_chunks(
        &self,
        key: &str,
        file: &Arc<CachedFile>,
        wanted: Vec<u64>,
    ) -> anyhow::Result<()> {
        let copy = file.chunked.as_ref().expect("a chunked copy");
        if copy.missing(wanted.iter().copied()).is_empty() {
            return Ok(());
        }
        let _filling = copy.filling.lock().await;
        // Another read may have fetched them while this one waited.
        let missing = copy.missing(wanted);
        if missing.is_empty() {
            return Ok(());
        }
        self.fill(key, file, &runs(&missing)).await
    }

    /// Fetches the chunk runs `runs` of `key`, opens them and writes the chunks its copy lacks.
    async fn fill(
        &self,
        key: &str,
        file: &Arc<CachedFile>,
        runs: &[Range<u64>],
    ) -> anyhow::Result<()> {
        let copy = file.chunked.as_ref().expect("a chunked copy");
        let sealed_ranges: Vec<Range<u64>> = runs
            .iter()
            .map(|run| copy.layout.sealed_range(run))
            .collect();
        let location = ObjectPath::from(key);
        let fetched = self
            .target
            .store
            .get_ranges(&location, &sealed_ranges)
            .await?;
        self.metrics.range_reads.add(runs.len() as u64);
        self.keep_chunks(key, file, runs.iter().cloned().zip(fetched).collect())
            .await
    }

    /// Checks fetched runs of chunks (`(run, its stored bytes)`) by opening them, and writes
    /// the chunks the copy lacks as they were stored (sealed).
    async fn keep_chunks(
        &self,
        key: &str,
        file: &Arc<CachedFile>,
        fetched: Vec<(Range<u64>, Bytes)>,
    ) -> anyhow::Result<()> {
        let fetched_bytes: u64 = fetched.iter().map(|(_, bytes)| bytes.len() as u64).sum();
        self.metrics.fetched_bytes.add(fetched_bytes);
        let (writing, key_owned) = (file.clone(), key.to_string());
        // Opening is CPU work and writing is disk work: off the async threads.
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let copy = writing.chunked.as_ref().expect("a chunked copy");
            let out = std::fs::OpenOptions::new()
                .write(true)
                .open(&writing.path)?;
            for (run, sealed) in fetched {
                // Opened once now, so a chunk that does not open (a damaged or swapped
                // object) fails this read and is never kept as if it were there.
                crypto::open_chunks(
                    &sealed,
                    run.clone(),
                    &copy.layout,
                    &copy.data_key,
                    &key_owned,
                )?;
                let run_start = copy.layout.sealed_range(&run).start;
                for index in run {
                    let stored = copy.layout.sealed_range(&(index..index + 1));
                    let within =
                        (stored.start - run_start) as usize..(stored.end - run_start) as usize;
                    out.write_all_at(&sealed[within], stored.start)?;
                    if copy.mark_present(index) {
                        let plain = copy.layout.plain_range(index);
                        writing.add_bytes(plain.end - plain.start);
                    }
                }
            }
            anyhow::Ok(())
        })
        .await??;
        self.cache.evict_for(key);
        self.metrics.cache_bytes.set(self.cache.bytes());
        Ok(())
    }

    /// Opens a fresh sparse copy of `object`: keeps `first` (the stored bytes of the chunks
    /// [`first_chunks`] names, fetched beside the sidecar so the first read of an object costs
    /// one round trip), then makes sure what every read of the object starts with is there:
    /// the whole Parquet footer, or an events object's header.
    pub(super) async fn open_sparse(
        &self,
        object: &ArchivedObject,
        file: &Arc<CachedFile>,
        first: Option<(Range<u64>, Bytes)>,
    ) -> anyhow::Result<()> {
        if let Some(first) = first {
            self.metrics.range_reads.add(1);
            self.keep_chunks(&object.key, file, vec![first]).await?;
        }
        match object.format {
            ObjectFormat::Parquet => self.prefetch_footer(&object.key, file).await,
            ObjectFormat::Events => self.events_directory(&object.key, file).await.map(drop),
        }
    }

    /// The header of the events object `key` (see [`super::format`]), read from its sparse
    /// copy (fetching what the copy lacks).
    pub async fn events_directory(
        &self,
        key: &str,
        file: &Arc<CachedFile>,
    ) -> anyhow::Result<format::Directory> {
        let plain_bytes = file
            .chunked
            .as_ref()
            .map_or(0, |copy| copy.layout.plain_bytes);
        let mut wanted = plain_bytes.min(format::FIRST_READ_BYTES);
        loop {
            let head = self
                .read_ranges(key, file, std::slice::from_ref(&(0..wanted)))
                .await?;
            match format::Directory::parse(&head[0], plain_bytes)? {
                Ok(directory) => return Ok(directory),
                Err(needed) if needed > wanted => wanted = needed,
                Err(_) => anyhow::bail!("{key}: its header does not parse"),
            }
        }
    }

    /// Reads the Parquet footer of a sparse copy, which every scan of it starts with, before
    /// the query plans: the scans then open it without waiting for a request.
    async fn prefetch_footer(&self, key: &str, file: &Arc<CachedFile>) -> anyhow::Result<()> {
        let plain_bytes = file
            .chunked
            .as_ref()
            .map_or(0, |copy| copy.layout.plain_bytes);
        if plain_bytes < 8 {
            anyhow::bail!("{key} is too short to be a Parquet file ({plain_bytes} bytes)");
        }
        let tail = self
            .read_ranges(
                key,
                file,
                std::slice::from_ref(&(plain_bytes - 8..plain_bytes)),
            )
            .await?;
        let tail = &tail[0];
        if &tail[4..] != b"PAR1" {
            anyhow::bail!("{key} does not end as a Parquet file does");
        }
        let footer = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
        if footer + 8 > plain_bytes {
            anyhow::bail!("{key}: its Parquet footer is longer than the file");
        }
        let footer = plain_bytes - 8 - footer..plain_bytes - 8;
        self.read_ranges(key, file, std::slice::from_ref(&footer))
            .await?;
        Ok(())
    }
}

/// How much of a Parquet object's end is fetched with its sidecar: what a query's first read
/// of a Parquet file asks for (footer and page indexes), so that read finds it in the cache.
const TAIL_PREFETCH_BYTES: u64 = crate::query::METADATA_SIZE_HINT as u64;

/// The chunks of `object` worth fetching before its sidecar says how it is sealed, assuming
/// [`crypto::CHUNK_BYTES`] (what every upload uses now), with that layout: a Parquet object's
/// end (its footer), an events object's start (its header); `None` when it cannot be such an
/// object.
pub(super) fn first_chunks(object: &ArchivedObject) -> Option<(crypto::ChunkLayout, Range<u64>)> {
    let layout = crypto::ChunkLayout::of_stored(object.stored_bytes, crypto::CHUNK_BYTES).ok()?;
    let plain = layout.plain_bytes;
    let wanted = match object.format {
        ObjectFormat::Parquet => plain.saturating_sub(TAIL_PREFETCH_BYTES)..plain,
        ObjectFormat::Events => 0..plain.min(format::FIRST_READ_BYTES),
    };
    (plain > 0).then(|| (layout, layout.chunks_of(&wanted)))
}

/// Sorted chunk indexes as runs to fetch, runs closer than [`MERGE_GAP_CHUNKS`] merged.
fn runs(sorted: &[u64]) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for &index in sorted {
        match runs.last_mut() {
            Some(run) if index <= run.end + MERGE_GAP_CHUNKS => run.end = index + 1,
            _ => runs.push(index..index + 1),
        }
    }
    runs
}

/// The archived objects one query reads, as an object store of their plain bytes.
pub struct QueryObjects {
    archive: Arc<Archive>,
    /// By object key: the object and its sparse copy, held until the query ends.
    objects: HashMap<String, (Arc<CachedFile>, ArchivedObject)>,
}

impl QueryObjects {
    pub fn new(
        archive: Arc<Archive>,
        objects: impl IntoIterator<Item = (Arc<CachedFile>, ArchivedObject)>,
    ) -> QueryObjects {
        QueryObjects {
            archive,
            objects: objects
                .into_iter()
                .map(|(file, object)| (object.key.clone(), (file, object)))
                .collect(),
        }
    }

    fn find(
        &self,
        location: &ObjectPath,
    ) -> object_store::Result<&(Arc<CachedFile>, ArchivedObject)> {
        self.objects
            .get(location.as_ref())
            .ok_or_else(|| object_store::Error::NotFound {
                path: location.to_string(),
                source: "not an archived object of this query".into(),
            })
    }

    fn meta_of(file: &CachedFile, object: &ArchivedObject) -> ObjectMeta {
        ObjectMeta {
            location: ObjectPath::from(object.key.as_str()),
            last_modified: Utc
                .timestamp_opt(object.uploaded, 0)
                .single()
                .unwrap_or_default(),
            size: file
                .chunked
                .as_ref()
                .map_or(object.plain_bytes, |copy| copy.layout.plain_bytes),
            e_tag: None,
            version: None,
        }
    }
}

#[async_trait]
impl RangeSource for QueryObjects {
    const NAME: &'static str = "archive";

    fn metas(&self) -> Vec<ObjectMeta> {
        self.objects
            .values()
            .map(|(file, object)| Self::meta_of(file, object))
            .collect()
    }

    fn meta(&self, location: &ObjectPath) -> object_store::Result<ObjectMeta> {
        let (file, object) = self.find(location)?;
        Ok(Self::meta_of(file, object))
    }

    async fn read(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let (file, object) = self.find(location)?;
        self.archive
            .read_ranges(&object.key, file, ranges)
            .await
            .map_err(|error| object_store::Error::Generic {
                store: "archive",
                source: format!(
                    "{ARCHIVE_READ_FAILED} ({}): {error:#}; retry once the archive target answers",
                    object.key
                )
                .into(),
            })
    }
}

impl fmt::Debug for QueryObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryObjects")
            .field("objects", &self.objects.len())
            .finish()
    }
}

impl fmt::Display for QueryObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "archived objects of one query ({})", self.objects.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_close_together_are_fetched_in_one_run() {
        assert_eq!(runs(&[]), Vec::<Range<u64>>::new());
        assert_eq!(runs(&[3]), vec![3..4]);
        assert_eq!(runs(&[0, 1, 2]), vec![0..3]);
        // A gap of up to four chunks is fetched with them; a wider one is not.
        assert_eq!(runs(&[0, 5]), vec![0..6]);
        assert_eq!(runs(&[0, 6, 7, 20]), vec![0..1, 6..8, 20..21]);
    }
}
