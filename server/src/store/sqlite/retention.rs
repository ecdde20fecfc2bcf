//! Retention of image bytes in the embedded store; the rules are in
//! `crate::retention` and docs/ARCHITECTURE.md.

use super::audit;
use crate::store::*;
use rusqlite::{Connection, Transaction, params};

/// Databases from before retention get the purge columns.
pub fn migrate(conn: &Connection) -> StoreResult<()> {
    for (table, column) in [
        ("images", "purged_at"),
        ("images", "purge_reason"),
        ("pages", "purged_at"),
        ("pages", "purge_reason"),
    ] {
        let has: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            params![table, column],
            |r| r.get(0),
        )?;
        if !has {
            conn.execute(&format!("ALTER TABLE {table} ADD COLUMN {column} TEXT"), [])?;
        }
    }
    Ok(())
}

/// True while an image or a page that is not purged names the blob.
pub fn referenced(conn: &Connection, sha256: &str) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM images WHERE sha256 = ?1 AND purged_at IS NULL) \
             OR EXISTS (SELECT 1 FROM pages WHERE sha256 = ?1 AND purged_at IS NULL)",
        )?
        .query_row([sha256], |r| r.get(0))?)
}

pub fn purge(
    tx: &Transaction<'_>,
    final_before: &str,
    reason: &str,
    limit: u32,
    actor: &Actor,
) -> StoreResult<Vec<PurgedDocument>> {
    let statuses = serde_json::to_string(&crate::workflow::final_for_retention())
        .map_err(|e| StoreError::Corrupt(format!("final statuses: {e}")))?;
    let due: Vec<(i64, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT d.id, d.status FROM documents d \
             WHERE d.status IN (SELECT value FROM json_each(?1)) AND d.updated_at <= ?2 \
             AND (EXISTS (SELECT 1 FROM images i WHERE i.document_id = d.id \
                          AND i.purged_at IS NULL AND i.created_at <= ?2) \
               OR EXISTS (SELECT 1 FROM pages p JOIN packets k ON k.id = p.packet_id \
                          WHERE k.document_id = d.id AND p.purged_at IS NULL AND p.stored_at <= ?2)) \
             ORDER BY d.updated_at, d.id LIMIT ?3",
        )?;
        stmt.query_map(params![statuses, final_before, limit], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let at = now();
    let mut purged = Vec::with_capacity(due.len());
    for (document_id, status) in due {
        let shas: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT sha256 FROM images WHERE document_id = ?1 AND purged_at IS NULL \
                 AND created_at <= ?2 \
                 UNION SELECT p.sha256 FROM pages p JOIN packets k ON k.id = p.packet_id \
                 WHERE k.document_id = ?1 AND p.purged_at IS NULL AND p.stored_at <= ?2",
            )?;
            stmt.query_map(params![document_id, final_before], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let images = tx.execute(
            "UPDATE images SET purged_at = ?3, purge_reason = ?4 \
             WHERE document_id = ?1 AND purged_at IS NULL AND created_at <= ?2",
            params![document_id, final_before, at, reason],
        )?;
        let pages = tx.execute(
            "UPDATE pages SET purged_at = ?3, purge_reason = ?4 \
             WHERE purged_at IS NULL AND stored_at <= ?2 \
             AND packet_id IN (SELECT id FROM packets WHERE document_id = ?1)",
            params![document_id, final_before, at, reason],
        )?;
        for sha in &shas {
            if !referenced(tx, sha)? {
                tx.execute(
                    "INSERT INTO blob_deletions (sha256, marked_at) VALUES (?1, ?2) \
                     ON CONFLICT (sha256) DO NOTHING",
                    params![sha, at],
                )?;
            }
        }
        let status = parse_status(&status)?;
        audit::append(
            tx,
            &audit::NewEntry {
                actor,
                document_id: Some(document_id),
                action: PURGE_ACTION,
                from: Some(status),
                to: Some(status),
                reason: Some(&purge_audit_reason(images, pages, reason)),
            },
        )?;
        purged.push(PurgedDocument {
            document_id,
            images: images as u64,
            pages: pages as u64,
        });
    }
    Ok(purged)
}

fn parse_status(text: &str) -> StoreResult<imc_shared::DocStatus> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("document status {text:?}")))
}

/// Whether any of these blobs waits for deletion (a read, to skip the write).
pub fn any_pending(conn: &Connection, sha256s: &[String]) -> StoreResult<bool> {
    let keys = serde_json::to_string(sha256s)
        .map_err(|e| StoreError::Corrupt(format!("blob names: {e}")))?;
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM blob_deletions \
             WHERE sha256 IN (SELECT value FROM json_each(?1)))",
        )?
        .query_row([keys], |r| r.get(0))?)
}

pub fn cancel_deletions(tx: &Transaction<'_>, sha256s: &[String]) -> StoreResult<()> {
    let keys = serde_json::to_string(sha256s)
        .map_err(|e| StoreError::Corrupt(format!("blob names: {e}")))?;
    tx.execute(
        "DELETE FROM blob_deletions WHERE sha256 IN (SELECT value FROM json_each(?1))",
        [keys],
    )?;
    Ok(())
}

/// Runs inside the write transaction, so under the one writer lock: no page
/// can be recorded, nor a deletion cancelled, between the check and the delete.
pub fn sweep(
    tx: &Transaction<'_>,
    marked_before: &str,
    limit: u32,
    delete: &dyn Fn(&str) -> Result<(), crate::blobs::BlobError>,
) -> StoreResult<Sweep> {
    let due: Vec<String> = {
        let mut stmt = tx.prepare_cached(
            "SELECT sha256 FROM blob_deletions WHERE marked_at <= ?1 \
             ORDER BY marked_at, sha256 LIMIT ?2",
        )?;
        stmt.query_map(params![marked_before, limit], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    let mut sweep = Sweep::default();
    for sha in due {
        if !referenced(tx, &sha)? {
            if let Err(e) = delete(&sha) {
                sweep.error = Some(format!("deleting blob {sha}: {e}"));
                break;
            }
            sweep.deleted.push(sha.clone());
        } else {
            sweep.kept += 1;
        }
        tx.execute("DELETE FROM blob_deletions WHERE sha256 = ?1", [&sha])?;
    }
    Ok(sweep)
}
