//! Delivers the webhook outbox: one owned task, started by `serve_state`,
//! cancelled and awaited on shutdown.
//!
//! At least once: an attempt is recorded only after the receiver answered
//! (or failed); a crash or shutdown in between means the event is sent again,
//! with the same `event_id`, for the receiver to de-duplicate. Each body is
//! signed with `X-IMC-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//! Failures back off exponentially (`webhook_retry` in the settings) until
//! `max_attempts`, after which the event is marked failed in the log.
//! Secrets are stored sealed (`crate::secrets`) and opened just to sign.

use crate::secrets::Keyring;
use crate::store::{DeliveryOutcome, OutboxItem, Store};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const SIGNATURE_HEADER: &str = "X-IMC-Signature";
/// How often the outbox is looked at when it was empty.
const POLL: Duration = Duration::from_millis(250);
/// Most events taken per look; they are sent one after another, so on
/// PostgreSQL this many request timeouts must fit in the claim lease (60 s).
pub const BATCH: u32 = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff never waits longer than this between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Receivers' answers are logged, not kept: a short excerpt is enough.
const MAX_ERROR_LEN: usize = 300;

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> Result<String, hmac::digest::InvalidLength> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// The wait after `attempts` failed attempts: base, 2×base, 4×base, ...
pub fn backoff(base_delay_secs: u64, attempts: u32) -> Duration {
    let factor = 1u64 << attempts.saturating_sub(1).min(20);
    Duration::from_secs(base_delay_secs.saturating_mul(factor)).min(MAX_DELAY)
}

/// Runs until `shutdown` is cancelled.
pub async fn run(store: Arc<dyn Store>, keys: Arc<Keyring>, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery disabled: cannot build an HTTP client");
            return;
        }
    };
    while !shutdown.is_cancelled() {
        let sent = match deliver_due(&*store, &keys, &client, &shutdown).await {
            Ok(sent) => sent,
            Err(e) => {
                tracing::warn!(error = %e, "webhook outbox");
                0
            }
        };
        if sent == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

async fn deliver_due(
    store: &dyn Store,
    keys: &Keyring,
    client: &reqwest::Client,
    shutdown: &CancellationToken,
) -> anyhow::Result<usize> {
    let due = store.due_webhooks(&crate::store::now(), BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let retry = store.settings().await?.webhook_retry;
    let mut sent = 0;
    for item in due {
        let attempt = tokio::select! {
            // Not recorded: the event stays due and is sent again after a restart.
            _ = shutdown.cancelled() => return Ok(sent),
            outcome = send(client, keys, &item) => outcome,
        };
        let (http_status, error, delivered) = attempt;
        let attempts = item.attempts + 1;
        let retry_at = (!delivered && attempts < retry.max_attempts).then(|| {
            let wait = backoff(retry.base_delay_secs, attempts);
            let at = chrono::Utc::now()
                + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
        if !delivered {
            tracing::info!(event = %item.event_id, attempts, ?http_status, ?error, "webhook not delivered");
        }
        store
            .record_delivery(
                item.id,
                DeliveryOutcome {
                    url: item.url.clone(),
                    http_status,
                    error,
                    delivered,
                    retry_at,
                },
            )
            .await?;
        sent += 1;
    }
    Ok(sent)
}

async fn send(
    client: &reqwest::Client,
    keys: &Keyring,
    item: &OutboxItem,
) -> (Option<u16>, Option<String>, bool) {
    // The error names the key id, never the secret.
    let secret = match keys.open(&item.secret) {
        Ok(secret) => secret,
        Err(e) => return (None, Some(format!("webhook secret: {e:#}")), false),
    };
    let signature = match signature(secret.as_bytes(), item.body.as_bytes()) {
        Ok(signature) => signature,
        Err(e) => return (None, Some(format!("signing: {e}")), false),
    };
    let response = client
        .post(&item.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header("X-IMC-Event-Id", &item.event_id)
        .body(item.body.clone())
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None, true),
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let excerpt: String = text.chars().take(MAX_ERROR_LEN).collect();
            (
                Some(status),
                Some(format!("HTTP {status}: {excerpt}")),
                false,
            )
        }
        Err(e) => (None, Some(e.to_string()), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(5, 1), Duration::from_secs(5));
        assert_eq!(backoff(5, 2), Duration::from_secs(10));
        assert_eq!(backoff(5, 4), Duration::from_secs(40));
        assert_eq!(backoff(5, 60), MAX_DELAY);
    }

    #[test]
    fn signature_is_the_rfc_4231_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?")
                .ok()
                .as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
