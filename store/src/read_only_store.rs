//! A read-only object store over a fixed set of files a query reads, for DataFusion's Parquet
//! reader: it asks an object store for byte ranges, and some files need more than a read of
//! local bytes to serve them (archived objects fetched by chunk, sealed hot-store files
//! decrypted by chunk). A [`RangeSource`] says what the files are and serves their ranges;
//! [`ReadOnlyStore`] is the object store around it, refusing every write.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// The files of one query, by location, and their plain bytes.
#[async_trait]
pub trait RangeSource: fmt::Display + fmt::Debug + Send + Sync + 'static {
    /// The store's name in errors.
    const NAME: &'static str;
    /// Every file, for listings.
    fn metas(&self) -> Vec<ObjectMeta>;
    /// One file, or NotFound.
    fn meta(&self, location: &ObjectPath) -> object_store::Result<ObjectMeta>;
    /// Plain bytes `ranges` (within the file) of the file at `location`.
    async fn read(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>>;
}

/// The object store a query's session reads a [`RangeSource`] through, at a URL of its own.
#[derive(Debug)]
pub struct ReadOnlyStore<S> {
    url: url::Url,
    source: S,
}

impl<S: RangeSource> fmt::Display for ReadOnlyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

fn read_only<S: RangeSource>() -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!(
            "{}: a query reads these files; it never writes them",
            S::NAME
        )
        .into(),
    }
}

impl<S: RangeSource> ReadOnlyStore<S> {
    /// `source` at `SCHEME://NAME-N/`, `N` new for every store: two stores registered with one
    /// session never replace each other.
    pub fn new(scheme: &str, name: &str, source: S) -> ReadOnlyStore<S> {
        static STORES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ReadOnlyStore {
            url: url::Url::parse(&format!("{scheme}://{name}-{number}")).expect("a valid URL"),
            source,
        }
    }

    /// The URL to register this store under.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The URL DataFusion reads the file at `location` of this store at.
    pub fn url_of(&self, location: &str) -> String {
        format!("{}/{location}", self.url.as_str().trim_end_matches('/'))
    }

    fn under(&self, prefix: Option<&ObjectPath>) -> Vec<ObjectMeta> {
        self.source
            .metas()
            .into_iter()
            .filter(|meta| prefix.is_none_or(|prefix| meta.location.prefix_matches(prefix)))
            .collect()
    }
}

#[async_trait]
impl<S: RangeSource> ObjectStore for ReadOnlyStore<S> {
    async fn put_opts(
        &self,
        _: &ObjectPath,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only::<S>())
    }

    async fn put_multipart_opts(
        &self,
        _: &ObjectPath,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only::<S>())
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let meta = self.source.meta(location)?;
        let range = match &options.range {
            Some(range) => {
                range
                    .as_range(meta.size)
                    .map_err(|error| object_store::Error::Generic {
                        store: S::NAME,
                        source: error.into(),
                    })?
            }
            None => 0..meta.size,
        };
        let body = if options.head || range.is_empty() {
            Bytes::new()
        } else {
            self.source
                .read(location, std::slice::from_ref(&range))
                .await?
                .remove(0)
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok(body) }).boxed(),
            ),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.source.read(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        locations.map(|_| Err(read_only::<S>())).boxed()
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        futures::stream::iter(self.under(prefix).into_iter().map(Ok)).boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        Ok(ListResult {
            common_prefixes: Vec::new(),
            objects: self.under(prefix),
        })
    }

    async fn copy_opts(
        &self,
        _: &ObjectPath,
        _: &ObjectPath,
        _: CopyOptions,
    ) -> object_store::Result<()> {
        Err(read_only::<S>())
    }
}
