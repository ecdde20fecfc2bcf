//! Credentials, agents and settings.

use super::now;
use crate::store::{Agent, AgentRecord, ApiToken, StoreError, StoreResult, TokenRole};
use imc_shared::protocol::AgentReport;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub fn add_api_token(
    tx: &Transaction<'_>,
    name: &str,
    role: TokenRole,
    token_hash: &str,
) -> StoreResult<i64> {
    tx.execute(
        "INSERT INTO api_tokens (token_hash, name, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash, name, role.as_str(), now()],
    )?;
    Ok(tx.last_insert_rowid())
}

pub fn api_token_by_hash(conn: &Connection, token_hash: &str) -> StoreResult<Option<ApiToken>> {
    let row = conn
        .query_row(
            "SELECT id, name, role FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL",
            [token_hash],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    row.map(|(id, name, role)| {
        let role = match role.as_str() {
            "admin" => TokenRole::Admin,
            "api" => TokenRole::Api,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "token {id} has unknown role {other:?}"
                )));
            }
        };
        Ok(ApiToken { id, name, role })
    })
    .transpose()
}

pub fn add_enrollment_code(
    tx: &Transaction<'_>,
    site: &str,
    code_hash: &str,
    expires_at: &str,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO enrollment_codes (code_hash, site, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![code_hash, site, now(), expires_at],
    )?;
    Ok(())
}

pub fn enroll(
    tx: &Transaction<'_>,
    code_hash: &str,
    agent_id: &str,
    name: &str,
    token_hash: &str,
    version: Option<&str>,
) -> StoreResult<Agent> {
    let at = now();
    let site: Option<String> = tx
        .query_row(
            "UPDATE enrollment_codes SET used_at = ?2, used_by = ?3 \
             WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING site",
            params![code_hash, at, agent_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(site) = site else {
        return Err(StoreError::NotFound(
            "enrollment code (unknown, already used or expired)".into(),
        ));
    };
    tx.execute(
        "INSERT INTO agents (id, site, name, token_hash, version, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![agent_id, site, name, token_hash, version, at],
    )?;
    Ok(Agent {
        id: agent_id.to_owned(),
        site,
        name: name.to_owned(),
    })
}

pub fn agent_by_token_hash(conn: &Connection, token_hash: &str) -> StoreResult<Option<Agent>> {
    Ok(conn
        .query_row(
            "SELECT id, site, name FROM agents WHERE token_hash = ?1 AND revoked_at IS NULL",
            [token_hash],
            |r| {
                Ok(Agent {
                    id: r.get(0)?,
                    site: r.get(1)?,
                    name: r.get(2)?,
                })
            },
        )
        .optional()?)
}

pub fn seen(tx: &Transaction<'_>, agent_id: &str, report: Option<&AgentReport>) -> StoreResult<()> {
    match report {
        Some(r) => tx.execute(
            "UPDATE agents SET last_seen_at = ?2, queue_pages = ?3, queue_bytes = ?4, quarantined = ?5 WHERE id = ?1",
            params![agent_id, now(), r.queue_pages, r.queue_bytes, r.quarantined],
        )?,
        None => tx.execute(
            "UPDATE agents SET last_seen_at = ?2 WHERE id = ?1",
            params![agent_id, now()],
        )?,
    };
    Ok(())
}

const AGENT_COLUMNS: &str = "id, site, name, version, enrolled_at, last_seen_at, revoked_at, \
                             queue_pages, queue_bytes, quarantined";

fn agent_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRecord> {
    Ok(AgentRecord {
        id: r.get(0)?,
        site: r.get(1)?,
        name: r.get(2)?,
        version: r.get(3)?,
        enrolled_at: r.get(4)?,
        last_seen_at: r.get(5)?,
        revoked_at: r.get(6)?,
        queue_pages: r.get(7)?,
        queue_bytes: r.get(8)?,
        quarantined: r.get(9)?,
    })
}

pub fn list(conn: &Connection) -> StoreResult<Vec<AgentRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents ORDER BY site, name, id"
    ))?;
    let rows = stmt.query_map([], agent_record)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn revoke(tx: &Transaction<'_>, agent_id: &str) -> StoreResult<AgentRecord> {
    tx.execute(
        "UPDATE agents SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![agent_id, now()],
    )?;
    tx.query_row(
        &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1"),
        [agent_id],
        agent_record,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("agent {agent_id}")))
}

pub fn active(conn: &Connection, agent_id: &str) -> StoreResult<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM agents WHERE id = ?1 AND revoked_at IS NULL)",
        [agent_id],
        |r| r.get(0),
    )?)
}
