//! Blobs as files under one folder, fanned out by the first two hex digits.
//!
//! A blob is written to a temp file, fsynced, renamed into place and the
//! directory fsynced, so it is either whole or absent after a crash.

use super::{BlobError, BlobStore, is_sha256_hex, sha256_hex};
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Blobs as files under one folder, fanned out by the first two hex digits.
pub struct FolderBlobs {
    root: PathBuf,
}

impl FolderBlobs {
    pub fn open(root: &Path) -> Result<FolderBlobs, BlobError> {
        let tmp = root.join(".tmp");
        std::fs::create_dir_all(&tmp).map_err(|source| BlobError::Io { path: tmp, source })?;
        Ok(FolderBlobs {
            root: root.to_owned(),
        })
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        if !is_sha256_hex(sha256) {
            return Err(BlobError::BadName(sha256.to_owned()));
        }
        Ok(self.root.join(&sha256[..2]).join(sha256))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Renames `from` to `to` durably; if `to` exists the bytes are already there.
fn install(from: &Path, to: &Path) -> Result<(), BlobError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if to.exists() {
        std::fs::remove_file(from).map_err(io(from))?;
        return Ok(());
    }
    std::fs::rename(from, to).map_err(io(to))?;
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), BlobError> {
    // Windows has no directory fsync; NTFS journals the rename itself.
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Task(e.to_string()))?
}

#[async_trait]
impl BlobStore for FolderBlobs {
    async fn contains(&self, sha256: &str) -> Result<bool, BlobError> {
        let path = self.path_of(sha256)?;
        Ok(tokio::fs::try_exists(&path).await.map_err(io(&path))?)
    }

    async fn get(&self, sha256: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path_of(sha256)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(sha256.to_owned()))
            }
            Err(source) => Err(BlobError::Io { path, source }),
        }
    }

    async fn put(&self, bytes: Vec<u8>) -> Result<String, BlobError> {
        let tmp_dir = self.root.join(".tmp");
        let sha = sha256_hex(&bytes);
        let target = self.path_of(&sha)?;
        blocking(move || {
            if target.exists() {
                return Ok(());
            }
            let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io(&tmp_dir))?;
            tmp.write_all(&bytes).map_err(io(tmp.path()))?;
            tmp.as_file().sync_all().map_err(io(tmp.path()))?;
            let (_, path) = tmp.keep().map_err(|e| BlobError::Io {
                path: tmp_dir.clone(),
                source: e.error,
            })?;
            install(&path, &target)
        })
        .await?;
        Ok(sha)
    }

    async fn put_file(&self, path: &Path, sha256: &str) -> Result<(), BlobError> {
        let target = self.path_of(sha256)?;
        let path = path.to_owned();
        blocking(move || install(&path, &target)).await
    }
}
