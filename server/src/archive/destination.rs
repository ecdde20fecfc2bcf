//! Where bags go: a folder ([`Folder`]) or a prefix of an S3-compatible
//! object store ([`Bucket`]). Either keeps its own ledger (the bags'
//! `bag-info.txt`) and never shows a half-written bag as whole.

use super::bucket::Bucket;
use super::folder::{Folder, Held};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

#[async_trait]
pub trait Destination: Send + Sync {
    /// The bags it holds, complete ones only.
    async fn held(&self) -> anyhow::Result<Held>;
    /// Writes a whole bag (files in order, the signature last); the bytes written.
    async fn write_bag(&self, name: String, files: Vec<(String, Vec<u8>)>) -> anyhow::Result<u64>;
    /// Frees the destination for the next export (the folder's lease is
    /// freed when the process lets go of it).
    async fn release(&self) {}
    /// Where it is, for people.
    fn describe(&self) -> String;
}

/// A folder path, or `s3://bucket/prefix` (endpoint and credentials from
/// the `AWS_*` environment, as for blobs). Refuses a folder inside
/// `data_dir` and anything holding what is not an IMC export.
pub async fn open(location: &str, data_dir: Option<&Path>) -> anyhow::Result<Arc<dyn Destination>> {
    if location.starts_with("s3://") {
        Ok(Arc::new(Bucket::open(location).await?))
    } else {
        Ok(Arc::new(Folder::open(Path::new(location), data_dir)?))
    }
}

#[async_trait]
impl Destination for Folder {
    async fn held(&self) -> anyhow::Result<Held> {
        let folder = self.clone();
        tokio::task::spawn_blocking(move || Folder::held(&folder)).await?
    }

    async fn write_bag(&self, name: String, files: Vec<(String, Vec<u8>)>) -> anyhow::Result<u64> {
        let folder = self.clone();
        tokio::task::spawn_blocking(move || Folder::write_bag(&folder, &name, &files)).await?
    }

    fn describe(&self) -> String {
        self.root().display().to_string()
    }
}
