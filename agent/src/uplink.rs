//! The agent's side of the uplink: delivers queued pages in scan order and
//! seals packets, over one WebSocket, reconnecting with backoff.
//!
//! A page leaves the queue only on the server's `Stored`; a source file moves
//! to `done` only when all its pages did. Everything else is retried: a lost
//! connection costs at most a re-offer, which the server answers from what it
//! already has (already stored, or resume at an offset).

use crate::config::AgentConfig;
use crate::fsutil;
use crate::queue::{Queue, QueuedPage, SealWork};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use imc_shared::CoverPatterns;
use imc_shared::protocol::*;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server answers every message promptly; silence this long means a dead link.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
const HEARTBEAT: Duration = Duration::from_secs(10);
/// No frame at all from the server for this long (not even a pong): the link is half-open.
const SILENCE_LIMIT: Duration = Duration::from_secs(35);
/// A backlog this large gets progress lines in the log while it drains.
const BACKLOG_PROGRESS: u64 = 50;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Where the link stands, written to the queue's meta so `imc-agent status` can show it.
pub const LINK_STATE_KEY: &str = "link_state";
pub const PATTERNS_KEY: &str = "cover_patterns";

pub struct Uplink {
    pub config: Arc<AgentConfig>,
    pub queue: Arc<Queue>,
    pub patterns: Arc<RwLock<CoverPatterns>>,
    /// Woken when ingest or the sealer made new work.
    pub work: Arc<Notify>,
}

/// Exponential backoff with full jitter, so a site's desks do not reconnect in step.
struct Backoff {
    current: Duration,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = self.current.mul_f64(0.5 + rand_unit() * 0.5);
        self.current = (self.current * 2).min(BACKOFF_MAX);
        wait
    }

    fn reset(&mut self) {
        self.current = BACKOFF_MIN;
    }
}

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
                Err(e) => {
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
        let value = serde_json::json!({ "state": state, "detail": detail, "at": chrono::Utc::now().to_rfc3339() })
            .to_string();
        if let Err(e) = self
            .blocking(move |q| Ok(q.set_meta(LINK_STATE_KEY, &value)?))
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
            tokio_tungstenite::Connector::Rustls(trust.client_config()?)
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
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)),
        )
        .await
        .with_context(|| format!("connecting to {url}: timed out"))?
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 401 => {
                anyhow::anyhow!("the server refused this agent's token (revoked? enrol again)")
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
        backoff.reset();
        self.set_link("connected", &format!("site {}", welcome.site))
            .await;
        tracing::info!(site = %welcome.site, "connected to the server");
        let chunk = (welcome.max_chunk_bytes as usize).clamp(4 * 1024, MAX_CHUNK_BYTES);

        self.move_delivered_files().await?;
        let mut last_heard = std::time::Instant::now();
        let mut drain = Drain::default();
        loop {
            if shutdown.is_cancelled() {
                let _ = ws.close(None).await;
                return Ok(());
            }
            if let Some(seal) = self.blocking(|q| Ok(q.next_seal()?)).await? {
                self.seal(&mut ws, seal).await?;
                continue;
            }
            if let Some(page) = self.blocking(|q| Ok(q.next_page()?)).await? {
                self.deliver(&mut ws, page, chunk).await?;
                last_heard = std::time::Instant::now();
                drain.page_sent(self).await?;
                continue;
            }
            drain.finished();
            if last_heard.elapsed() > SILENCE_LIMIT {
                bail!("no word from the server for {SILENCE_LIMIT:?}: the connection is dead");
            }
            // Idle: say we are alive (the ping's pong proves the server is), wait for work.
            let report = self.report().await?;
            send(&mut ws, &AgentMessage::Report(report)).await?;
            ws.send(Message::Ping(Vec::new().into()))
                .await
                .context("pinging the server")?;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.work.notified() => {}
                _ = tokio::time::sleep(HEARTBEAT) => {}
                frame = ws.next() => match frame {
                    None => bail!("server closed the connection"),
                    Some(frame) => {
                        last_heard = std::time::Instant::now();
                        if let Some(msg) = parse(frame?)? {
                            self.unsolicited(msg).await?;
                        }
                    }
                },
            }
        }
    }

    async fn adopt_patterns(&self, patterns: &[String]) {
        match CoverPatterns::new(patterns) {
            Ok(compiled) => {
                if let Ok(mut current) = self.patterns.write() {
                    *current = compiled;
                }
                let json = serde_json::to_string(patterns).unwrap_or_default();
                if let Err(e) = self
                    .blocking(move |q| Ok(q.set_meta(PATTERNS_KEY, &json)?))
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
            let frame = tokio::time::timeout(REPLY_TIMEOUT, ws.next())
                .await
                .context("no reply from the server")?
                .context("server closed the connection")??;
            let Some(msg) = parse(frame)? else { continue };
            match msg {
                ServerMessage::PacketOutcome(_) | ServerMessage::Notice(_) => {
                    self.unsolicited(msg).await?
                }
                ServerMessage::Error(e) if e.fatal => {
                    bail!("server refused: {} ({})", e.message, e.code)
                }
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
                self.blocking(move |q| {
                    Ok(q.record_outcome(outcome.packet_id, outcome.matched, &outcome.message)?)
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
                self.blocking(move |q| {
                    Ok(q.record_outcome(notice.packet_id, matched, &notice.message)?)
                })
                .await
            }
            ServerMessage::Error(e) if e.fatal => {
                bail!("server refused: {} ({})", e.message, e.code)
            }
            other => {
                tracing::debug!(?other, "unexpected message while idle");
                Ok(())
            }
        }
    }

    async fn seal(&self, ws: &mut Socket, seal: SealWork) -> anyhow::Result<()> {
        let packet_id = seal.packet_id;
        let msg = AgentMessage::Seal(PacketSeal {
            packet_id,
            cover_code: seal.cover_code,
            page_count: seal.page_count,
        });
        send(ws, &msg).await?;
        match self.reply(ws).await? {
            ServerMessage::Sealed { packet_id: id } if id == packet_id => {
                self.blocking(move |q| Ok(q.mark_seal_acked(packet_id)?))
                    .await
            }
            ServerMessage::Error(e) => {
                bail!("sealing packet {packet_id}: {} ({})", e.message, e.code)
            }
            other => bail!("sealing packet {packet_id}: unexpected reply {other:?}"),
        }
    }

    async fn deliver(&self, ws: &mut Socket, page: QueuedPage, chunk: usize) -> anyhow::Result<()> {
        let id = page.capture_id;
        let barcodes: Vec<BarcodeInfo> =
            serde_json::from_str(&page.barcodes_json).unwrap_or_default();
        let offer = AgentMessage::Offer(PageOffer {
            capture_id: id,
            packet_id: page.packet_id,
            page_index: page.page_index,
            cover_code: page.cover_code.clone(),
            sha256: page.sha256.clone(),
            size: page.size,
            content_type: page.content_type.clone(),
            source_name: page.source_name.clone(),
            barcodes,
            blank: page.blank,
        });
        send(ws, &offer).await?;
        let mut reply = self.reply(ws).await?;
        if let ServerMessage::Resume { capture_id, offset } = reply {
            if capture_id != id {
                bail!("server resumed page {capture_id}, expected {id}");
            }
            self.stream(ws, &page, offset, chunk).await?;
            reply = self.reply(ws).await?;
        }
        match reply {
            ServerMessage::Stored { capture_id } if capture_id == id => {}
            ServerMessage::Error(e) => bail!(
                "page {} ({}): {} ({})",
                id,
                page.source_name,
                e.message,
                e.code
            ),
            other => bail!("page {id}: unexpected reply {other:?}"),
        }
        let spool = page.spool_path.clone();
        let delivered = self.blocking(move |q| Ok(q.mark_stored(id)?)).await?;
        if let Err(e) = tokio::fs::remove_file(&spool).await {
            tracing::debug!(file = %spool.display(), error = %e, "spool copy already gone");
        }
        if !delivered.is_empty() {
            self.move_delivered_files().await?;
        }
        Ok(())
    }

    /// Sends the spool copy (never the inbox file, which may have changed) from `offset`.
    async fn stream(
        &self,
        ws: &mut Socket,
        page: &QueuedPage,
        offset: u64,
        chunk: usize,
    ) -> anyhow::Result<()> {
        let path = &page.spool_path;
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening spool copy {}", path.display()))?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut buf = vec![0u8; chunk];
        let mut at = offset;
        while at < page.size {
            let want = chunk.min((page.size - at) as usize);
            file.read_exact(&mut buf[..want])
                .await
                .with_context(|| format!("reading spool copy {}", path.display()))?;
            let frame = Chunk {
                capture_id: page.capture_id,
                offset: at,
                data: &buf[..want],
            }
            .encode();
            ws.send(Message::Binary(frame.into()))
                .await
                .context("sending page bytes")?;
            at += want as u64;
        }
        Ok(())
    }

    /// Moves wholly delivered source files from the inbox to `done`.
    async fn move_delivered_files(&self) -> anyhow::Result<()> {
        let config = Arc::clone(&self.config);
        self.blocking(move |q| {
            for file in q.delivered_unmoved()? {
                let done_dir = config.done_dir_for(&file.watch_dir);
                // The scanner may have reused the name since: move only the file we read.
                let same_file = std::fs::metadata(&file.path).is_ok_and(|m| {
                    m.len() == file.size && crate::watch::mtime_ns(&m) == file.mtime_ns
                });
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
        })
        .await
    }
}

/// Progress of a long backlog, so whoever watches the desk sees it move.
#[derive(Default)]
struct Drain {
    total: Option<u64>,
    sent: u64,
}

impl Drain {
    async fn page_sent(&mut self, uplink: &Uplink) -> anyhow::Result<()> {
        self.sent += 1;
        if self.total.is_none() || self.sent.is_multiple_of(25) {
            let waiting = uplink.blocking(|q| Ok(q.stats()?.pages)).await?;
            let total = *self.total.get_or_insert(waiting + self.sent);
            if total >= BACKLOG_PROGRESS && self.sent.is_multiple_of(25) {
                tracing::info!(
                    "backlog: {} of {} pages sent, {} waiting",
                    self.sent,
                    total,
                    waiting
                );
            }
        }
        Ok(())
    }

    fn finished(&mut self) {
        if self.total.is_some_and(|t| t >= BACKLOG_PROGRESS) {
            tracing::info!("backlog drained: {} pages sent", self.sent);
        }
        *self = Drain::default();
    }
}

async fn send(ws: &mut Socket, msg: &AgentMessage) -> anyhow::Result<()> {
    let json = serde_json::to_string(msg)?;
    ws.send(Message::Text(json.into()))
        .await
        .context("sending to the server")
}

fn parse(frame: Message) -> anyhow::Result<Option<ServerMessage>> {
    match frame {
        Message::Text(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("unreadable server message {text:?}")
            })?))
        }
        Message::Close(_) => bail!("server closed the connection"),
        _ => Ok(None),
    }
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
        };
        let waits: Vec<_> = (0..12).map(|_| b.next()).collect();
        assert!(waits[0] >= BACKOFF_MIN / 2 && waits[0] <= BACKOFF_MIN);
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX));
        assert!(waits[11] >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next() <= BACKOFF_MIN);
    }
}
