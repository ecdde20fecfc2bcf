//! A feed of PostgreSQL notifications: one LISTEN connection per channel and
//! process, started on the first subscriber, reconnecting with backoff for as
//! long as the feed lives. Payloads start with the schema that sent them
//! (`<schema> <rest>`), so databases shared by several installations (or
//! tests) keep their feeds apart. Both the desk's live updates (`changes`)
//! and the desk bus (`desk_bus`) ride on it.

use futures_util::StreamExt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Turns the payloads that arrived together (schema prefix removed, only
/// this schema's) into what subscribers get.
pub type Decode<T> = fn(&[&str]) -> Vec<T>;

pub struct Feed<T> {
    channel: &'static str,
    decode: Decode<T>,
    /// Sent after a reconnect, when notifications may have been missed.
    after_gap: Option<T>,
    sender: Arc<broadcast::Sender<T>>,
    started: OnceLock<()>,
}

impl<T: Clone + Send + Sync + 'static> Feed<T> {
    pub fn new(channel: &'static str, decode: Decode<T>, after_gap: Option<T>) -> Feed<T> {
        Feed {
            channel,
            decode,
            after_gap,
            // Subscribers that fall this far behind get `Lagged`.
            sender: Arc::new(broadcast::channel(256).0),
            started: OnceLock::new(),
        }
    }

    /// Subscribes, starting the listening connection on first use (it needs
    /// the runtime, which a pool does not).
    pub fn subscribe(&self, config: &tokio_postgres::Config) -> broadcast::Receiver<T> {
        self.started.get_or_init(|| {
            let listener = Listener {
                config: config.clone(),
                channel: self.channel,
                decode: self.decode,
                after_gap: self.after_gap.clone(),
                sender: Arc::downgrade(&self.sender),
            };
            tokio::spawn(listener.run());
        });
        self.sender.subscribe()
    }
}

struct Listener<T> {
    config: tokio_postgres::Config,
    channel: &'static str,
    decode: Decode<T>,
    after_gap: Option<T>,
    sender: Weak<broadcast::Sender<T>>,
}

/// Why one connection's listening ended without an error.
enum Ended {
    /// The feed was dropped: stop for good.
    FeedGone,
    /// The server closed the connection (a restart, say): connect again.
    Closed,
}

impl<T: Clone + Send + Sync + 'static> Listener<T> {
    async fn run(self) {
        let mut backoff = Duration::from_millis(250);
        let mut gap = false;
        while self.sender.strong_count() > 0 {
            match self.listen_once(gap).await {
                Ok(Ended::FeedGone) => return,
                Ok(Ended::Closed) => {
                    tracing::warn!(
                        channel = self.channel,
                        "the database closed the listening connection; reconnecting"
                    );
                    backoff = Duration::from_millis(250);
                }
                Err(e) => {
                    tracing::warn!(channel = self.channel, error = %e, "listening connection failed; reconnecting");
                }
            }
            gap = true;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    async fn listen_once(&self, after_gap: bool) -> Result<Ended, tokio_postgres::Error> {
        let (client, mut connection) = self.config.connect(tokio_postgres::NoTls).await?;
        let (notes_tx, mut notes) = mpsc::unbounded_channel();
        // The connection only makes progress while polled; its messages
        // carry the notifications.
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if notes_tx.send(n.payload().to_owned()).is_err() {
                            break;
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
        client
            .batch_execute(&format!("LISTEN {}", self.channel))
            .await?;
        if after_gap && let (Some(item), Some(sender)) = (&self.after_gap, self.sender.upgrade()) {
            let _ = sender.send(item.clone());
        }
        while let Some(first) = notes.recv().await {
            let Some(sender) = self.sender.upgrade() else {
                return Ok(Ended::FeedGone);
            };
            // Whatever else already arrived is decoded together.
            let mut batch = vec![first];
            while let Ok(more) = notes.try_recv() {
                batch.push(more);
            }
            for item in (self.decode)(&of_schema(&schema, &batch)) {
                // No subscriber is not an error.
                let _ = sender.send(item);
            }
        }
        drop(client);
        match driver.await {
            Ok(Err(e)) => Err(e),
            // The stream ended, or its task died: the connection is gone.
            Ok(Ok(())) | Err(_) => Ok(Ended::Closed),
        }
    }
}

/// The payloads `schema` sent, without their schema prefix.
fn of_schema<'a>(schema: &str, payloads: &'a [String]) -> Vec<&'a str> {
    payloads
        .iter()
        .filter_map(|payload| payload.split_once(' '))
        .filter(|(from, _)| *from == schema)
        .map(|(_, rest)| rest)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_schemas_payloads_pass() {
        let batch = ["s1 d5", "s2 d6", "garbage", "s1 {\"a\": 1}"].map(String::from);
        assert_eq!(of_schema("s1", &batch), ["d5", "{\"a\": 1}"]);
        assert!(of_schema("s3", &batch).is_empty());
    }
}
