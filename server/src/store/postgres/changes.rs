//! Live updates across replicas: the triggers of migration 2 queue a
//! notification on `imc_changes` for every changed document, packet and agent
//! row; PostgreSQL delivers it to every listening connection when the
//! transaction commits, and never for one that rolled back. One listening
//! connection per process turns them into [`Change`]s, whichever replica
//! made the change.

use crate::store::Change;
use futures_util::StreamExt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

const CHANNEL: &str = "imc_changes";
/// Most document ids one announcement lists; more say `many`.
const MAX_IDS: usize = 64;

pub struct Announcer {
    sender: Arc<broadcast::Sender<Change>>,
    started: OnceLock<()>,
}

impl Announcer {
    pub fn new() -> Announcer {
        Announcer {
            // Listeners that fall this far behind get `Lagged` and reload.
            sender: Arc::new(broadcast::channel(256).0),
            started: OnceLock::new(),
        }
    }

    /// Subscribes, starting the listening connection on first use (it needs
    /// the runtime, which a pool does not).
    pub fn subscribe(&self, config: &tokio_postgres::Config) -> broadcast::Receiver<Change> {
        self.started.get_or_init(|| {
            tokio::spawn(listen(config.clone(), Arc::downgrade(&self.sender)));
        });
        self.sender.subscribe()
    }
}

/// Listens until the store is dropped, reconnecting with backoff; after a
/// reconnect everyone reloads, since announcements may have been missed.
async fn listen(config: tokio_postgres::Config, sender: Weak<broadcast::Sender<Change>>) {
    let mut backoff = Duration::from_millis(250);
    let mut reconnected = false;
    loop {
        if sender.strong_count() == 0 {
            return;
        }
        match listen_once(&config, &sender, reconnected).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "live-update listener lost its database connection; reconnecting");
                reconnected = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Ok when the store is gone; Err when the connection failed.
async fn listen_once(
    config: &tokio_postgres::Config,
    sender: &Weak<broadcast::Sender<Change>>,
    reconnected: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    // The connection only makes progress while polled; its messages carry
    // the notifications.
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
    if reconnected && let Some(sender) = sender.upgrade() {
        let _ = sender.send(Change {
            documents: Vec::new(),
            many: true,
            packets: true,
            agents: true,
        });
    }
    while let Some(first) = notes.recv().await {
        let Some(sender) = sender.upgrade() else {
            return Ok(());
        };
        let mut change = Change::default();
        add(&mut change, &schema, &first);
        // Whatever else already arrived goes out as one announcement.
        while let Ok(more) = notes.try_recv() {
            add(&mut change, &schema, &more);
        }
        if change != Change::default() {
            // No listener is not an error.
            let _ = sender.send(change);
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        // The driver task panicked or was cancelled: treat as a lost connection.
        Err(_) => Ok(()),
    }
}

/// Folds one payload (`<schema> d<id>`, `<schema> p`, `<schema> a`) into `change`.
fn add(change: &mut Change, schema: &str, payload: &str) {
    let Some((from, what)) = payload.split_once(' ') else {
        return;
    };
    if from != schema {
        return;
    }
    match what.split_at_checked(1) {
        Some(("d", id)) => match id.parse::<i64>() {
            Ok(id) if change.documents.contains(&id) => {}
            Ok(id) if change.documents.len() < MAX_IDS => change.documents.push(id),
            _ => change.many = true,
        },
        Some(("p", _)) => change.packets = true,
        Some(("a", _)) => change.agents = true,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_other_schemas_are_ignored_and_ids_deduplicated() {
        let mut change = Change::default();
        for payload in [
            "s1 d5", "s1 d5", "s2 d6", "s1 p", "s1 a", "garbage", "s1 dx",
        ] {
            add(&mut change, "s1", payload);
        }
        assert_eq!(change.documents, [5]);
        assert!(change.packets && change.agents && change.many);
    }
}
