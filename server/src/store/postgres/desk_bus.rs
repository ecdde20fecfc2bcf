//! The desk bus over PostgreSQL: `pg_notify('imc_desks', '<schema> <json>')`
//! on a pooled connection, and one listening connection per process that
//! hands every event of this schema to the subscribers. Publishing happens
//! after the change the event reports has committed (the caller's store call
//! returned), so a replica never acts on a revocation that rolled back.

use crate::desk_bus::{DeskBus, Envelope};
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::broadcast;

const CHANNEL: &str = "imc_desks";
/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

pub struct PgDeskBus {
    pool: Pool,
    config: tokio_postgres::Config,
    sender: Arc<broadcast::Sender<Envelope>>,
    started: OnceLock<()>,
}

impl PgDeskBus {
    pub fn new(pool: Pool, config: tokio_postgres::Config) -> PgDeskBus {
        PgDeskBus {
            pool,
            config,
            sender: Arc::new(broadcast::channel(256).0),
            started: OnceLock::new(),
        }
    }
}

impl DeskBus for PgDeskBus {
    fn publish(&self, envelope: Envelope) {
        let json = match serde_json::to_string(&envelope) {
            Ok(json) if json.len() <= MAX_PAYLOAD => json,
            Ok(json) => {
                tracing::warn!(bytes = json.len(), "desk event too large to publish");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "encoding a desk event");
                return;
            }
        };
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let sent = async {
                let conn = pool.get().await.map_err(|e| e.to_string())?;
                conn.execute(
                    "SELECT pg_notify($1, current_schema() || ' ' || $2)",
                    &[&CHANNEL, &json],
                )
                .await
                .map_err(|e| e.to_string())
            };
            if let Err(e) = sent.await {
                tracing::warn!(error = %e, "publishing a desk event to the other replicas");
            }
        });
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.started.get_or_init(|| {
            tokio::spawn(listen(self.config.clone(), Arc::downgrade(&self.sender)));
        });
        self.sender.subscribe()
    }
}

/// Listens until the bus is dropped, reconnecting with backoff.
async fn listen(config: tokio_postgres::Config, sender: Weak<broadcast::Sender<Envelope>>) {
    let mut backoff = Duration::from_millis(250);
    while sender.strong_count() > 0 {
        match listen_once(&config, &sender).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "desk bus lost its database connection; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Ok when the bus is gone; Err when the connection failed.
async fn listen_once(
    config: &tokio_postgres::Config,
    sender: &Weak<broadcast::Sender<Envelope>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if notes_tx.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    let schema: String = client
        .query_one("SELECT current_schema()", &[])
        .await?
        .get(0);
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    while let Some(payload) = notes.recv().await {
        let Some(sender) = sender.upgrade() else {
            return Ok(());
        };
        if let Some(envelope) = decode(&schema, &payload) {
            let _ = sender.send(envelope);
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// The envelope in `<schema> <json>`, if it is this schema's and readable.
fn decode(schema: &str, payload: &str) -> Option<Envelope> {
    let (from, json) = payload.split_once(' ')?;
    if from != schema {
        return None;
    }
    match serde_json::from_str(json) {
        Ok(envelope) => Some(envelope),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable desk event");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk_bus::DeskEvent;

    #[test]
    fn only_this_schemas_readable_events_count() {
        let envelope = Envelope {
            from: uuid::Uuid::nil(),
            event: DeskEvent::SessionTaken {
                agent: "a".into(),
                by: uuid::Uuid::nil(),
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(decode("s1", &format!("s1 {json}")), Some(envelope));
        assert_eq!(decode("s2", &format!("s1 {json}")), None);
        assert_eq!(decode("s1", "s1 {"), None);
        assert_eq!(decode("s1", "garbage"), None);
    }
}
