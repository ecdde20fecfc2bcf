//! One simulated scan desk: its own enrolled identity, one uplink WebSocket
//! speaking protocol version 2 (docs/PROTOCOL.md) with the server's window,
//! packets of generated pages each sealed under the cover code of a
//! document it created first, as the real agent's uplink does.

use crate::api::Api;
use crate::cli::StopRule;
use crate::stats::{Latencies, Live};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use imc_agent::tls::Trust;
use imc_shared::api::CreateDocument;
use imc_shared::protocol::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

/// The document type of the run's documents, set to match mode at setup.
pub const DOC_TYPE: &str = "loadgen";

/// Longest wait for any word from the server before the session counts as dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What one agent needs to run, after enrolment.
pub struct Agent {
    pub index: usize,
    pub api: Api,
    pub trust: Trust,
    pub token: String,
    pub site: String,
    pub run_id: String,
    pub page_size: u64,
    pub pages_per_packet: u32,
    pub stop: StopRule,
    pub started: Instant,
    /// Documents the ERP clients poll; filled as packets are started.
    pub documents: Arc<RwLock<Vec<i64>>>,
    pub live: Arc<Live>,
}

/// A packet the agent sent, and what the server said of it.
#[derive(Debug)]
pub struct PacketSent {
    pub document_id: i64,
    pub doc_no: String,
    /// SHA-256 of every page the server acknowledged as stored.
    pub stored: Vec<String>,
    pub pages: u32,
    pub matched: Option<bool>,
}

#[derive(Debug, Default)]
pub struct AgentResult {
    pub packets: Vec<PacketSent>,
    pub pages_offered: u64,
    pub page_latency: Latencies,
}

struct InFlight {
    bytes: Arc<Vec<u8>>,
    sha256: String,
    packet: usize,
    offered_at: Instant,
}

struct Packet {
    id: Uuid,
    cover_code: String,
    sent: PacketSent,
    offered: u32,
    sealed: bool,
    seal_sent: bool,
}

/// Distinct, incompressible-looking bytes behind a JPEG signature: nothing dedupes across agents,
/// pages or runs. Eight bytes per step keeps generation far below the cost
/// of sending, so the load generator measures the server, not itself.
pub fn page_bytes(seed: u64, size: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(size as usize + 8);
    while (bytes.len() as u64) < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(size as usize);
    // Offered as JPEG: the server checks a page's first bytes against its type.
    for (at, magic) in bytes.iter_mut().zip(JPEG_MAGIC) {
        *at = magic;
    }
    bytes
}

/// A JPEG's start-of-image marker and the first byte of the next marker.
const JPEG_MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];

impl Agent {
    pub async fn run(self) -> anyhow::Result<AgentResult> {
        let mut ws = self.connect().await?;
        let hello = AgentMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: format!("imc-loadgen {}", env!("CARGO_PKG_VERSION")),
        });
        ws.send(Message::Text(serde_json::to_string(&hello)?.into()))
            .await
            .context("sending hello")?;
        let welcome = loop {
            let frame = tokio::time::timeout(SILENCE_LIMIT, ws.next())
                .await
                .context("no welcome from the server")?
                .context("server closed the connection before its welcome")??;
            match parse(frame)? {
                Some(ServerMessage::Welcome(w)) => break w,
                Some(other) => bail!("expected a welcome, got {other:?}"),
                None => continue,
            }
        };
        let (sink, mut stream) = ws.split();
        let (tx, frames) = mpsc::channel::<anyhow::Result<ServerMessage>>(256);
        // Reading on its own task, so answers keep flowing while pages are sent.
        let reader = tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let parsed = frame.map_err(anyhow::Error::from).and_then(parse);
                let stop = parsed.is_err();
                if let Some(msg) = parsed.transpose()
                    && tx.send(msg).await.is_err()
                {
                    return;
                }
                if stop {
                    return;
                }
            }
        });
        let mut session = Session::new(&self, &welcome, sink, frames);
        let result = session.pump().await;
        if result.is_ok() {
            // A closing handshake, so the server logs an orderly end, not a reset.
            let _ = session.sink.close().await;
        }
        reader.abort();
        let mut session_result = AgentResult {
            packets: session.packets.into_iter().map(|p| p.sent).collect(),
            pages_offered: session.pages_offered,
            page_latency: session.latency,
        };
        if let Err(e) = result {
            self.live
                .protocol_error(format!("agent {}: {e:#}", self.index));
            // What was stored stays counted: verification checks it all the same.
            session_result.packets.retain(|p| !p.stored.is_empty());
        }
        Ok(session_result)
    }

    async fn connect(&self) -> anyhow::Result<Socket> {
        let url = imc_agent::uplink::uplink_url(&self.api.base)?;
        let connector = if url.starts_with("wss://") {
            tokio_tungstenite::Connector::Rustls(self.trust.client_config()?)
        } else {
            tokio_tungstenite::Connector::Plain
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .context("building the uplink request")?;
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", self.token)
                .parse()
                .context("agent token is not a valid header value")?,
        );
        let (socket, _) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)),
        )
        .await
        .with_context(|| format!("connecting to {url}: timed out"))?
        .with_context(|| format!("connecting to {url}"))?;
        Ok(socket)
    }

    /// Whether another packet may start, given the pages sent so far.
    fn may_start_packet(&self, pages_started: u64) -> bool {
        let under_count = self.stop.pages_per_agent.is_none_or(|k| pages_started < k);
        let in_time = self
            .stop
            .duration
            .is_none_or(|d| self.started.elapsed() < d);
        under_count && in_time
    }

    fn packet_size(&self, pages_started: u64) -> u32 {
        let left = self
            .stop
            .pages_per_agent
            .map_or(u64::MAX, |k| k - pages_started);
        left.min(u64::from(self.pages_per_packet)) as u32
    }

    async fn create_document(&self, packet: usize) -> anyhow::Result<(i64, String, String)> {
        let doc_no = format!("LG-{}-{}-{}", self.run_id, self.index, packet);
        let created = self
            .api
            .create_document(&CreateDocument {
                source_system: "imc-loadgen".into(),
                doc_no: doc_no.clone(),
                doc_type: DOC_TYPE.into(),
                org: self.site.clone(),
                cover_code: None,
                title: Some("load generator packet".into()),
                amount: None,
                submitter: None,
                attachment_count: None,
                metadata: None,
            })
            .await?;
        if let Ok(mut docs) = self.documents.write() {
            docs.push(created.id);
        }
        Ok((created.id, doc_no, created.cover_code))
    }
}

type Sink = futures_util::stream::SplitSink<Socket, Message>;

struct Session<'a> {
    agent: &'a Agent,
    sink: Sink,
    frames: mpsc::Receiver<anyhow::Result<ServerMessage>>,
    window_pages: usize,
    window_bytes: u64,
    chunk: usize,
    in_flight: HashMap<Uuid, InFlight>,
    in_flight_bytes: u64,
    packets: Vec<Packet>,
    pages_offered: u64,
    /// No further packet starts: the stop rule said so.
    exhausted: bool,
    latency: Latencies,
}

impl<'a> Session<'a> {
    fn new(
        agent: &'a Agent,
        welcome: &Welcome,
        sink: Sink,
        frames: mpsc::Receiver<anyhow::Result<ServerMessage>>,
    ) -> Session<'a> {
        // A version 1 server sends no window: one page at a time.
        let window_pages = welcome.window_pages.max(1) as usize;
        let window_bytes = if welcome.window_pages == 0 {
            u64::MAX
        } else {
            welcome.window_bytes.max(1)
        };
        Session {
            agent,
            sink,
            frames,
            window_pages,
            window_bytes,
            chunk: (welcome.max_chunk_bytes as usize).clamp(4 * 1024, MAX_CHUNK_BYTES),
            in_flight: HashMap::new(),
            in_flight_bytes: 0,
            packets: Vec::new(),
            pages_offered: 0,
            exhausted: false,
            latency: Latencies::default(),
        }
    }

    async fn pump(&mut self) -> anyhow::Result<()> {
        loop {
            self.offer_what_fits().await?;
            self.seal_what_is_complete().await?;
            let unfinished = self.packets.iter().any(|p| p.sent.matched.is_none());
            if self.exhausted && self.in_flight.is_empty() && !unfinished {
                return Ok(());
            }
            let msg = tokio::time::timeout(SILENCE_LIMIT, self.frames.recv())
                .await
                .with_context(|| format!("no word from the server for {SILENCE_LIMIT:?}"))?
                .context("server closed the connection")??;
            self.on_message(msg).await?;
        }
    }

    fn fits(&self) -> bool {
        self.in_flight.is_empty()
            || (self.in_flight.len() < self.window_pages
                && self.in_flight_bytes + self.agent.page_size <= self.window_bytes)
    }

    /// The packet pages are offered into: the last one while it has pages to
    /// offer, else a fresh one (with its document) if the stop rule allows.
    async fn current_packet(&mut self) -> anyhow::Result<Option<usize>> {
        if let Some(last) = self.packets.len().checked_sub(1)
            && self.packets[last].offered < self.packets[last].sent.pages
        {
            return Ok(Some(last));
        }
        if self.exhausted || !self.agent.may_start_packet(self.pages_offered) {
            self.exhausted = true;
            return Ok(None);
        }
        let pages = self.agent.packet_size(self.pages_offered);
        let (document_id, doc_no, cover_code) =
            self.agent.create_document(self.packets.len()).await?;
        self.packets.push(Packet {
            id: Uuid::now_v7(),
            cover_code,
            sent: PacketSent {
                document_id,
                doc_no,
                stored: Vec::new(),
                pages,
                matched: None,
            },
            offered: 0,
            sealed: false,
            seal_sent: false,
        });
        Ok(Some(self.packets.len() - 1))
    }

    async fn offer_what_fits(&mut self) -> anyhow::Result<()> {
        while self.fits() {
            let Some(index) = self.current_packet().await? else {
                return Ok(());
            };
            let seed = seed(&self.agent.run_id, self.agent.index, self.pages_offered);
            let bytes = page_bytes(seed, self.agent.page_size);
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let capture_id = Uuid::now_v7();
            let packet = &mut self.packets[index];
            let offer = AgentMessage::Offer(PageOffer {
                capture_id,
                packet_id: packet.id,
                page_index: packet.offered,
                cover_code: Some(packet.cover_code.clone()),
                sha256: sha256.clone(),
                size: bytes.len() as u64,
                content_type: "image/jpeg".into(),
                source_name: format!("loadgen-{}-{}.jpg", self.agent.index, self.pages_offered),
                barcodes: Vec::new(),
                blank: false,
                packet_seq: None,
            });
            packet.offered += 1;
            self.pages_offered += 1;
            self.in_flight_bytes += bytes.len() as u64;
            self.in_flight.insert(
                capture_id,
                InFlight {
                    bytes: Arc::new(bytes),
                    sha256,
                    packet: index,
                    offered_at: Instant::now(),
                },
            );
            self.send(&offer).await?;
        }
        Ok(())
    }

    /// Seals every packet whose pages were all answered, as the agent does
    /// only after each of them was `stored`.
    async fn seal_what_is_complete(&mut self) -> anyhow::Result<()> {
        for index in 0..self.packets.len() {
            let packet = &self.packets[index];
            let answered = packet.offered == packet.sent.pages
                && !self.in_flight.values().any(|p| p.packet == index);
            if packet.seal_sent || !answered {
                continue;
            }
            let seal = AgentMessage::Seal(PacketSeal {
                packet_id: packet.id,
                cover_code: Some(packet.cover_code.clone()),
                page_count: packet.sent.stored.len() as u32,
                empty: packet.sent.stored.is_empty(),
                packet_seq: None,
                cover_problem: None,
                rescan_of: None,
            });
            self.packets[index].seal_sent = true;
            self.send(&seal).await?;
        }
        Ok(())
    }

    async fn on_message(&mut self, msg: ServerMessage) -> anyhow::Result<()> {
        match msg {
            ServerMessage::Resume { capture_id, offset } => {
                let Some(page) = self.in_flight.get(&capture_id) else {
                    bail!("resume for page {capture_id} that was not offered");
                };
                let bytes = Arc::clone(&page.bytes);
                self.stream(capture_id, &bytes, offset).await?;
            }
            ServerMessage::Stored { capture_id } => {
                let Some(page) = self.in_flight.remove(&capture_id) else {
                    bail!("stored for page {capture_id} that is not in flight");
                };
                self.in_flight_bytes -= page.bytes.len() as u64;
                self.latency.record(page.offered_at.elapsed());
                Live::add(&self.agent.live.pages_stored, 1);
                Live::add(&self.agent.live.bytes_stored, page.bytes.len() as u64);
                self.packets[page.packet].sent.stored.push(page.sha256);
            }
            ServerMessage::Sealed { packet_id } => {
                let packet = self.packet(packet_id)?;
                packet.sealed = true;
            }
            ServerMessage::PacketOutcome(outcome) => {
                let packet = self.packet(outcome.packet_id)?;
                packet.sent.matched = Some(outcome.matched);
                if !outcome.matched {
                    let message = format!(
                        "packet of document {} not matched: {}",
                        packet.sent.doc_no, outcome.message
                    );
                    self.agent.live.protocol_error(message);
                }
            }
            ServerMessage::Notice(_) | ServerMessage::CoverKeys { .. } => {}
            ServerMessage::Welcome(_) => bail!("a second welcome"),
            ServerMessage::Error(e) => {
                let message = format!(
                    "agent {}: server error {}: {}",
                    self.agent.index, e.code, e.message
                );
                if e.fatal {
                    bail!("{message}");
                }
                self.agent.live.protocol_error(message);
                // The named page failed and is not stored; its packet is sealed without it.
                if let Some(page) = e.capture_id.and_then(|id| self.in_flight.remove(&id)) {
                    self.in_flight_bytes -= page.bytes.len() as u64;
                } else if e.capture_id.is_none() {
                    bail!("server error without a page: {}", e.message);
                }
            }
        }
        Ok(())
    }

    fn packet(&mut self, id: Uuid) -> anyhow::Result<&mut Packet> {
        self.packets
            .iter_mut()
            .find(|p| p.id == id)
            .with_context(|| format!("answer for packet {id} this agent did not send"))
    }

    async fn stream(&mut self, capture_id: Uuid, bytes: &[u8], offset: u64) -> anyhow::Result<()> {
        let mut at = usize::try_from(offset).context("resume offset")?;
        if at > bytes.len() {
            bail!("resume at {offset} beyond the page's {} bytes", bytes.len());
        }
        while at < bytes.len() {
            let end = (at + self.chunk).min(bytes.len());
            let frame = Chunk {
                capture_id,
                offset: at as u64,
                data: &bytes[at..end],
            }
            .encode();
            self.sink
                .send(Message::Binary(frame.into()))
                .await
                .context("sending page bytes")?;
            at = end;
        }
        Ok(())
    }

    async fn send(&mut self, msg: &AgentMessage) -> anyhow::Result<()> {
        let json = serde_json::to_string(msg)?;
        self.sink
            .send(Message::Text(json.into()))
            .await
            .context("sending to the server")
    }
}

/// A page's seed from the run, the agent and the page number.
fn seed(run_id: &str, agent: usize, page: u64) -> u64 {
    let digest = Sha256::digest(format!("{run_id}/{agent}/{page}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
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
