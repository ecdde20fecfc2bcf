//! Retention of image bytes: once a document has been final (`ready` or
//! `cancelled`, see `workflow::FINAL_FOR_RETENTION`) for the
//! `image_retention_days` setting, its image bytes are purged. Metadata, the
//! audit trail and every SHA-256 stay; the rows are marked purged (when, why)
//! and the API answers their bytes with 410 Gone.
//!
//! Blobs are shared (content-addressed, deduplicated), so a purge deletes no
//! bytes itself. It marks the rows and, in the same transaction, puts every
//! blob they named that no live row names any more into `blob_deletions`.
//! The sweep deletes a marked blob only when the mark is older than the grace
//! period and, checked again while the mark's row is locked, no live row
//! names it. Whoever stores or reuses bytes first calls `reserve_blobs`,
//! which removes their marks (waiting for a sweep holding one): so a blob an
//! upload is about to reference is either deleted before the reservation
//! (and the upload stores it again) or kept for at least the grace period
//! after it, by when the upload's row is committed and the sweep sees it.
//!
//! One task per server runs both steps every `retention.interval`; on
//! PostgreSQL replicas claim documents and marks with `FOR UPDATE SKIP
//! LOCKED`, so each is handled once.

use crate::blobs::BlobStore;
use crate::config::RetentionTiming;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Documents purged, or marks swept, per transaction.
const BATCH: u32 = 100;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub documents: u64,
    pub images: u64,
    pub blobs_deleted: u64,
    pub blobs_kept: u64,
}

/// The timestamp `span` before now, as the stores write times.
fn ago(span: std::time::Duration) -> String {
    let span = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
    let then = chrono::Utc::now()
        .checked_sub_signed(span)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    then.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Purges what is due, then sweeps what was marked long enough ago.
pub async fn pass(
    store: &dyn Store,
    blobs: &Arc<dyn BlobStore>,
    timing: RetentionTiming,
    renditions: Option<&PathBuf>,
) -> anyhow::Result<Pass> {
    let mut done = Pass::default();
    let days = store.settings().await?.image_retention_days;
    if days > 0 {
        let final_before = ago(timing.day * days);
        let reason = format!("retention: final for more than {days} day(s) (image_retention_days)");
        loop {
            let purged = store.purge_images(&final_before, &reason, BATCH).await?;
            done.documents += purged.len() as u64;
            done.images += purged.iter().map(|p| p.images).sum::<u64>();
            if purged.len() < BATCH as usize {
                break;
            }
        }
    }
    loop {
        let sweep = store
            .sweep_blobs(&ago(timing.grace), BATCH, Arc::clone(blobs))
            .await?;
        done.blobs_deleted += sweep.deleted.len() as u64;
        done.blobs_kept += sweep.kept;
        if let Some(dir) = renditions {
            remove_renditions(dir, &sweep.deleted).await;
        }
        if let Some(error) = sweep.error {
            anyhow::bail!(error);
        }
        if sweep.deleted.len() as u64 + sweep.kept < u64::from(BATCH) {
            break;
        }
    }
    Ok(done)
}

/// This server's cached thumbnails and views of deleted blobs are image
/// bytes too. (Other replicas' caches are never served for purged images.)
async fn remove_renditions(dir: &std::path::Path, deleted: &[String]) {
    for sha in deleted {
        for suffix in ["thumb", "view"] {
            let path = dir.join(format!("{sha}-{suffix}.jpg"));
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "removing a rendition")
                }
            }
        }
    }
}

/// Runs a pass every `timing.interval` until cancelled.
pub async fn run(
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    timing: RetentionTiming,
    renditions: PathBuf,
    stop: CancellationToken,
) {
    loop {
        match pass(&*store, &blobs, timing, Some(&renditions)).await {
            Ok(done) if done == Pass::default() => {}
            Ok(done) => tracing::info!(
                documents = done.documents,
                images = done.images,
                blobs_deleted = done.blobs_deleted,
                blobs_kept = done.blobs_kept,
                "retention purged image bytes"
            ),
            Err(e) => tracing::warn!(error = %e, "retention pass"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(timing.interval) => {}
        }
    }
}
