//! IMC scan-desk agent.
//!
//! Layout, in the order a page travels:
//! - [`watch`]: finds settled files in the scanner folders and hands them
//!   out in scan order ([`scan_order`], decided by [`watch::settle`]).
//! - [`ingest`]: splits a file into pages ([`pages`]), reads barcodes
//!   ([`decode`]), spools the bytes and commits them to the [`queue`], or
//!   quarantines the file with the reason; [`scan_line`] keeps the commits
//!   in scan order when a file has to be tried again.
//! - [`queue`]: the durable SQLite queue; packets are formed there; [`room`]
//!   bounds the spool and keeps free space on the disk; [`sealing`] says
//!   when an inbox's open packet closes for quiet.
//! - [`clock`]: the monotonic time the ordering and sealing rules are given.
//! - [`uplink`]: streams queued pages to the server and seals packets.
//! - [`vat`]: VAT invoice QR texts parsed into page metadata (the one parser, in imc-shared).
//! - [`cover_rules`]: the cover patterns and signing keys learned from the server.
//! - [`console`]: the clerk's live page; [`desk_cache`] keeps the desk's copy
//!   of its documents so the console names covers while the server is away.
//! - [`enroll`], [`status`], [`inspect`], [`doctor`]: the other commands.
//!
//! [`run`] takes its config and a shutdown token from the caller, so the
//! binary, the server's demo and tests all run the same code.

pub mod clock;
pub mod config;
pub mod console;
pub mod cover_rules;
pub mod decode;
pub mod desk_cache;
pub mod doctor;
pub mod enroll;
mod fsutil;
pub mod fuzzing;
pub mod ingest;
pub mod inspect;
pub use imc_pages as pages;
pub mod queue;
pub mod room;
pub mod scan_line;
pub mod scan_order;
pub mod sealing;
pub mod signal;
#[cfg(test)]
mod sim;
pub mod status;
pub mod tls;
pub mod uplink;
pub use imc_shared::vat;
pub mod watch;
#[cfg(windows)]
pub mod winservice;

use anyhow::Context;
use clock::Clock;
use config::AgentConfig;
use queue::Queue;
use scan_line::ScanLine;
use sealing::Sealing;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Files waiting between the watcher and ingest; the watcher waits when full.
const INGEST_BACKLOG: usize = 256;
/// Files decoded at once; each holds one decoded page (about 9 MB for A4 at 300 dpi).
const MAX_INGEST_WORKERS: usize = 4;

/// Runs the agent until `shutdown` is cancelled; every task is awaited before it returns.
pub async fn run(mut config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    if config.watch.is_empty() {
        anyhow::bail!("no folder to watch: pass --watch DIR or set `watch` in the config");
    }
    // Absolute folders: change events name absolute paths, and the queue keys
    // packets by folder, so `inbox` and `./inbox` must be one folder.
    let mut watch = Vec::with_capacity(config.watch.len());
    for dir in &config.watch {
        let dir =
            std::path::absolute(dir).with_context(|| format!("watch folder {}", dir.display()))?;
        if !watch.contains(&dir) {
            watch.push(dir);
        }
    }
    config.watch = watch;
    let data_dir = config.data_dir()?;
    let queue = Arc::new(Queue::open(&data_dir)?);
    clean_spool(&queue).context("cleaning the spool")?;
    let patterns = Arc::new(RwLock::new(cover_rules::patterns(&queue)));
    let cover_keys = Arc::new(RwLock::new(cover_rules::keys(&queue, &config)));
    let work = Arc::new(Notify::new());
    let config = Arc::new(config);
    tracing::info!(
        watch = ?config.watch,
        data = %data_dir.display(),
        server = %config.server_url,
        "agent running"
    );

    let clock = Clock::start();
    let sealing = Arc::new(Mutex::new(Sealing::new(
        config.seal_after(),
        config.declared_grace(),
        &config.watch,
        clock.now(),
    )));
    // Wakes the quiet sealer when a packet has just reached its declared count.
    let seal_wake = Arc::new(Notify::new());
    let mut tasks = JoinSet::new();
    let (candidates_tx, candidates) = mpsc::channel(INGEST_BACKLOG);
    let (skipped_tx, skipped) = mpsc::unbounded_channel();
    let watcher = watch::Watch {
        dirs: config.watch.clone(),
        settle: config.settle(),
        rescan: config.rescan(),
        mode: config.watch_mode,
        clock,
        sealing: Arc::clone(&sealing),
    };
    tasks.spawn(watcher.run(candidates_tx, skipped, shutdown.clone()));

    let ingest = Arc::new(ingest::Ingest {
        queue: Arc::clone(&queue),
        patterns: Arc::clone(&patterns),
        cover_keys: Arc::clone(&cover_keys),
        full_scan: config.full_barcode_scan,
        room: config.room(),
        quarantine_dir: {
            let config = Arc::clone(&config);
            Box::new(move |inbox| config.quarantine_dir_for(inbox))
        },
    });
    tasks.spawn(
        IngestLoop {
            ingest,
            skipped: skipped_tx,
            sealing: Arc::clone(&sealing),
            clock,
            work: Arc::clone(&work),
            seal_wake: Arc::clone(&seal_wake),
        }
        .run(candidates, shutdown.clone()),
    );
    tasks.spawn(seal_quiet_inboxes(
        Arc::clone(&queue),
        sealing,
        clock,
        config.declared_grace(),
        seal_wake,
        Arc::clone(&work),
        shutdown.clone(),
    ));

    let desk_changed = Arc::new(Notify::new());
    tasks.spawn(desk_cache::run(
        Arc::clone(&config),
        Arc::clone(&queue),
        Arc::clone(&desk_changed),
        shutdown.clone(),
    ));
    tasks.spawn(console::run(
        Arc::clone(&config),
        Arc::clone(&queue),
        Arc::clone(&work),
        shutdown.clone(),
    ));
    let link = uplink::Uplink {
        config: Arc::clone(&config),
        queue: Arc::clone(&queue),
        patterns,
        cover_keys,
        work,
        desk_changed,
    };
    tasks.spawn(link.run(shutdown.clone()));

    // The first task to fail stops the others: a desk agent that cannot watch
    // or queue must say so rather than limp on.
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result = done.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = result {
            if first_error.is_none() {
                first_error = Some(e);
            }
            shutdown.cancel();
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Closes the open packet of every inbox whose quiet ran out.
async fn seal_quiet_inboxes(
    queue: Arc<Queue>,
    sealing: Arc<Mutex<Sealing>>,
    clock: Clock,
    grace: Duration,
    wake: Arc<Notify>,
    work: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Fine enough for the shorter of the two waits; a packet whose count is
    // complete with its blank back in wakes it at once.
    let every = (grace / 4).clamp(Duration::from_millis(50), Duration::from_millis(250));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
            _ = wake.notified() => {}
        }
        let queue = Arc::clone(&queue);
        let sealing = Arc::clone(&sealing);
        // The decision and the seal under one lock: no file can be handed to
        // ingest between them and land in a packet that is being closed.
        let sealed = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            let mut sealing = sealing
                .lock()
                .map_err(|_| anyhow::anyhow!("sealing state poisoned"))?;
            let mut sealed = false;
            for dir in sealing.due(clock.now()) {
                if let Some(closing) = queue.open_packet(&dir)? {
                    ingest::tell_count(&closing, true);
                }
                sealed |= queue
                    .seal_open_packet(&dir)
                    .with_context(|| format!("closing the open packet of {}", dir.display()))?;
            }
            Ok(sealed)
        })
        .await??;
        if sealed {
            work.notify_one();
        }
    }
}

/// Takes candidates in the order the watcher sent them, prepares several at
/// once (one per core) and commits them strictly in that order: see
/// [`scan_line`].
struct IngestLoop {
    ingest: Arc<ingest::Ingest>,
    /// Files ingest skipped (vanished or changed), back to the watcher.
    skipped: mpsc::UnboundedSender<PathBuf>,
    sealing: Arc<Mutex<Sealing>>,
    clock: Clock,
    work: Arc<Notify>,
    seal_wake: Arc<Notify>,
}

type Preparation = (u64, anyhow::Result<ingest::Prepared>);

impl IngestLoop {
    async fn run(
        self,
        mut candidates: mpsc::Receiver<watch::Candidate>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let workers =
            std::thread::available_parallelism().map_or(2, |n| n.get().min(MAX_INGEST_WORKERS));
        // One more than the workers, so a core is never idle while a file commits.
        let mut line: ScanLine<ingest::Prepared> = ScanLine::new(workers + 1);
        let mut preparing: JoinSet<Preparation> = JoinSet::new();
        // A note left by an earlier run: that run's line is gone.
        self.ingest.queue.delete_meta(scan_line::BLOCKED_KEY)?;
        // The file the desk was told the line waits for.
        let mut told: Option<PathBuf> = None;
        loop {
            for (id, candidate) in line.start(self.clock.now()) {
                let ingest = Arc::clone(&self.ingest);
                let span = tracing::info_span!("ingest", file = %candidate.key.path.display());
                preparing
                    .spawn_blocking(move || (id, span.in_scope(|| ingest.prepare(&candidate))));
            }
            self.commit_ready(&mut line, &mut told).await?;
            let retry_in = line
                .next_retry()
                .map(|at| at.saturating_sub(self.clock.now()));
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(candidate) = candidates.recv(), if line.has_room() => line.push(candidate),
                Some(done) = preparing.join_next(), if !preparing.is_empty() => {
                    let (id, prepared) = done?;
                    match prepared {
                        Ok(prepared) => line.prepared(id, prepared),
                        Err(e) => line.failed(id, format!("{e:#}"), self.clock.now()),
                    }
                    self.tell_blocked(&line, &mut told)?;
                }
                _ = tokio::time::sleep(retry_in.unwrap_or_default()), if retry_in.is_some() => {}
                else => return Ok(()),
            }
        }
    }

    /// Commits the head of the line while it is prepared.
    async fn commit_ready(
        &self,
        line: &mut ScanLine<ingest::Prepared>,
        told: &mut Option<PathBuf>,
    ) -> anyhow::Result<()> {
        while let Some((_, candidate, prepared)) = line.take_head() {
            let ingest = Arc::clone(&self.ingest);
            let span = tracing::info_span!("ingest", file = %candidate.key.path.display());
            let file = candidate.clone();
            let committed = tokio::task::spawn_blocking(move || {
                span.in_scope(|| ingest.commit(&file, prepared))
            })
            .await?;
            match committed {
                Ok(outcome) => {
                    line.committed();
                    self.finished(&candidate, &outcome)?;
                    self.tell_blocked(line, told)?;
                }
                Err(e) => {
                    line.retry_head(format!("{e:#}"), self.clock.now());
                    self.tell_blocked(line, told)?;
                    break;
                }
            }
        }
        Ok(())
    }

    fn finished(
        &self,
        candidate: &watch::Candidate,
        outcome: &ingest::Outcome,
    ) -> anyhow::Result<()> {
        let mut sealing = self
            .sealing
            .lock()
            .map_err(|_| anyhow::anyhow!("sealing state poisoned"))?;
        sealing.finished(&candidate.watch_dir);
        match outcome {
            ingest::Outcome::Queued { open_packet, .. } => {
                let completion = open_packet
                    .as_ref()
                    .map_or(queue::Completion::Open, queue::OpenPacket::completion);
                sealing.progress(&candidate.watch_dir, completion);
                if completion == queue::Completion::Now {
                    self.seal_wake.notify_one();
                }
                self.work.notify_one();
            }
            ingest::Outcome::Skipped => {
                // The watcher is gone only on shutdown.
                let _ = self.skipped.send(candidate.key.path.clone());
            }
            ingest::Outcome::AlreadyQueued | ingest::Outcome::Quarantined { .. } => {}
        }
        Ok(())
    }

    /// Tells the desk (log and `imc-agent status`) when the line starts or
    /// stops waiting for a file that fails for a passing reason.
    fn tell_blocked(
        &self,
        line: &ScanLine<ingest::Prepared>,
        told: &mut Option<PathBuf>,
    ) -> anyhow::Result<()> {
        let queue = &self.ingest.queue;
        match line.blocked() {
            Some(blocked) => {
                let path = &blocked.candidate.key.path;
                tracing::warn!(
                    file = %path.display(),
                    tries = blocked.failures,
                    error = %blocked.reason,
                    "could not queue file; the files after it wait for it"
                );
                if told.as_ref() != Some(path) {
                    let note = format!(
                        "{} waits to be queued, and the scans after it with it: {} (since {})",
                        path.display(),
                        blocked.reason,
                        chrono::Utc::now().to_rfc3339()
                    );
                    queue.set_meta(scan_line::BLOCKED_KEY, &note)?;
                    *told = Some(path.clone());
                }
            }
            None => {
                if let Some(path) = told.take() {
                    queue.delete_meta(scan_line::BLOCKED_KEY)?;
                    tracing::info!(file = %path.display(), "queued after waiting; the scans after it go on");
                }
            }
        }
        Ok(())
    }
}

/// Removes spool files no queued page points to (left by a crash before commit).
fn clean_spool(queue: &Queue) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(queue.spool_dir())? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !queue.is_spooled_page_pending(&name)? {
            std::fs::remove_file(entry.path()).with_context(|| {
                format!("removing orphan spool file {}", entry.path().display())
            })?;
        }
    }
    Ok(())
}
