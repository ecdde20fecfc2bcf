//! Image bytes, content-addressed: a blob's name is its SHA-256.
//!
//! Two backends behind [`BlobStore`]: `folder` (the embedded default) and
//! `object` (any S3-compatible store, for replicas). Both are create-only and
//! whole-or-absent: a reader never sees part of a blob, and storing the same
//! bytes twice is a no-op. Names come only from hashes we computed, never from
//! a client's file name. Only retention deletes a blob, and only one that no
//! row references (see `retention`).

pub(crate) mod folder;
mod object;
#[cfg(test)]
mod tests;

pub use folder::FolderBlobs;
pub use object::ObjectBlobs;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0:?} is not a SHA-256 hex digest")]
    BadName(String),
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("blob task failed: {0}")]
    Task(String),
    #[error("object store {store}: {source}")]
    Object {
        store: String,
        #[source]
        source: object_store::Error,
    },
    #[error("blob store location {location:?}: {message}")]
    Location { location: String, message: String },
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn contains(&self, sha256: &str) -> Result<bool, BlobError>;
    async fn get(&self, sha256: &str) -> Result<Vec<u8>, BlobError>;
    /// Stores bytes and returns their SHA-256; storing the same bytes twice is a no-op.
    async fn put(&self, bytes: Vec<u8>) -> Result<String, BlobError>;
    /// Takes over complete local files whose SHA-256 was verified, as one
    /// batch: their data and directory syncs (or uploads) are shared (group
    /// commit). One result per file, in order; on success a file is gone from
    /// its path, on failure it is left there.
    async fn put_files(&self, files: Vec<(PathBuf, String)>) -> Vec<Result<(), BlobError>>;
    /// Makes blobs that are already there durable before something that
    /// uses them is acknowledged: bytes a crashed process renamed into a
    /// folder show before their directory is synced. An object store holds
    /// only what it acknowledged, so there is nothing to do.
    async fn sync_existing(&self, _sha256s: &[String]) -> Result<(), BlobError> {
        Ok(())
    }
    /// Removes a blob for good; removing one that is not there is a no-op.
    /// Only retention's sweep calls it, after the store has checked that
    /// nothing references the blob (see `Store::sweep_blobs`).
    async fn delete(&self, sha256: &str) -> Result<(), BlobError>;
}

/// Opens the blob store a `--blobs` value names: `s3://bucket[/prefix]`
/// (credentials and endpoint from the usual `AWS_*` variables) or a folder.
pub fn open(location: &str) -> Result<Arc<dyn BlobStore>, BlobError> {
    if location.starts_with("s3://") {
        Ok(Arc::new(ObjectBlobs::s3_from_env(location)?))
    } else if location.contains("://") {
        Err(BlobError::Location {
            location: location.to_owned(),
            message: "use s3://bucket/prefix or a folder path".into(),
        })
    } else {
        Ok(Arc::new(FolderBlobs::open(Path::new(location))?))
    }
}

pub fn is_sha256_hex(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
