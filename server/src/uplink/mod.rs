//! The agent uplink: one WebSocket per agent, carrying pages in and
//! acknowledgements and packet outcomes out (protocol in `imc_shared::protocol`).
//!
//! Invariant: `Stored` is sent only after the page's bytes are fsynced into
//! the blob store and its row is committed. Partial uploads live as files under
//! `partials/` so a reconnecting agent resumes where the bytes stopped; with
//! replicas they are also checkpointed to `partials::SharedPartials`, so the
//! agent resumes on whichever replica it reaches next.

use crate::auth::hash_secret;
use crate::blobs::is_sha256_hex;
use crate::commit::{CommitFailure, CommitResult};
use crate::desk_bus::{DeskBus, DeskEvent, Envelope, takes_over};
use crate::partials::{CHECKPOINT_BYTES, PartialKey, SharedPartials};
use crate::settings::SNIFFABLE;
use crate::state::AppState;
use crate::store::{Agent, PacketResolution, StoredPage};
use crate::untrusted::sniff_content_type;
use anyhow::Context;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hyper_util::rt::TokioIo;
use imc_shared::protocol::*;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot::error::RecvError;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::Instrument;
use uuid::Uuid;
use websocket::{Inbound, Link, ReadError};

pub use crate::domain::CloseReason;

mod websocket;

/// An agent's WebSocket as the server holds it.
type AgentLink = Link<TokioIo<hyper::upgrade::Upgraded>>;

const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// An agent that takes no frame for this long is gone (a half-open peer
/// stops taking bytes; a session must not wait on it forever).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The chunk size the server asks agents for: a cut or damaged chunk is sent
/// again whole. Its bytes are written as they arrive (see `websocket`), so
/// this does not set the memory a desk costs.
const PREFERRED_CHUNK_BYTES: usize = 64 * 1024;
/// Pages one packet may hold, as a sanity bound on offers and seals.
const MAX_PACKET_PAGES: u32 = 100_000;

/// Notices waiting to go out on one connection; a slow desk drops the surplus.
const NOTICE_BACKLOG: usize = 64;
/// How long a new connection waits for the one it replaces to wind down.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected session: its generation, its notice channel, and its close switch.
struct LiveSession {
    generation: u64,
    notices: mpsc::Sender<ServerMessage>,
    close: watch::Sender<Option<CloseReason>>,
}

/// What a new session gets from [`Desks::register`].
struct Registration {
    generation: u64,
    notices: mpsc::Receiver<ServerMessage>,
    close: watch::Receiver<Option<CloseReason>>,
    /// Held for the whole session: the next session of the agent starts only
    /// once this one has finished, commits included.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// The scan desks connected to this server, and a way to tell them things.
/// One session per agent: a newer connection closes the older one. What is
/// done to a session here is also published on the desk bus, so a session
/// live on another replica gets it too ([`Desks::follow`] applies theirs).
#[derive(Clone)]
pub struct Desks {
    slots: Arc<Semaphore>,
    live: Arc<std::sync::Mutex<HashMap<String, LiveSession>>>,
    /// Per agent, the lock a session holds while it runs.
    turns: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// This process among the replicas; it ignores its own events.
    replica: Uuid,
    bus: Arc<dyn DeskBus>,
}

impl Desks {
    pub fn new(max_agents: usize, bus: Arc<dyn DeskBus>) -> Desks {
        Desks {
            slots: Arc::new(Semaphore::new(max_agents)),
            live: Arc::default(),
            turns: Arc::default(),
            replica: Uuid::new_v4(),
            bus,
        }
    }

    fn publish(&self, event: DeskEvent) {
        self.bus.publish(Envelope {
            from: self.replica,
            event,
        });
    }

    /// Applies the other replicas' events to the sessions of this one until
    /// `stop`.
    pub async fn follow(self, stop: tokio_util::sync::CancellationToken) {
        let mut events = self.bus.subscribe();
        loop {
            let envelope = tokio::select! {
                _ = stop.cancelled() => return,
                received = events.recv() => match received {
                    Ok(envelope) => envelope,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "desk bus events missed");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            };
            if envelope.from == self.replica {
                continue;
            }
            match envelope.event {
                DeskEvent::Notice { agent, notice } => {
                    self.notify_here(&agent, notice);
                }
                DeskEvent::Disconnect { agent, reason } => {
                    self.disconnect_here(&agent, reason);
                }
                DeskEvent::SessionTaken {
                    agent,
                    by,
                    generation,
                } => {
                    if self.taken_here(&agent, generation) {
                        tracing::info!(%agent, replica = %by, ?generation, "session taken over on another replica");
                    }
                }
            }
        }
    }

    /// Makes this the agent's live session and asks an older one to close,
    /// here and on the other replicas. The session's generation orders it
    /// among the agent's sessions on every replica ([`DeskBus::generation`]).
    async fn register(&self, agent_id: &str) -> anyhow::Result<Registration> {
        let generation = self
            .bus
            .generation()
            .await
            .context("allocating a session generation")?;
        let (notices_tx, notices) = mpsc::channel(NOTICE_BACKLOG);
        let (close_tx, close) = watch::channel(None);
        let turn = {
            let mut turns = self
                .turns
                .lock()
                .map_err(|_| anyhow::anyhow!("desk registry lock poisoned"))?;
            Arc::clone(turns.entry(agent_id.to_owned()).or_default())
        };
        let mut live = self
            .live
            .lock()
            .map_err(|_| anyhow::anyhow!("desk registry lock poisoned"))?;
        let fresh = LiveSession {
            generation,
            notices: notices_tx,
            close: close_tx,
        };
        // Two connections raced and the newer one registered first: this one
        // is the older and closes at once.
        let outrun = live
            .get(agent_id)
            .is_some_and(|newer| newer.generation > generation);
        if outrun {
            let _ = fresh.close.send(Some(CloseReason::Replaced));
        } else if let Some(older) = live.insert(agent_id.to_owned(), fresh) {
            let _ = older.close.send(Some(CloseReason::Replaced));
        }
        drop(live);
        self.publish(DeskEvent::SessionTaken {
            agent: agent_id.to_owned(),
            by: self.replica,
            generation: Some(generation),
        });
        Ok(Registration {
            generation,
            notices,
            close,
            turn,
        })
    }

    /// Forgets a session, unless a newer one of the same agent replaced it.
    fn unregister(&self, agent_id: &str, generation: u64) {
        if let Ok(mut live) = self.live.lock()
            && live
                .get(agent_id)
                .is_some_and(|s| s.generation == generation)
        {
            live.remove(agent_id);
        }
    }

    /// Closes the agent's live session, on whichever replica it is; true when
    /// it was on this one.
    pub fn disconnect(&self, agent_id: &str, reason: CloseReason) -> bool {
        self.publish(DeskEvent::Disconnect {
            agent: agent_id.to_owned(),
            reason,
        });
        self.disconnect_here(agent_id, reason)
    }

    /// Closes the agent's session here if the takeover announced for
    /// `generation` is newer than it; true when it did.
    fn taken_here(&self, agent_id: &str, generation: Option<u64>) -> bool {
        let Ok(live) = self.live.lock() else {
            return false;
        };
        match live.get(agent_id) {
            Some(session) if takes_over(generation, session.generation) => {
                session.close.send(Some(CloseReason::Replaced)).is_ok()
            }
            _ => false,
        }
    }

    fn disconnect_here(&self, agent_id: &str, reason: CloseReason) -> bool {
        let Ok(live) = self.live.lock() else {
            return false;
        };
        match live.get(agent_id) {
            Some(session) => session.close.send(Some(reason)).is_ok(),
            None => false,
        }
    }

    pub fn is_connected(&self, agent_id: &str) -> bool {
        self.live
            .lock()
            .map(|live| live.contains_key(agent_id))
            .unwrap_or(false)
    }

    /// Best effort: a desk that is offline hears nothing (its status shows the
    /// outcome it had). The session may be on another replica: published too.
    pub fn notify(&self, agent_id: &str, notice: DeskNotice) {
        self.publish(DeskEvent::Notice {
            agent: agent_id.to_owned(),
            notice: notice.clone(),
        });
        self.notify_here(agent_id, notice);
    }

    fn notify_here(&self, agent_id: &str, notice: DeskNotice) -> bool {
        let sender = self
            .live
            .lock()
            .ok()
            .and_then(|live| live.get(agent_id).map(|s| s.notices.clone()));
        match sender {
            Some(tx) => tx.try_send(ServerMessage::Notice(notice)).is_ok(),
            None => false,
        }
    }
}

#[utoipa::path(
    get, path = "/api/v1/agent/uplink", tag = "agents",
    description = "The agent uplink: a WebSocket (Upgrade: websocket) carrying the agent protocol \
                   of imc_shared::protocol. Authenticated with the agent's token from enrolment.",
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket is open"),
        (status = 400, description = "Not a WebSocket upgrade request", body = imc_shared::api::ErrorBody),
    ),
)]
pub async fn upgrade(State(state): State<AppState>, mut request: Request) -> Response {
    // Authenticate before upgrading: an unknown caller never gets to send a frame.
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer_token);
    let agent = match token {
        Some(token) => {
            state
                .store
                .agent_by_token_hash(&hash_secret(token.trim()))
                .await
        }
        None => Ok(None),
    };
    let agent = match agent {
        Ok(Some(agent)) => agent,
        Ok(None) => return crate::error::ApiError::Unauthorized.into_response(),
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let (response, on_upgrade) = match websocket::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(why) => {
            return crate::error::ApiError::bad_request(format!(
                "the uplink is a WebSocket: {why}"
            ))
            .into_response();
        }
    };
    let span = tracing::info_span!("uplink", agent = %agent.id, site = %agent.site);
    tokio::spawn(
        async move {
            let link = match on_upgrade.await {
                Ok(upgraded) => Link::new(TokioIo::new(upgraded), SEND_TIMEOUT),
                Err(e) => {
                    tracing::warn!(error = %e, "the WebSocket upgrade failed");
                    return;
                }
            };
            let Ok(_slot) = state.desks.slots.clone().acquire_owned().await else {
                return;
            };
            let desks = state.desks.clone();
            let agent_id = agent.id.clone();
            let registration = match desks.register(&agent_id).await {
                Ok(registration) => registration,
                Err(e) => {
                    tracing::error!(error = %e, "could not register the session");
                    return;
                }
            };
            let generation = registration.generation;
            match serve_session(state, agent, link, registration).await {
                Ok(()) => tracing::info!("agent disconnected"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "agent session ended"),
            }
            desks.unregister(&agent_id, generation);
        }
        .instrument(span),
    );
    response
}

/// Waits for the agent's previous session to end, then runs this one.
async fn serve_session(
    state: AppState,
    agent: Agent,
    mut link: AgentLink,
    registration: Registration,
) -> anyhow::Result<()> {
    let Registration {
        notices,
        close,
        turn,
        ..
    } = registration;
    // The older session stops reading and finishes its commits first, so two
    // sessions never write the same partial upload.
    let Ok(_turn) = tokio::time::timeout(TAKEOVER_TIMEOUT, turn.lock_owned()).await else {
        let msg = "the previous connection of this agent did not close in time";
        let _ = send(&mut link, &error("busy", msg, None, true)).await;
        anyhow::bail!(msg);
    };
    // Registered before this check, so a revocation either saw this session
    // (and closed it) or is visible here.
    if !state.store.agent_active(&agent.id).await? {
        let _ = send(&mut link, &closing(CloseReason::Revoked)).await;
        anyhow::bail!("agent was revoked");
    }
    tracing::info!("agent connected");
    Session::new(state, agent).run(link, notices, close).await
}

fn closing(reason: CloseReason) -> ServerMessage {
    match reason {
        CloseReason::Replaced => error(
            "replaced",
            "a newer connection of this agent took over",
            None,
            true,
        ),
        CloseReason::Revoked => error("revoked", "this agent was revoked", None, true),
    }
}

struct Upload {
    offer: PageOffer,
    path: PathBuf,
    /// Open only while this page's bytes arrive: a session holds one partial
    /// file open, not one per page in its window (a descriptor per offered
    /// page ran a 1,024-descriptor limit out at about 30 streaming desks).
    sink: Option<PartialSink>,
    received: u64,
    /// Where the bytes the other replicas can see end (`SharedPartials`).
    durable: u64,
    /// Where the next checkpoint is due: 1 MiB past the last attempt, so a
    /// checkpoint that failed (another replica holds the partial's row) is
    /// not retried at every chunk.
    checkpoint_due: u64,
}

impl Upload {
    fn key<'a>(&'a self, agent_id: &'a str) -> PartialKey<'a> {
        PartialKey {
            capture_id: self.offer.capture_id,
            agent_id,
            sha256: &self.offer.sha256,
            size: self.offer.size,
        }
    }
}

/// Most bytes one checkpoint part holds.
const MAX_PART_BYTES: u64 = 4 * 1024 * 1024;

/// Copies the bytes of `upload` that the other replicas cannot see yet from
/// its local file into the shared partials; returns where the shared bytes
/// end now. Best effort: a failure only means a resume elsewhere starts
/// earlier.
async fn checkpoint(shared: &dyn SharedPartials, agent_id: &str, upload: &mut Upload) -> u64 {
    let result: anyhow::Result<u64> = async {
        let mut reader = tokio::fs::File::open(&upload.path)
            .await
            .with_context(|| format!("reading {}", upload.path.display()))?;
        let mut at = upload.durable;
        // Each round either appends a part or learns where the shared bytes
        // really end (another session got there first); bounded all the same.
        for _ in 0..64 {
            if at >= upload.received {
                break;
            }
            let len = (upload.received - at).min(MAX_PART_BYTES);
            let mut part = vec![0u8; usize::try_from(len)?];
            tokio::io::AsyncSeekExt::seek(&mut reader, std::io::SeekFrom::Start(at)).await?;
            tokio::io::AsyncReadExt::read_exact(&mut reader, &mut part).await?;
            let end = shared.save(&upload.key(agent_id), at, &part).await?;
            if end == at {
                break;
            }
            at = end;
        }
        Ok(at)
    }
    .await;
    match result {
        Ok(end) => end,
        Err(e) => {
            tracing::warn!(page = %upload.offer.capture_id, error = format!("{e:#}"), "checkpointing a partial upload");
            upload.durable
        }
    }
}

/// A partial file and the hash of what it holds. A plain file, written
/// straight from the pieces the socket delivers: nothing of a chunk is kept
/// per connection (a tokio file would keep its own buffer).
struct PartialSink {
    file: std::fs::File,
    hasher: Sha256,
}

impl PartialSink {
    /// Opens (or reopens, after a reconnect) the partial file of a page of
    /// `size` bytes; returns how many bytes it already holds.
    fn open(path: &Path, size: u64) -> anyhow::Result<(PartialSink, u64)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut received = file.metadata()?.len();
        if received > size {
            file.set_len(0)?;
            received = 0;
        } else if received > 0 {
            // Re-hash what is already there so the final check covers every byte.
            std::io::copy(&mut (&file).take(received), &mut hasher)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        file.seek(std::io::SeekFrom::Start(received))?;
        Ok((PartialSink { file, hasher }, received))
    }

    /// [`PartialSink::open`] for `upload`. A new partial file is created
    /// right here, like the chunks written into it (a trip to the blocking
    /// pool and back cost more than the create); one that holds bytes
    /// already, after a reconnect, is re-read and hashed on the pool.
    async fn open_for(upload: &Upload) -> anyhow::Result<(PartialSink, u64)> {
        let (path, size) = (upload.path.clone(), upload.offer.size);
        if upload.received == 0 {
            return PartialSink::open(&path, size);
        }
        tokio::task::spawn_blocking(move || PartialSink::open(&path, size))
            .await
            .context("opening a partial upload")?
    }
}

/// A page handed to the group commit: its ids, and the committer's answer.
type Committing = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = (Uuid, Uuid, Result<CommitResult, RecvError>)>
            + Send
            + Sync,
    >,
>;

struct Session {
    state: AppState,
    agent: Agent,
    /// Pages with bytes in the shared partials, to drop once stored.
    shared_ids: HashSet<Uuid>,
    uploads: HashMap<Uuid, Upload>,
    committing: FuturesUnordered<Committing>,
    committing_ids: HashSet<Uuid>,
    /// The chunk whose bytes are arriving, if it was accepted.
    receiving: Option<Receiving>,
}

/// A chunk being written into its page's partial file. Its bytes are written
/// as they arrive, before its CRC-32 can be checked, so this remembers how to
/// take them back.
struct Receiving {
    capture_id: Uuid,
    /// Where the chunk begins in the partial file.
    start: u64,
    len: u64,
    /// The page's hash up to `start`.
    hash_before: Sha256,
}

impl Receiving {
    /// Takes the chunk's bytes back out of the partial file and its hash.
    fn undo(self, sink: &mut PartialSink, path: &Path) -> anyhow::Result<()> {
        sink.file
            .set_len(self.start)
            .and_then(|()| sink.file.seek(std::io::SeekFrom::Start(self.start)))
            .with_context(|| format!("cutting {} back to {} bytes", path.display(), self.start))?;
        sink.hasher = self.hash_before;
        Ok(())
    }
}

fn error(
    code: &str,
    message: impl Into<String>,
    capture_id: Option<Uuid>,
    fatal: bool,
) -> ServerMessage {
    ServerMessage::Error(ProtocolError {
        code: code.to_owned(),
        message: message.into(),
        capture_id,
        packet_id: None,
        fatal,
        permanent: false,
    })
}

/// A page the server will never take as offered: the agent sets it aside.
fn refusal(code: &str, message: impl Into<String>, capture_id: Uuid) -> ServerMessage {
    ServerMessage::Error(ProtocolError {
        code: code.to_owned(),
        message: message.into(),
        capture_id: Some(capture_id),
        packet_id: None,
        fatal: false,
        permanent: true,
    })
}

/// A seal the server could not record: `permanent` when sending it again
/// cannot succeed (it contradicts what is stored or breaks a limit).
fn seal_error(
    code: &str,
    message: impl Into<String>,
    packet_id: Uuid,
    permanent: bool,
) -> ServerMessage {
    ServerMessage::Error(ProtocolError {
        code: code.to_owned(),
        message: message.into(),
        capture_id: None,
        packet_id: Some(packet_id),
        fatal: false,
        permanent,
    })
}

async fn send(link: &mut AgentLink, msg: &ServerMessage) -> anyhow::Result<()> {
    let json = serde_json::to_string(msg).context("encoding server message")?;
    link.send_text(&json).await.context("sending to agent")
}

impl Session {
    fn new(state: AppState, agent: Agent) -> Session {
        Session {
            state,
            agent,
            shared_ids: HashSet::new(),
            uploads: HashMap::new(),
            committing: FuturesUnordered::new(),
            committing_ids: HashSet::new(),
            receiving: None,
        }
    }

    /// Serves the connection, then winds down whatever way it ended.
    async fn run(
        mut self,
        mut link: AgentLink,
        notices: mpsc::Receiver<ServerMessage>,
        close: watch::Receiver<Option<CloseReason>>,
    ) -> anyhow::Result<()> {
        let result = self.serve(&mut link, notices, close).await;
        self.wind_down().await;
        result
    }

    /// Leaves nothing behind for the agent's next session: open partial files
    /// are flushed and closed, and pages being committed are committed.
    async fn wind_down(&mut self) {
        // A chunk cut off midway was never checked: keep only whole chunks.
        if let Some(receiving) = self.receiving.take()
            && let Some(upload) = self.uploads.get_mut(&receiving.capture_id)
            && let Some(sink) = upload.sink.as_mut()
            && let Err(e) = receiving.undo(sink, &upload.path)
        {
            tracing::warn!(error = format!("{e:#}"), "dropping a cut-off chunk");
        }
        for (_, mut upload) in self.uploads.drain() {
            // Partial files hold no buffered bytes (pieces are written as
            // they come); the agent may come back through another replica,
            // so leave what it sent there.
            if let Some(shared) = &self.state.shared_partials
                && upload.received > upload.durable
            {
                checkpoint(&**shared, &self.agent.id, &mut upload).await;
            }
        }
        while self.committing.next().await.is_some() {}
    }

    async fn serve(
        &mut self,
        link: &mut AgentLink,
        mut notices: mpsc::Receiver<ServerMessage>,
        mut close: watch::Receiver<Option<CloseReason>>,
    ) -> anyhow::Result<()> {
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, link.recv()).await {
            Ok(Ok(Some(Inbound::Text(text)))) => serde_json::from_str::<AgentMessage>(&text).ok(),
            Ok(_) => None,
            Err(_) => anyhow::bail!("no hello within {HELLO_TIMEOUT:?}"),
        };
        let Some(AgentMessage::Hello(hello)) = hello else {
            send(
                link,
                &error(
                    "expected_hello",
                    "the first message must be hello",
                    None,
                    true,
                ),
            )
            .await?;
            anyhow::bail!("first message was not a hello");
        };
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.protocol_version) {
            let message = format!(
                "server speaks uplink protocol {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}, agent sent {}; update the agent",
                hello.protocol_version
            );
            send(
                link,
                &error("unsupported_protocol", message.clone(), None, true),
            )
            .await?;
            anyhow::bail!(message);
        }
        self.state.store.agent_seen(&self.agent.id, None).await?;
        let mut cover_keys = self.state.cover_keys.current(&*self.state.store).await?;
        let welcome = Welcome {
            protocol_version: hello.protocol_version,
            agent_id: self.agent.id.clone(),
            site: self.agent.site.clone(),
            cover_patterns: self.state.store.cover_patterns().await?,
            max_chunk_bytes: PREFERRED_CHUNK_BYTES as u64,
            window_pages: WINDOW_PAGES,
            window_bytes: WINDOW_BYTES,
            cover_keys: cover_keys.published.clone(),
        };
        send(link, &ServerMessage::Welcome(welcome)).await?;
        // Only agents that speak version 3 read a key push.
        let hears_key_pushes = hello.protocol_version >= 3;

        // An agent pings every few seconds; silence this long means the link is
        // half-open (the peer vanished without a FIN) or dead.
        let idle_limit = self.state.config.uplink_idle_timeout;
        let mut silent_since = tokio::time::Instant::now();
        let mut registry_gone = false;
        loop {
            let received = tokio::select! {
                Some(notice) = notices.recv() => {
                    send(link, &notice).await?;
                    continue;
                }
                Some((id, packet_id, answer)) = self.committing.next(), if !self.committing.is_empty() => {
                    self.committing_ids.remove(&id);
                    if matches!(answer, Ok(Ok(_))) {
                        self.forget_shared(id);
                    }
                    for reply in committed(id, packet_id, answer) {
                        send(link, &reply).await?;
                    }
                    continue;
                }
                changed = close.changed(), if !registry_gone => {
                    let reason = *close.borrow_and_update();
                    match (changed, reason) {
                        (_, Some(reason)) => {
                            tracing::info!(?reason, "closing the session");
                            let _ = send(link, &closing(reason)).await;
                            let why = format!("{reason:?}").to_lowercase();
                            let _ = link.close(websocket::CLOSE_POLICY, &why).await;
                            return Ok(());
                        }
                        (Err(_), None) => registry_gone = true,
                        (Ok(()), None) => {}
                    }
                    continue;
                }
                received = tokio::time::timeout_at(silent_since + idle_limit, link.recv()) => received,
            };
            let inbound = match received {
                Err(_) => anyhow::bail!(
                    "no word from the agent for {idle_limit:?}: the link is half-open"
                ),
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(inbound))) => inbound,
                Ok(Err(ReadError::Io(e))) => return Err(e).context("reading from agent"),
                Ok(Err(e)) => {
                    // Frames against the rules end the connection; say why
                    // if the socket still takes a reply (a reset one will not).
                    let code = match e {
                        ReadError::Chunk(_) => "bad_chunk",
                        _ => "bad_frame",
                    };
                    let why = format!("unreadable frame: {e}");
                    let _ = send(link, &error(code, why, None, true)).await;
                    return Err(e).context("reading from agent");
                }
            };
            silent_since = tokio::time::Instant::now();
            let replies = match inbound {
                Inbound::Text(text) => match serde_json::from_str::<AgentMessage>(&text) {
                    Ok(msg) => self.on_message(msg).await?,
                    Err(e) => vec![error(
                        "malformed",
                        format!("unreadable message: {e}"),
                        None,
                        true,
                    )],
                },
                Inbound::ChunkStart {
                    capture_id,
                    offset,
                    len,
                } => self.on_chunk_start(capture_id, offset, len).await?,
                Inbound::ChunkData(piece) => {
                    self.on_chunk_data(&piece)?;
                    Vec::new()
                }
                Inbound::ChunkEnd { intact } => self.on_chunk_end(intact).await?,
                Inbound::Ping(payload) => {
                    link.pong(&payload).await.context("answering a ping")?;
                    // The agent's pings pace the check for a key rotation.
                    match self.state.cover_keys.current(&*self.state.store).await {
                        Ok(now) if hears_key_pushes && now.published != cover_keys.published => {
                            cover_keys = now;
                            vec![ServerMessage::CoverKeys {
                                keys: cover_keys.published.clone(),
                            }]
                        }
                        Ok(_) => Vec::new(),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "could not read the cover keys");
                            Vec::new()
                        }
                    }
                }
                Inbound::Close => {
                    let _ = link.close(websocket::CLOSE_NORMAL, "").await;
                    return Ok(());
                }
            };
            for reply in &replies {
                send(link, reply).await?;
            }
            if let Some(ServerMessage::Error(ProtocolError {
                fatal: true,
                message,
                ..
            })) = replies.last()
            {
                anyhow::bail!("protocol error: {message}");
            }
        }
    }

    async fn on_message(&mut self, msg: AgentMessage) -> anyhow::Result<Vec<ServerMessage>> {
        match msg {
            AgentMessage::Hello(_) => Ok(vec![error(
                "unexpected_hello",
                "hello was already received",
                None,
                true,
            )]),
            AgentMessage::Offer(offer) => self.on_offer(offer).await,
            AgentMessage::Seal(seal) => self.on_seal(seal).await,
            AgentMessage::Report(report) => {
                // Beyond what the database holds: say which counter, rather
                // than failing the store write and dropping the link unexplained.
                if let Err(why) = check_report(&report) {
                    return Ok(vec![error("bad_report", why, None, true)]);
                }
                self.state
                    .store
                    .agent_seen(&self.agent.id, Some(report))
                    .await?;
                Ok(Vec::new())
            }
        }
    }

    /// Drops a page's shared partial, if it had one, without waiting.
    fn forget_shared(&mut self, id: Uuid) {
        if let Some(shared) = &self.state.shared_partials
            && self.shared_ids.remove(&id)
        {
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                if let Err(e) = shared.forget(id).await {
                    tracing::warn!(page = %id, error = format!("{e:#}"), "dropping a shared partial upload");
                }
            });
        }
    }

    fn in_flight(&self) -> usize {
        self.uploads.len() + self.committing.len()
    }

    async fn on_offer(&mut self, offer: PageOffer) -> anyhow::Result<Vec<ServerMessage>> {
        let id = offer.capture_id;
        // Stored answers before any check: a page whose `stored` was lost is
        // offered again, and limits changed since must not refuse it for good
        // (its packet would never seal). Only this agent's own pages count.
        if self.state.store.page_stored(id, &self.agent.id).await? {
            return Ok(vec![ServerMessage::Stored { capture_id: id }]);
        }
        if let Err(why) = validate_offer(&offer, self.state.config.max_page_bytes) {
            return Ok(vec![refusal("bad_offer", why, id)]);
        }
        // Already on its way into the store: its `stored` will come.
        if self.committing_ids.contains(&id) {
            return Ok(Vec::new());
        }
        self.uploads.remove(&id);
        if self.in_flight() >= WINDOW_PAGES as usize {
            let msg = format!("at most {WINDOW_PAGES} pages may be in flight");
            return Ok(vec![error("too_many_uploads", msg, Some(id), false)]);
        }
        // Same bytes already here (from this or another page): no need to send
        // them, if this site delivered them before. A hash alone must not let
        // a desk attach bytes it never had (another site's scans): any other
        // desk sends them, and the blob store keeps one copy.
        if self.state.blobs.contains(&offer.sha256).await?
            && self
                .state
                .store
                .site_holds_blob(&self.agent.site, &offer.sha256)
                .await?
        {
            // The bytes held may be of another type than this offer says.
            let held = self.state.blobs.get(&offer.sha256).await?;
            if let Err(why) = head_matches_type(&held, &offer.content_type) {
                return Ok(vec![refusal("content_mismatch", why, id)]);
            }
            self.commit(offer, None).await;
            return Ok(Vec::new());
        }
        let upload = self.open_partial(offer).await?;
        let offset = upload.received;
        // All bytes arrived before a crash or a lost link: finish now, no chunk will come.
        if offset == upload.offer.size {
            return self.finish(upload).await;
        }
        self.uploads.insert(id, upload);
        Ok(vec![ServerMessage::Resume {
            capture_id: id,
            offset,
        }])
    }

    /// Opens (or reopens, after a reconnect) the partial file of a page,
    /// taking the shared partial's bytes when another replica got further.
    async fn open_partial(&mut self, offer: PageOffer) -> anyhow::Result<Upload> {
        let dir = self.state.config.partials_dir().join(&self.agent.id);
        let path = dir.join(format!("{}.part", offer.capture_id));
        let mut durable = 0;
        if let Some(shared) = &self.state.shared_partials {
            let key = PartialKey {
                capture_id: offer.capture_id,
                agent_id: &self.agent.id,
                sha256: &offer.sha256,
                size: offer.size,
            };
            match shared.load(&key).await {
                Ok(held) => {
                    durable = held.len() as u64;
                    if durable > 0 {
                        self.shared_ids.insert(offer.capture_id);
                    }
                    let local = tokio::fs::metadata(&path)
                        .await
                        .map(|m| m.len())
                        .unwrap_or(0);
                    // Same capture id, same bytes: the longer prefix wins.
                    if durable > local && durable <= offer.size {
                        tokio::fs::create_dir_all(&dir)
                            .await
                            .with_context(|| format!("creating {}", dir.display()))?;
                        tokio::fs::write(&path, &held)
                            .await
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                }
                Err(e) => {
                    tracing::warn!(page = %offer.capture_id, error = format!("{e:#}"), "reading the shared partial upload");
                }
            }
        }
        // Only where to resume; the file is opened when its bytes come. A
        // stat of a file this session wrote is served from memory, so it is
        // done right here rather than on the blocking pool.
        let received = match std::fs::metadata(&path) {
            // A longer file is not this page's: `PartialSink::open` starts it over.
            Ok(meta) if meta.len() <= offer.size => meta.len(),
            Ok(_) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Upload {
            offer,
            path,
            sink: None,
            received,
            durable,
            checkpoint_due: durable.max(received) + CHECKPOINT_BYTES as u64,
        })
    }

    /// Opens the partial file of upload `id` for its bytes, closing any other
    /// this session holds open: agents send one page's bytes at a time, and
    /// one that interleaves pages pays a re-hash, not a descriptor per page.
    async fn open_sink(&mut self, id: Uuid) -> anyhow::Result<()> {
        for (other, upload) in self.uploads.iter_mut() {
            if *other != id {
                upload.sink = None;
            }
        }
        let Some(upload) = self.uploads.get_mut(&id) else {
            return Ok(());
        };
        let (sink, on_disk) = PartialSink::open_for(upload).await?;
        // Normally what the offer was told; if the file changed since (it was
        // swept, say), the chunk's offset no longer matches and the agent
        // offers the page again.
        upload.received = on_disk;
        upload.sink = Some(sink);
        Ok(())
    }

    /// A chunk's bytes begin: checks them against the page's upload and
    /// opens its partial file, or refuses them (they are then dropped).
    async fn on_chunk_start(
        &mut self,
        id: Uuid,
        offset: u64,
        len: u64,
    ) -> anyhow::Result<Vec<ServerMessage>> {
        self.receiving = None;
        if self.uploads.get(&id).is_some_and(|u| u.sink.is_none()) {
            self.open_sink(id).await?;
        }
        let Some(upload) = self.uploads.get_mut(&id) else {
            return Ok(vec![error(
                "unknown_upload",
                "chunk for a page that was not offered",
                Some(id),
                false,
            )]);
        };
        if offset != upload.received {
            let msg = format!("chunk at offset {offset}, expected {}", upload.received);
            self.uploads.remove(&id);
            return Ok(vec![error("out_of_order", msg, Some(id), false)]);
        }
        if upload.received + len > upload.offer.size {
            if let Some(upload) = self.uploads.remove(&id) {
                drop(upload.sink);
                let _ = tokio::fs::remove_file(&upload.path).await;
            }
            return Ok(vec![error(
                "too_long",
                "more bytes than the offer said",
                Some(id),
                false,
            )]);
        }
        let Some(sink) = upload.sink.as_ref() else {
            anyhow::bail!("no open partial file for page {id}");
        };
        self.receiving = Some(Receiving {
            capture_id: id,
            start: upload.received,
            len,
            hash_before: sink.hasher.clone(),
        });
        Ok(Vec::new())
    }

    /// Writes a piece of the current chunk into its partial file and hash.
    fn on_chunk_data(&mut self, piece: &[u8]) -> anyhow::Result<()> {
        let Some(receiving) = &self.receiving else {
            return Ok(()); // a refused chunk
        };
        let Some(upload) = self.uploads.get_mut(&receiving.capture_id) else {
            return Ok(());
        };
        let Some(sink) = upload.sink.as_mut() else {
            anyhow::bail!("no open partial file for page {}", receiving.capture_id);
        };
        // Written and hashed right here on the worker, not on the blocking
        // pool: a piece is at most 64 KiB into the page cache (microseconds),
        // and the round trip to a pool thread cost more than the write itself
        // (see PERFORMANCE.md). The sync happens in the group commit.
        sink.file
            .write_all(piece)
            .with_context(|| format!("writing {}", upload.path.display()))?;
        sink.hasher.update(piece);
        Ok(())
    }

    /// A chunk's bytes are all in: a damaged chunk is undone and ends the
    /// connection; an intact one counts, and may complete its page.
    async fn on_chunk_end(&mut self, intact: bool) -> anyhow::Result<Vec<ServerMessage>> {
        let damaged = || {
            let msg = "chunk checksum mismatch: damaged on the way";
            vec![error("bad_chunk", msg, None, true)]
        };
        let Some(receiving) = self.receiving.take() else {
            return Ok(if intact { Vec::new() } else { damaged() });
        };
        let id = receiving.capture_id;
        let Some(upload) = self.uploads.get_mut(&id) else {
            return Ok(Vec::new());
        };
        if !intact {
            if let Some(sink) = upload.sink.as_mut() {
                receiving.undo(sink, &upload.path)?;
            }
            return Ok(damaged());
        }
        upload.received += receiving.len;
        if upload.received < upload.offer.size {
            if let Some(shared) = &self.state.shared_partials
                && upload.received >= upload.checkpoint_due
            {
                upload.durable = checkpoint(&**shared, &self.agent.id, upload).await;
                upload.checkpoint_due = upload.received + CHECKPOINT_BYTES as u64;
                self.shared_ids.insert(id);
            }
            return Ok(Vec::new());
        }
        match self.uploads.remove(&id) {
            Some(upload) => self.finish(upload).await,
            None => Ok(Vec::new()),
        }
    }

    /// Verifies a complete partial upload and hands it to the group commit,
    /// which syncs it, moves it into the blob store and records the page.
    async fn finish(&mut self, upload: Upload) -> anyhow::Result<Vec<ServerMessage>> {
        let id = upload.offer.capture_id;
        // All bytes were already there at the offer: nothing opened it yet.
        let sink = match upload.sink {
            Some(sink) => sink,
            None => PartialSink::open_for(&upload).await?.0,
        };
        let digest = hex::encode(sink.hasher.finalize());
        // fstat on the open file: the inode is in memory, no pool trip needed.
        let on_disk = sink
            .file
            .metadata()
            .with_context(|| format!("reading {}", upload.path.display()))?
            .len();
        drop(sink.file);
        if digest != upload.offer.sha256 || on_disk != upload.offer.size {
            let _ = tokio::fs::remove_file(&upload.path).await;
            self.forget_shared(id);
            let msg = format!("bytes hash to {digest}, offer said {}", upload.offer.sha256);
            return Ok(vec![error("checksum_mismatch", msg, Some(id), false)]);
        }
        if let Err(why) = bytes_match_type(&upload.path, &upload.offer.content_type) {
            let _ = tokio::fs::remove_file(&upload.path).await;
            self.forget_shared(id);
            return Ok(vec![refusal("content_mismatch", why, id)]);
        }
        self.commit(upload.offer, Some(upload.path)).await;
        Ok(Vec::new())
    }

    /// Queues a page whose bytes are whole for the next group commit; its
    /// `stored` goes out when that commit is durable.
    async fn commit(&mut self, offer: PageOffer, partial: Option<PathBuf>) {
        let id = offer.capture_id;
        let packet_id = offer.packet_id;
        let page = StoredPage {
            capture_id: id,
            packet_id,
            page_index: offer.page_index,
            cover_code: offer.cover_code,
            sha256: offer.sha256,
            size: offer.size,
            content_type: offer.content_type,
            source_name: offer.source_name,
            barcodes: offer.barcodes,
            blank: offer.blank,
            packet_seq: offer.packet_seq,
        };
        let answer = self
            .state
            .committer
            .commit(self.agent.clone(), page, partial)
            .await;
        self.committing_ids.insert(id);
        self.committing
            .push(Box::pin(async move { (id, packet_id, answer.await) }));
    }

    async fn on_seal(&mut self, seal: PacketSeal) -> anyhow::Result<Vec<ServerMessage>> {
        let packet_id = seal.packet_id;
        if let Err(why) = validate_seal(&seal) {
            return Ok(vec![seal_error("bad_seal", why, packet_id, true)]);
        }
        // A desk seals a packet once all its pages are stored, so a seal of
        // pages with no first page here names a packet never offered: it
        // would leave an open packet behind that nothing ever completes.
        // (The store itself takes a seal before pages: see its tests.)
        if seal.page_count > 0
            && !self
                .state
                .store
                .packet_has_pages(packet_id, &self.agent.id)
                .await?
        {
            return Ok(vec![seal_error(
                "unknown_packet",
                format!(
                    "packet {packet_id} has no stored page: seal a packet after its pages are stored"
                ),
                packet_id,
                true,
            )]);
        }
        match self.state.store.seal_packet(&self.agent, seal).await {
            Ok(resolution) => {
                let mut replies = vec![ServerMessage::Sealed { packet_id }];
                replies.extend(outcome(packet_id, resolution));
                Ok(replies)
            }
            Err(crate::store::StoreError::Conflict(msg)) => {
                Ok(vec![seal_error("conflict", msg, packet_id, true)])
            }
            // The disk or database, not the seal: the agent tries again later.
            Err(e) => {
                tracing::error!(packet = %packet_id, error = %e, "could not record a seal");
                Ok(vec![seal_error(
                    "store_failed",
                    format!("could not record the seal: {e}"),
                    packet_id,
                    false,
                )])
            }
        }
    }
}

/// The answer to a page the group commit is done with.
fn committed(
    id: Uuid,
    packet_id: Uuid,
    answer: Result<CommitResult, RecvError>,
) -> Vec<ServerMessage> {
    match answer {
        Ok(Ok(resolution)) => {
            let mut replies = vec![ServerMessage::Stored { capture_id: id }];
            replies.extend(outcome(packet_id, resolution));
            replies
        }
        Ok(Err(CommitFailure::Conflict(msg))) => vec![refusal("conflict", msg, id)],
        Ok(Err(CommitFailure::Failed(msg))) => vec![error("store_failed", msg, Some(id), false)],
        Err(_) => vec![error(
            "store_failed",
            "the commit task ended before the page was stored",
            Some(id),
            false,
        )],
    }
}

fn outcome(packet_id: Uuid, resolution: PacketResolution) -> Option<ServerMessage> {
    let outcome = match resolution {
        PacketResolution::Open => return None,
        PacketResolution::Matched {
            document_id,
            doc_no,
        } => PacketOutcome {
            packet_id,
            matched: true,
            document_id: Some(document_id),
            message: format!("matched to document {doc_no}"),
            doc_no: Some(doc_no),
        },
        PacketResolution::Unmatched { reason } => PacketOutcome {
            packet_id,
            matched: false,
            document_id: None,
            doc_no: None,
            message: reason,
        },
    };
    Some(ServerMessage::PacketOutcome(outcome))
}

fn validate_seal(seal: &PacketSeal) -> Result<(), String> {
    if seal.page_count > MAX_PACKET_PAGES {
        return Err(format!(
            "page_count {} is beyond {MAX_PACKET_PAGES}",
            seal.page_count
        ));
    }
    if seal.cover_code.as_ref().is_some_and(|c| c.len() > 128) {
        return Err("cover_code too long".into());
    }
    check_packet_seq(seal.packet_seq)
}

/// The database keeps a desk's counters as signed 64-bit integers.
fn check_report(report: &AgentReport) -> Result<(), String> {
    for (name, value) in [
        ("queue_pages", report.queue_pages),
        ("queue_bytes", report.queue_bytes),
        ("quarantined", report.quarantined),
    ] {
        if i64::try_from(value).is_err() {
            return Err(format!("report {name} {value} is beyond {}", i64::MAX));
        }
    }
    Ok(())
}

/// Bytes whose format (from their first bytes) is not the offered content
/// type would be served and decoded as something they are not.
fn head_matches_type(bytes: &[u8], content_type: &str) -> Result<(), String> {
    match sniff_content_type(bytes) {
        Some(found) if found == content_type => Ok(()),
        Some(found) => Err(format!(
            "the bytes are {found}, not the offered {content_type}"
        )),
        None => Err(format!(
            "the bytes are not {content_type} (nor any accepted type)"
        )),
    }
}

/// [`head_matches_type`] on a page's partial file: only its first bytes are read.
fn bytes_match_type(path: &Path, content_type: &str) -> Result<(), String> {
    // Enough for every signature `sniff_content_type` knows (WebP's is 12 bytes).
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    std::fs::File::open(path)
        .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut head))
        .map_err(|e| format!("could not read the page back ({}): {e}", path.display()))?;
    head_matches_type(&head, content_type)
}

const SNIFF_BYTES: usize = 64;

/// The database keeps a desk's packet sequence as a signed 64-bit integer.
fn check_packet_seq(packet_seq: Option<u64>) -> Result<(), String> {
    match packet_seq {
        Some(seq) if i64::try_from(seq).is_err() => {
            Err(format!("packet_seq {seq} is beyond {}", i64::MAX))
        }
        _ => Ok(()),
    }
}

fn validate_offer(offer: &PageOffer, max_page_bytes: u64) -> Result<(), String> {
    let limit = max_page_bytes.min(MAX_PAGE_BYTES);
    if offer.size == 0 || offer.size > limit {
        return Err(format!(
            "page size {} is outside 1..={limit} bytes",
            offer.size
        ));
    }
    if !is_sha256_hex(&offer.sha256) {
        return Err("sha256 must be 64 lowercase hex digits".into());
    }
    if !SNIFFABLE.contains(&offer.content_type.as_str()) {
        return Err(format!(
            "content type {:?} is not accepted",
            offer.content_type
        ));
    }
    if offer.page_index > MAX_PACKET_PAGES {
        return Err("page_index is implausibly large".into());
    }
    if offer.cover_code.as_ref().is_some_and(|c| c.len() > 128) || offer.source_name.len() > 1024 {
        return Err("cover_code or source_name too long".into());
    }
    if offer.barcodes.len() > 64 || offer.barcodes.iter().any(|b| b.text.len() > 4096) {
        return Err("too many or too long barcodes".into());
    }
    check_packet_seq(offer.packet_seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use crate::store::Actor;
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    type Client = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    const WAIT: Duration = Duration::from_secs(10);

    /// A bus that hands every published envelope to its subscribers, as the
    /// PostgreSQL one does across replicas.
    struct EchoBus {
        events: tokio::sync::broadcast::Sender<Envelope>,
        next: std::sync::atomic::AtomicU64,
    }

    impl DeskBus for EchoBus {
        fn generation(&self) -> crate::desk_bus::Generation<'_> {
            let next = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(std::future::ready(Ok(next)))
        }
        fn publish(&self, envelope: Envelope) {
            let _ = self.events.send(envelope);
        }
        fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Envelope> {
            self.events.subscribe()
        }
    }

    /// A takeover notice from another replica closes the session here only
    /// when it announces a newer session: a late one for an older (or the
    /// same) generation leaves the newest session open, so two replicas
    /// never close each other's sessions in turn.
    #[tokio::test]
    async fn a_late_takeover_notice_leaves_the_newer_session_open() {
        let bus = Arc::new(EchoBus {
            events: tokio::sync::broadcast::channel(16).0,
            next: std::sync::atomic::AtomicU64::new(10),
        });
        let desks = Desks::new(4, bus.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let following = tokio::spawn(desks.clone().follow(stop.clone()));
        tokio::task::yield_now().await;
        let mut session = desks.register("ag-1").await.unwrap();
        assert_eq!(session.generation, 10);
        let elsewhere = Uuid::new_v4();
        let taken = |generation| Envelope {
            from: elsewhere,
            event: DeskEvent::SessionTaken {
                agent: "ag-1".into(),
                by: elsewhere,
                generation: Some(generation),
            },
        };
        bus.publish(taken(9));
        bus.publish(taken(10));
        let closed = tokio::time::timeout(Duration::from_millis(300), session.close.changed());
        assert!(closed.await.is_err(), "closed by an older notice");
        assert!(desks.is_connected("ag-1"));

        bus.publish(taken(11));
        tokio::time::timeout(WAIT, session.close.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*session.close.borrow(), Some(CloseReason::Replaced));
        stop.cancel();
        following.await.unwrap();
    }

    /// Of two sessions registered out of their generations' order, the
    /// newer stays live.
    #[tokio::test]
    async fn the_newer_generation_wins_a_registration_race() {
        let bus = Arc::new(EchoBus {
            events: tokio::sync::broadcast::channel(16).0,
            next: std::sync::atomic::AtomicU64::new(1),
        });
        let desks = Desks::new(4, bus.clone());
        let older = desks.register("ag-1").await.unwrap();
        let newer = desks.register("ag-1").await.unwrap();
        assert_eq!(*older.close.borrow(), Some(CloseReason::Replaced));
        assert_eq!(*newer.close.borrow(), None);
        // A session whose generation was allocated before `newer`'s but
        // registered after it is closed at once.
        bus.next.store(1, std::sync::atomic::Ordering::Relaxed);
        let late = desks.register("ag-1").await.unwrap();
        assert_eq!(*late.close.borrow(), Some(CloseReason::Replaced));
        assert_eq!(*newer.close.borrow(), None);
        desks.unregister("ag-1", late.generation);
        assert!(desks.is_connected("ag-1"));
    }

    /// Serves `state` on a loopback port until the test ends; its address.
    async fn serve(state: AppState) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::serve_state(state, listener, std::future::pending()));
        addr
    }

    /// An enrolled agent of site `site`; its token.
    async fn enroll(state: &AppState, id: &str, site: &str) -> String {
        let code = format!("enr_{id}");
        let actor = Actor("test".into());
        let expires = "2999-01-01T00:00:00.000Z";
        let store = &state.store;
        store
            .add_enrollment_code(site, &hash_secret(&code), expires, &actor)
            .await
            .unwrap();
        let token = crate::auth::new_secret("agt");
        store
            .enroll_agent(&hash_secret(&code), id, "desk", &hash_secret(&token), None)
            .await
            .unwrap();
        token
    }

    async fn connect(addr: std::net::SocketAddr, token: &str) -> Client {
        let mut request = format!("ws://{addr}{UPLINK_PATH}")
            .into_client_request()
            .unwrap();
        let bearer = format!("Bearer {token}").parse().unwrap();
        request.headers_mut().insert("Authorization", bearer);
        let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let hello = AgentMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: "test".into(),
        });
        say(&mut client, &hello).await;
        assert!(matches!(hear(&mut client).await, ServerMessage::Welcome(_)));
        client
    }

    async fn say(client: &mut Client, msg: &AgentMessage) {
        let json = serde_json::to_string(msg).unwrap();
        client.send(Message::Text(json.into())).await.unwrap();
    }

    async fn hear(client: &mut Client) -> ServerMessage {
        loop {
            let frame = tokio::time::timeout(WAIT, client.next()).await.unwrap();
            if let Some(Ok(Message::Text(text))) = frame {
                return serde_json::from_str(&text).unwrap();
            }
            assert!(matches!(frame, Some(Ok(_))), "connection ended: {frame:?}");
        }
    }

    /// Bytes that start as a PNG does: the uplink checks only the signature.
    fn png_like(fill: u8, len: usize) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.resize(len, fill);
        bytes
    }

    async fn fresh_state(dir: &tempfile::TempDir) -> AppState {
        crate::open(ServerConfig::new(dir.path().to_owned()))
            .await
            .unwrap()
    }

    /// Offers `bytes` and sends them whole; the first answer after the chunk.
    async fn upload(client: &mut Client, offer: &PageOffer, bytes: &[u8]) -> ServerMessage {
        say(client, &AgentMessage::Offer(offer.clone())).await;
        let id = offer.capture_id;
        let resume = ServerMessage::Resume {
            capture_id: id,
            offset: 0,
        };
        assert_eq!(hear(client).await, resume);
        let chunk = Chunk {
            capture_id: id,
            offset: 0,
            data: bytes,
        }
        .encode();
        client.send(Message::Binary(chunk.into())).await.unwrap();
        hear(client).await
    }

    fn protocol_error(msg: ServerMessage) -> ProtocolError {
        match msg {
            ServerMessage::Error(e) => e,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }

    /// Bytes that are not what the offer says they are (a JPEG offered as
    /// PNG, or bytes of no accepted type) are refused for good and not stored;
    /// the same holds when the bytes are already held and only claimed by hash.
    #[tokio::test]
    async fn pages_whose_bytes_are_not_the_offered_type_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = fresh_state(&dir).await;
        let token = enroll(&state, "agent-1", "site-a").await;
        let mut client = connect(serve(state.clone()).await, &token).await;

        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        jpeg.resize(3000, 1);
        let mut garbage = b"GIF89a".to_vec();
        garbage.resize(3000, 2);
        for bytes in [jpeg, garbage] {
            let offer = offer_of(&bytes); // says image/png
            let e = protocol_error(upload(&mut client, &offer, &bytes).await);
            assert_eq!(
                (e.code.as_str(), e.permanent, e.fatal, e.capture_id),
                ("content_mismatch", true, false, Some(offer.capture_id)),
                "{e:?}"
            );
            let stored = state.store.page_stored(offer.capture_id, "agent-1").await;
            assert!(!stored.unwrap(), "a refused page is not stored");
            assert!(!state.blobs.contains(&offer.sha256).await.unwrap());
        }

        // Right bytes are stored; the same bytes offered as JPEG are refused
        // even though the server need not receive them again.
        let png = png_like(3, 3000);
        let offer = offer_of(&png);
        let stored = ServerMessage::Stored {
            capture_id: offer.capture_id,
        };
        assert_eq!(upload(&mut client, &offer, &png).await, stored);
        let mut as_jpeg = offer_of(&png);
        as_jpeg.content_type = "image/jpeg".into();
        say(&mut client, &AgentMessage::Offer(as_jpeg.clone())).await;
        let e = protocol_error(hear(&mut client).await);
        assert_eq!((e.code.as_str(), e.permanent), ("content_mismatch", true));
        let held = state.store.page_stored(as_jpeg.capture_id, "agent-1").await;
        assert!(!held.unwrap());
    }

    /// A seal for a packet none of whose pages was stored is refused for
    /// good and leaves no packet behind; an empty seal still makes one.
    #[tokio::test]
    async fn a_seal_of_a_packet_never_offered_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = fresh_state(&dir).await;
        let token = enroll(&state, "agent-1", "site-a").await;
        let mut client = connect(serve(state.clone()).await, &token).await;
        let packet_id = Uuid::new_v4();
        let seal = |page_count| PacketSeal {
            packet_id,
            cover_code: None,
            page_count,
            empty: false,
            packet_seq: None,
            cover_problem: None,
        };
        say(&mut client, &AgentMessage::Seal(seal(3))).await;
        let e = protocol_error(hear(&mut client).await);
        assert_eq!(
            (e.code.as_str(), e.permanent, e.fatal, e.packet_id),
            ("unknown_packet", true, false, Some(packet_id)),
            "{e:?}"
        );
        let packets = state.store.packets(None, 100).await.unwrap();
        assert!(packets.is_empty(), "no packet left behind: {packets:?}");

        // The session goes on, and an empty packet is still sealed.
        say(&mut client, &AgentMessage::Seal(seal(0))).await;
        assert_eq!(hear(&mut client).await, ServerMessage::Sealed { packet_id });
        assert_eq!(state.store.packets(None, 100).await.unwrap().len(), 1);
    }

    /// Counters beyond what the database holds get a fatal error frame that
    /// names the counter, not a silently dropped link.
    #[tokio::test]
    async fn a_report_with_counters_beyond_range_gets_an_error_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = fresh_state(&dir).await;
        let token = enroll(&state, "agent-1", "site-a").await;
        let addr = serve(state.clone()).await;
        for (report, named) in [
            (
                AgentReport {
                    queue_pages: u64::MAX,
                    queue_bytes: u64::MAX,
                    quarantined: u64::MAX,
                },
                "queue_pages",
            ),
            (
                AgentReport {
                    queue_pages: 1,
                    queue_bytes: i64::MAX as u64 + 1,
                    quarantined: 0,
                },
                "queue_bytes",
            ),
            (
                AgentReport {
                    quarantined: u64::MAX,
                    ..AgentReport::default()
                },
                "quarantined",
            ),
        ] {
            let mut client = connect(addr, &token).await;
            say(&mut client, &AgentMessage::Report(report)).await;
            let e = protocol_error(hear(&mut client).await);
            assert_eq!((e.code.as_str(), e.fatal), ("bad_report", true), "{e:?}");
            assert!(e.message.contains(named), "{e:?}");
        }
        // In range is recorded as before.
        let mut client = connect(addr, &token).await;
        let fine = AgentReport {
            queue_pages: 2,
            queue_bytes: i64::MAX as u64,
            quarantined: 1,
        };
        say(&mut client, &AgentMessage::Report(fine)).await;
        say(
            &mut client,
            &AgentMessage::Seal(PacketSeal {
                packet_id: Uuid::new_v4(),
                cover_code: None,
                page_count: 0,
                empty: true,
                packet_seq: None,
                cover_problem: None,
            }),
        )
        .await;
        assert!(matches!(
            hear(&mut client).await,
            ServerMessage::Sealed { .. }
        ));
        let agents = state.store.agents().await.unwrap();
        assert_eq!(agents[0].queue_bytes, Some(i64::MAX as u64));
    }

    fn offer_of(bytes: &[u8]) -> PageOffer {
        PageOffer {
            capture_id: Uuid::new_v4(),
            packet_id: Uuid::new_v4(),
            page_index: 0,
            cover_code: None,
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
            content_type: "image/png".into(),
            source_name: "scan.png".into(),
            barcodes: Vec::new(),
            blank: false,
            packet_seq: None,
        }
    }

    /// A page whose `stored` was lost is offered again after the limits
    /// changed: it is in the store, so it is `stored`, not refused for good
    /// (a refusal would leave its packet unsealed forever).
    #[tokio::test]
    async fn a_stored_page_offered_again_is_stored_whatever_the_limits_now() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::open(ServerConfig::new(dir.path().to_owned()))
            .await
            .unwrap();
        let token = enroll(&state, "agent-1", "site-a").await;
        let bytes = png_like(7, 4096);
        let offer = offer_of(&bytes);
        let id = offer.capture_id;

        let mut client = connect(serve(state.clone()).await, &token).await;
        say(&mut client, &AgentMessage::Offer(offer.clone())).await;
        let resume = hear(&mut client).await;
        assert_eq!(
            resume,
            ServerMessage::Resume {
                capture_id: id,
                offset: 0
            }
        );
        let chunk = Chunk {
            capture_id: id,
            offset: 0,
            data: &bytes,
        }
        .encode();
        client.send(Message::Binary(chunk.into())).await.unwrap();
        assert_eq!(
            hear(&mut client).await,
            ServerMessage::Stored { capture_id: id }
        );
        drop(client);

        // The same data dir, now with pages limited below this one's size.
        let mut smaller = (*state.config).clone();
        smaller.max_page_bytes = 1024;
        let limited = AppState {
            config: Arc::new(smaller),
            ..state.clone()
        };
        let addr = serve(limited).await;
        let mut client = connect(addr, &token).await;
        say(&mut client, &AgentMessage::Offer(offer.clone())).await;
        assert_eq!(
            hear(&mut client).await,
            ServerMessage::Stored { capture_id: id }
        );

        // Another agent's offer of that capture id is still checked first.
        let other = enroll(&state, "agent-2", "site-a").await;
        let mut client = connect(addr, &other).await;
        say(&mut client, &AgentMessage::Offer(offer)).await;
        match hear(&mut client).await {
            ServerMessage::Error(e) => {
                assert_eq!((e.code.as_str(), e.permanent), ("bad_offer", true))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Bytes the server holds are claimed by hash alone only by a desk of
    /// the site that delivered them: any other desk sends them, proving it
    /// has them (a hash must not let a desk attach another site's scans).
    #[tokio::test]
    async fn bytes_are_claimed_by_hash_only_within_their_site() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::open(ServerConfig::new(dir.path().to_owned()))
            .await
            .unwrap();
        let addr = serve(state.clone()).await;
        let bytes = png_like(9, 2048);
        let upload = |token: String| {
            let bytes = bytes.clone();
            async move {
                let offer = offer_of(&bytes);
                let id = offer.capture_id;
                let mut client = connect(addr, &token).await;
                say(&mut client, &AgentMessage::Offer(offer)).await;
                match hear(&mut client).await {
                    ServerMessage::Stored { capture_id } if capture_id == id => false,
                    ServerMessage::Resume {
                        capture_id,
                        offset: 0,
                    } if capture_id == id => {
                        let chunk = Chunk {
                            capture_id: id,
                            offset: 0,
                            data: &bytes,
                        }
                        .encode();
                        client.send(Message::Binary(chunk.into())).await.unwrap();
                        let stored = ServerMessage::Stored { capture_id: id };
                        assert_eq!(hear(&mut client).await, stored);
                        true
                    }
                    other => panic!("unexpected answer {other:?}"),
                }
            }
        };
        let sent = upload(enroll(&state, "agent-a1", "site-a").await).await;
        assert!(sent, "the first desk sends the bytes");
        let sent = upload(enroll(&state, "agent-b1", "site-b").await).await;
        assert!(sent, "a desk of another site sends them too");
        let sent = upload(enroll(&state, "agent-a2", "site-a").await).await;
        assert!(!sent, "a desk of the same site need not send them again");
    }
}
