//! Cleaning up uploads that were abandoned half way.
//!
//! A partial upload is kept so that an agent that reconnects can resume it;
//! one nobody has written to for `ttl` (the desk was re-imaged, the page was
//! discarded) is only taking disk space. Live uploads touch their file with
//! every chunk, so age is measured from the last write.

use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

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
