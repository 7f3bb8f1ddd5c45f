//! `FsImageStore`: renditions as files under a directory (the embedded mode's data directory),
//! served by the catalog itself at `/images/{name}`.

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{is_rendition_name, ImageStore, ImageStoreError};

/// See the module documentation.
pub struct FsImageStore {
    directory: PathBuf,
    base_url: String,
}

impl FsImageStore {
    /// Files under `directory` (created when missing), addressed as `{base_url}/{name}`
    /// (`/images` on the catalog's own origin).
    pub fn open(directory: PathBuf, base_url: &str) -> Result<Self, ImageStoreError> {
        std::fs::create_dir_all(&directory).map_err(|error| {
            ImageStoreError::Unexpected(format!(
                "cannot create the image directory {}: {error}",
                directory.display()
            ))
        })?;
        Ok(FsImageStore {
            directory,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    fn path(&self, name: &str) -> Result<PathBuf, ImageStoreError> {
        // Only names this crate writes: no separators, no `..`, nothing else on disk.
        if !is_rendition_name(name) {
            return Err(ImageStoreError::Unexpected(format!(
                "{name:?} is not an image file name"
            )));
        }
        Ok(self.directory.join(name))
    }
}

#[async_trait]
impl ImageStore for FsImageStore {
    async fn put(
        &self,
        name: &str,
        bytes: Bytes,
        _content_type: &'static str,
    ) -> Result<(), ImageStoreError> {
        let path = self.path(name)?;
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || {
            // Written to a temporary file, synced, then renamed: a crash leaves either the
            // whole file or none, never a torn one under the final name.
            let mut file = tempfile::NamedTempFile::new_in(&directory)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.as_file().sync_all()?;
            file.persist(&path).map_err(|error| error.error)?;
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|error| ImageStoreError::Unexpected(error.to_string()))?
        .map_err(|error| ImageStoreError::Unavailable(format!("cannot write {name}: {error}")))
    }

    async fn get(&self, name: &str) -> Result<Option<Bytes>, ImageStoreError> {
        // A name this store never writes is never there.
        let Ok(path) = self.path(name) else {
            return Ok(None);
        };
        match tokio::fs::read(path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(ImageStoreError::Unavailable(format!(
                "cannot read {name}: {error}"
            ))),
        }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base_url)
    }

    fn foreign_origin(&self) -> Option<String> {
        None
    }

    async fn check(&self) -> Result<(), ImageStoreError> {
        tokio::fs::metadata(&self.directory)
            .await
            .map(|_| ())
            .map_err(|error| {
                ImageStoreError::Unavailable(format!("{}: {error}", self.directory.display()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::image_store_conformance!(async {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = FsImageStore::open(directory.path().join("images"), "/images").expect("opens");
        (store, directory)
    });

    #[tokio::test]
    async fn a_name_that_is_not_a_rendition_is_neither_written_nor_read() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = FsImageStore::open(directory.path().to_path_buf(), "/images").expect("opens");
        let outside = "../escape.page.jpg";
        assert!(store
            .put(outside, Bytes::from_static(b"x"), "image/jpeg")
            .await
            .is_err());
        assert!(store.get(outside).await.expect("answers").is_none());
        assert!(store.get("passwd").await.expect("answers").is_none());
    }
}
