//! Finding scanned files that are complete and new.
//!
//! Events (notify) make pick-up quick; a periodic rescan catches what events
//! miss (network shares, a watcher overflow) and what arrived while the agent
//! was down. A file is handed on only after its size and mtime stayed the same
//! for the settle time and it opens for reading: scanners write in place.
//! Temp names scanners use are ignored until renamed. In poll mode (network
//! shares) there are no events, only the rescan. Every file-system call runs
//! on the blocking pool, so a hung share cannot stall the async threads.

use crate::config::WatchMode;
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
/// How long an unsettled older file may hold back newer ones.
const HOLD_BACK_LIMIT: Duration = Duration::from_secs(10);
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

/// How long a file handed to ingest is left alone before it is looked at
/// again; by then it is queued (and skipped for good) or its ingest failed
/// and it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A file version the watcher will not hand on again.
struct Taken {
    size: u64,
    mtime_ns: i64,
    /// When it was handed to ingest; `None` once the queue holds it.
    sent: Option<Instant>,
}

impl Taken {
    fn sent(key: &FileKey) -> Taken {
        Taken {
            size: key.size,
            mtime_ns: key.mtime_ns,
            sent: Some(Instant::now()),
        }
    }

    fn queued(key: &FileKey) -> Taken {
        Taken {
            sent: None,
            ..Taken::sent(key)
        }
    }

    /// True when the file is unchanged and not due for another try.
    fn covers(&self, stat: Stat) -> bool {
        (stat.size, stat.mtime_ns) == (self.size, self.mtime_ns)
            && self.sent.is_none_or(|at| at.elapsed() < RETRY_AFTER)
    }
}

struct Pending {
    watch_dir: PathBuf,
    size: u64,
    mtime_ns: i64,
    since: Instant,
}

/// What a stat of a file found, taken on the blocking pool.
#[derive(Debug, Clone, Copy)]
struct Stat {
    size: u64,
    mtime_ns: i64,
}

fn stat(path: &Path) -> Option<Stat> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| Stat {
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
    })
}

pub struct Watch {
    dirs: Vec<PathBuf>,
    settle: Duration,
    rescan: Duration,
    mode: WatchMode,
    queue: Arc<Queue>,
}

impl Watch {
    pub fn new(
        dirs: Vec<PathBuf>,
        settle: Duration,
        rescan: Duration,
        mode: WatchMode,
        queue: Arc<Queue>,
    ) -> Watch {
        Watch {
            dirs,
            settle,
            rescan,
            mode,
            queue,
        }
    }

    /// Runs blocking file-system work off the async threads: a hung network
    /// share stalls this watcher only, never the runtime. `None` on shutdown.
    async fn blocking<T: Send + 'static>(
        shutdown: &CancellationToken,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<Option<T>> {
        tokio::select! {
            _ = shutdown.cancelled() => Ok(None),
            result = tokio::task::spawn_blocking(f) => Ok(Some(result?)),
        }
    }

    /// Sends candidates in the order they settled (oldest mtime first within a tick).
    pub async fn run(
        self,
        out: mpsc::Sender<Candidate>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        // An event only says "this folder changed"; the folder is then listed
        // and its settled files taken in mtime order. Handling events path by
        // path would take files out of scan order whenever events are lost or
        // arrive in bursts (a full channel, a watcher overflow).
        let (event_tx, mut events) = mpsc::channel::<usize>(64);
        let dirs = self.dirs.clone();
        let mode = self.mode;
        // Creating folders and watches touches the file system too.
        let watcher = Self::blocking(&shutdown, move || -> anyhow::Result<_> {
            for dir in &dirs {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("creating watch folder {}: {e}", dir.display()))?;
            }
            if mode == WatchMode::Poll {
                return Ok(None);
            }
            let event_dirs = dirs.clone();
            let mut watcher =
                notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                    if let Ok(event) = res {
                        for path in event.paths {
                            let changed = event_dirs.iter().position(|d| path.parent() == Some(d.as_path()));
                            if let Some(i) = changed {
                                // A full channel already holds a wake-up: nothing is lost.
                                let _ = event_tx.try_send(i);
                            }
                        }
                    }
                })?;
            for dir in &dirs {
                if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    // Some shares refuse watches; polling still covers them.
                    tracing::warn!(dir = %dir.display(), error = %e, "no change events for this folder; polling only");
                }
            }
            Ok(Some(watcher))
        })
        .await?;
        // Kept alive for the loop; `None` in poll mode.
        let Some(_watcher) = watcher.transpose()? else {
            return Ok(());
        };
        let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
        // Files already taken, by path: skips re-checking the queue on each rescan.
        let mut taken: HashMap<PathBuf, Taken> = HashMap::new();
        // Folders with events since the last tick, listed at the tick.
        let mut dirty = vec![false; self.dirs.len()];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(i) = events.recv() => dirty[i] = true,
                _ = tick.tick() => {
                    let mut seen: Vec<(PathBuf, PathBuf)> = Vec::new();
                    if last_scan.is_none_or(|t| t.elapsed() >= self.rescan) {
                        last_scan = Some(Instant::now());
                        dirty.iter_mut().for_each(|d| *d = true);
                    }
                    if dirty.iter().any(|d| *d) {
                        let dirs: Vec<PathBuf> = self
                            .dirs
                            .iter()
                            .zip(&dirty)
                            .filter(|(_, d)| **d)
                            .map(|(dir, _)| dir.clone())
                            .collect();
                        dirty.iter_mut().for_each(|d| *d = false);
                        let Some(listed) = self.list(dirs.clone(), &shutdown).await? else {
                            return Ok(());
                        };
                        let present: std::collections::HashSet<&PathBuf> =
                            listed.iter().map(|(_, p, _)| p).collect();
                        // Forget files that left a listed folder (delivered and moved to done).
                        taken.retain(|path, _| {
                            present.contains(path)
                                || !path.parent().is_some_and(|p| dirs.iter().any(|d| d == p))
                        });
                        for (dir, path, stat) in listed {
                            if let (Some(taken), Some(stat)) = (taken.get(&path), stat)
                                && taken.covers(stat)
                            {
                                continue;
                            }
                            seen.push((dir, path));
                        }
                    }
                    seen.retain(|(_, path)| !ignored(path) && !pending.contains_key(path));
                    let paths: Vec<PathBuf> = seen.iter().map(|(_, p)| p.clone()).collect();
                    let Some(stats) = Self::blocking(&shutdown, move || {
                        paths.iter().map(|p| stat(p)).collect::<Vec<_>>()
                    }).await? else {
                        return Ok(());
                    };
                    for ((dir, path), stat) in seen.into_iter().zip(stats) {
                        if let Some(stat) = stat && pending.len() < MAX_PENDING {
                            pending.insert(path, Pending {
                                watch_dir: dir,
                                size: stat.size,
                                mtime_ns: stat.mtime_ns,
                                since: Instant::now(),
                            });
                        }
                    }
                    let Some(candidates) = self.settled(&mut pending, &mut taken, &shutdown).await? else {
                        return Ok(());
                    };
                    for candidate in candidates {
                        taken.insert(candidate.key.path.clone(), Taken::sent(&candidate.key));
                        if out.send(candidate).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Lists the given folders: `(folder, path, stat)` per entry.
    async fn list(
        &self,
        dirs: Vec<PathBuf>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Vec<(PathBuf, PathBuf, Option<Stat>)>>> {
        Self::blocking(shutdown, move || {
            let mut listed = Vec::new();
            for dir in &dirs {
                let entries = match std::fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot list watch folder");
                        continue;
                    }
                };
                for entry in entries.flatten().take(MAX_PENDING) {
                    let stat = entry.metadata().ok().filter(|m| m.is_file()).map(|m| Stat {
                        size: m.len(),
                        mtime_ns: mtime_ns(&m),
                    });
                    listed.push((dir.clone(), entry.path(), stat));
                }
            }
            listed
        })
        .await
    }

    async fn settled(
        &self,
        pending: &mut HashMap<PathBuf, Pending>,
        taken: &mut HashMap<PathBuf, Taken>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Vec<Candidate>>> {
        if pending.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let settle = self.settle;
        // Which pending files have sat unchanged long enough to try opening.
        let checks: Vec<(PathBuf, bool)> = pending
            .iter()
            .map(|(path, p)| (path.clone(), p.since.elapsed() >= settle))
            .collect();
        let Some(looks) = Self::blocking(shutdown, move || {
            checks
                .into_iter()
                .map(|(path, old_enough)| {
                    let stat = stat(&path);
                    // Windows scanners hold the file open exclusively while writing.
                    let opens = old_enough && stat.is_some() && std::fs::File::open(&path).is_ok();
                    (path, stat, opens)
                })
                .collect::<Vec<_>>()
        })
        .await?
        else {
            return Ok(None);
        };
        // Per folder, pending files in scan (mtime) order, and whether each is ready.
        let mut by_dir: HashMap<PathBuf, Vec<(i64, PathBuf, bool, Duration)>> = HashMap::new();
        for (path, stat, opens) in looks {
            let Some(stat) = stat else {
                pending.remove(&path);
                continue;
            };
            let Some(p) = pending.get_mut(&path) else {
                continue;
            };
            if (stat.size, stat.mtime_ns) != (p.size, p.mtime_ns) {
                (p.size, p.mtime_ns, p.since) = (stat.size, stat.mtime_ns, Instant::now());
            }
            let ready = opens && p.since.elapsed() >= self.settle;
            by_dir.entry(p.watch_dir.clone()).or_default().push((
                p.mtime_ns,
                path,
                ready,
                p.since.elapsed(),
            ));
        }
        // Take files strictly in scan order: a newer file waits while an older
        // one is still settling (it may only have been listed later). A file
        // stuck for long (locked, still growing) stops holding the others up.
        let mut ready = Vec::new();
        for (watch_dir, mut files) in by_dir {
            files.sort();
            for (mtime_ns, path, is_ready, waited) in files {
                if is_ready {
                    let size = pending.remove(&path).map_or(0, |p| p.size);
                    ready.push(Candidate {
                        watch_dir: watch_dir.clone(),
                        key: FileKey {
                            path,
                            size,
                            mtime_ns,
                        },
                    });
                } else if waited < self.settle + HOLD_BACK_LIMIT {
                    break;
                }
            }
        }
        ready.sort_by(|a, b| (a.key.mtime_ns, &a.key.path).cmp(&(b.key.mtime_ns, &b.key.path)));
        let mut fresh = Vec::with_capacity(ready.len());
        for candidate in ready {
            let queue = Arc::clone(&self.queue);
            let key = candidate.key.clone();
            let Some(known) = Self::blocking(shutdown, move || queue.knows(&key)).await? else {
                return Ok(None);
            };
            if known? {
                taken.insert(candidate.key.path.clone(), Taken::queued(&candidate.key));
            } else {
                fresh.push(candidate);
            }
        }
        Ok(Some(fresh))
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
