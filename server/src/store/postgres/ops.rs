//! Totals for `/metrics`, as `store/sqlite/ops.rs` counts them: from the
//! tables, so every replica reports the same numbers.

use super::db;
use crate::store::{AgentOps, OpsSnapshot, StoreResult};
use deadpool_postgres::GenericClient;

fn unix_seconds(at: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

fn count_of(n: Option<i64>, what: &str) -> StoreResult<Option<u64>> {
    n.map(|n| db::u64_of(n, what)).transpose()
}

async fn counts(c: &impl GenericClient, sql: &str) -> StoreResult<Vec<(String, u64)>> {
    db::query(c, sql, &[])
        .await?
        .iter()
        .map(|r| Ok((r.get(0), db::u64_of(r.get(1), "count")?)))
        .collect()
}

/// Reads everything in one snapshot, so the totals agree with each other.
pub async fn snapshot(tx: &impl GenericClient) -> StoreResult<OpsSnapshot> {
    // SUM over BIGINT is NUMERIC in PostgreSQL; the cast keeps it an i64.
    let row = db::query_one(
        tx,
        "SELECT COUNT(*), COALESCE(SUM(size), 0)::BIGINT FROM pages",
        &[],
    )
    .await?;
    let pages = db::u64_of(row.get(0), "page count")?;
    let page_bytes = db::u64_of(row.get(1), "page bytes")?;
    let row = db::query_one(
        tx,
        "SELECT COUNT(*), MIN(created_at) FROM webhook_outbox WHERE state = 'pending'",
        &[],
    )
    .await?;
    let webhooks_pending = db::u64_of(row.get(0), "pending webhooks")?;
    let oldest: Option<String> = row.get(1);
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let webhook_oldest_pending_secs = oldest
        .as_deref()
        .and_then(unix_seconds)
        .map_or(0.0, |t| (now - t).max(0.0));
    let agents = db::query(
        tx,
        "SELECT id, site, name, last_seen_at, queue_pages, queue_bytes, quarantined \
         FROM agents WHERE revoked_at IS NULL ORDER BY id",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(AgentOps {
            id: r.get(0),
            site: r.get(1),
            name: r.get(2),
            last_seen: r
                .get::<_, Option<String>>(3)
                .as_deref()
                .and_then(unix_seconds),
            queue_pages: count_of(r.get(4), "queue_pages")?,
            queue_bytes: count_of(r.get(5), "queue_bytes")?,
            quarantined: count_of(r.get(6), "quarantined")?,
        })
    })
    .collect::<StoreResult<_>>()?;
    let row = db::query_one(
        tx,
        "SELECT (SELECT COUNT(*) FROM images WHERE purged_at IS NOT NULL), \
         (SELECT COUNT(*) FROM blob_deletions)",
        &[],
    )
    .await?;
    Ok(OpsSnapshot {
        images_purged: db::u64_of(row.get(0), "purged images")?,
        blob_deletions_pending: db::u64_of(row.get(1), "pending blob deletions")?,
        pages,
        page_bytes,
        documents_by_status: counts(
            tx,
            "SELECT status, COUNT(*) FROM documents GROUP BY status ORDER BY status",
        )
        .await?,
        packets_by_state: counts(
            tx,
            "SELECT state, COUNT(*) FROM packets GROUP BY state ORDER BY state",
        )
        .await?,
        webhooks_pending,
        webhook_oldest_pending_secs,
        agents,
    })
}
