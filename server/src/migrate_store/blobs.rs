//! The blob phase: every blob the snapshot names, from the data dir's folder
//! into the target store, checked twice: the source bytes against their name
//! before sending, and the bytes read back from the target after. Puts are
//! create-only and names are hashes, so a blob already in the target (an
//! earlier, interrupted run) is only read back and checked, not sent again.

use super::source::BlobRef;
use crate::blobs::{BlobError, BlobStore, sha256_hex};
use anyhow::{Context, bail};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;

/// Blobs in flight at once: enough to hide an object store's round trips,
/// few enough to bound memory (a page is at most 64 MiB).
const IN_FLIGHT: usize = 4;

#[derive(Debug, Default)]
pub struct BlobTotals {
    pub copied: u64,
    pub already_there: u64,
    pub bytes: u64,
}

enum Outcome {
    Copied(u64),
    AlreadyThere(u64),
}

pub async fn copy(
    wanted: &[BlobRef],
    source: Arc<dyn BlobStore>,
    target: Arc<dyn BlobStore>,
    target_name: &str,
    progress: bool,
) -> anyhow::Result<BlobTotals> {
    let total_bytes: u64 = wanted.iter().map(|b| b.size).sum();
    let bar = if progress {
        ProgressBar::new(total_bytes)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "blobs {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .context("progress line template")?
        .progress_chars("=> "),
    );
    let count = wanted.len();
    let mut done = 0usize;
    let mut totals = BlobTotals::default();
    let mut results = futures_util::stream::iter(wanted)
        .map(|blob| {
            let (source, target) = (Arc::clone(&source), Arc::clone(&target));
            async move { copy_one(&blob.sha256, &*source, &*target, target_name).await }
        })
        .buffer_unordered(IN_FLIGHT);
    bar.set_message(format!("0/{count}"));
    while let Some(result) = results.next().await {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        match outcome {
            Outcome::Copied(bytes) => {
                totals.copied += 1;
                totals.bytes += bytes;
                bar.inc(bytes);
            }
            Outcome::AlreadyThere(bytes) => {
                totals.already_there += 1;
                bar.inc(bytes);
            }
        }
        done += 1;
        bar.set_message(format!("{done}/{count}"));
    }
    bar.finish();
    Ok(totals)
}

async fn copy_one(
    sha256: &str,
    source: &dyn BlobStore,
    target: &dyn BlobStore,
    target_name: &str,
) -> anyhow::Result<Outcome> {
    let there = target
        .contains(sha256)
        .await
        .with_context(|| format!("looking for blob {sha256} in {target_name}"))?;
    let outcome = if there {
        Outcome::AlreadyThere(0)
    } else {
        let bytes = match source.get(sha256).await {
            Ok(bytes) => bytes,
            Err(BlobError::NotFound(_)) => bail!(
                "blob {sha256} is named by a page or image but missing from the data dir's \
                 blobs folder; nothing of the database was copied"
            ),
            Err(e) => return Err(e).with_context(|| format!("reading blob {sha256}")),
        };
        if sha256_hex(&bytes) != sha256 {
            bail!("blob {sha256} in the data dir does not hash to its name (damaged on disk)");
        }
        let size = bytes.len() as u64;
        let stored = target
            .put(bytes)
            .await
            .with_context(|| format!("storing blob {sha256} in {target_name}"))?;
        if stored != sha256 {
            bail!("blob {sha256} was stored in {target_name} as {stored}");
        }
        Outcome::Copied(size)
    };
    let arrived = target
        .get(sha256)
        .await
        .with_context(|| format!("reading blob {sha256} back from {target_name}"))?;
    if sha256_hex(&arrived) != sha256 {
        bail!("blob {sha256} in {target_name} does not hash to its name: the copy is damaged");
    }
    Ok(match outcome {
        Outcome::AlreadyThere(_) => Outcome::AlreadyThere(arrived.len() as u64),
        copied => copied,
    })
}
