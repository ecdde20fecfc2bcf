//! Credentials, agents and settings.

use super::{audit, now};
use crate::store::{
    Actor, Agent, AgentRecord, ApiToken, NewApiToken, StoreError, StoreResult, legacy_role,
    parse_scopes, parse_sources, scopes_text,
};
use imc_shared::protocol::AgentReport;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

const TOKEN_COLUMNS: &str = "id, name, scopes, source_systems, created_at, expires_at, revoked_at";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ApiToken, String)> {
    Ok((
        ApiToken {
            id: r.get(0)?,
            name: r.get(1)?,
            scopes: Vec::new(),
            source_systems: parse_sources(r.get(3)?),
            created_at: r.get(4)?,
            expires_at: r.get(5)?,
            revoked_at: r.get(6)?,
        },
        r.get(2)?,
    ))
}

fn with_scopes((mut token, scopes): (ApiToken, String)) -> StoreResult<ApiToken> {
    token.scopes = parse_scopes(token.id, &scopes)?;
    Ok(token)
}

fn credential_audit(
    tx: &Transaction<'_>,
    actor: &Actor,
    action: &str,
    what: &str,
) -> StoreResult<()> {
    audit::append(
        tx,
        &audit::NewEntry {
            actor,
            document_id: None,
            action,
            from: None,
            to: None,
            reason: Some(what),
        },
    )
}

pub fn add_api_token(
    tx: &Transaction<'_>,
    token: &NewApiToken,
    actor: &Actor,
) -> StoreResult<ApiToken> {
    let stored = insert_token(tx, token)?;
    credential_audit(tx, actor, "token.create", &stored.describe())?;
    Ok(stored)
}

/// The one INSERT of a token, for creation and rotation alike.
fn insert_token(tx: &Transaction<'_>, token: &NewApiToken) -> StoreResult<ApiToken> {
    let sources = token.source_systems.as_ref().map(|s| s.join(" "));
    // `role` is kept for databases read by older builds.
    let role = legacy_role(&token.scopes);
    tx.execute(
        "INSERT INTO api_tokens (token_hash, name, role, scopes, source_systems, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            token.token_hash,
            token.name,
            role,
            scopes_text(&token.scopes),
            sources,
            now()
        ],
    )?;
    token_by_id(tx, tx.last_insert_rowid())
}

fn token_by_id(conn: &Connection, id: i64) -> StoreResult<ApiToken> {
    let row = conn
        .query_row(
            &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
            [id],
            token_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("token {id}")))?;
    with_scopes(row)
}

/// A token that works now: not revoked, and not past its rotation overlap.
pub fn api_token_by_hash(conn: &Connection, token_hash: &str) -> StoreResult<Option<ApiToken>> {
    conn.query_row(
        &format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?2)"
        ),
        params![token_hash, now()],
        token_row,
    )
    .optional()?
    .map(with_scopes)
    .transpose()
}

pub fn api_tokens(conn: &Connection) -> StoreResult<Vec<ApiToken>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
    ))?;
    let rows = stmt.query_map([], token_row)?;
    rows.map(|r| with_scopes(r?)).collect()
}

/// A new secret with the same name, scopes and source systems; the old one
/// keeps working until `old_expires_at`.
pub fn rotate_api_token(
    tx: &Transaction<'_>,
    id: i64,
    new_hash: &str,
    old_expires_at: &str,
    actor: &Actor,
) -> StoreResult<ApiToken> {
    let old = token_by_id(tx, id)?;
    if old.revoked_at.is_some()
        || old
            .expires_at
            .as_deref()
            .is_some_and(|e| e <= now().as_str())
    {
        return Err(StoreError::Conflict(format!(
            "token {id} is revoked or expired; create a new one"
        )));
    }
    // An earlier rotation's shorter window stands.
    tx.execute(
        "UPDATE api_tokens SET expires_at = ?2 WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        params![id, old_expires_at],
    )?;
    let new = NewApiToken {
        name: old.name.clone(),
        scopes: old.scopes.clone(),
        source_systems: old.source_systems.clone(),
        token_hash: new_hash.to_owned(),
    };
    let stored = insert_token(tx, &new)?;
    credential_audit(
        tx,
        actor,
        "token.rotate",
        &format!(
            "token {id} replaced by {}; old secret valid until {old_expires_at}",
            stored.id
        ),
    )?;
    Ok(stored)
}

pub fn revoke_api_token(tx: &Transaction<'_>, id: i64, actor: &Actor) -> StoreResult<ApiToken> {
    let token = token_by_id(tx, id)?;
    if token.revoked_at.is_none() {
        tx.execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        credential_audit(tx, actor, "token.revoke", &token.describe())?;
    }
    token_by_id(tx, id)
}

/// An auth failure, for the audit trail (who tried, from where, what).
pub fn audit_event(
    tx: &Transaction<'_>,
    actor: &Actor,
    action: &str,
    what: &str,
) -> StoreResult<()> {
    credential_audit(tx, actor, action, what)
}

/// Databases from before scoped tokens: `api` tokens get every scope but
/// admin, `admin` tokens get admin.
pub fn migrate_tokens(conn: &Connection) -> StoreResult<()> {
    let has_scopes: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('api_tokens') WHERE name = 'scopes')",
        [],
        |r| r.get(0),
    )?;
    if has_scopes {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
         ALTER TABLE api_tokens ADD COLUMN source_systems TEXT;
         ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
         UPDATE api_tokens SET scopes = CASE role WHEN 'admin' THEN 'admin'
             ELSE 'status read write decide packets webhooks' END;
         COMMIT;",
    )?;
    Ok(())
}

pub fn add_enrollment_code(
    tx: &Transaction<'_>,
    site: &str,
    code_hash: &str,
    expires_at: &str,
    actor: &Actor,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO enrollment_codes (code_hash, site, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![code_hash, site, now(), expires_at],
    )?;
    credential_audit(
        tx,
        actor,
        "enrollment_code.create",
        &format!("site {site}; expires {expires_at}"),
    )
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
    credential_audit(
        tx,
        &Actor(format!("agent:{agent_id}")),
        "agent.enroll",
        &format!("site {site}; name {name:?}"),
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
