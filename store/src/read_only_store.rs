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

/// The object store a query's session reads a [`RangeSource`] through.
#[derive(Debug)]
pub struct ReadOnlyStore<S>(pub S);

impl<S: RangeSource> fmt::Display for ReadOnlyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
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
    fn under(&self, prefix: Option<&ObjectPath>) -> Vec<ObjectMeta> {
        self.0
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
        let meta = self.0.meta(location)?;
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
            self.0
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
        self.0.read(location, ranges).await
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
