//! Partial uploads: kept so that an agent that reconnects resumes a page
//! where its bytes stopped, and cleaned up once abandoned.
//!
//! Every replica receives a page into a local file under `partials/` (fast,
//! the embedded server needs nothing else). Replicas also checkpoint the
//! received bytes into [`SharedPartials`] (PostgreSQL: a row per partial and
//! one per part), so an agent whose next connection lands on another replica
//! resumes there from the last checkpoint instead of from zero. A partial is
//! never a page: the uplink assembles the bytes in its local file and checks
//! their SHA-256 before the page goes to the group commit.
//!
//! One nobody has written to for `ttl` (the desk was re-imaged, the page was
//! discarded) is only taking space. Live uploads touch their file with every
//! chunk, so age is measured from the last write; each replica sweeps its own
//! folder, and any replica may sweep the shared ones (one `DELETE`, safe when
//! two sweep at once).

use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Bytes received since the last checkpoint that make the next one: a large
/// page is resumable elsewhere within this much; pages below it (most scans)
/// never touch the shared store.
pub const CHECKPOINT_BYTES: usize = 1024 * 1024;

/// What a partial upload is of: checked again on every use, so a part never
/// joins another page's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialKey<'a> {
    pub capture_id: Uuid,
    pub agent_id: &'a str,
    pub sha256: &'a str,
    pub size: u64,
}

/// Partial uploads every replica can read (the replicas' database).
#[async_trait]
pub trait SharedPartials: Send + Sync + 'static {
    /// The bytes held for this page, from offset 0 (empty when none, or when
    /// what is held belongs to a different agent, digest or size).
    async fn load(&self, key: &PartialKey<'_>) -> anyhow::Result<Vec<u8>>;
    /// Appends `bytes` at `start` when that is where the held bytes end;
    /// returns where they end afterwards (unchanged when `start` did not fit,
    /// e.g. another session got further first).
    async fn save(&self, key: &PartialKey<'_>, start: u64, bytes: &[u8]) -> anyhow::Result<u64>;
    /// Drops the partial (stored, or refused for good).
    async fn forget(&self, capture_id: Uuid) -> anyhow::Result<()>;
    /// Drops partials nobody saved to for `ttl`; returns how many.
    async fn sweep(&self, ttl: Duration) -> anyhow::Result<u64>;
}

/// Sweeps the shared partials now and then until cancelled.
pub async fn run_shared(shared: Arc<dyn SharedPartials>, ttl: Duration, stop: CancellationToken) {
    let every = (ttl / 4).clamp(Duration::from_secs(60), Duration::from_secs(3600));
    loop {
        match shared.sweep(ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed abandoned shared partial uploads"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "sweeping shared partial uploads"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Removes `.part` files under `dir/<agent>/` untouched for longer than `ttl`.
pub fn sweep_once(dir: &Path, ttl: Duration) -> std::io::Result<usize> {
    let mut removed = 0;
    let agents = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    for agent in agents.flatten() {
        if !agent.file_type()?.is_dir() {
            continue;
        }
        for part in std::fs::read_dir(agent.path())?.flatten() {
            let path = part.path();
            if path.extension().is_none_or(|e| e != "part") {
                continue;
            }
            let modified = part.metadata()?.modified()?;
            if now.duration_since(modified).unwrap_or_default() > ttl {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Sweeps now and then until cancelled.
pub async fn run(dir: std::path::PathBuf, ttl: Duration, stop: CancellationToken) {
    let every = (ttl / 4).clamp(Duration::from_secs(60), Duration::from_secs(3600));
    loop {
        let (dir, sweep_dir) = (dir.clone(), dir.clone());
        match tokio::task::spawn_blocking(move || sweep_once(&sweep_dir, ttl)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(removed = n, "removed abandoned partial uploads"),
            Ok(Err(e)) => {
                tracing::warn!(dir = %dir.display(), error = %e, "sweeping partial uploads")
            }
            Err(e) => tracing::warn!(error = %e, "partial upload sweep task failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stale_partials_go() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent-1");
        std::fs::create_dir_all(&agent).unwrap();
        let stale = agent.join("a.part");
        let fresh = agent.join("b.part");
        let other = agent.join("notes.txt");
        for p in [&stale, &fresh, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let old = SystemTime::now() - Duration::from_secs(3 * 3600);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(
            sweep_once(dir.path(), Duration::from_secs(3600)).unwrap(),
            1
        );
        assert!(!stale.exists() && fresh.exists() && other.exists());
        assert_eq!(
            sweep_once(&dir.path().join("missing"), Duration::from_secs(1)).unwrap(),
            0
        );
    }
}
