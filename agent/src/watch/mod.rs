//! Finding scanned files that are complete and new.
//!
//! Events (notify) make pick-up quick; a periodic rescan catches what events
//! miss (network shares, a watcher overflow) and what arrived while the agent
//! was down. An event only marks its folder for listing; every decision is
//! taken by [`settle::Settler`] from whole listings, so files leave in scan
//! order however events arrive. In poll mode (network shares) there are no
//! events, only the rescan. Every file-system call runs on the blocking pool,
//! so a hung share cannot stall the async threads.

pub mod settle;

use crate::clock::Clock;
use crate::config::WatchMode;
use crate::sealing::Sealing;
use notify::{RecursiveMode, Watcher as _};
pub use settle::{Candidate, Entry, Settler, ignored};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TICK: Duration = Duration::from_millis(100);

pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The regular files in `dir` with their size and mtime.
fn list(dir: &Path) -> Vec<Entry> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list watch folder");
            return Vec::new();
        }
    };
    entries
        .flatten()
        .take(settle::MAX_PENDING)
        .filter_map(|entry| {
            let meta = entry.metadata().ok().filter(|m| m.is_file())?;
            Some(Entry {
                path: entry.path(),
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
            })
        })
        .collect()
}

pub struct Watch {
    pub dirs: Vec<PathBuf>,
    pub settle: Duration,
    pub rescan: Duration,
    pub mode: WatchMode,
    pub clock: Clock,
    pub sealing: Arc<Mutex<Sealing>>,
}

impl Watch {
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

    /// Sends candidates in scan order per folder. `skipped` brings back files
    /// ingest handed back unread (they vanished or changed meanwhile).
    pub async fn run(
        self,
        out: mpsc::Sender<Candidate>,
        mut skipped: mpsc::UnboundedReceiver<PathBuf>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
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
        let mut settler = Some(Settler::new(self.settle));
        // Folders with events since the last tick, listed at the tick.
        let mut dirty = vec![false; self.dirs.len()];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan: Option<Duration> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(i) = events.recv() => dirty[i] = true,
                Some(path) = skipped.recv() => {
                    if let Some(settler) = settler.as_mut() {
                        settler.release(&path);
                    }
                    if let Some(i) = self.dirs.iter().position(|d| path.parent() == Some(d.as_path())) {
                        dirty[i] = true;
                    }
                }
                _ = tick.tick() => {
                    let now = self.clock.now();
                    if last_scan.is_none_or(|t| now.saturating_sub(t) >= self.rescan) {
                        last_scan = Some(now);
                        dirty.iter_mut().for_each(|d| *d = true);
                    }
                    let Some(mut owned) = settler.take() else {
                        return Ok(());
                    };
                    // A folder with a file that may have settled is listed again.
                    for (i, dir) in self.dirs.iter().enumerate() {
                        dirty[i] |= owned.worth_listing(dir, now);
                    }
                    let to_list: Vec<PathBuf> = self
                        .dirs
                        .iter()
                        .zip(&dirty)
                        .filter(|(_, d)| **d)
                        .map(|(dir, _)| dir.clone())
                        .collect();
                    dirty.iter_mut().for_each(|d| *d = false);
                    if to_list.is_empty() {
                        settler = Some(owned);
                        continue;
                    }
                    let clock = self.clock;
                    let Some((back, listings)) = Self::blocking(&shutdown, move || {
                        let mut listings = Vec::with_capacity(to_list.len());
                        for dir in to_list {
                            let started = clock.now();
                            let entries = list(&dir);
                            let listed = owned.listing(&dir, started, entries, &mut |path| {
                                std::fs::File::open(path).is_ok()
                            });
                            let waiting = owned.waiting(&dir);
                            listings.push((dir, started, listed, waiting));
                        }
                        (owned, listings)
                    })
                    .await?
                    else {
                        return Ok(());
                    };
                    settler = Some(back);
                    for (dir, started, listed, waiting) in listings {
                        self.sealing
                            .lock()
                            .map_err(|_| anyhow::anyhow!("sealing state poisoned"))?
                            .listed(&dir, started, listed.saw_new, waiting, listed.ready.len());
                        for candidate in listed.ready {
                            if out.send(candidate).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
    }
}
