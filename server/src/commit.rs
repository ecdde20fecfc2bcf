//! Group commit for uplink pages: pages that become whole while a sync is in
//! progress are made durable together, across all connections.
//!
//! One task owns the durable step. It takes every page waiting in its channel
//! (at most [`MAX_BATCH`]), syncs their files concurrently, renames them into
//! the blob store, syncs each touched directory once, records all pages in one
//! SQLite transaction (one WAL sync), and only then answers each page. While it
//! does so the next batch gathers in the channel, so the more pages arrive, the
//! fewer syncs each costs.

use crate::blobs::BlobStore;
use crate::store::{Agent, PacketResolution, Store, StoreError, StoredPage};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Pages made durable by one sync at most; bounds the batch's memory and latency.
const MAX_BATCH: usize = 256;
/// Pages waiting for the committer; a session that finds it full waits (backpressure).
const BACKLOG: usize = 1024;

/// Why a page was not stored.
#[derive(Debug, Clone)]
pub enum CommitFailure {
    /// The page contradicts what is stored (the agent must not retry it as is).
    Conflict(String),
    /// A disk or database failure; the page may be offered again.
    Failed(String),
}

pub type CommitResult = Result<PacketResolution, CommitFailure>;

struct Job {
    agent: Agent,
    page: StoredPage,
    /// The verified partial upload to take into the blob store; `None` when the
    /// blob store already holds these bytes.
    partial: Option<PathBuf>,
    done: oneshot::Sender<CommitResult>,
}

/// The handle sessions use; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the commit task; it ends when every handle is dropped.
    pub fn start(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> Committer {
        let (jobs, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(run(store, blobs, rx));
        Committer { jobs }
    }

    /// Queues a page for the next batch; the receiver answers once it is
    /// durable (or why not).
    pub async fn commit(
        &self,
        agent: Agent,
        page: StoredPage,
        partial: Option<PathBuf>,
    ) -> oneshot::Receiver<CommitResult> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            agent,
            page,
            partial,
            done,
        };
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(job).await {
            let _ = job.done.send(Err(CommitFailure::Failed(
                "the server is shutting down".into(),
            )));
        }
        answer
    }
}

async fn run(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let pages = batch.len();
        commit_batch(&*store, &*blobs, std::mem::take(&mut batch)).await;
        tracing::trace!(pages, "group commit");
    }
}

async fn commit_batch(store: &dyn Store, blobs: &dyn BlobStore, jobs: Vec<Job>) {
    // Retention may have marked these bytes for deletion: cancel that before
    // storing or reusing them (see `crate::retention`).
    let mut names: Vec<String> = jobs.iter().map(|j| j.page.sha256.clone()).collect();
    names.sort_unstable();
    names.dedup();
    if let Err(e) = store.reserve_blobs(&names).await {
        tracing::error!(pages = jobs.len(), error = %e, "reserving blobs for a batch of pages");
        for job in jobs {
            let _ = job.done.send(Err(CommitFailure::Failed(format!(
                "reserving the bytes: {e}"
            ))));
        }
        return;
    }
    let jobs = reused_bytes_still_there(blobs, jobs).await;
    // Bytes first: a page row never names a blob that is not durable.
    let files: Vec<(usize, PathBuf, String)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, j)| j.partial.clone().map(|p| (i, p, j.page.sha256.clone())))
        .collect();
    let mut failed: Vec<Option<String>> = vec![None; jobs.len()];
    let (slots, files): (Vec<usize>, Vec<(PathBuf, String)>) =
        files.into_iter().map(|(i, p, s)| (i, (p, s))).unzip();
    for (slot, result) in slots.into_iter().zip(blobs.put_files(files).await) {
        if let Err(e) = result {
            failed[slot] = Some(format!("storing the bytes: {e}"));
        }
    }

    let mut to_record = Vec::new();
    let mut waiting = Vec::new();
    for (job, failure) in jobs.into_iter().zip(failed) {
        match failure {
            Some(why) => {
                tracing::error!(page = %job.page.capture_id, error = %why, "page not stored");
                let _ = job.done.send(Err(CommitFailure::Failed(why)));
            }
            None => {
                to_record.push((job.agent, job.page));
                waiting.push(job.done);
            }
        }
    }
    if to_record.is_empty() {
        return;
    }
    let ids: Vec<_> = to_record.iter().map(|(_, p)| p.capture_id).collect();
    match store.record_pages(to_record).await {
        Ok(results) => {
            for ((done, id), result) in waiting.into_iter().zip(ids).zip(results) {
                let answer = match result {
                    Ok(resolution) => Ok(resolution),
                    Err(StoreError::Conflict(msg)) => Err(CommitFailure::Conflict(msg)),
                    Err(e) => {
                        tracing::error!(page = %id, error = %e, "recording page");
                        Err(CommitFailure::Failed(format!("recording page {id}: {e}")))
                    }
                };
                let _ = done.send(answer);
            }
        }
        Err(e) => {
            tracing::error!(pages = ids.len(), error = %e, "recording a batch of pages");
            for done in waiting {
                let _ = done.send(Err(CommitFailure::Failed(format!("recording pages: {e}"))));
            }
        }
    }
}

/// A page offered with bytes the blob store already held was not uploaded;
/// if retention deleted them before the reservation, the page fails (the
/// agent offers it again and then uploads it). After the reservation nothing
/// deletes them before the grace period is over. The ones still there are
/// made durable before any is recorded.
async fn reused_bytes_still_there(blobs: &dyn BlobStore, jobs: Vec<Job>) -> Vec<Job> {
    let mut kept = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.partial.is_some() {
            kept.push(job);
            continue;
        }
        match blobs.contains(&job.page.sha256).await {
            Ok(true) => kept.push(job),
            Ok(false) => {
                let _ = job.done.send(Err(CommitFailure::Failed(format!(
                    "the bytes of page {} were removed meanwhile; offer it again",
                    job.page.capture_id
                ))));
            }
            Err(e) => {
                let _ = job.done.send(Err(CommitFailure::Failed(format!(
                    "checking the bytes: {e}"
                ))));
            }
        }
    }
    // Bytes found in place may not be durable yet (renamed in by a server
    // that crashed before its directory sync): sync them as if written now.
    let mut reused: Vec<String> = kept
        .iter()
        .filter(|j| j.partial.is_none())
        .map(|j| j.page.sha256.clone())
        .collect();
    if reused.is_empty() {
        return kept;
    }
    reused.sort_unstable();
    reused.dedup();
    match blobs.sync_existing(&reused).await {
        Ok(()) => kept,
        Err(e) => {
            let mut uploaded = Vec::with_capacity(kept.len());
            for job in kept {
                if job.partial.is_some() {
                    uploaded.push(job);
                } else {
                    let _ = job.done.send(Err(CommitFailure::Failed(format!(
                        "making the bytes durable: {e}"
                    ))));
                }
            }
            uploaded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::{FolderBlobs, sha256_hex};
    use crate::store::SqliteStore;
    use uuid::Uuid;

    /// A page whose bytes were already in the folder (not uploaded again) is
    /// acknowledged only after their directory was synced: they may have
    /// been renamed in by a server that crashed before its own sync.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_page_reusing_bytes_in_place_waits_for_their_directory_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("imc.sqlite3")).unwrap();
        let root = dir.path().join("blobs");
        let blobs = FolderBlobs::open(&root).unwrap();
        let bytes = b"a page the server already holds".to_vec();
        let sha256 = sha256_hex(&bytes);
        let fan_out = root.join(&sha256[..2]);
        std::fs::write(fan_out.join(&sha256), &bytes).unwrap();
        let committer = Committer::start(Arc::new(store), Arc::new(blobs));
        let agent = Agent {
            id: "agent-1".into(),
            site: "hq".into(),
            name: "desk".into(),
        };
        let page = StoredPage {
            capture_id: Uuid::new_v4(),
            packet_id: Uuid::new_v4(),
            page_index: 0,
            cover_code: None,
            sha256,
            size: bytes.len() as u64,
            content_type: "image/png".into(),
            source_name: "scan.png".into(),
            barcodes: Vec::new(),
            blank: false,
            packet_seq: None,
        };
        let before = crate::blobs::folder::dir_syncs(&fan_out);
        let answer = committer.commit(agent, page, None).await.await.unwrap();
        assert_eq!(answer.unwrap(), PacketResolution::Open);
        assert_eq!(crate::blobs::folder::dir_syncs(&fan_out), before + 1);
    }
}
