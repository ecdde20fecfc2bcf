//! Retention of image bytes on PostgreSQL, as on SQLite
//! (`store/sqlite/retention.rs`), with row locks instead of the one writer:
//! documents being purged and deletions being swept are claimed with
//! `FOR UPDATE SKIP LOCKED`, so replicas share the work and never do it twice.

use super::{audit, db};
use crate::store::audit_chain::NewEntry;
use crate::store::*;
use deadpool_postgres::GenericClient;

pub async fn referenced(c: &impl GenericClient, sha256: &str) -> StoreResult<bool> {
    Ok(db::query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM images WHERE sha256 = $1 AND purged_at IS NULL) \
         OR EXISTS (SELECT 1 FROM pages WHERE sha256 = $1 AND purged_at IS NULL)",
        &[&sha256],
    )
    .await?
    .get(0))
}

pub async fn purge(
    tx: &impl GenericClient,
    final_before: &str,
    reason: &str,
    limit: u32,
    actor: &Actor,
) -> StoreResult<Vec<PurgedDocument>> {
    let statuses = crate::workflow::final_for_retention();
    let limit = i64::from(limit);
    // The document rows stay locked until commit: a decision on one of them
    // (an unsign) waits, and another replica's purge skips it.
    let due = db::query(
        tx,
        "SELECT d.id, d.status FROM documents d \
         WHERE d.status = ANY($1) AND d.updated_at <= $2 \
         AND (EXISTS (SELECT 1 FROM images i WHERE i.document_id = d.id \
                      AND i.purged_at IS NULL AND i.created_at <= $2) \
           OR EXISTS (SELECT 1 FROM pages p JOIN packets k ON k.id = p.packet_id \
                      WHERE k.document_id = d.id AND p.purged_at IS NULL AND p.stored_at <= $2)) \
         ORDER BY d.updated_at, d.id LIMIT $3 FOR UPDATE OF d SKIP LOCKED",
        &[&statuses, &final_before, &limit],
    )
    .await?;
    let at = now();
    let mut purged = Vec::with_capacity(due.len());
    for row in due {
        let document_id: i64 = row.get(0);
        let status: String = row.get(1);
        let shas: Vec<String> = db::query(
            tx,
            "SELECT sha256 FROM images WHERE document_id = $1 AND purged_at IS NULL \
             AND created_at <= $2 \
             UNION SELECT p.sha256 FROM pages p JOIN packets k ON k.id = p.packet_id \
             WHERE k.document_id = $1 AND p.purged_at IS NULL AND p.stored_at <= $2",
            &[&document_id, &final_before],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let images = db::execute(
            tx,
            "UPDATE images SET purged_at = $3, purge_reason = $4 \
             WHERE document_id = $1 AND purged_at IS NULL AND created_at <= $2",
            &[&document_id, &final_before, &at, &reason],
        )
        .await?;
        let pages = db::execute(
            tx,
            "UPDATE pages SET purged_at = $3, purge_reason = $4 \
             WHERE purged_at IS NULL AND stored_at <= $2 \
             AND packet_id IN (SELECT id FROM packets WHERE document_id = $1)",
            &[&document_id, &final_before, &at, &reason],
        )
        .await?;
        for sha in &shas {
            // A page naming these bytes that commits after this check is
            // protected by the grace period (see `crate::retention`).
            if !referenced(tx, sha).await? {
                db::execute(
                    tx,
                    "INSERT INTO blob_deletions (sha256, marked_at) VALUES ($1, $2) \
                     ON CONFLICT (sha256) DO NOTHING",
                    &[sha, &at],
                )
                .await?;
            }
        }
        let status: imc_shared::DocStatus = status
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("document status {status:?}")))?;
        audit::append(
            tx,
            &NewEntry {
                actor,
                document_id: Some(document_id),
                action: PURGE_ACTION,
                from: Some(status),
                to: Some(status),
                reason: Some(&purge_audit_reason(images as usize, pages as usize, reason)),
            },
        )
        .await?;
        purged.push(PurgedDocument {
            document_id,
            images,
            pages,
        });
    }
    Ok(purged)
}

/// Cancels pending deletions; a sweep holding one of these rows is waited for
/// (the DELETE blocks on its lock), so the blob it deletes is stored again after.
pub async fn cancel_deletions(c: &impl GenericClient, sha256s: &[String]) -> StoreResult<()> {
    db::execute(
        c,
        "DELETE FROM blob_deletions WHERE sha256 = ANY($1)",
        &[&sha256s],
    )
    .await?;
    Ok(())
}

/// Claims due deletions (skipping those another replica holds), deletes the
/// blobs nothing references, and drops the claimed rows; the caller commits.
pub async fn sweep(
    tx: &impl GenericClient,
    marked_before: &str,
    limit: u32,
    blobs: &dyn crate::blobs::BlobStore,
) -> StoreResult<Sweep> {
    let due: Vec<String> = db::query(
        tx,
        "SELECT sha256 FROM blob_deletions WHERE marked_at <= $1 \
         ORDER BY marked_at, sha256 LIMIT $2 FOR UPDATE SKIP LOCKED",
        &[&marked_before, &i64::from(limit)],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    let mut sweep = Sweep::default();
    for sha in due {
        if !referenced(tx, &sha).await? {
            if let Err(e) = blobs.delete(&sha).await {
                sweep.error = Some(format!("deleting blob {sha}: {e}"));
                break;
            }
            sweep.deleted.push(sha.clone());
        } else {
            sweep.kept += 1;
        }
        db::execute(tx, "DELETE FROM blob_deletions WHERE sha256 = $1", &[&sha]).await?;
    }
    Ok(sweep)
}
