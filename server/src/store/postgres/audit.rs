//! The audit trail as a hash chain, as on SQLite (same hash, same fields;
//! see `store/sqlite/audit.rs`). The head lives in the one-row `audit_head`
//! table; appending locks it, so appends from any replica form one chain.

use super::db;
use crate::store::audit_chain::{ChainEnd, ChainFields, Fields, NewEntry, chain_hash, walk};
use crate::store::*;
use deadpool_postgres::GenericClient;

pub async fn append(tx: &impl GenericClient, e: &NewEntry<'_>) -> StoreResult<()> {
    let head = db::query_one(tx, "SELECT id, hash FROM audit_head FOR UPDATE", &[]).await?;
    let (last_id, prev): (i64, String) = (head.get(0), head.get(1));
    let id = last_id + 1;
    let at = now();
    let from = e.from.map(|s| s.as_str());
    let to = e.to.map(|s| s.as_str());
    let digest = chain_hash(
        &prev,
        &ChainFields {
            id,
            at: &at,
            actor: &e.actor.0,
            document_id: e.document_id,
            action: e.action,
            from,
            to,
            reason: e.reason,
        },
    );
    db::execute(
        tx,
        "INSERT INTO audit (id, at, actor, document_id, action, from_status, to_status, reason, \
         prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &id,
            &at,
            &e.actor.0,
            &e.document_id,
            &e.action,
            &from,
            &to,
            &e.reason,
            &prev,
            &digest,
        ],
    )
    .await?;
    db::execute(
        tx,
        "UPDATE audit_head SET id = $1, hash = $2",
        &[&id, &digest],
    )
    .await?;
    Ok(())
}

/// The newest row of the chain: its id and hash; `None` before the first.
pub async fn head(c: &impl GenericClient) -> StoreResult<Option<(i64, String)>> {
    let row = db::query_one(c, "SELECT id, hash FROM audit_head", &[]).await?;
    let (id, hash): (i64, String) = (row.get(0), row.get(1));
    Ok((id > 0).then_some((id, hash)))
}

pub async fn for_document(c: &impl GenericClient, document_id: i64) -> StoreResult<Vec<AuditRow>> {
    let rows = db::query(
        c,
        "SELECT id, at, actor, document_id, action, from_status, to_status, reason, prev_hash, hash \
         FROM audit WHERE document_id = $1 ORDER BY id",
        &[&document_id],
    )
    .await?;
    let status = |id: i64, s: Option<String>| -> StoreResult<Option<DocStatus>> {
        s.map(|s| {
            s.parse()
                .map_err(|e| StoreError::Corrupt(format!("audit row {id} status: {e}")))
        })
        .transpose()
    };
    rows.into_iter()
        .map(|r| {
            let id: i64 = r.get(0);
            Ok(AuditRow {
                id,
                at: r.get(1),
                actor: r.get(2),
                document_id: r.get(3),
                action: r.get(4),
                from_status: status(id, r.get(5))?,
                to_status: status(id, r.get(6))?,
                reason: r.get(7),
                prev_hash: r.get::<_, Option<String>>(8).unwrap_or_default(),
                hash: r.get::<_, Option<String>>(9).unwrap_or_default(),
            })
        })
        .collect()
}

/// Checks the whole chain against the recorded head (see `store/sqlite/audit.rs`).
pub async fn verify(c: &impl GenericClient) -> StoreResult<AuditCheck> {
    let rows = db::query(
        c,
        "SELECT id, at, actor, document_id, action, from_status, to_status, reason, prev_hash, hash \
         FROM audit ORDER BY id",
        &[],
    )
    .await?;
    let chain = rows.into_iter().map(|r| {
        let fields = Fields {
            id: r.get(0),
            at: r.get(1),
            actor: r.get(2),
            document_id: r.get(3),
            action: r.get(4),
            from: r.get(5),
            to: r.get(6),
            reason: r.get(7),
        };
        (fields, Some(r.get(8)), Some(r.get(9)))
    });
    let ChainEnd { last, hash, rows } = match walk(chain) {
        Ok(end) => end,
        Err(broken) => return Ok(broken),
    };
    let head = db::query_one(c, "SELECT id, hash FROM audit_head", &[]).await?;
    let (head_id, head_hash): (i64, String) = (head.get(0), head.get(1));
    if last.unwrap_or(0) != head_id || head_hash != hash {
        return Ok(AuditCheck::Broken {
            row: head_id,
            reason: format!(
                "the newest row should be {head_id} with the recorded hash; the chain ends at {}",
                last.unwrap_or(0)
            ),
        });
    }
    Ok(AuditCheck::Intact { rows })
}
