//! One connection to the server: the hello, offers and chunks out, answers
//! in, heartbeats, and the frames on the wire.

use super::*;

/// One connected session: the sending half of the socket, the frames the
/// reader task took from the other half, and what is in flight.
pub(super) struct Link<'a> {
    pub(super) uplink: &'a Uplink,
    pub(super) sink: Sink,
    pub(super) frames: mpsc::Receiver<Frame>,
    pub(super) window: Window,
    pub(super) chunk: usize,
    /// The packet whose seal awaits `sealed` (one at a time).
    pub(super) sealing: Option<Uuid>,
    pub(super) drain: Drain,
    pub(super) heard: Heard,
}

/// When the server was last heard from (any frame, pongs included).
#[derive(Clone)]
pub(super) struct Heard(Arc<std::sync::Mutex<Instant>>);

impl Default for Heard {
    fn default() -> Heard {
        Heard(Arc::new(std::sync::Mutex::new(Instant::now())))
    }
}

impl Heard {
    pub(super) fn now(&self) {
        if let Ok(mut at) = self.0.lock() {
            *at = Instant::now();
        }
    }

    pub(super) fn silence(&self) -> Duration {
        self.0.lock().map_or(Duration::ZERO, |at| at.elapsed())
    }
}

impl Link<'_> {
    pub(super) async fn pump(
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
    pub(super) async fn heartbeat(&mut self) -> anyhow::Result<()> {
        let limit = self.uplink.config.link_timeout();
        if self.heard.silence() > limit {
            bail!("no word from the server for {limit:?}: the connection is half-open or dead");
        }
        let report = self.uplink.report().await?;
        self.send(&AgentMessage::Report(report)).await?;
        self.send_frame(Message::Ping(Vec::new().into())).await
    }

    pub(super) async fn send(&mut self, msg: &AgentMessage) -> anyhow::Result<()> {
        let json = serde_json::to_string(msg)?;
        self.send_frame(Message::Text(json.into())).await
    }

    pub(super) async fn send_frame(&mut self, frame: Message) -> anyhow::Result<()> {
        let limit = self.uplink.config.link_timeout();
        tokio::time::timeout(limit, self.sink.send(frame))
            .await
            .with_context(|| format!("the server took no data for {limit:?}"))?
            .context("sending to the server")
    }

    /// Offers queued pages, in scan order, while the window has room.
    pub(super) async fn offer_what_fits(&mut self) -> anyhow::Result<()> {
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
    pub(super) async fn seal_next(&mut self) -> anyhow::Result<()> {
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
            rescan_of: seal.rescan_of,
        }))
        .await
    }

    /// Acts on what the server said; true when something was delivered.
    pub(super) async fn on_frames(&mut self, frames: Vec<Frame>) -> anyhow::Result<bool> {
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
    pub(super) async fn on_message(&mut self, msg: ServerMessage) -> anyhow::Result<bool> {
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

    pub(super) fn not_taken(&self, id: Uuid, e: &ProtocolError) -> anyhow::Error {
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
    pub(super) async fn check_spool_copy(
        &mut self,
        id: Uuid,
        e: &ProtocolError,
    ) -> anyhow::Result<()> {
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
    pub(super) async fn seal_refused(
        &mut self,
        packet: Uuid,
        e: ProtocolError,
    ) -> anyhow::Result<bool> {
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
    pub(super) async fn delivered(&mut self, pages: Vec<QueuedPage>) -> anyhow::Result<()> {
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
    pub(super) async fn set_aside(&mut self, id: Uuid, reason: String) -> anyhow::Result<()> {
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
    pub(super) async fn stream(&mut self, page: &QueuedPage, offset: u64) -> anyhow::Result<()> {
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
pub(super) const READ_SPAN: u64 = 1024 * 1024;

pub(super) fn read_span(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut bytes = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

pub(super) fn sha256_of_file(path: &std::path::Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

pub(super) async fn send(ws: &mut Socket, msg: &AgentMessage) -> anyhow::Result<()> {
    let json = serde_json::to_string(msg)?;
    ws.send(Message::Text(json.into()))
        .await
        .context("sending to the server")
}

pub(super) fn parse(frame: Message) -> anyhow::Result<Option<ServerMessage>> {
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
