//! Blobs in an object store (AWS S3, MinIO, Garage, Ceph) via `object_store`.
//!
//! Keys are `<prefix>/<aa>/<sha256>`. A blob up to one part goes up in one
//! create-only PUT (`If-None-Match: *`); `AlreadyExists` is success, because
//! equal names mean equal bytes. Larger blobs go up as a multipart upload,
//! which the store shows under the key only once it is completed; a failed
//! one is aborted. Either way a reader sees a whole blob or none.
//! A racing multipart upload of the same blob may complete twice; both write
//! the same bytes, so that is harmless.

use super::{BlobError, BlobStore, is_sha256_hex};
use async_trait::async_trait;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Blobs larger than this go up in parts of this size (S3 wants ≥ 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one blob uploaded at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Files of one batch uploaded at once: a batch costs a few round trips, not
/// one per page, without opening hundreds of connections.
const FILES_IN_FLIGHT: usize = 16;

pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    /// Where the blobs live, e.g. `s3://bucket/prefix`, for error messages.
    name: String,
}

impl ObjectBlobs {
    /// Blobs under `prefix` of any object store.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, name: String) -> Result<Self, BlobError> {
        let prefix = Key::parse(prefix.trim_matches('/')).map_err(|e| BlobError::Location {
            location: name.clone(),
            message: format!("bad prefix: {e}"),
        })?;
        Ok(ObjectBlobs {
            store,
            prefix,
            name,
        })
    }

    /// `s3://bucket[/prefix]` with endpoint and credentials from the `AWS_*`
    /// environment variables (`AWS_ENDPOINT`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, ...).
    pub fn s3_from_env(url: &str) -> Result<Self, BlobError> {
        Self::s3(url, AmazonS3Builder::from_env())
    }

    /// `s3://bucket[/prefix]` with the given client settings.
    pub fn s3(url: &str, builder: AmazonS3Builder) -> Result<Self, BlobError> {
        let bad = |message: String| BlobError::Location {
            location: url.to_owned(),
            message,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if parsed.scheme() != "s3" {
            return Err(bad("not an s3:// URL".into()));
        }
        let bucket = parsed
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("no bucket named".into()))?;
        let store = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Self::new(Arc::new(store), parsed.path(), url.to_owned())
    }

    pub(super) fn key(&self, sha256: &str) -> Result<Key, BlobError> {
        if !is_sha256_hex(sha256) {
            return Err(BlobError::BadName(sha256.to_owned()));
        }
        Ok(self.prefix.clone().join(&sha256[..2]).join(sha256))
    }

    fn fail(&self, source: object_store::Error) -> BlobError {
        BlobError::Object {
            store: self.name.clone(),
            source,
        }
    }

    async fn put_whole(&self, key: &Key, bytes: Vec<u8>) -> Result<(), BlobError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(key, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Uploads what `source` reads (from `path`) in parts; the blob appears
    /// only when all are in, and a failed upload is aborted.
    async fn put_parts(
        &self,
        key: &Key,
        mut source: impl AsyncRead + Unpin + Send,
        path: &Path,
    ) -> Result<(), BlobError> {
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| self.fail(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let sent: Result<(), BlobError> = async {
            loop {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.fail(e))?;
                let mut part = Vec::with_capacity(PART_SIZE);
                let read = (&mut source)
                    .take(PART_SIZE as u64)
                    .read_to_end(&mut part)
                    .await
                    .map_err(|source| BlobError::Io {
                        path: path.to_owned(),
                        source,
                    })?;
                if read == 0 {
                    return Ok(());
                }
                writer.put(part.into());
            }
        }
        .await;
        match sent {
            Ok(()) => writer.finish().await.map(drop).map_err(|e| self.fail(e)),
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, store = %self.name, "aborting a multipart upload failed");
                }
                Err(e)
            }
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

#[async_trait]
impl BlobStore for ObjectBlobs {
    async fn contains(&self, sha256: &str) -> Result<bool, BlobError> {
        let key = self.key(sha256)?;
        match self.store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn get(&self, sha256: &str) -> Result<Vec<u8>, BlobError> {
        let key = self.key(sha256)?;
        let found = match self.store.get(&key).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(sha256.to_owned()));
            }
            Err(e) => return Err(self.fail(e)),
        };
        Ok(found.bytes().await.map_err(|e| self.fail(e))?.to_vec())
    }

    async fn put(&self, bytes: Vec<u8>) -> Result<String, BlobError> {
        let sha = super::sha256_hex(&bytes);
        let key = self.key(&sha)?;
        if bytes.len() <= PART_SIZE {
            self.put_whole(&key, bytes).await?;
        } else if !self.contains(&sha).await? {
            self.put_parts(&key, &bytes[..], Path::new("<memory>"))
                .await?;
        }
        Ok(sha)
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        let key = self.key(sha256)?;
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn put_files(&self, files: Vec<(PathBuf, String)>) -> Vec<Result<(), BlobError>> {
        futures_util::stream::iter(files)
            .map(|(path, sha256)| async move { self.put_file(&path, &sha256).await })
            .buffered(FILES_IN_FLIGHT)
            .collect()
            .await
    }
}

impl ObjectBlobs {
    /// One file of a batch: uploaded (unless already there), then removed.
    async fn put_file(&self, path: &Path, sha256: &str) -> Result<(), BlobError> {
        let key = self.key(sha256)?;
        let file = tokio::fs::File::open(path).await.map_err(io(path))?;
        let size = file.metadata().await.map_err(io(path))?.len();
        if size <= PART_SIZE as u64 {
            let bytes = tokio::fs::read(path).await.map_err(io(path))?;
            self.put_whole(&key, bytes).await?;
        } else if !self.contains(sha256).await? {
            self.put_parts(&key, file, path).await?;
        }
        tokio::fs::remove_file(path).await.map_err(io(path))
    }
}
