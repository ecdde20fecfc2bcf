//! Totals for `/metrics`: counted from the tables, so they survive restarts
//! and agree with what the API shows.

use super::*;

fn unix_seconds(at: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

fn counts(c: &Connection, sql: &str) -> StoreResult<Vec<(String, u64)>> {
    let mut stmt = c.prepare(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn snapshot(c: &Connection) -> StoreResult<OpsSnapshot> {
    let (pages, page_bytes): (u64, u64) = c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM pages",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (webhooks_pending, oldest): (u64, Option<String>) = c.query_row(
        "SELECT COUNT(*), MIN(created_at) FROM webhook_outbox WHERE state = 'pending'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let webhook_oldest_pending_secs = oldest
        .as_deref()
        .and_then(unix_seconds)
        .map_or(0.0, |t| (now - t).max(0.0));
    let mut stmt = c.prepare(
        "SELECT id, site, name, last_seen_at, queue_pages, queue_bytes, quarantined
         FROM agents WHERE revoked_at IS NULL ORDER BY id",
    )?;
    let agents = stmt
        .query_map([], |r| {
            Ok(AgentOps {
                id: r.get(0)?,
                site: r.get(1)?,
                name: r.get(2)?,
                last_seen: r
                    .get::<_, Option<String>>(3)?
                    .as_deref()
                    .and_then(unix_seconds),
                queue_pages: r.get(4)?,
                queue_bytes: r.get(5)?,
                quarantined: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let images_purged: u64 = c.query_row(
        "SELECT COUNT(*) FROM images WHERE purged_at IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    let blob_deletions_pending: u64 =
        c.query_row("SELECT COUNT(*) FROM blob_deletions", [], |r| r.get(0))?;
    Ok(OpsSnapshot {
        images_purged,
        blob_deletions_pending,
        pages,
        page_bytes,
        documents_by_status: counts(c, "SELECT status, COUNT(*) FROM documents GROUP BY status")?,
        packets_by_state: counts(c, "SELECT state, COUNT(*) FROM packets GROUP BY state")?,
        webhooks_pending,
        webhook_oldest_pending_secs,
        agents,
    })
}
