//! Webhook targets, the durable outbox and the delivery log.
//!
//! Events are written in the transaction of their status change (see
//! `store/sqlite/webhooks.rs`). With several replicas each delivery task
//! claims due events with `FOR UPDATE SKIP LOCKED` and pushes their next
//! attempt a lease into the future, so one event goes out from one replica at
//! a time; a replica that dies mid-delivery leaves its claim to lapse and the
//! event goes out again (at least once, same `event_id`).

use super::{db, documents};
use crate::store::*;
use deadpool_postgres::GenericClient;
use imc_shared::api::WebhookEvent;

/// How long a claimed event is left to the replica that claimed it: longer
/// than a claimed batch takes to send (`webhooks::BATCH` × the request
/// timeout), short enough that a replica's crash delays its events (and the
/// later events of the same documents) by a minute at most.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(60);

pub async fn put(
    tx: &impl GenericClient,
    source_system: &str,
    url: &str,
    secret: &str,
    actor: &Actor,
) -> StoreResult<WebhookTarget> {
    let at = now();
    db::execute(
        tx,
        "INSERT INTO webhooks (source_system, url, secret, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (source_system) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret, \
         updated_at = EXCLUDED.updated_at",
        &[&source_system, &url, &secret, &at],
    )
    .await?;
    documents::audit(
        tx,
        actor,
        None,
        "webhook.put",
        None,
        None,
        Some(&format!("{source_system} -> {url}")),
    )
    .await?;
    Ok(WebhookTarget {
        source_system: source_system.to_owned(),
        url: url.to_owned(),
        updated_at: at,
    })
}

/// Whether a status change of `doc` makes an event: it is a change, and the
/// document's source system has a webhook.
pub async fn wanted(
    tx: &impl GenericClient,
    doc: &Document,
    from: DocStatus,
    to: DocStatus,
) -> StoreResult<bool> {
    if from == to {
        return Ok(false);
    }
    Ok(db::query_one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM webhooks WHERE source_system = $1)",
        &[&doc.source_system],
    )
    .await?
    .get(0))
}

/// Queues the event of a status change that is [`wanted`]; called from
/// inside the transition's transaction, which also read the attachment check
/// (so the pages it attached count).
pub async fn enqueue(
    tx: &impl GenericClient,
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
    db::execute(
        tx,
        "INSERT INTO webhook_outbox (event_id, document_id, source_system, body, state, \
         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
        &[&event.event_id, &doc.id, &doc.source_system, &body, &at],
    )
    .await?;
    Ok(())
}

/// Claims events due at `now`, oldest first, at most one per document (the
/// oldest pending one, so a receiver never sees `ready` before `matched`).
pub async fn claim_due(
    tx: &impl GenericClient,
    now: &str,
    limit: u32,
) -> StoreResult<Vec<OutboxItem>> {
    let rows = db::query(
        tx,
        "SELECT o.id, o.event_id, o.document_id, w.url, w.secret, o.body, o.attempts \
         FROM webhook_outbox o JOIN webhooks w ON w.source_system = o.source_system \
         WHERE o.state = 'pending' AND o.next_attempt_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.document_id = o.document_id \
                         AND p.state = 'pending' AND p.id < o.id) \
         ORDER BY o.next_attempt_at, o.id LIMIT $2 \
         FOR UPDATE OF o SKIP LOCKED",
        &[&now, &i64::from(limit)],
    )
    .await?;
    let until = chrono::DateTime::parse_from_rfc3339(now)
        .map_err(|e| StoreError::Invalid {
            field: "now".into(),
            message: format!("{now:?} is not an RFC 3339 time: {e}"),
        })?
        .with_timezone(&chrono::Utc)
        + CLAIM_LEASE;
    let until = until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.get(0);
        db::execute(
            tx,
            "UPDATE webhook_outbox SET next_attempt_at = $2 WHERE id = $1",
            &[&id, &until],
        )
        .await?;
        items.push(OutboxItem {
            id,
            event_id: r.get(1),
            document_id: r.get(2),
            url: r.get(3),
            secret: r.get(4),
            body: r.get(5),
            attempts: db::u32_of(r.get(6), "outbox attempts")?,
        });
    }
    Ok(items)
}

pub async fn record(
    tx: &impl GenericClient,
    outbox_id: i64,
    outcome: &DeliveryOutcome,
) -> StoreResult<()> {
    let row = db::query_opt(
        tx,
        "SELECT event_id, document_id, attempts, state FROM webhook_outbox WHERE id = $1 FOR UPDATE",
        &[&outbox_id],
    )
    .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("outbox event {outbox_id}")));
    };
    let (event_id, document_id, attempts, state): (String, i64, i32, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if state != "pending" {
        return Ok(());
    }
    let at = now();
    let attempt = attempts + 1;
    let http_status = outcome.http_status.map(i32::from);
    db::execute(
        tx,
        "INSERT INTO webhook_deliveries (outbox_id, document_id, event_id, attempt, at, url, \
         http_status, error, delivered) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &outbox_id,
            &document_id,
            &event_id,
            &attempt,
            &at,
            &outcome.url,
            &http_status,
            &outcome.error,
            &outcome.delivered,
        ],
    )
    .await?;
    let (state, next, finished) = match (outcome.delivered, &outcome.retry_at) {
        (true, _) => ("delivered", at.clone(), Some(at.clone())),
        (false, Some(retry_at)) => ("pending", retry_at.clone(), None),
        (false, None) => ("failed", at.clone(), Some(at.clone())),
    };
    db::execute(
        tx,
        "UPDATE webhook_outbox SET attempts = $2, state = $3, next_attempt_at = $4, finished_at = $5 \
         WHERE id = $1",
        &[&outbox_id, &attempt, &state, &next, &finished],
    )
    .await?;
    Ok(())
}

pub async fn deliveries(c: &impl GenericClient, document_id: i64) -> StoreResult<Vec<Delivery>> {
    let rows = db::query(
        c,
        "SELECT event_id, attempt, at, url, http_status, error, delivered \
         FROM webhook_deliveries WHERE document_id = $1 ORDER BY id",
        &[&document_id],
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let status: Option<i32> = r.get(4);
            Ok(Delivery {
                event_id: r.get(0),
                attempt: db::u32_of(r.get(1), "delivery attempt")?,
                at: r.get(2),
                url: r.get(3),
                http_status: status
                    .map(|s| {
                        u16::try_from(s)
                            .map_err(|_| StoreError::Corrupt(format!("HTTP status {s}")))
                    })
                    .transpose()?,
                error: r.get(5),
                delivered: r.get(6),
            })
        })
        .collect()
}

pub async fn secrets(c: &impl GenericClient) -> StoreResult<Vec<(String, String)>> {
    let rows = db::query(
        c,
        "SELECT source_system, secret FROM webhooks ORDER BY source_system",
        &[],
    )
    .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn replace_secrets(
    tx: &impl GenericClient,
    changes: &[SecretChange],
) -> StoreResult<u64> {
    let mut replaced = 0;
    for c in changes {
        replaced += db::execute(
            tx,
            "UPDATE webhooks SET secret = $3 WHERE source_system = $1 AND secret = $2",
            &[&c.source_system, &c.old, &c.new],
        )
        .await?;
    }
    Ok(replaced)
}
