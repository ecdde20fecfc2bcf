//! IMC scan-desk agent.
//!
//! Layout, in the order a page travels:
//! - [`watch`]: finds settled files in the scanner folders.
//! - [`ingest`]: splits a file into pages ([`pages`]), reads barcodes
//!   ([`decode`]), spools the bytes and commits them to the [`queue`], or
//!   quarantines the file with the reason.
//! - [`queue`]: the durable SQLite queue; packets are formed there; [`room`]
//!   bounds the spool and keeps free space on the disk.
//! - [`uplink`]: streams queued pages to the server and seals packets.
//! - [`vat`]: VAT invoice QR texts parsed into page metadata.
//! - [`enroll`], [`status`], [`inspect`], [`doctor`]: the other commands.
//!
//! [`run`] takes its config and a shutdown token from the caller, so the
//! binary, the server's demo and tests all run the same code.

pub mod config;
pub mod decode;
pub mod doctor;
pub mod enroll;
mod fsutil;
pub mod fuzzing;
mod guard;
pub mod ingest;
pub mod inspect;
pub mod pages;
pub mod queue;
pub mod room;
pub mod signal;
pub mod status;
pub mod tls;
pub mod uplink;
pub mod vat;
pub mod watch;
#[cfg(windows)]
pub mod winservice;

use anyhow::Context;
use config::AgentConfig;
use imc_shared::CoverPatterns;
use queue::Queue;
use std::sync::{Arc, RwLock};
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
    let patterns = match queue.meta(uplink::PATTERNS_KEY)? {
        Some(json) => serde_json::from_str::<Vec<String>>(&json)
            .ok()
            .and_then(|p| CoverPatterns::new(&p).ok())
            .unwrap_or_default(),
        None => CoverPatterns::default(),
    };
    let patterns = Arc::new(RwLock::new(patterns));
    let work = Arc::new(Notify::new());
    let config = Arc::new(config);
    tracing::info!(
        watch = ?config.watch,
        data = %data_dir.display(),
        server = %config.server_url,
        "agent running"
    );

    let mut tasks = JoinSet::new();
    let (candidates_tx, candidates) = mpsc::channel(INGEST_BACKLOG);
    let watcher = watch::Watch::new(
        config.watch.clone(),
        config.settle(),
        config.rescan(),
        config.watch_mode,
        Arc::clone(&queue),
    );
    tasks.spawn(watcher.run(candidates_tx, shutdown.clone()));

    let ingest = Arc::new(ingest::Ingest {
        queue: Arc::clone(&queue),
        patterns: Arc::clone(&patterns),
        full_scan: config.full_barcode_scan,
        room: config.room(),
        quarantine_dir: {
            let config = Arc::clone(&config);
            Box::new(move |inbox| config.quarantine_dir_for(inbox))
        },
    });
    tasks.spawn(ingest_files(
        ingest,
        candidates,
        Arc::clone(&work),
        shutdown.clone(),
    ));

    {
        let queue = Arc::clone(&queue);
        let work = Arc::clone(&work);
        let shutdown = shutdown.clone();
        let idle_ms = config.seal_after_ms as i64;
        let every =
            (config.seal_after() / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let queue = Arc::clone(&queue);
                let sealed =
                    tokio::task::spawn_blocking(move || queue.seal_idle(idle_ms)).await??;
                if sealed > 0 {
                    work.notify_one();
                }
            }
        });
    }

    let link = uplink::Uplink {
        config: Arc::clone(&config),
        queue: Arc::clone(&queue),
        patterns,
        work,
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

/// Ingests candidates in the order the watcher sent them. Files are prepared
/// (read, decoded, searched for barcodes, spooled) several at a time, one per
/// core, and committed strictly in order, so the queue keeps scan order while
/// both cores work.
async fn ingest_files(
    ingest: Arc<ingest::Ingest>,
    candidates: mpsc::Receiver<watch::Candidate>,
    work: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    let workers =
        std::thread::available_parallelism().map_or(2, |n| n.get().min(MAX_INGEST_WORKERS));
    let mut candidates = candidates;
    let prepared = futures_util::stream::poll_fn(move |cx| candidates.poll_recv(cx))
        .map(|candidate: watch::Candidate| {
            let ingest = Arc::clone(&ingest);
            let span = tracing::info_span!("ingest", file = %candidate.key.path.display());
            tokio::task::spawn_blocking(move || {
                let prepared = span.in_scope(|| ingest.prepare(&candidate));
                (ingest, candidate, prepared, span)
            })
        })
        // One more than the workers, so a core is never idle while a file commits.
        .buffered(workers + 1);
    let mut prepared = std::pin::pin!(prepared);
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = prepared.next() => match next { Some(next) => next?, None => return Ok(()) },
        };
        let (ingest, candidate, prepared, span) = next;
        let path = candidate.key.path.clone();
        let result = match prepared {
            Ok(prepared) => {
                tokio::task::spawn_blocking(move || {
                    span.in_scope(|| ingest.commit(&candidate, prepared))
                })
                .await?
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => work.notify_one(),
            // A failure to read or commit is not the file's fault: it stays in the inbox and is retried.
            Err(e) => {
                tracing::error!(file = %path.display(), error = format!("{e:#}"), "could not queue file")
            }
        }
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
