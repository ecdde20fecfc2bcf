//! Credentials and agents.

use super::db;
use crate::store::{
    Actor, Agent, AgentRecord, ApiToken, NewApiToken, StoreError, StoreResult, legacy_role, now,
    parse_scopes, parse_sources, scopes_text,
};
use deadpool_postgres::GenericClient;
use imc_shared::protocol::AgentReport;
use tokio_postgres::Row;

const TOKEN_COLUMNS: &str = "id, name, scopes, source_systems, created_at, expires_at, revoked_at";

fn token_of(r: &Row) -> StoreResult<ApiToken> {
    let id: i64 = r.get(0);
    let scopes: String = r.get(2);
    Ok(ApiToken {
        id,
        name: r.get(1),
        scopes: parse_scopes(id, &scopes)?,
        source_systems: parse_sources(r.get(3)),
        created_at: r.get(4),
        expires_at: r.get(5),
        revoked_at: r.get(6),
    })
}

async fn credential_audit(
    tx: &impl GenericClient,
    actor: &Actor,
    action: &str,
    what: &str,
) -> StoreResult<()> {
    super::documents::audit(tx, actor, None, action, None, None, Some(what)).await
}

pub async fn add_api_token(
    tx: &impl GenericClient,
    token: &NewApiToken,
    actor: &Actor,
) -> StoreResult<ApiToken> {
    let stored = insert_token(tx, token).await?;
    credential_audit(tx, actor, "token.create", &stored.describe()).await?;
    Ok(stored)
}

/// The one INSERT of a token, for creation and rotation alike.
async fn insert_token(tx: &impl GenericClient, token: &NewApiToken) -> StoreResult<ApiToken> {
    let sources = token.source_systems.as_ref().map(|s| s.join(" "));
    let row = db::query_one(
        tx,
        &format!(
            "INSERT INTO api_tokens (token_hash, name, role, scopes, source_systems, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLUMNS}"
        ),
        &[
            &token.token_hash,
            &token.name,
            &legacy_role(&token.scopes),
            &scopes_text(&token.scopes),
            &sources,
            &now(),
        ],
    )
    .await?;
    token_of(&row)
}

async fn token_by_id(c: &impl GenericClient, id: i64) -> StoreResult<ApiToken> {
    let row = db::query_opt(
        c,
        &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"),
        &[&id],
    )
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("token {id}")))?;
    token_of(&row)
}

/// A token that works now: not revoked, and not past its rotation overlap.
pub async fn api_token_by_hash(
    c: &impl GenericClient,
    token_hash: &str,
) -> StoreResult<Option<ApiToken>> {
    db::query_opt(
        c,
        &format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)"
        ),
        &[&token_hash, &now()],
    )
    .await?
    .map(|r| token_of(&r))
    .transpose()
}

pub async fn api_tokens(c: &impl GenericClient) -> StoreResult<Vec<ApiToken>> {
    db::query(
        c,
        &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"),
        &[],
    )
    .await?
    .iter()
    .map(token_of)
    .collect()
}

/// A new secret with the same name, scopes and source systems; the old one
/// keeps working until `old_expires_at`. The old row is locked so that two
/// replicas rotating at once take turns.
pub async fn rotate_api_token(
    tx: &impl GenericClient,
    id: i64,
    new_hash: &str,
    old_expires_at: &str,
    actor: &Actor,
) -> StoreResult<ApiToken> {
    db::query_opt(
        tx,
        "SELECT id FROM api_tokens WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?;
    let old = token_by_id(tx, id).await?;
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
    db::execute(
        tx,
        "UPDATE api_tokens SET expires_at = $2 WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        &[&id, &old_expires_at],
    )
    .await?;
    let new = NewApiToken {
        name: old.name.clone(),
        scopes: old.scopes.clone(),
        source_systems: old.source_systems.clone(),
        token_hash: new_hash.to_owned(),
    };
    let stored = insert_token(tx, &new).await?;
    credential_audit(
        tx,
        actor,
        "token.rotate",
        &format!(
            "token {id} replaced by {}; old secret valid until {old_expires_at}",
            stored.id
        ),
    )
    .await?;
    Ok(stored)
}

pub async fn revoke_api_token(
    tx: &impl GenericClient,
    id: i64,
    actor: &Actor,
) -> StoreResult<ApiToken> {
    let revoked = db::query_opt(
        tx,
        "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id",
        &[&id, &now()],
    )
    .await?;
    let token = token_by_id(tx, id).await?;
    if revoked.is_some() {
        credential_audit(tx, actor, "token.revoke", &token.describe()).await?;
    }
    Ok(token)
}

/// An auth failure, for the audit trail (who tried, from where, what).
pub async fn audit_event(
    tx: &impl GenericClient,
    actor: &Actor,
    action: &str,
    what: &str,
) -> StoreResult<()> {
    credential_audit(tx, actor, action, what).await
}

pub async fn add_enrollment_code(
    tx: &impl GenericClient,
    site: &str,
    code_hash: &str,
    expires_at: &str,
    actor: &Actor,
) -> StoreResult<()> {
    db::execute(
        tx,
        "INSERT INTO enrollment_codes (code_hash, site, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        &[&code_hash, &site, &now(), &expires_at],
    )
    .await?;
    credential_audit(
        tx,
        actor,
        "enrollment_code.create",
        &format!("site {site}; expires {expires_at}"),
    )
    .await
}

/// Spending the code is one conditional UPDATE, so two desks racing with the
/// same code cannot both enrol.
pub async fn enroll(
    tx: &impl GenericClient,
    code_hash: &str,
    agent_id: &str,
    name: &str,
    token_hash: &str,
    version: Option<&str>,
) -> StoreResult<Agent> {
    let at = now();
    let site: Option<String> = db::query_opt(
        tx,
        "UPDATE enrollment_codes SET used_at = $2, used_by = $3 \
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING site",
        &[&code_hash, &at, &agent_id],
    )
    .await?
    .map(|r| r.get(0));
    let Some(site) = site else {
        return Err(StoreError::NotFound(
            "enrollment code (unknown, already used or expired)".into(),
        ));
    };
    db::execute(
        tx,
        "INSERT INTO agents (id, site, name, token_hash, version, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&agent_id, &site, &name, &token_hash, &version, &at],
    )
    .await?;
    credential_audit(
        tx,
        &Actor(format!("agent:{agent_id}")),
        "agent.enroll",
        &format!("site {site}; name {name:?}"),
    )
    .await?;
    Ok(Agent {
        id: agent_id.to_owned(),
        site,
        name: name.to_owned(),
    })
}

pub async fn agent_by_token_hash(
    c: &impl GenericClient,
    token_hash: &str,
) -> StoreResult<Option<Agent>> {
    Ok(db::query_opt(
        c,
        "SELECT id, site, name FROM agents WHERE token_hash = $1 AND revoked_at IS NULL",
        &[&token_hash],
    )
    .await?
    .map(|r| Agent {
        id: r.get(0),
        site: r.get(1),
        name: r.get(2),
    }))
}

pub async fn seen(
    c: &impl GenericClient,
    agent_id: &str,
    report: Option<&AgentReport>,
) -> StoreResult<()> {
    match report {
        Some(r) => {
            let pages = db::i64_of(r.queue_pages, "queue_pages")?;
            let bytes = db::i64_of(r.queue_bytes, "queue_bytes")?;
            let quarantined = db::i64_of(r.quarantined, "quarantined")?;
            db::execute(
                c,
                "UPDATE agents SET last_seen_at = $2, queue_pages = $3, queue_bytes = $4, quarantined = $5 \
                 WHERE id = $1",
                &[&agent_id, &now(), &pages, &bytes, &quarantined],
            )
            .await?
        }
        None => {
            db::execute(
                c,
                "UPDATE agents SET last_seen_at = $2 WHERE id = $1",
                &[&agent_id, &now()],
            )
            .await?
        }
    };
    Ok(())
}

const AGENT_COLUMNS: &str = "id, site, name, version, enrolled_at, last_seen_at, revoked_at, \
                             queue_pages, queue_bytes, quarantined";

fn agent_record(r: &Row) -> StoreResult<AgentRecord> {
    let count = |i: usize, what: &str| -> StoreResult<Option<u64>> {
        r.get::<_, Option<i64>>(i)
            .map(|n| db::u64_of(n, what))
            .transpose()
    };
    Ok(AgentRecord {
        id: r.get(0),
        site: r.get(1),
        name: r.get(2),
        version: r.get(3),
        enrolled_at: r.get(4),
        last_seen_at: r.get(5),
        revoked_at: r.get(6),
        queue_pages: count(7, "queue_pages")?,
        queue_bytes: count(8, "queue_bytes")?,
        quarantined: count(9, "quarantined")?,
    })
}

pub async fn list(c: &impl GenericClient) -> StoreResult<Vec<AgentRecord>> {
    db::query(
        c,
        &format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY site, name, id"),
        &[],
    )
    .await?
    .iter()
    .map(agent_record)
    .collect()
}

/// Conditional, so a second revocation keeps the first time.
pub async fn revoke(tx: &impl GenericClient, agent_id: &str) -> StoreResult<AgentRecord> {
    db::execute(
        tx,
        "UPDATE agents SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        &[&agent_id, &now()],
    )
    .await?;
    let row = db::query_opt(
        tx,
        &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1"),
        &[&agent_id],
    )
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("agent {agent_id}")))?;
    agent_record(&row)
}

pub async fn active(c: &impl GenericClient, agent_id: &str) -> StoreResult<bool> {
    Ok(db::query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1 AND revoked_at IS NULL)",
        &[&agent_id],
    )
    .await?
    .get(0))
}
