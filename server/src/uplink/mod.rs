//! The agent uplink: one WebSocket per agent, carrying pages in and
//! acknowledgements and packet outcomes out (protocol in `imc_shared::protocol`).
//!
//! Invariant: `Stored` is sent only after the page's bytes are fsynced into
//! the blob store and its row is committed. Partial uploads live as files under
//! `partials/` so a reconnecting agent resumes where the bytes stopped; with
//! replicas they are also checkpointed to `partials::SharedPartials`, so the
//! agent resumes on whichever replica it reaches next.

use crate::blobs::is_sha256_hex;
use crate::commit::{CommitFailure, CommitResult};
use crate::desk_bus::{DeskBus, DeskEvent, Envelope, takes_over};
use crate::domain::credentials::hash_secret;
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

mod answers;
pub mod desks;
mod session;
mod sink;
mod validate;
mod websocket;

use answers::*;
pub use desks::Desks;
use desks::*;
use session::*;
use sink::*;
use validate::*;

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
            rescan_of: None,
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
                rescan_of: None,
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
