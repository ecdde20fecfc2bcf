//! Finding scanned files that are complete and new.
//!
//! Events (notify) make pick-up quick; a periodic rescan catches what events
//! miss (network shares, a watcher overflow) and what arrived while the agent
//! was down. A file is handed on only after its size and mtime stayed the same
//! for the settle time and it opens for reading: scanners write in place.
//! Temp names scanners use are ignored until renamed.

use crate::queue::{FileKey, Queue};
use notify::{RecursiveMode, Watcher as _};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A file ready to ingest.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub watch_dir: PathBuf,
    pub key: FileKey,
}

const TICK: Duration = Duration::from_millis(100);
/// Bounds the memory spent on files seen but not yet settled.
const MAX_PENDING: usize = 100_000;

/// Names a scanner uses while it is still writing, or that are not scans.
pub fn ignored(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with('~')
        || name.ends_with('~')
        || [
            ".tmp",
            ".part",
            ".partial",
            ".crdownload",
            ".filepart",
            ".reason.txt",
            ".db",
            ".ini",
        ]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

struct Pending {
    watch_dir: PathBuf,
    size: u64,
    mtime_ns: i64,
    since: Instant,
}

pub struct Watch {
    dirs: Vec<PathBuf>,
    settle: Duration,
    rescan: Duration,
    queue: Arc<Queue>,
}

impl Watch {
    pub fn new(dirs: Vec<PathBuf>, settle: Duration, rescan: Duration, queue: Arc<Queue>) -> Watch {
        Watch {
            dirs,
            settle,
            rescan,
            queue,
        }
    }

    /// Sends candidates in the order they settled (oldest mtime first within a tick).
    pub async fn run(
        self,
        out: mpsc::Sender<Candidate>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let (event_tx, mut events) = mpsc::channel::<PathBuf>(4096);
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(event) = res {
                    for path in event.paths {
                        // A full channel is fine: the rescan will find the file.
                        let _ = event_tx.try_send(path);
                    }
                }
            })?;
        for dir in &self.dirs {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating watch folder {}: {e}", dir.display()))?;
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                // Some shares refuse watches; polling still covers them.
                tracing::warn!(dir = %dir.display(), error = %e, "no change events for this folder; polling only");
            }
        }
        let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
        // Files already taken, by path: skips re-checking the queue on each rescan.
        let mut taken: HashMap<PathBuf, (u64, i64)> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(path) = events.recv() => {
                    if let Some(dir) = self.dirs.iter().find(|d| path.parent() == Some(d.as_path())) {
                        self.consider(&mut pending, dir.clone(), path);
                    }
                }
                _ = tick.tick() => {
                    if last_scan.is_none_or(|t| t.elapsed() >= self.rescan) {
                        last_scan = Some(Instant::now());
                        self.rescan_all(&mut pending, &mut taken);
                    }
                    for candidate in self.settled(&mut pending, &mut taken).await? {
                        if out.send(candidate).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    fn consider(&self, pending: &mut HashMap<PathBuf, Pending>, watch_dir: PathBuf, path: PathBuf) {
        if ignored(&path) || pending.contains_key(&path) || pending.len() >= MAX_PENDING {
            return;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        pending.insert(
            path,
            Pending {
                watch_dir,
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
                since: Instant::now(),
            },
        );
    }

    fn rescan_all(
        &self,
        pending: &mut HashMap<PathBuf, Pending>,
        taken: &mut HashMap<PathBuf, (u64, i64)>,
    ) {
        let mut present = std::collections::HashSet::new();
        for dir in &self.dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot list watch folder");
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                present.insert(path.clone());
                if let Some(&(size, mtime)) = taken.get(&path)
                    && entry
                        .metadata()
                        .is_ok_and(|m| m.len() == size && mtime_ns(&m) == mtime)
                {
                    continue;
                }
                self.consider(pending, dir.clone(), path);
            }
        }
        taken.retain(|path, _| present.contains(path));
    }

    async fn settled(
        &self,
        pending: &mut HashMap<PathBuf, Pending>,
        taken: &mut HashMap<PathBuf, (u64, i64)>,
    ) -> anyhow::Result<Vec<Candidate>> {
        let mut ready = Vec::new();
        let mut gone = Vec::new();
        for (path, p) in pending.iter_mut() {
            let Ok(meta) = std::fs::metadata(path) else {
                gone.push(path.clone());
                continue;
            };
            let (size, mtime) = (meta.len(), mtime_ns(&meta));
            if (size, mtime) != (p.size, p.mtime_ns) {
                (p.size, p.mtime_ns, p.since) = (size, mtime, Instant::now());
                continue;
            }
            // Windows scanners hold the file open exclusively while writing.
            if p.since.elapsed() >= self.settle && std::fs::File::open(path).is_ok() {
                gone.push(path.clone());
                ready.push(Candidate {
                    watch_dir: p.watch_dir.clone(),
                    key: FileKey {
                        path: path.clone(),
                        size,
                        mtime_ns: mtime,
                    },
                });
            }
        }
        for path in gone {
            pending.remove(&path);
        }
        ready.sort_by(|a, b| (a.key.mtime_ns, &a.key.path).cmp(&(b.key.mtime_ns, &b.key.path)));
        let mut fresh = Vec::with_capacity(ready.len());
        for candidate in ready {
            let queue = Arc::clone(&self.queue);
            let key = candidate.key.clone();
            let known = tokio::task::spawn_blocking(move || queue.knows(&key)).await??;
            if known {
                // Only what the queue holds is skipped on later rescans: a file
                // whose ingest failed is seen, and tried, again.
                taken.insert(
                    candidate.key.path.clone(),
                    (candidate.key.size, candidate.key.mtime_ns),
                );
            } else {
                fresh.push(candidate);
            }
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_temp_names_are_ignored() {
        for name in [
            "scan.tmp",
            ".hidden.jpg",
            "~scan.jpg",
            "scan.jpg~",
            "x.PART",
            "x.pdf.crdownload",
            "a.jpg.reason.txt",
        ] {
            assert!(ignored(Path::new(name)), "{name}");
        }
        for name in ["scan_0001.jpg", "batch.TIF", "fax.pdf"] {
            assert!(!ignored(Path::new(name)), "{name}");
        }
    }
}
