//! The desk bus over PostgreSQL: `pg_notify('imc_desks', '<schema> <json>')`
//! on a pooled connection, and one listening connection per process that
//! hands every event of this schema to the subscribers. Publishing happens
//! after the change the event reports has committed (the caller's store call
//! returned), so a replica never acts on a revocation that rolled back.

use super::listen::Feed;
use crate::desk_bus::{DeskBus, Envelope, Generation};
use deadpool_postgres::Pool;
use tokio::sync::broadcast;

const CHANNEL: &str = "imc_desks";
/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

pub struct PgDeskBus {
    pool: Pool,
    config: tokio_postgres::Config,
    feed: Feed<Envelope>,
}

impl PgDeskBus {
    pub fn new(pool: Pool, config: tokio_postgres::Config) -> PgDeskBus {
        PgDeskBus {
            pool,
            config,
            // Events missed in a gap stay missed: sessions are also closed
            // by their own timeouts and refused tokens.
            feed: Feed::new(CHANNEL, decode_all, None),
        }
    }
}

impl DeskBus for PgDeskBus {
    /// The transaction id of a transaction of its own: the cluster assigns
    /// them in increasing order (64 bits with the epoch), so a session that
    /// starts after another on any replica gets a greater one. Nothing to
    /// store and no migration.
    fn generation(&self) -> Generation<'_> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn.query_one("SELECT txid_current()", &[]).await?;
            let xid: i64 = row.try_get(0)?;
            Ok(u64::try_from(xid)?)
        })
    }

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
        self.feed.subscribe(&self.config)
    }
}

fn decode_all(payloads: &[&str]) -> Vec<Envelope> {
    payloads.iter().filter_map(|json| decode(json)).collect()
}

/// The envelope in a payload (the schema already removed), if readable.
fn decode(json: &str) -> Option<Envelope> {
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
    fn only_readable_events_count() {
        let envelope = Envelope {
            from: uuid::Uuid::nil(),
            event: DeskEvent::SessionTaken {
                agent: "a".into(),
                by: uuid::Uuid::nil(),
                generation: Some(1),
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        let twice = decode_all(&[json.as_str(), "{", "garbage", json.as_str()]);
        assert_eq!(twice, [envelope.clone(), envelope]);
    }
}
