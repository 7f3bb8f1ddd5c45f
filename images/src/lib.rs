//! Product images: what an upload becomes ([`process`]: sniffed, decoded within limits, turned
//! upright, re-encoded without its metadata as a page-size rendition and a thumbnail) and where
//! the renditions live (the [`ImageStore`] port, with [`FsImageStore`] under the data directory
//! for the embedded mode and [`S3ImageStore`] in a bucket).
//!
//! Names are content-addressed: an image's id is derived from the uploaded bytes, and its files
//! are `<id>.page.jpg` and `<id>.thumb.jpg`. The same name always holds the same bytes, so the
//! files are served with an immutable cache lifetime, and uploading the same picture twice
//! writes the same files again harmlessly.
//!
//! - `process`: sniffing, limits, renditions.
//! - `fs`, `s3`: the adapters; `config`: `CATALOG_IMAGES`.
//! - `conformance` (feature `testsuite`): the suite every adapter passes.

mod config;
mod fs;
mod process;
pub mod s3;

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;

use async_trait::async_trait;
use bytes::Bytes;

pub use config::ImagesConfig;
pub use fs::FsImageStore;
pub use process::{
    process, ImageError, Processed, Rendition, MAX_IMAGE_BYTES, MAX_SOURCE_PIXELS, PAGE_SIZE,
    THUMBNAIL_SIZE,
};
pub use s3::S3ImageStore;

/// The content type of every rendition.
pub const RENDITION_CONTENT_TYPE: &str = "image/jpeg";

/// The file name of image `id`'s page-size rendition.
pub fn page_name(id: &str) -> String {
    format!("{id}.page.jpg")
}

/// The file name of image `id`'s thumbnail.
pub fn thumbnail_name(id: &str) -> String {
    format!("{id}.thumb.jpg")
}

/// Whether `name` is a file name this crate writes (`<32 hex>.page.jpg` or `….thumb.jpg`):
/// anything else is not looked up at all.
pub fn is_rendition_name(name: &str) -> bool {
    let Some((id, suffix)) = name.split_once('.') else {
        return false;
    };
    id.len() == 32
        && id
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        && (suffix == "page.jpg" || suffix == "thumb.jpg")
}

/// The addresses of an image's stored renditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub url: String,
    pub thumbnail_url: String,
}

/// Writes both renditions of `processed` to `store` (at once) under their content-addressed
/// names; where shoppers load them from.
pub async fn save(store: &dyn ImageStore, processed: &Processed) -> Result<Saved, ImageStoreError> {
    let page = page_name(&processed.id);
    let thumbnail = thumbnail_name(&processed.id);
    let (page_written, thumbnail_written) = tokio::join!(
        store.put(&page, processed.page.bytes.clone(), RENDITION_CONTENT_TYPE),
        store.put(
            &thumbnail,
            processed.thumbnail.bytes.clone(),
            RENDITION_CONTENT_TYPE
        ),
    );
    page_written?;
    thumbnail_written?;
    Ok(Saved {
        url: store.url(&page),
        thumbnail_url: store.url(&thumbnail),
    })
}

/// Why the image store failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    /// The store cannot be reached or refused the call; retrying later may work.
    #[error("the image store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug, a misconfiguration).
    #[error("image store error: {0}")]
    Unexpected(String),
}

/// Where image renditions are kept and from where shoppers load them.
///
/// Contract:
/// - `put` is durable when it returns `Ok`: a later `get` (from any process sharing the store)
///   returns the bytes. Names are content-addressed, so `put` of a name that exists is a
///   harmless overwrite with the same bytes; it is safe to retry.
/// - `get` answers `Ok(None)` for a name never put; it is what the embedded mode serves
///   `/images/{name}` from.
/// - Files are never deleted by the catalog: a removed image's files may still be named by
///   another product (the same picture uploaded twice) or by an older event a view replays.
/// - `url` is pure: the address shoppers load `name` from (`/images/{name}` on this server,
///   or the bucket's public address).
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Stores `bytes` (of `content_type`) under `name`.
    async fn put(
        &self,
        name: &str,
        bytes: Bytes,
        content_type: &'static str,
    ) -> Result<(), ImageStoreError>;

    /// The bytes stored under `name`, if any.
    async fn get(&self, name: &str) -> Result<Option<Bytes>, ImageStoreError>;

    /// The address shoppers load `name` from.
    fn url(&self, name: &str) -> String;

    /// The origin of [`ImageStore::url`]'s addresses when it is not the catalog's own (for
    /// the pages' Content-Security-Policy); `None` when this server serves them.
    fn foreign_origin(&self) -> Option<String>;

    /// Whether the catalog serves the files itself at `/images/{name}`.
    fn served_here(&self) -> bool {
        self.foreign_origin().is_none()
    }

    /// Succeeds when the store answers (readiness).
    async fn check(&self) -> Result<(), ImageStoreError>;
}
