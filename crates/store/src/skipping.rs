//! The local file system minus a set of files: how a query skips store
//! files it cannot read instead of failing as a whole.
//!
//! DataFusion lists a table's files through an object store; this one lists
//! (and serves) everything the local file system does except the skipped
//! files, so the rest of the store stays queryable.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use futures::stream::{BoxStream, StreamExt};

/// An object store that hides `skip` from listings of `inner`.
#[derive(Debug)]
pub(crate) struct Skipping {
    pub inner: Arc<dyn ObjectStore>,
    pub skip: Arc<HashSet<Path>>,
}

impl fmt::Display for Skipping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} skipping {} files", self.inner, self.skip.len())
    }
}

type Res<T> = object_store::Result<T>;

#[async_trait]
impl ObjectStore for Skipping {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Res<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Res<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Res<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Res<Path>>,
    ) -> BoxStream<'static, Res<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Res<ObjectMeta>> {
        let skip = Arc::clone(&self.skip);
        self.inner
            .list(prefix)
            .filter(move |m| {
                let keep = !matches!(m, Ok(m) if skip.contains(&m.location));
                futures::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Res<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects.retain(|m| !self.skip.contains(&m.location));
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Res<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Res<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
