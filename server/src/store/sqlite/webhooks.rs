//! Webhook targets, the durable outbox and the delivery log.
//!
//! An event is written to the outbox in the same transaction as the status
//! change it reports, so a committed change is never lost to a crash, and a
//! rolled-back one is never announced. The delivery task (`crate::webhooks`)
//! drains the outbox; the body is stored as sent, so every retry is signed
//! over the same bytes.

use super::now;
use crate::store::*;
use imc_shared::api::WebhookEvent;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub fn put(
    tx: &Transaction<'_>,
    source_system: &str,
    url: &str,
    secret: &str,
) -> StoreResult<WebhookTarget> {
    let at = now();
    tx.execute(
        "INSERT INTO webhooks (source_system, url, secret, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (source_system) DO UPDATE SET url = ?2, secret = ?3, updated_at = ?4",
        params![source_system, url, secret, at],
    )?;
    Ok(WebhookTarget {
        source_system: source_system.to_owned(),
        url: url.to_owned(),
        updated_at: at,
    })
}

/// Whether a status change of `doc` makes an event: it is a change, and the
/// document's source system has a webhook.
pub fn wanted(
    tx: &Transaction<'_>,
    doc: &Document,
    from: DocStatus,
    to: DocStatus,
) -> StoreResult<bool> {
    if from == to {
        return Ok(false);
    }
    Ok(tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM webhooks WHERE source_system = ?1)")?
        .query_row([&doc.source_system], |r| r.get(0))?)
}

/// Queues the event of a status change that is [`wanted`]; called from
/// inside the transition's transaction, which also read the attachment check
/// (so the pages it attached count).
pub fn enqueue(
    tx: &Transaction<'_>,
    doc: &Document,
    from: DocStatus,
    to: DocStatus,
    attachment_check: Option<AttachmentCheck>,
) -> StoreResult<()> {
    let at = now();
    let event = WebhookEvent {
        event_id: Uuid::now_v7().to_string(),
        document_id: doc.id,
        doc_no: doc.doc_no.clone(),
        source_system: doc.source_system.clone(),
        old_status: from,
        new_status: to,
        at: at.clone(),
        attachment_check,
    };
    let body = serde_json::to_string(&event)
        .map_err(|e| StoreError::Corrupt(format!("webhook event for {}: {e}", doc.id)))?;
    tx.prepare_cached(
        "INSERT INTO webhook_outbox (event_id, document_id, source_system, body, state, \
         next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
    )?
    .execute(params![event.event_id, doc.id, doc.source_system, body, at])?;
    Ok(())
}

pub fn due(conn: &Connection, now: &str, limit: u32) -> StoreResult<Vec<OutboxItem>> {
    // Only the oldest pending event of each document is offered, so a
    // receiver never sees `ready` before the `matched` that preceded it.
    let mut stmt = conn.prepare_cached(
        "SELECT o.id, o.event_id, o.document_id, w.url, w.secret, o.body, o.attempts \
         FROM webhook_outbox o JOIN webhooks w ON w.source_system = o.source_system \
         WHERE o.state = 'pending' AND o.next_attempt_at <= ?1 \
         AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.document_id = o.document_id \
                         AND p.state = 'pending' AND p.id < o.id) \
         ORDER BY o.next_attempt_at, o.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        Ok(OutboxItem {
            id: r.get(0)?,
            event_id: r.get(1)?,
            document_id: r.get(2)?,
            url: r.get(3)?,
            secret: r.get(4)?,
            body: r.get(5)?,
            attempts: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn record(tx: &Transaction<'_>, outbox_id: i64, outcome: &DeliveryOutcome) -> StoreResult<()> {
    let row: Option<(String, i64, u32, String)> = tx
        .query_row(
            "SELECT event_id, document_id, attempts, state FROM webhook_outbox WHERE id = ?1",
            [outbox_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((event_id, document_id, attempts, state)) = row else {
        return Err(StoreError::NotFound(format!("outbox event {outbox_id}")));
    };
    if state != "pending" {
        return Ok(());
    }
    let at = now();
    let attempt = attempts + 1;
    tx.execute(
        "INSERT INTO webhook_deliveries (outbox_id, document_id, event_id, attempt, at, url, \
         http_status, error, delivered) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            outbox_id,
            document_id,
            event_id,
            attempt,
            at,
            outcome.url,
            outcome.http_status,
            outcome.error,
            outcome.delivered
        ],
    )?;
    let (state, next, finished) = match (outcome.delivered, &outcome.retry_at) {
        (true, _) => ("delivered", at.clone(), Some(at.clone())),
        (false, Some(retry_at)) => ("pending", retry_at.clone(), None),
        (false, None) => ("failed", at.clone(), Some(at.clone())),
    };
    tx.execute(
        "UPDATE webhook_outbox SET attempts = ?2, state = ?3, next_attempt_at = ?4, finished_at = ?5 \
         WHERE id = ?1",
        params![outbox_id, attempt, state, next, finished],
    )?;
    Ok(())
}

pub fn deliveries(conn: &Connection, document_id: i64) -> StoreResult<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT event_id, attempt, at, url, http_status, error, delivered \
         FROM webhook_deliveries WHERE document_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([document_id], |r| {
        Ok(Delivery {
            event_id: r.get(0)?,
            attempt: r.get(1)?,
            at: r.get(2)?,
            url: r.get(3)?,
            http_status: r.get(4)?,
            error: r.get(5)?,
            delivered: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn secrets(conn: &Connection) -> StoreResult<Vec<(String, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT source_system, secret FROM webhooks ORDER BY source_system")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn replace_secrets(tx: &Transaction<'_>, changes: &[SecretChange]) -> StoreResult<u64> {
    let mut stmt = tx.prepare_cached(
        "UPDATE webhooks SET secret = ?3 WHERE source_system = ?1 AND secret = ?2",
    )?;
    let mut replaced = 0;
    for c in changes {
        replaced += stmt.execute(params![c.source_system, c.old, c.new])? as u64;
    }
    Ok(replaced)
}
