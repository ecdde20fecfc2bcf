//! Credentials and agents.

use super::db;
use crate::store::{Agent, AgentRecord, ApiToken, StoreError, StoreResult, TokenRole, now};
use deadpool_postgres::GenericClient;
use imc_shared::protocol::AgentReport;
use tokio_postgres::Row;

pub async fn add_api_token(
    tx: &impl GenericClient,
    name: &str,
    role: TokenRole,
    token_hash: &str,
) -> StoreResult<i64> {
    let row = db::query_one(
        tx,
        "INSERT INTO api_tokens (token_hash, name, role, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        &[&token_hash, &name, &role.as_str(), &now()],
    )
    .await?;
    Ok(row.get(0))
}

pub async fn api_token_by_hash(
    c: &impl GenericClient,
    token_hash: &str,
) -> StoreResult<Option<ApiToken>> {
    let row = db::query_opt(
        c,
        "SELECT id, name, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        &[&token_hash],
    )
    .await?;
    row.map(|r| {
        let (id, name, role): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
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

pub async fn add_enrollment_code(
    tx: &impl GenericClient,
    site: &str,
    code_hash: &str,
    expires_at: &str,
) -> StoreResult<()> {
    db::execute(
        tx,
        "INSERT INTO enrollment_codes (code_hash, site, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        &[&code_hash, &site, &now(), &expires_at],
    )
    .await?;
    Ok(())
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
