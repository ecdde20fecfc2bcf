//! The agent's side of the uplink: delivers queued pages in scan order and
//! seals packets, over one WebSocket, reconnecting with backoff.
//!
//! Pages go out through a window: up to the server's `window_pages` pages and
//! `window_bytes` bytes are offered and not yet acknowledged, offered and
//! streamed in scan order. A reader task keeps taking the server's answers
//! while bytes go out, and acknowledgements that arrive together are
//! committed to the queue together.
//!
//! A page leaves the queue only on the server's `Stored`; a source file moves
//! to `done` only when all its pages did. A page the server refuses for good
//! (`permanent`) is set aside as failed, with the reason, and the rest go on.
//! Everything else is retried: a lost connection costs at most a re-offer,
//! which the server answers from what it already has (already stored, or
//! resume at an offset).

use crate::config::AgentConfig;
use crate::cover_rules;
use crate::fsutil;
use crate::queue::{DeliveredFile, FateKind, PacketFate, Queue, QueuedPage};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use imc_shared::CoverPatterns;
use imc_shared::protocol::*;
use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod link;
mod window;
use link::*;
use window::*;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures_util::stream::SplitSink<Socket, Message>;
type Frame = Result<Message, tokio_tungstenite::tungstenite::Error>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Server frames read ahead while page bytes go out.
const READ_AHEAD: usize = 256;
/// A backlog this large gets progress lines in the log while it drains.
const BACKLOG_PROGRESS: u64 = 50;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Where the link stands, written to the queue's meta so `imc-agent status` can show it.
pub const LINK_STATE_KEY: &str = "link_state";
/// A long backlog's progress while it drains, for `imc-agent status`.
pub const BACKLOG_KEY: &str = "backlog";

pub struct Uplink {
    pub config: Arc<AgentConfig>,
    pub queue: Arc<Queue>,
    pub patterns: Arc<RwLock<CoverPatterns>>,
    pub cover_keys: Arc<RwLock<imc_shared::cover_keys::CoverKeys>>,
    /// Woken when ingest or the sealer made new work.
    pub work: Arc<Notify>,
    /// Woken when the desk's documents may have changed on the server (the
    /// link came up, a packet matched or came back): the console's cache refreshes.
    pub desk_changed: Arc<Notify>,
}

/// Exponential backoff with full jitter, so a site's desks do not reconnect in step.
struct Backoff {
    current: Duration,
    /// The last session ended on a page the server could not take yet: a
    /// welcome alone is no reason to retry it quickly, only progress is.
    after_page_error: bool,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = self.current.mul_f64(0.5 + rand_unit() * 0.5);
        self.current = (self.current * 2).min(BACKOFF_MAX);
        wait
    }

    fn reset(&mut self) {
        self.current = BACKOFF_MIN;
        self.after_page_error = false;
    }
}

/// The server refused this agent (unknown or revoked token): retrying helps
/// only once an administrator acts, so it is shown as such.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// A page or seal the server could not take just now (not a lost link);
/// retried with backoff.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PageNotTaken(String);

fn rand_unit() -> f64 {
    // Jitter needs no strong randomness: the low bits of a fresh UUID do.
    (Uuid::new_v4().as_u128() & 0xFFFF) as f64 / 65535.0
}

pub fn uplink_url(server_url: &str) -> anyhow::Result<String> {
    let base = server_url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        bail!("server URL {server_url:?} must start with http:// or https://");
    };
    Ok(format!("{ws}{UPLINK_PATH}"))
}

impl Uplink {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Backoff {
            current: BACKOFF_MIN,
            after_page_error: false,
        };
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = self.session(&mut backoff, &shutdown) => r,
            };
            match result {
                Ok(()) if shutdown.is_cancelled() => return Ok(()),
                Ok(()) => {
                    self.set_link("disconnected", "server closed the connection")
                        .await
                }
                Err(e) if e.is::<Refused>() => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "the server refused this agent; will retry"
                    );
                    self.set_link("refused", &format!("{e:#}")).await;
                }
                Err(e) => {
                    backoff.after_page_error = e.is::<PageNotTaken>();
                    tracing::warn!(error = format!("{e:#}"), "uplink down; will retry");
                    self.set_link("disconnected", &format!("{e:#}")).await;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff.next()) => {}
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Queue) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let queue = Arc::clone(&self.queue);
        tokio::task::spawn_blocking(move || f(&queue)).await?
    }

    async fn set_link(&self, state: &str, detail: &str) {
        let state = state.to_owned();
        let detail = detail.to_owned();
        if let Err(e) = self
            .blocking(move |q| {
                // `at` is when the link entered this state: a desk retrying
                // every minute has been offline since its first failure.
                let since = q
                    .meta(LINK_STATE_KEY)?
                    .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
                    .filter(|old| old["state"] == state.as_str())
                    .and_then(|old| old["at"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| chrono::Utc::now().to_rfc3339());
                let value = serde_json::json!({ "state": state, "detail": detail, "at": since });
                Ok(q.set_meta(LINK_STATE_KEY, &value.to_string())?)
            })
            .await
        {
            tracing::warn!(error = %e, "could not record the link state");
        }
    }

    async fn connect(&self) -> anyhow::Result<Socket> {
        let trust = self.config.trust();
        trust.check_url(&self.config.server_url)?;
        let url = uplink_url(&self.config.server_url)?;
        let connector = if url.starts_with("wss://") {
            tokio_tungstenite::Connector::Rustls(
                trust.client_config_with(self.config.client_identity().as_ref())?,
            )
        } else {
            tokio_tungstenite::Connector::Plain
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .context("building the uplink request")?;
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", self.config.token)
                .parse()
                .context("agent token is not a valid header value")?,
        );
        let (socket, _) = tokio::time::timeout(
            CONNECT_TIMEOUT.min(self.config.link_timeout()),
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)),
        )
        .await
        .with_context(|| format!("connecting to {url}: timed out"))?
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 401 => {
                anyhow::Error::new(Refused(
                    "the server refused this agent's token: it was revoked or is unknown; enrol the desk again".into(),
                ))
            }
            other => match crate::tls::explain(&other) {
                Some(tls) => anyhow::anyhow!("connecting to {url}: {tls}"),
                None => anyhow::anyhow!("connecting to {url}: {other}"),
            },
        })?;
        Ok(socket)
    }

    async fn session(
        &self,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut ws = self.connect().await?;
        let hello = AgentMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        });
        send(&mut ws, &hello).await?;
        let ServerMessage::Welcome(welcome) = self.reply(&mut ws).await? else {
            bail!("server did not welcome the agent");
        };
        self.adopt_patterns(&welcome.cover_patterns).await;
        self.adopt_cover_keys(&welcome.cover_keys).await;
        if !backoff.after_page_error {
            backoff.reset();
        }
        self.set_link("connected", &format!("site {}", welcome.site))
            .await;
        self.desk_changed.notify_one();
        tracing::info!(site = %welcome.site, window = welcome.window_pages, "connected to the server");
        let chunk = (welcome.max_chunk_bytes as usize).clamp(4 * 1024, MAX_CHUNK_BYTES);
        let window = Window::new(&welcome);
        self.move_delivered_files().await?;
        // Progress left by an earlier connection is stale; this one counts afresh.
        self.blocking(|q| Ok(q.delete_meta(BACKLOG_KEY)?)).await?;

        let (sink, mut stream) = ws.split();
        let (frames_tx, frames) = mpsc::channel::<Frame>(READ_AHEAD);
        let heard = Heard::default();
        let reader_heard = heard.clone();
        let reader = tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                // Heard here, not when handled: a long page upload must not
                // make an answering server look silent.
                reader_heard.now();
                if frames_tx.send(frame).await.is_err() {
                    return;
                }
            }
        });
        let mut link = Link {
            uplink: self,
            sink,
            frames,
            window,
            chunk,
            sealing: None,
            drain: Drain::default(),
            heard,
        };
        let result = link.pump(backoff, shutdown).await;
        reader.abort();
        result
    }

    async fn adopt_patterns(&self, patterns: &[String]) {
        match CoverPatterns::new(patterns) {
            Ok(compiled) => {
                if let Ok(mut current) = self.patterns.write() {
                    *current = compiled;
                }
                let json = serde_json::to_string(patterns).unwrap_or_default();
                if let Err(e) = self
                    .blocking(move |q| Ok(q.set_meta(cover_rules::PATTERNS_KEY, &json)?))
                    .await
                {
                    tracing::warn!(error = %e, "could not keep the cover patterns");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "server sent a cover pattern that does not compile; keeping the old ones")
            }
        }
    }

    /// Keeps the server's cover keys for checking covers offline. A server
    /// that publishes none (older than signed covers) leaves the desk's as
    /// they are.
    async fn adopt_cover_keys(&self, published: &[imc_shared::cover_keys::CoverKey]) {
        if published.is_empty() {
            return;
        }
        let (keys, bad) = imc_shared::cover_keys::CoverKeys::new(published);
        for why in bad {
            tracing::warn!("the server sent a bad cover key: {why}");
        }
        tracing::debug!(keys = ?keys.ids(), "cover keys");
        if let Ok(mut current) = self.cover_keys.write() {
            *current = keys;
        }
        let json = serde_json::to_string(published).unwrap_or_default();
        if let Err(e) = self
            .blocking(move |q| Ok(q.set_meta(cover_rules::KEYS_KEY, &json)?))
            .await
        {
            tracing::warn!(error = %e, "could not keep the cover keys");
        }
    }

    async fn report(&self) -> anyhow::Result<AgentReport> {
        let stats = self.blocking(|q| Ok(q.stats()?)).await?;
        Ok(AgentReport {
            queue_pages: stats.pages,
            queue_bytes: stats.bytes,
            quarantined: stats.quarantined,
        })
    }

    /// Reads until a reply that is not a packet outcome; outcomes are recorded on the way.
    async fn reply(&self, ws: &mut Socket) -> anyhow::Result<ServerMessage> {
        loop {
            let frame = tokio::time::timeout(self.config.link_timeout(), ws.next())
                .await
                .context("no reply from the server")?
                .context("server closed the connection")??;
            let Some(msg) = parse(frame)? else { continue };
            match msg {
                ServerMessage::PacketOutcome(_)
                | ServerMessage::Notice(_)
                | ServerMessage::CoverKeys { .. } => self.unsolicited(msg).await?,
                ServerMessage::Error(e) if e.fatal => return Err(fatal(e)),
                other => return Ok(other),
            }
        }
    }

    async fn unsolicited(&self, msg: ServerMessage) -> anyhow::Result<()> {
        match msg {
            ServerMessage::PacketOutcome(outcome) => {
                if outcome.matched {
                    tracing::info!(packet = %outcome.packet_id, "{}", outcome.message);
                } else {
                    tracing::warn!(packet = %outcome.packet_id, "packet not matched: {}", outcome.message);
                }
                let kind = match outcome.matched {
                    true => FateKind::Matched,
                    false => FateKind::Unmatched,
                };
                self.desk_changed.notify_one();
                self.blocking(move |q| {
                    let fate = PacketFate {
                        kind,
                        message: &outcome.message,
                        doc_no: outcome.doc_no.as_deref(),
                        document_id: outcome.document_id,
                        warnings: &outcome.warnings,
                    };
                    Ok(q.record_outcome(outcome.packet_id, &fate)?)
                })
                .await
            }
            ServerMessage::Notice(notice) => {
                let matched = notice.kind == "matched";
                if matched {
                    tracing::info!(packet = %notice.packet_id, "{}", notice.message);
                } else {
                    tracing::warn!(packet = %notice.packet_id, "{}", notice.message);
                }
                let kind = match (matched, notice.kind.as_str()) {
                    (true, _) => FateKind::Matched,
                    (false, "rejected") => FateKind::Rejected,
                    (false, _) => FateKind::Unmatched,
                };
                self.desk_changed.notify_one();
                self.blocking(move |q| {
                    let fate = PacketFate {
                        kind,
                        message: &notice.message,
                        doc_no: notice.doc_no.as_deref(),
                        document_id: notice.document_id,
                        warnings: &[],
                    };
                    Ok(q.record_outcome(notice.packet_id, &fate)?)
                })
                .await
            }
            ServerMessage::CoverKeys { keys } => {
                tracing::info!("the server's cover keys changed");
                self.adopt_cover_keys(&keys).await;
                Ok(())
            }
            ServerMessage::Error(e) if e.fatal => Err(fatal(e)),
            other => {
                tracing::debug!(?other, "unexpected message while idle");
                Ok(())
            }
        }
    }

    /// Moves source files delivered before a crash, whose move to `done` did
    /// not happen, from the inbox to `done`.
    async fn move_delivered_files(&self) -> anyhow::Result<()> {
        let config = Arc::clone(&self.config);
        self.blocking(move |q| move_to_done(q, &config, q.delivered_unmoved()?))
            .await
    }
}

/// Moves wholly delivered source files from the inbox to `done`.
fn move_to_done(q: &Queue, config: &AgentConfig, files: Vec<DeliveredFile>) -> anyhow::Result<()> {
    for file in files {
        let done_dir = config.done_dir_for(&file.watch_dir);
        // The scanner may have reused the name since: move only the file we read.
        let same_file = std::fs::metadata(&file.path)
            .is_ok_and(|m| m.len() == file.size && crate::watch::mtime_ns(&m) == file.mtime_ns);
        let moved = if same_file {
            match fsutil::move_into(&file.path, &done_dir) {
                Ok(target) => Some(target),
                Err(e) => {
                    tracing::warn!(file = %file.path.display(), error = %e, "delivered, but could not move to done");
                    continue;
                }
            }
        } else {
            None
        };
        q.mark_file_done(file.id, moved.as_deref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplink_urls() {
        assert_eq!(
            uplink_url("http://h:1/").unwrap(),
            "ws://h:1/api/v1/agent/uplink"
        );
        assert_eq!(
            uplink_url("https://h").unwrap(),
            "wss://h/api/v1/agent/uplink"
        );
        assert!(uplink_url("ftp://h").is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff {
            current: BACKOFF_MIN,
            after_page_error: false,
        };
        let waits: Vec<_> = (0..12).map(|_| b.next()).collect();
        assert!(waits[0] >= BACKOFF_MIN / 2 && waits[0] <= BACKOFF_MIN);
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX));
        assert!(waits[11] >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next() <= BACKOFF_MIN);
    }
}
