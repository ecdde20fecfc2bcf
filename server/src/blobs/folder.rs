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
        // All 256 fan-out folders up front, their entries synced once: a
        // commit then never creates a folder (whose own entry in the root
        // it would also have to sync) and never pays for a new inode.
        for prefix in 0..=255u8 {
            let dir = root.join(format!("{prefix:02x}"));
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        sync_dir(root)?;
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
    rename_into(from, to)?;
    // Also when the bytes were there: found is not durable (see `install_batch`).
    sync_dir(to.parent().unwrap_or(Path::new(".")))
}

/// Renames `from` to `to`, or drops `from` when `to` already holds the bytes.
/// Either way the directory needs a sync before the blob counts as stored.
fn rename_into(from: &Path, to: &Path) -> Result<(), BlobError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if to.exists() {
        std::fs::remove_file(from).map_err(io(from))?;
        return Ok(());
    }
    std::fs::rename(from, to).map_err(io(to))
}

/// Syncs the directory of each blob once, from a few threads at once; the
/// first failure, if any.
fn sync_dirs_of(targets: &[PathBuf]) -> Result<(), BlobError> {
    let mut dirs: Vec<PathBuf> = targets
        .iter()
        .filter_map(|t| t.parent().map(Path::to_owned))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    in_parallel(&dirs, |dir| sync_dir(dir))
        .into_iter()
        .collect()
}

/// Runs `f` on every item from a few threads at once: concurrent fsyncs are
/// merged by the file system into shared journal commits, serial ones are not.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const THREADS: usize = 16;
    if items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    let per_thread = items.len().div_ceil(THREADS);
    let (first, rest) = items.split_at(per_thread);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rest
            .chunks(per_thread)
            .map(|chunk| scope.spawn(|| chunk.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        // The calling thread takes the first share rather than only waiting.
        let mut results: Vec<R> = first.iter().map(&f).collect();
        for handle in handles {
            match handle.join() {
                Ok(more) => results.extend(more),
                // The closures do not panic; if one did, the scope re-raises it.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

/// Syncs each file's data, moves it into place, then syncs each touched
/// directory once. A file whose bytes were already in place counts as
/// touching its directory: they may have been renamed in by a process that
/// crashed before its directory sync, visible now but lost by a power cut.
fn install_batch(files: &[(PathBuf, PathBuf)]) -> Vec<Result<(), BlobError>> {
    let synced = in_parallel(files, |(from, _)| {
        std::fs::File::open(from)
            .and_then(|f| f.sync_all())
            .map_err(io(from))
    });
    let mut results = Vec::with_capacity(files.len());
    let mut dirs: Vec<PathBuf> = Vec::new();
    for ((from, to), synced) in files.iter().zip(synced) {
        let moved = synced.and_then(|()| rename_into(from, to));
        if moved.is_ok()
            && let Some(dir) = to.parent()
            && !dirs.iter().any(|d| d == dir)
        {
            dirs.push(dir.to_owned());
        }
        results.push(moved);
    }
    let dir_synced = in_parallel(&dirs, |dir| sync_dir(dir));
    // A file counts as stored only once its directory entry is durable too.
    for ((_, to), result) in files.iter().zip(results.iter_mut()) {
        if result.is_ok()
            && let Some(i) = dirs.iter().position(|d| Some(d.as_path()) == to.parent())
            && let Err(e) = &dir_synced[i]
        {
            *result = Err(BlobError::Io {
                path: dirs[i].clone(),
                source: std::io::Error::other(e.to_string()),
            });
        }
    }
    results
}

/// Tests only: how often each directory was synced, to check the syncs that
/// durability rests on are made (their effect shows only after a power cut).
#[cfg(test)]
static DIR_SYNCS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

#[cfg(test)]
pub(crate) fn dir_syncs(dir: &Path) -> usize {
    DIR_SYNCS
        .lock()
        .map(|synced| synced.iter().filter(|d| *d == dir).count())
        .unwrap_or(0)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    #[cfg(test)]
    if let Ok(mut synced) = DIR_SYNCS.lock() {
        synced.push(dir.to_owned());
    }
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
        // One stat in a local folder, asked for every offered page: cheaper
        // here than the trip to the blocking pool and back.
        std::fs::exists(&path).map_err(io(&path))
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

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        let path = self.path_of(sha256)?;
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BlobError::Io { path, source }),
        })
        .await
    }

    async fn sync_existing(&self, sha256s: &[String]) -> Result<(), BlobError> {
        let targets = sha256s
            .iter()
            .map(|sha| self.path_of(sha))
            .collect::<Result<Vec<_>, _>>()?;
        blocking(move || sync_dirs_of(&targets)).await
    }

    async fn put_files(&self, files: Vec<(PathBuf, String)>) -> Vec<Result<(), BlobError>> {
        let mut results: Vec<Option<Result<(), BlobError>>> = Vec::with_capacity(files.len());
        let mut moves = Vec::new();
        let mut slots = Vec::new();
        for (i, (path, sha256)) in files.into_iter().enumerate() {
            match self.path_of(&sha256) {
                Ok(target) => {
                    moves.push((path, target));
                    slots.push(i);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let installed = match blocking(move || Ok(install_batch(&moves))).await {
            Ok(installed) => installed,
            Err(e) => {
                let msg = e.to_string();
                (0..slots.len())
                    .map(|_| Err(BlobError::Task(msg.clone())))
                    .collect()
            }
        };
        for (slot, result) in slots.into_iter().zip(installed) {
            results[slot] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(BlobError::Task("no result".into()))))
            .collect()
    }
}
