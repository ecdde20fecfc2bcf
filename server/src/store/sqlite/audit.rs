//! The audit trail in SQLite: appending a row to the hash chain
//! (`store::audit_chain`), the head kept beside it, and checking it.

use crate::store::audit_chain::*;
use crate::store::*;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
// The argument of `append`, for the other SQLite modules.
pub use crate::store::audit_chain::NewEntry;
use std::path::Path;

const HEAD_KEY: &str = "audit.head";

/// The newest row of the chain: its id and hash.
pub fn head(conn: &Connection) -> StoreResult<Option<(i64, String)>> {
    Ok(conn
        .query_row(
            "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .optional()?)
}

pub fn append(tx: &Transaction<'_>, e: &NewEntry<'_>) -> StoreResult<()> {
    let (last_id, prev) = head(tx)?.unwrap_or((0, GENESIS.to_owned()));
    let f = Fields {
        id: last_id + 1,
        at: super::now(),
        actor: e.actor.0.clone(),
        document_id: e.document_id,
        action: e.action.to_owned(),
        from: e.from.map(|s| s.as_str().to_owned()),
        to: e.to.map(|s| s.as_str().to_owned()),
        reason: e.reason.map(str::to_owned),
    };
    let digest = row_hash(&prev, &f);
    tx.prepare_cached(
        "INSERT INTO audit (id, at, actor, document_id, action, from_status, to_status, reason, \
         prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        f.id,
        f.at,
        f.actor,
        f.document_id,
        f.action,
        f.from,
        f.to,
        f.reason,
        prev,
        digest
    ])?;
    let head = serde_json::json!({"id": f.id, "hash": digest}).to_string();
    tx.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
    )?
    .execute(params![HEAD_KEY, head])?;
    Ok(())
}

/// Databases from before the chain get their columns and their existing rows
/// chained once, when the columns are added.
pub fn migrate(conn: &Connection) -> StoreResult<()> {
    let has_hash: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('audit') WHERE name = 'hash')",
        [],
        |r| r.get(0),
    )?;
    if has_hash {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE; ALTER TABLE audit ADD COLUMN prev_hash TEXT; \
         ALTER TABLE audit ADD COLUMN hash TEXT;",
    )?;
    let result = (|| {
        let rows = all_rows(conn)?;
        let mut prev = GENESIS.to_owned();
        for (f, _, _) in rows {
            let digest = row_hash(&prev, &f);
            conn.execute(
                "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE id = ?1",
                params![f.id, prev, digest],
            )?;
            let head = serde_json::json!({"id": f.id, "hash": digest}).to_string();
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![HEAD_KEY, head],
            )?;
            prev = digest;
        }
        Ok::<_, StoreError>(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}

fn all_rows(conn: &Connection) -> StoreResult<Vec<ChainRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, at, actor, document_id, action, from_status, to_status, reason, prev_hash, hash \
         FROM audit ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            Fields {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                document_id: r.get(3)?,
                action: r.get(4)?,
                from: r.get(5)?,
                to: r.get(6)?,
                reason: r.get(7)?,
            },
            r.get(8)?,
            r.get(9)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn verify(conn: &Connection) -> StoreResult<AuditCheck> {
    let ChainEnd {
        last,
        hash: prev,
        rows: count,
    } = match walk(all_rows(conn)?) {
        Ok(end) => end,
        Err(broken) => return Ok(broken),
    };
    let anchor: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [HEAD_KEY],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(anchor) = anchor {
        let anchor: serde_json::Value = serde_json::from_str(&anchor)
            .map_err(|e| StoreError::Corrupt(format!("{HEAD_KEY}: {e}")))?;
        let want_id = anchor["id"].as_i64().unwrap_or(0);
        if last != Some(want_id) || anchor["hash"].as_str() != Some(prev.as_str()) {
            return Ok(AuditCheck::Broken {
                row: want_id,
                reason: format!(
                    "the newest row should be {want_id} with the recorded hash; the chain ends at {}",
                    last.unwrap_or(0)
                ),
            });
        }
    } else if count > 0 {
        return Ok(AuditCheck::Broken {
            row: last.unwrap_or(0),
            reason: format!("{HEAD_KEY} is missing"),
        });
    }
    Ok(AuditCheck::Intact { rows: count })
}

/// Checks the chain of a database file without opening it for writing.
pub fn verify_audit_file(path: &Path) -> StoreResult<AuditCheck> {
    if !path.exists() {
        return Err(StoreError::NotFound(format!("database {}", path.display())));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    verify(&conn)
}

pub fn for_document(conn: &Connection, document_id: i64) -> StoreResult<Vec<AuditRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, document_id, action, from_status, to_status, reason, prev_hash, hash \
         FROM audit WHERE document_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([document_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<String>>(7)?,
            r.get::<_, Option<String>>(8)?.unwrap_or_default(),
            r.get::<_, Option<String>>(9)?.unwrap_or_default(),
        ))
    })?;
    let status = |id: i64, s: Option<String>| -> StoreResult<Option<DocStatus>> {
        s.map(|s| {
            s.parse()
                .map_err(|e| StoreError::Corrupt(format!("audit row {id} status: {e}")))
        })
        .transpose()
    };
    let mut out = Vec::new();
    for row in rows {
        let (id, at, actor, document_id, action, from, to, reason, prev_hash, hash) = row?;
        out.push(AuditRow {
            id,
            at,
            actor,
            document_id,
            action,
            from_status: status(id, from)?,
            to_status: status(id, to)?,
            reason,
            prev_hash,
            hash,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(actor: &'a Actor, action: &'a str) -> NewEntry<'a> {
        NewEntry {
            actor,
            document_id: Some(1),
            action,
            from: None,
            to: Some(DocStatus::Ready),
            reason: None,
        }
    }

    #[test]
    fn edits_gaps_and_truncation_are_found() -> StoreResult<()> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch(include_str!("schema.sql"))?;
        let actor = Actor("api:test".into());
        let tx = conn.transaction()?;
        for action in ["a", "b", "c", "d"] {
            append(&tx, &entry(&actor, action))?;
        }
        tx.commit()?;
        assert_eq!(verify(&conn)?, AuditCheck::Intact { rows: 4 });

        conn.execute("UPDATE audit SET reason = 'x' WHERE id = 2", [])?;
        assert!(matches!(verify(&conn)?, AuditCheck::Broken { row: 2, .. }));
        conn.execute("UPDATE audit SET reason = NULL WHERE id = 2", [])?;
        assert_eq!(verify(&conn)?, AuditCheck::Intact { rows: 4 });

        conn.execute("DELETE FROM audit WHERE id = 4", [])?;
        assert!(matches!(verify(&conn)?, AuditCheck::Broken { row: 4, .. }));
        conn.execute("DELETE FROM audit WHERE id = 2", [])?;
        assert!(matches!(verify(&conn)?, AuditCheck::Broken { row: 2, .. }));
        Ok(())
    }
}
