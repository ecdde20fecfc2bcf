//! Who may hold an uplink, and what a misbehaving one gets: one session per
//! agent, revocation that closes the link at once, and protocol errors for
//! bad frames with nothing stored.

use crate::harness::{TestAgent, TestServer, eventually, sha256_hex};
use crate::raw_uplink::{RawAgent, enroll, error_code, offer, upgrade_status};
use imc_shared::protocol::*;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// Random bytes behind a JPEG signature (the raw offers say image/jpeg, and
/// the server checks a page's first bytes against its type).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    for (at, magic) in bytes.iter_mut().zip([0xFF, 0xD8, 0xFF]) {
        *at = magic;
    }
    bytes
}

async fn packet_count(server: &TestServer) -> usize {
    let (status, list) = server.get("/packets?limit=1000").await;
    assert_eq!(status, 200, "{list}");
    list["packets"].as_array().map_or(0, Vec::len)
}

async fn agent_view(server: &TestServer, id: &str) -> serde_json::Value {
    let (status, list) = server.get("/agents").await;
    assert_eq!(status, 200, "{list}");
    list["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["id"] == id).cloned())
        .unwrap_or_else(|| panic!("agent {id} listed: {list}"))
}

#[tokio::test]
async fn bad_frames_get_protocol_errors_and_nothing_is_stored() {
    let server = TestServer::start();
    let (_, token) = enroll(&server, "raw-bad").await;

    assert_eq!(upgrade_status(&server, "agt_not_a_token").await, 401);

    // The oldest version still served is welcomed; one the server does not speak is refused.
    let mut old = RawAgent::connect_with_version(&server, &token, MIN_PROTOCOL_VERSION).await;
    assert!(matches!(
        old.recv().await,
        Some(ServerMessage::Welcome(Welcome { protocol_version, .. })) if protocol_version == MIN_PROTOCOL_VERSION
    ));
    drop(old);
    let mut agent = RawAgent::connect_with_version(&server, &token, PROTOCOL_VERSION + 7).await;
    let said = agent.until_closed().await;
    assert_eq!(
        said.first().and_then(error_code),
        Some(("unsupported_protocol", true, false)),
        "{said:?}"
    );

    let mut agent = RawAgent::connect(&server, &token).await;
    agent
        .send_raw(Message::Text("{\"type\": \"offer\", ".into()))
        .await;
    let said = agent.until_closed().await;
    assert_eq!(
        said.first().and_then(error_code),
        Some(("malformed", true, false))
    );

    let bytes = noise(300_000, 1);
    let page = Uuid::new_v4();
    let packet = Uuid::new_v4();
    let mut agent = RawAgent::connect(&server, &token).await;
    // Larger than any page may be: refused for good, the connection goes on.
    let mut huge = offer(Uuid::new_v4(), packet, &bytes);
    huge.size = MAX_PAGE_BYTES + 1;
    agent.send(&AgentMessage::Offer(huge)).await;
    let reply = agent.recv().await.unwrap();
    assert_eq!(error_code(&reply), Some(("bad_offer", false, true)));
    // Bytes for a page nobody offered.
    agent.chunk(page, 0, &bytes[..1000]).await;
    let reply = agent.recv().await.unwrap();
    assert_eq!(error_code(&reply), Some(("unknown_upload", false, false)));
    // Out of order: a gap after the resume offset.
    agent
        .send(&AgentMessage::Offer(offer(page, packet, &bytes)))
        .await;
    assert_eq!(
        agent.recv().await,
        Some(ServerMessage::Resume {
            capture_id: page,
            offset: 0
        })
    );
    agent.chunk(page, 5000, &bytes[5000..6000]).await;
    let reply = agent.recv().await.unwrap();
    assert_eq!(error_code(&reply), Some(("out_of_order", false, false)));
    // Whole page whose bytes do not hash to what the offer said.
    let mut lying = offer(page, packet, &bytes);
    lying.sha256 = sha256_hex(b"something else");
    agent.send(&AgentMessage::Offer(lying)).await;
    assert!(matches!(
        agent.recv().await,
        Some(ServerMessage::Resume { offset: 0, .. })
    ));
    for (i, piece) in bytes.chunks(100_000).enumerate() {
        agent.chunk(page, (i * 100_000) as u64, piece).await;
    }
    let reply = agent.recv().await.unwrap();
    assert_eq!(
        error_code(&reply),
        Some(("checksum_mismatch", false, false))
    );
    // A chunk damaged in transit (its CRC no longer matches) ends the connection,
    // and none of its bytes are kept (the server writes them as they come).
    agent
        .send(&AgentMessage::Offer(offer(page, packet, &bytes)))
        .await;
    assert!(matches!(
        agent.recv().await,
        Some(ServerMessage::Resume { offset: 0, .. })
    ));
    agent.chunk(page, 0, &bytes[..1000]).await;
    let mut frame = Chunk {
        capture_id: page,
        offset: 1000,
        data: &bytes[1000..2000],
    }
    .encode();
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    agent.send_raw(Message::Binary(frame.into())).await;
    let said = agent.until_closed().await;
    assert_eq!(
        said.first().and_then(error_code),
        Some(("bad_chunk", true, false))
    );
    // A frame beyond the size limit ends the connection with a protocol error.
    let mut agent = RawAgent::connect(&server, &token).await;
    agent
        .send(&AgentMessage::Offer(offer(page, packet, &bytes)))
        .await;
    assert_eq!(
        agent.recv().await,
        Some(ServerMessage::Resume {
            capture_id: page,
            offset: 1000
        }),
        "the intact chunk is kept, the damaged one is not"
    );
    // Nor is a chunk the connection lost midway (its first half was written as it came).
    agent.cut_mid_chunk(page, 1000, &bytes[1000..2000]).await;
    let mut agent = RawAgent::connect(&server, &token).await;
    agent
        .send(&AgentMessage::Offer(offer(page, packet, &bytes)))
        .await;
    assert_eq!(
        agent.recv().await,
        Some(ServerMessage::Resume {
            capture_id: page,
            offset: 1000
        }),
        "a chunk cut off midway is not kept"
    );
    let oversized = vec![0u8; MAX_CHUNK_BYTES + 4096];
    agent.chunk(page, 0, &oversized).await;
    let said = agent.until_closed().await;
    assert!(
        !said
            .iter()
            .any(|m| matches!(m, ServerMessage::Stored { .. })),
        "{said:?}"
    );
    assert_eq!(
        said.first().and_then(error_code),
        Some(("bad_frame", true, false)),
        "{said:?}"
    );

    assert_eq!(packet_count(&server).await, 0, "nothing was stored");
}

#[tokio::test]
async fn a_second_connection_replaces_the_first_and_resumes_its_partial_upload() {
    let server = TestServer::start();
    let (_, token) = enroll(&server, "raw-twice").await;
    let bytes = noise(600_000, 2);
    let (page, packet) = (Uuid::new_v4(), Uuid::new_v4());

    let mut first = RawAgent::connect(&server, &token).await;
    first
        .send(&AgentMessage::Offer(offer(page, packet, &bytes)))
        .await;
    assert!(matches!(
        first.recv().await,
        Some(ServerMessage::Resume { offset: 0, .. })
    ));
    for (i, piece) in bytes[..300_000].chunks(100_000).enumerate() {
        first.chunk(page, (i * 100_000) as u64, piece).await;
    }
    // The server answers frames in order: once this is answered, the bytes above are written.
    first
        .send(&AgentMessage::Offer(offer(Uuid::new_v4(), packet, b"")))
        .await;
    let reply = first.recv().await.unwrap();
    assert_eq!(error_code(&reply), Some(("bad_offer", false, true)));

    let mut second = RawAgent::connect(&server, &token).await;
    let said = first.until_closed().await;
    assert_eq!(
        said.last().and_then(error_code),
        Some(("replaced", true, false)),
        "{said:?}"
    );
    // The old connection is gone: its late bytes reach nothing.
    first.chunk(page, 300_000, &bytes[300_000..310_000]).await;

    second
        .send(&AgentMessage::Offer(offer(page, packet, &bytes)))
        .await;
    assert_eq!(
        second.recv().await,
        Some(ServerMessage::Resume {
            capture_id: page,
            offset: 300_000
        }),
        "the partial upload survived the takeover whole"
    );
    for (i, piece) in bytes[300_000..].chunks(100_000).enumerate() {
        second
            .chunk(page, 300_000 + (i * 100_000) as u64, piece)
            .await;
    }
    assert_eq!(
        second.recv().await,
        Some(ServerMessage::Stored { capture_id: page })
    );
    let (status, stored) = server
        .get_bytes(&format!("/packets/{packet}/pages/0"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(sha256_hex(&stored), sha256_hex(&bytes), "byte for byte");

    // Offering it again, or the same bytes as another page, is answered without bytes.
    second
        .send(&AgentMessage::Offer(offer(page, packet, &bytes)))
        .await;
    assert_eq!(
        second.recv().await,
        Some(ServerMessage::Stored { capture_id: page })
    );
    let twin = Uuid::new_v4();
    let mut same_bytes = offer(twin, packet, &bytes);
    same_bytes.page_index = 1;
    second.send(&AgentMessage::Offer(same_bytes)).await;
    assert_eq!(
        second.recv().await,
        Some(ServerMessage::Stored { capture_id: twin })
    );
    let (_, list) = server.get("/packets").await;
    assert_eq!(
        list["packets"][0]["pages"].as_array().map(Vec::len),
        Some(2),
        "each page once: {list}"
    );
}

/// A descriptor per offered page, in every desk's window, ran a 1,024
/// descriptor limit out at about 30 streaming desks.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_session_holds_one_partial_file_open_however_many_pages_it_offered() {
    const PAGE: usize = 100_000;
    let server = TestServer::start();
    let (_, token) = enroll(&server, "raw-window").await;
    let mut agent = RawAgent::connect(&server, &token).await;
    let packet = Uuid::new_v4();
    let pages: Vec<(Uuid, Vec<u8>)> = (0..WINDOW_PAGES as u64)
        .map(|i| (Uuid::new_v4(), noise(PAGE, 100 + i)))
        .collect();
    for (index, (id, bytes)) in pages.iter().enumerate() {
        let mut page = offer(*id, packet, bytes);
        page.page_index = index as u32;
        agent.send(&AgentMessage::Offer(page)).await;
        assert_eq!(
            agent.recv().await,
            Some(ServerMessage::Resume {
                capture_id: *id,
                offset: 0
            })
        );
    }
    assert_eq!(
        server.open_files_ending(".part"),
        0,
        "none before bytes come"
    );

    // Half of the first two pages, interleaved, as no agent of ours sends them.
    let half = PAGE / 2;
    agent.chunk(pages[0].0, 0, &pages[0].1[..half]).await;
    agent.chunk(pages[1].0, 0, &pages[1].1[..half]).await;
    // The server answers frames in order: once this is answered, the bytes above are written.
    agent
        .send(&AgentMessage::Offer(offer(Uuid::new_v4(), packet, b"")))
        .await;
    let reply = agent.recv().await.unwrap();
    assert_eq!(error_code(&reply), Some(("bad_offer", false, true)));
    assert_eq!(server.open_files_ending(".part"), 1);

    // The rest of every page; the first one's file is reopened where it stopped.
    for (index, (id, bytes)) in pages.iter().enumerate() {
        let from = if index < 2 { half } else { 0 };
        for (i, piece) in bytes[from..].chunks(64 * 1024).enumerate() {
            agent.chunk(*id, (from + i * 64 * 1024) as u64, piece).await;
        }
    }
    let mut stored = std::collections::HashSet::new();
    while stored.len() < pages.len() {
        match agent.recv().await {
            Some(ServerMessage::Stored { capture_id }) => stored.insert(capture_id),
            other => panic!("expected only stored pages, got {other:?}"),
        };
    }
    assert_eq!(server.open_files_ending(".part"), 0);
    for (index, (_, bytes)) in pages.iter().enumerate() {
        let (status, got) = server
            .get_bytes(&format!("/packets/{packet}/pages/{index}"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            sha256_hex(&got),
            sha256_hex(bytes),
            "page {index} byte for byte"
        );
    }
}

#[tokio::test]
async fn revoking_an_agent_closes_its_uplink_at_once_and_refuses_it_after() {
    let server = TestServer::start();
    let mut agent = TestAgent::enroll(&server).await;
    let id = agent.config_value("agent_id");
    let token = agent.config_value("token");
    agent.start();
    eventually("the agent to connect", WAIT, || async {
        (agent_view(&server, &id).await["connected"] == true).then_some(())
    })
    .await;

    let revoked_at = Instant::now();
    let (status, view) = server
        .post(&format!("/agents/{id}/revoke"), serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{view}");
    assert!(view["revoked_at"].is_string(), "{view}");
    // The agent pings every 10 s and the server waits 90 s for silence, so a
    // link that closes within the second (issue 8) was closed by the revocation.
    eventually(
        "the revoked agent's uplink to close",
        Duration::from_secs(1),
        || async { (agent_view(&server, &id).await["connected"] == false).then_some(()) },
    )
    .await;
    eprintln!(
        "uplink closed {:?} after the revocation",
        revoked_at.elapsed()
    );

    assert_eq!(upgrade_status(&server, &token).await, 401, "token refused");
    eventually("the desk to show the refusal", WAIT, || async {
        let status = agent.status();
        status
            .lines()
            .any(|l| l.starts_with("link: refused") && l.contains("revoked"))
            .then_some(())
    })
    .await;
    // Pages scanned after the revocation wait on the desk; none reach the server.
    agent.drop_file(
        "after.jpg",
        &crate::scan::jpeg(&crate::scan::text_page(9), 80),
    );
    eventually("the page to be queued", WAIT, || async {
        agent.status().contains("queue: 1 pages").then_some(())
    })
    .await;
    assert_eq!(packet_count(&server).await, 0);
    let view = agent_view(&server, &id).await;
    assert_eq!(view["connected"], false);
    assert!(view["revoked_at"].is_string());
    let (status, again) = server
        .post(&format!("/agents/{id}/revoke"), serde_json::json!({}))
        .await;
    assert_eq!((status, &again["revoked_at"]), (200, &view["revoked_at"]));
    let (status, body) = server
        .post("/agents/no-such-agent/revoke", serde_json::json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
}
