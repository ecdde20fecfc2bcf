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
use crate::queue::{DeliveredFile, Queue, QueuedPage};
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

/// Progress of a long backlog, so whoever watches the desk sees it move.
#[derive(Default)]
struct Drain {
    total: Option<u64>,
    sent: u64,
}

impl Drain {
    const EVERY: u64 = 25;

    async fn pages_sent(&mut self, uplink: &Uplink, pages: u64) -> anyhow::Result<()> {
        let before = self.sent;
        self.sent += pages;
        let crossed = before / Self::EVERY != self.sent / Self::EVERY;
        if self.total.is_none() || crossed {
            let waiting = uplink.blocking(|q| Ok(q.waiting_pages()?)).await?;
            // Pages scanned meanwhile join the backlog being drained.
            let total = (waiting + self.sent).max(self.total.unwrap_or(0));
            self.total = Some(total);
            if total >= BACKLOG_PROGRESS {
                tracing::info!(
                    "backlog: {} of {} pages sent, {} waiting",
                    self.sent,
                    total,
                    waiting
                );
                let progress = serde_json::json!({
                    "sent": self.sent,
                    "total": total,
                    "waiting": waiting,
                    "at": chrono::Utc::now().to_rfc3339(),
                })
                .to_string();
                uplink
                    .blocking(move |q| Ok(q.set_meta(BACKLOG_KEY, &progress)?))
                    .await?;
            }
        }
        Ok(())
    }

    async fn finished(&mut self, uplink: &Uplink) -> anyhow::Result<()> {
        if self.total.is_some_and(|t| t >= BACKLOG_PROGRESS) {
            tracing::info!("backlog drained: {} pages sent", self.sent);
        }
        if self.total.is_some() {
            uplink.blocking(|q| Ok(q.delete_meta(BACKLOG_KEY)?)).await?;
        }
        *self = Drain::default();
        Ok(())
    }
}

/// What a fatal server error means for the desk.
fn fatal(e: ProtocolError) -> anyhow::Error {
    let text = format!("server refused: {} ({})", e.message, e.code);
    if e.code == "revoked" {
        anyhow::Error::new(Refused(text))
    } else {
        anyhow::anyhow!(text)
    }
}

/// The pages offered on this connection and not yet answered, in scan order.
struct Window {
    pages: VecDeque<QueuedPage>,
    bytes: u64,
    /// The scan position of the last page offered.
    last_seq: i64,
    /// Pages read from the queue, in scan order, not yet offered for lack of room.
    ahead: VecDeque<QueuedPage>,
    max_pages: usize,
    max_bytes: u64,
}

impl Window {
    fn new(welcome: &Welcome) -> Window {
        // A version 1 server sends no window: one page at a time.
        let max_pages = welcome.window_pages.clamp(1, WINDOW_PAGES) as usize;
        let max_bytes = match welcome.window_bytes {
            0 => 1,
            n => n.min(WINDOW_BYTES),
        };
        Window {
            pages: VecDeque::new(),
            bytes: 0,
            last_seq: 0,
            ahead: VecDeque::new(),
            max_pages,
            max_bytes,
        }
    }

    /// Room for `page`; a page larger than the whole window goes alone.
    fn fits(&self, page: &QueuedPage) -> bool {
        self.pages.is_empty()
            || (self.pages.len() < self.max_pages && self.bytes + page.size <= self.max_bytes)
    }

    /// How many more pages could go out now, were they small enough.
    fn room(&self) -> usize {
        self.max_pages.saturating_sub(self.pages.len()).max(1)
    }

    /// Where the next read of the queue starts: after every page already read.
    fn read_after(&self) -> i64 {
        self.ahead.back().map_or(self.last_seq, |p| p.seq)
    }

    fn push(&mut self, page: QueuedPage) {
        self.last_seq = page.seq;
        self.bytes += page.size;
        self.pages.push_back(page);
    }

    fn get(&self, id: Uuid) -> Option<&QueuedPage> {
        self.pages.iter().find(|p| p.capture_id == id)
    }

    fn remove(&mut self, id: Uuid) -> Option<QueuedPage> {
        let at = self.pages.iter().position(|p| p.capture_id == id)?;
        let page = self.pages.remove(at)?;
        self.bytes -= page.size;
        Some(page)
    }

    fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

/// One connected session: the sending half of the socket, the frames the
/// reader task took from the other half, and what is in flight.
struct Link<'a> {
    uplink: &'a Uplink,
    sink: Sink,
    frames: mpsc::Receiver<Frame>,
    window: Window,
    chunk: usize,
    /// The packet whose seal awaits `sealed` (one at a time).
    sealing: Option<Uuid>,
    drain: Drain,
    heard: Heard,
}

/// When the server was last heard from (any frame, pongs included).
#[derive(Clone)]
struct Heard(Arc<std::sync::Mutex<Instant>>);

impl Default for Heard {
    fn default() -> Heard {
        Heard(Arc::new(std::sync::Mutex::new(Instant::now())))
    }
}

impl Heard {
    fn now(&self) {
        if let Ok(mut at) = self.0.lock() {
            *at = Instant::now();
        }
    }

    fn silence(&self) -> Duration {
        self.0.lock().map_or(Duration::ZERO, |at| at.elapsed())
    }
}

impl Link<'_> {
    async fn pump(
        &mut self,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut heartbeat = tokio::time::interval(self.uplink.config.heartbeat());
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if shutdown.is_cancelled() {
                let _ = self.sink.close().await;
                return Ok(());
            }
            self.offer_what_fits().await?;
            self.seal_next().await?;
            if self.window.is_empty() && self.sealing.is_none() {
                self.drain.finished(self.uplink).await?;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = self.uplink.work.notified() => {}
                _ = heartbeat.tick() => self.heartbeat().await?,
                frame = self.frames.recv() => {
                    let Some(frame) = frame else {
                        bail!("server closed the connection");
                    };
                    // Take everything already here, so acknowledgements that
                    // came together are committed together.
                    let mut batch = vec![frame];
                    while let Ok(frame) = self.frames.try_recv() {
                        batch.push(frame);
                    }
                    if self.on_frames(batch).await? {
                        backoff.reset();
                    }
                }
            }
        }
    }

    /// Alive: report the desk (the ping's pong proves the server is), and
    /// give up on a link the server has been silent on for too long.
    async fn heartbeat(&mut self) -> anyhow::Result<()> {
        let limit = self.uplink.config.link_timeout();
        if self.heard.silence() > limit {
            bail!("no word from the server for {limit:?}: the connection is half-open or dead");
        }
        let report = self.uplink.report().await?;
        self.send(&AgentMessage::Report(report)).await?;
        self.send_frame(Message::Ping(Vec::new().into())).await
    }

    async fn send(&mut self, msg: &AgentMessage) -> anyhow::Result<()> {
        let json = serde_json::to_string(msg)?;
        self.send_frame(Message::Text(json.into())).await
    }

    async fn send_frame(&mut self, frame: Message) -> anyhow::Result<()> {
        let limit = self.uplink.config.link_timeout();
        tokio::time::timeout(limit, self.sink.send(frame))
            .await
            .with_context(|| format!("the server took no data for {limit:?}"))?
            .context("sending to the server")
    }

    /// Offers queued pages, in scan order, while the window has room.
    async fn offer_what_fits(&mut self) -> anyhow::Result<()> {
        loop {
            if self.window.ahead.is_empty() {
                let (after, room) = (self.window.read_after(), self.window.room());
                let pages = self
                    .uplink
                    .blocking(move |q| Ok(q.next_pages_after(after, room)?))
                    .await?;
                if pages.is_empty() {
                    return Ok(());
                }
                self.window.ahead.extend(pages);
            }
            let Some(page) = self.window.ahead.pop_front() else {
                return Ok(());
            };
            if !self.window.fits(&page) {
                self.window.ahead.push_front(page);
                return Ok(());
            }
            let barcodes: Vec<BarcodeInfo> =
                serde_json::from_str(&page.barcodes_json).unwrap_or_default();
            let offer = AgentMessage::Offer(PageOffer {
                capture_id: page.capture_id,
                packet_id: page.packet_id,
                page_index: page.page_index,
                cover_code: page.cover_code.clone(),
                sha256: page.sha256.clone(),
                size: page.size,
                content_type: page.content_type.clone(),
                source_name: page.source_name.clone(),
                barcodes,
                blank: page.blank,
                packet_seq: Some(page.packet_seq),
            });
            self.send(&offer).await?;
            self.window.push(page);
        }
    }

    /// Seals the next closed packet whose pages are all stored.
    async fn seal_next(&mut self) -> anyhow::Result<()> {
        if self.sealing.is_some() {
            return Ok(());
        }
        let Some(seal) = self.uplink.blocking(|q| Ok(q.next_seal()?)).await? else {
            return Ok(());
        };
        self.sealing = Some(seal.packet_id);
        self.send(&AgentMessage::Seal(PacketSeal {
            packet_id: seal.packet_id,
            cover_code: seal.cover_code,
            page_count: seal.page_count,
            empty: seal.empty,
            packet_seq: Some(seal.packet_seq),
            cover_problem: seal.cover_problem,
        }))
        .await
    }

    /// Acts on what the server said; true when something was delivered.
    async fn on_frames(&mut self, frames: Vec<Frame>) -> anyhow::Result<bool> {
        let mut stored = Vec::new();
        let mut progress = false;
        let mut result = Ok(());
        for frame in frames {
            let msg = match frame.map_err(anyhow::Error::from).and_then(parse) {
                Ok(Some(msg)) => msg,
                Ok(None) => continue,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if let ServerMessage::Stored { capture_id } = msg {
                match self.window.remove(capture_id) {
                    Some(page) => stored.push(page),
                    None => tracing::debug!(page = %capture_id, "stored, but not in flight here"),
                }
                continue;
            }
            // Acknowledgements before anything that might end the session.
            progress |= !stored.is_empty();
            self.delivered(std::mem::take(&mut stored)).await?;
            match self.on_message(msg).await {
                Ok(sealed) => progress |= sealed,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        progress |= !stored.is_empty();
        self.delivered(stored).await?;
        result.map(|()| progress)
    }

    /// Everything but `stored`; true when a seal was confirmed.
    async fn on_message(&mut self, msg: ServerMessage) -> anyhow::Result<bool> {
        match msg {
            ServerMessage::Resume { capture_id, offset } => {
                let Some(page) = self.window.get(capture_id).cloned() else {
                    bail!("server resumed page {capture_id}, which is not in flight");
                };
                self.stream(&page, offset).await?;
            }
            ServerMessage::Sealed { packet_id } => {
                if self.sealing == Some(packet_id) {
                    self.sealing = None;
                    self.uplink
                        .blocking(move |q| Ok(q.mark_seal_acked(packet_id)?))
                        .await?;
                    return Ok(true);
                }
            }
            ServerMessage::Error(e) if e.fatal => return Err(fatal(e)),
            ServerMessage::Error(e) => match e.capture_id {
                Some(id) if e.permanent => {
                    let reason = format!("{} ({})", e.message, e.code);
                    self.set_aside(id, reason).await?;
                }
                Some(id) if e.code == "checksum_mismatch" => self.check_spool_copy(id, &e).await?,
                Some(id) => return Err(self.not_taken(id, &e)),
                None => match e.packet_id.or(self.sealing) {
                    Some(packet) => return self.seal_refused(packet, e).await,
                    None => bail!("server error: {} ({})", e.message, e.code),
                },
            },
            ServerMessage::Welcome(_) => bail!("server sent a second welcome"),
            other @ (ServerMessage::PacketOutcome(_)
            | ServerMessage::Notice(_)
            | ServerMessage::CoverKeys { .. }) => self.uplink.unsolicited(other).await?,
            ServerMessage::Stored { .. } => {}
        }
        Ok(false)
    }

    fn not_taken(&self, id: Uuid, e: &ProtocolError) -> anyhow::Error {
        let name = self
            .window
            .get(id)
            .map_or_else(String::new, |p| p.source_name.clone());
        anyhow::Error::new(PageNotTaken(format!(
            "page {id} ({name}): {} ({})",
            e.message, e.code
        )))
    }

    /// The server's copy did not hash to the offered SHA-256. If the spool
    /// copy no longer does either, the desk's disk changed it: sending it
    /// again would fail forever, so the page is set aside. Otherwise the
    /// bytes were spoiled on the way or on the server, and a retry is right.
    async fn check_spool_copy(&mut self, id: Uuid, e: &ProtocolError) -> anyhow::Result<()> {
        let Some(page) = self.window.get(id).cloned() else {
            return Err(self.not_taken(id, e));
        };
        let path = page.spool_path.clone();
        let digest = tokio::task::spawn_blocking(move || sha256_of_file(&path)).await?;
        match digest {
            Ok(digest) if digest == page.sha256 => Err(self.not_taken(id, e)),
            Ok(digest) => {
                let reason = format!(
                    "spool copy {} is corrupt on this desk's disk: it hashes to {digest}, \
                     but was {} when queued; rescan the original",
                    page.spool_path.display(),
                    page.sha256
                );
                self.set_aside(id, reason).await
            }
            Err(err) => {
                let reason = format!(
                    "spool copy {} cannot be read: {err:#}",
                    page.spool_path.display()
                );
                self.set_aside(id, reason).await
            }
        }
    }

    /// A seal the server refused: set aside for good when it says so, else
    /// retried with backoff.
    async fn seal_refused(&mut self, packet: Uuid, e: ProtocolError) -> anyhow::Result<bool> {
        let reason = format!("{} ({})", e.message, e.code);
        if self.sealing == Some(packet) {
            self.sealing = None;
        }
        if !e.permanent {
            return Err(anyhow::Error::new(PageNotTaken(format!(
                "sealing packet {packet}: {reason}"
            ))));
        }
        tracing::error!(%packet, "seal refused for good, packet set aside: {reason}");
        self.uplink
            .blocking(move |q| Ok(q.mark_seal_failed(packet, &reason)?))
            .await?;
        Ok(false)
    }

    /// Lets go of pages the server stored, in one queue transaction.
    async fn delivered(&mut self, pages: Vec<QueuedPage>) -> anyhow::Result<()> {
        if pages.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = pages.iter().map(|p| p.capture_id).collect();
        let spooled: Vec<std::path::PathBuf> = pages.iter().map(|p| p.spool_path.clone()).collect();
        let config = Arc::clone(&self.uplink.config);
        self.uplink
            .blocking(move |q| {
                let files = q.mark_stored_many(&ids)?;
                // Only once the queue says stored: a crash in between leaves
                // a spare spool copy, never a queued page without its bytes.
                for path in spooled {
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::debug!(file = %path.display(), error = %e, "spool copy already gone");
                    }
                }
                // Only the files these pages completed: scanning every queued
                // file after each batch made a long backlog's drain quadratic.
                move_to_done(q, &config, files)
            })
            .await?;
        self.drain.pages_sent(self.uplink, pages.len() as u64).await
    }

    /// A page that can never be delivered as it is: recorded as failed with
    /// the reason (its spool copy stays), and the others go on.
    async fn set_aside(&mut self, id: Uuid, reason: String) -> anyhow::Result<()> {
        let name = self
            .window
            .remove(id)
            .map_or_else(String::new, |p| p.source_name);
        tracing::error!(page = %id, source = %name, "page refused for good, set aside: {reason}");
        self.uplink
            .blocking(move |q| Ok(q.mark_failed(id, &reason)?))
            .await
    }

    /// Sends the spool copy (never the inbox file, which may have changed) from `offset`.
    async fn stream(&mut self, page: &QueuedPage, offset: u64) -> anyhow::Result<()> {
        let path = page.spool_path.clone();
        let mut at = offset;
        while at < page.size {
            // A span of chunks per trip to the blocking pool: one hand-off
            // per span, not per chunk, and at most one span held at a time.
            let span = READ_SPAN.min(page.size - at);
            let read_path = path.clone();
            let bytes = tokio::task::spawn_blocking(move || read_span(&read_path, at, span))
                .await
                .context("reading a spool copy")?;
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let reason = format!("spool copy {} is missing", path.display());
                    return self.set_aside(page.capture_id, reason).await;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("reading spool copy {}", path.display()));
                }
            };
            for data in bytes.chunks(self.chunk) {
                let frame = Chunk {
                    capture_id: page.capture_id,
                    offset: at,
                    data,
                }
                .encode();
                self.send_frame(Message::Binary(frame.into()))
                    .await
                    .context("sending page bytes")?;
                at += data.len() as u64;
            }
        }
        Ok(())
    }
}

/// Bytes of a spool copy read in one go while streaming.
const READ_SPAN: u64 = 1024 * 1024;

fn read_span(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut bytes = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn sha256_of_file(path: &std::path::Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
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
