//! A page upload in progress: its partial file (written straight from the
//! socket, hashed as it grows) and its checkpoints into the shared partials.

use super::*;

pub(super) struct Upload {
    pub(super) offer: PageOffer,
    pub(super) path: PathBuf,
    /// Open only while this page's bytes arrive: a session holds one partial
    /// file open, not one per page in its window (a descriptor per offered
    /// page ran a 1,024-descriptor limit out at about 30 streaming desks).
    pub(super) sink: Option<PartialSink>,
    pub(super) received: u64,
    /// Where the bytes the other replicas can see end (`SharedPartials`).
    pub(super) durable: u64,
    /// Where the next checkpoint is due: 1 MiB past the last attempt, so a
    /// checkpoint that failed (another replica holds the partial's row) is
    /// not retried at every chunk.
    pub(super) checkpoint_due: u64,
}

impl Upload {
    pub(super) fn key<'a>(&'a self, agent_id: &'a str) -> PartialKey<'a> {
        PartialKey {
            capture_id: self.offer.capture_id,
            agent_id,
            sha256: &self.offer.sha256,
            size: self.offer.size,
        }
    }
}

/// Most bytes one checkpoint part holds.
pub(super) const MAX_PART_BYTES: u64 = 4 * 1024 * 1024;

/// Copies the bytes of `upload` that the other replicas cannot see yet from
/// its local file into the shared partials; returns where the shared bytes
/// end now. Best effort: a failure only means a resume elsewhere starts
/// earlier.
pub(super) async fn checkpoint(
    shared: &dyn SharedPartials,
    agent_id: &str,
    upload: &mut Upload,
) -> u64 {
    let result: anyhow::Result<u64> = async {
        let mut reader = tokio::fs::File::open(&upload.path)
            .await
            .with_context(|| format!("reading {}", upload.path.display()))?;
        let mut at = upload.durable;
        // Each round either appends a part or learns where the shared bytes
        // really end (another session got there first); bounded all the same.
        for _ in 0..64 {
            if at >= upload.received {
                break;
            }
            let len = (upload.received - at).min(MAX_PART_BYTES);
            let mut part = vec![0u8; usize::try_from(len)?];
            tokio::io::AsyncSeekExt::seek(&mut reader, std::io::SeekFrom::Start(at)).await?;
            tokio::io::AsyncReadExt::read_exact(&mut reader, &mut part).await?;
            let end = shared.save(&upload.key(agent_id), at, &part).await?;
            if end == at {
                break;
            }
            at = end;
        }
        Ok(at)
    }
    .await;
    match result {
        Ok(end) => end,
        Err(e) => {
            tracing::warn!(page = %upload.offer.capture_id, error = format!("{e:#}"), "checkpointing a partial upload");
            upload.durable
        }
    }
}

/// A partial file and the hash of what it holds. A plain file, written
/// straight from the pieces the socket delivers: nothing of a chunk is kept
/// per connection (a tokio file would keep its own buffer).
pub(super) struct PartialSink {
    pub(super) file: std::fs::File,
    pub(super) hasher: Sha256,
}

impl PartialSink {
    /// Opens (or reopens, after a reconnect) the partial file of a page of
    /// `size` bytes; returns how many bytes it already holds.
    pub(super) fn open(path: &Path, size: u64) -> anyhow::Result<(PartialSink, u64)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut received = file.metadata()?.len();
        if received > size {
            file.set_len(0)?;
            received = 0;
        } else if received > 0 {
            // Re-hash what is already there so the final check covers every byte.
            std::io::copy(&mut (&file).take(received), &mut hasher)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        file.seek(std::io::SeekFrom::Start(received))?;
        Ok((PartialSink { file, hasher }, received))
    }

    /// [`PartialSink::open`] for `upload`. A new partial file is created
    /// right here, like the chunks written into it (a trip to the blocking
    /// pool and back cost more than the create); one that holds bytes
    /// already, after a reconnect, is re-read and hashed on the pool.
    pub(super) async fn open_for(upload: &Upload) -> anyhow::Result<(PartialSink, u64)> {
        let (path, size) = (upload.path.clone(), upload.offer.size);
        if upload.received == 0 {
            return PartialSink::open(&path, size);
        }
        tokio::task::spawn_blocking(move || PartialSink::open(&path, size))
            .await
            .context("opening a partial upload")?
    }
}
