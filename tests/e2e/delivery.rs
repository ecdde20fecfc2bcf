//! Delivery under faults: every page reaches the server exactly once, byte
//! for byte, whatever happens to the agent, the server or the network.

use crate::harness::{TestAgent, TestServer, eventually, free_addr, sha256_hex};
use crate::proxy::{Fault, Proxy};
use crate::scan;
use image::{GrayImage, Luma};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const DRAIN: Duration = Duration::from_secs(180);

/// Small distinct pages; every `big_every`-th one is large enough to span many chunks.
fn pages(count: usize, big_every: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(count as u64);
    (0..count)
        .map(|i| {
            let big = big_every > 0 && i % big_every == big_every - 1;
            let (w, h) = if big { (900, 700) } else { (320, 240) };
            let mut page = GrayImage::from_pixel(w, h, Luma([240]));
            for _ in 0..40 {
                let (x, y) = (rng.random_range(0..w - 40), rng.random_range(0..h - 12));
                for yy in y..y + 10 {
                    for xx in x..x + 38 {
                        page.put_pixel(xx, yy, Luma([rng.random_range(0..90)]));
                    }
                }
            }
            if big {
                // Noise does not compress: a page of about 600 KB.
                for p in page.pixels_mut() {
                    p.0[0] = rng.random();
                }
                (format!("page_{i:04}.png"), scan::png(&page))
            } else {
                (format!("page_{i:04}.jpg"), scan::jpeg(&page, 85))
            }
        })
        .collect()
}

/// Drops pages into the inbox from another thread, a few milliseconds apart.
fn drop_in_background(
    inbox: PathBuf,
    pages: Vec<(String, Vec<u8>)>,
    gap: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for (name, bytes) in pages {
            let tmp = inbox.join(format!("{name}.tmp"));
            std::fs::write(&tmp, &bytes).expect("write page");
            std::fs::rename(&tmp, inbox.join(&name)).expect("rename page");
            std::thread::sleep(gap);
        }
    })
}

/// Every page the server holds, in arrival order of packets and scan order within them.
async fn server_pages(server: &TestServer) -> Vec<String> {
    let (status, list) = server.get("/packets?limit=1000").await;
    assert_eq!(status, 200, "{list}");
    let mut packets = list["packets"].as_array().cloned().unwrap_or_default();
    packets.sort_by_key(|p| {
        (
            p["created_at"].as_str().unwrap_or("").to_owned(),
            p["id"].as_str().unwrap_or("").to_owned(),
        )
    });
    packets
        .iter()
        .flat_map(|p| p["pages"].as_array().cloned().unwrap_or_default())
        .map(|page| page["sha256"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn wait_for_all(server: &TestServer, expected: &[(String, Vec<u8>)]) -> Vec<String> {
    eventually(
        &format!("{} pages on the server", expected.len()),
        DRAIN,
        || async {
            let stored = server_pages(server).await;
            (stored.len() >= expected.len()).then_some(stored)
        },
    )
    .await
}

fn assert_exactly_once(stored: &[String], expected: &[(String, Vec<u8>)]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for sha in stored {
        *counts.entry(sha.as_str()).or_default() += 1;
    }
    for (name, bytes) in expected {
        let sha = sha256_hex(bytes);
        assert_eq!(
            counts.get(sha.as_str()).copied(),
            Some(1),
            "{name} must be stored exactly once"
        );
    }
    assert_eq!(
        stored.len(),
        expected.len(),
        "no page stored that was not dropped"
    );
}

/// Byte for byte, not only by the digest the agent announced: every page the
/// server serves hashes to what was dropped.
async fn assert_served_bytes_match(server: &TestServer, expected: &[(String, Vec<u8>)]) {
    let dropped: std::collections::HashSet<String> =
        expected.iter().map(|(_, b)| sha256_hex(b)).collect();
    let (_, list) = server.get("/packets?limit=1000").await;
    let mut served = 0;
    for packet in list["packets"].as_array().unwrap() {
        let id = packet["id"].as_str().unwrap();
        for i in 0..packet["pages"].as_array().unwrap().len() {
            let (status, bytes) = server.get_bytes(&format!("/packets/{id}/pages/{i}")).await;
            assert_eq!(status, 200);
            assert!(
                dropped.contains(&sha256_hex(&bytes)),
                "page {i} of packet {id} is not a dropped file"
            );
            served += 1;
        }
    }
    assert_eq!(served, expected.len());
}

async fn packet_summary(server: &TestServer) -> String {
    let (_, list) = server.get("/packets?limit=1000").await;
    list["packets"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    format!(
                        "{} {} pages={}",
                        p["created_at"],
                        p["id"],
                        p["pages"].as_array().map_or(0, Vec::len)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

fn queued_pages(agent: &TestAgent) -> usize {
    let status = agent.status();
    status
        .lines()
        .find_map(|l| l.strip_prefix("queue: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn killing_the_agent_at_random_moments_loses_and_duplicates_nothing() {
    let server = TestServer::start();
    let mut agent = TestAgent::enroll(&server).await;
    let expected = pages(200, 25);
    agent.start();
    let dropper = drop_in_background(
        agent.inbox.clone(),
        expected.clone(),
        Duration::from_millis(10),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for _ in 0..6 {
        // Fault injection at random moments, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
        agent.kill();
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        agent.start();
    }
    dropper.join().expect("dropper");
    let stored = wait_for_all(&server, &expected).await;
    assert_exactly_once(&stored, &expected);
    assert_served_bytes_match(&server, &expected).await;
}

#[tokio::test]
async fn killing_the_server_mid_stream_loses_and_duplicates_nothing() {
    let mut server = TestServer::start_at(&free_addr());
    let mut agent = TestAgent::enroll(&server).await;
    let expected = pages(200, 20);
    agent.start();
    let dropper = drop_in_background(
        agent.inbox.clone(),
        expected.clone(),
        Duration::from_millis(10),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        server.restart();
    }
    dropper.join().expect("dropper");
    let stored = wait_for_all(&server, &expected).await;
    assert_exactly_once(&stored, &expected);
    assert_served_bytes_match(&server, &expected).await;
}

#[tokio::test]
async fn a_network_that_cuts_stalls_and_trickles_loses_and_duplicates_nothing() {
    let server = TestServer::start();
    let mut agent = TestAgent::enroll(&server).await;
    let upstream = server.base.trim_start_matches("http://").parse().unwrap();
    let mut plan: Vec<Fault> = [
        150, 400, 1_000, 3_000, 10_000, 40_000, 120_000, 300_000, 700_000,
    ]
    .into_iter()
    .map(Fault::CutAfter)
    .collect();
    plan.push(Fault::Stall {
        after: 20_000,
        for_: Duration::from_secs(2),
    });
    plan.push(Fault::Trickle {
        bytes_per_sec: 400_000,
    });
    plan.push(Fault::CutAfter(2_000_000));
    let proxy = Proxy::start(upstream, plan).await;
    agent.set_server_url(&proxy.url());
    let expected = pages(60, 6);
    agent.start();
    drop_in_background(
        agent.inbox.clone(),
        expected.clone(),
        Duration::from_millis(5),
    )
    .join()
    .expect("dropper");
    let stored = wait_for_all(&server, &expected).await;
    assert_exactly_once(&stored, &expected);
    assert!(
        proxy.faults_left() <= 3,
        "the faults were exercised ({} left)",
        proxy.faults_left()
    );
    #[cfg(target_os = "linux")]
    {
        let peak = agent.peak_memory_kib().expect("agent memory");
        assert!(peak < 300 * 1024, "agent peak memory {peak} KiB");
    }
}

#[tokio::test]
async fn a_thousand_pages_scanned_while_the_server_is_down_drain_in_order() {
    let mut server = TestServer::start_at(&free_addr());
    let mut agent = TestAgent::enroll(&server).await;
    server.kill();
    let expected = pages(1000, 0);
    agent.start();
    drop_in_background(
        agent.inbox.clone(),
        expected.clone(),
        Duration::from_millis(1),
    )
    .join()
    .expect("dropper");
    eventually("all pages queued on the desk", DRAIN, || async {
        (queued_pages(&agent) == expected.len()).then_some(())
    })
    .await;
    server.restart();
    let progress = eventually("the desk to show the drain's progress", DRAIN, || async {
        agent
            .status()
            .lines()
            .find(|l| l.starts_with("backlog draining: ") && !l.starts_with("backlog draining: 0 "))
            .map(str::to_owned)
    })
    .await;
    assert!(progress.contains("of 1000 pages sent"), "{progress}");
    assert!(
        progress.contains(" min left, as of "),
        "the time left: {progress}"
    );
    let stored = wait_for_all(&server, &expected).await;
    assert_exactly_once(&stored, &expected);
    let in_scan_order: Vec<String> = expected.iter().map(|(_, b)| sha256_hex(b)).collect();
    let first_difference = stored.iter().zip(&in_scan_order).position(|(a, b)| a != b);
    if let Some(at) = first_difference {
        let order: Vec<usize> = stored[at.saturating_sub(3)..(at + 12).min(stored.len())]
            .iter()
            .filter_map(|sha| in_scan_order.iter().position(|s| s == sha))
            .collect();
        eprintln!("scan order around the first difference: {order:?}");
    }
    assert_eq!(
        first_difference,
        None,
        "pages arrived out of scan order; {}",
        packet_summary(&server).await
    );
    eventually("the desk queue to empty", DRAIN, || async {
        (queued_pages(&agent) == 0).then_some(())
    })
    .await;
    eventually("the progress line to go once drained", DRAIN, || async {
        (!agent.status().contains("backlog draining")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_page_changed_on_disk_after_queueing_is_delivered_as_queued() {
    let mut server = TestServer::start_at(&free_addr());
    let mut agent = TestAgent::enroll(&server).await;
    server.kill();
    agent.start();
    let original = scan::jpeg(&scan::text_page(31), 80);
    let path = agent.drop_file("changing.jpg", &original);
    eventually("the page to be queued", DRAIN, || async {
        (queued_pages(&agent) == 1).then_some(())
    })
    .await;
    std::fs::write(&path, scan::jpeg(&scan::text_page(32), 80)).unwrap();
    server.restart();
    let stored = eventually("the queued page on the server", DRAIN, || async {
        let stored = server_pages(&server).await;
        (!stored.is_empty()).then_some(stored)
    })
    .await;
    assert_eq!(stored[0], sha256_hex(&original));
}

#[tokio::test]
async fn a_page_the_server_refuses_for_good_is_set_aside_and_the_rest_go_on() {
    // A server that takes pages up to 150 KB: the noisy page breaks the limit.
    let server = TestServer::start_with_env("127.0.0.1:0", &[("IMC_MAX_PAGE_BYTES", "150000")]);
    let mut agent = TestAgent::enroll(&server).await;
    let all = pages(3, 2);
    let (big_name, big) = &all[1];
    assert!(big.len() > 150_000 && all[0].1.len() < 150_000 && all[2].1.len() < 150_000);
    agent.start();
    drop_in_background(agent.inbox.clone(), all.clone(), Duration::from_millis(300))
        .join()
        .expect("dropper");
    let expected = vec![all[0].clone(), all[2].clone()];
    let stored = wait_for_all(&server, &expected).await;
    assert_exactly_once(&stored, &expected);
    let status = eventually("the desk to show the failed page", DRAIN, || async {
        let status = agent.status();
        status.contains("failed pages: 1").then_some(status)
    })
    .await;
    let line = status
        .lines()
        .find(|l| l.contains(big_name.as_str()))
        .unwrap_or_else(|| panic!("a line for {big_name}: {status}"));
    assert!(line.contains("bad_offer"), "{line}");
    // The spool copy is kept, byte for byte, for a person to look at.
    let spool = line
        .split("(kept at ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("spool path in {line}"));
    assert_eq!(sha256_hex(&std::fs::read(spool).unwrap()), sha256_hex(big));
    assert!(status.contains("queue: 0 pages"), "{status}");
    assert!(
        agent.inbox.join(big_name).exists(),
        "its source file stays in the inbox"
    );
}

#[tokio::test]
async fn a_nearly_full_disk_is_said_clearly_and_scans_wait_in_the_inbox() {
    let server = TestServer::start();
    let mut agent = TestAgent::enroll(&server).await;
    // Asks for more free space than any disk has.
    agent.configure("min_free_disk_mb", (1i64 << 40).into());
    agent.start();
    let page = scan::jpeg(&scan::text_page(41), 80);
    let path = agent.drop_file("waiting.jpg", &page);
    let status = eventually("the desk to say the disk is nearly full", DRAIN, || async {
        let status = agent.status();
        status
            .lines()
            .any(|l| l.starts_with("WARNING: disk nearly full"))
            .then_some(status)
    })
    .await;
    assert!(status.contains("queue: 0 pages"), "{status}");
    assert!(path.exists(), "the scan waits in the inbox");

    agent.kill();
    agent.configure("min_free_disk_mb", 0.into());
    agent.start();
    let stored = eventually("the waiting scan on the server", DRAIN, || async {
        let stored = server_pages(&server).await;
        (!stored.is_empty()).then_some(stored)
    })
    .await;
    assert_eq!(stored, vec![sha256_hex(&page)]);
    eventually("the warning to clear", DRAIN, || async {
        (!agent.status().contains("WARNING")).then_some(())
    })
    .await;
}

async fn agent_connected(server: &TestServer, id: &str) -> bool {
    let (status, list) = server.get("/agents").await;
    assert_eq!(status, 200, "{list}");
    list["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["id"] == id))
        .is_some_and(|a| a["connected"] == true)
}

#[tokio::test]
async fn a_half_open_link_is_noticed_at_both_ends_and_delivery_resumes_when_the_path_returns() {
    // The server waits longer than the agent, so the agent's own detection is
    // what the test sees (the server closing first would reach the desk as a reset).
    let server = TestServer::start_with_env("127.0.0.1:0", &[("IMC_UPLINK_IDLE_SECS", "8")]);
    let mut agent = TestAgent::enroll(&server).await;
    let id = agent.config_value("agent_id");
    agent.configure("heartbeat_secs", 1.into());
    agent.configure("link_timeout_secs", 3.into());
    let upstream = server.base.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream, Vec::new()).await;
    agent.set_server_url(&proxy.url());
    let expected = pages(40, 8);
    agent.start();
    let dropper = drop_in_background(
        agent.inbox.clone(),
        expected.clone(),
        Duration::from_millis(20),
    );
    eventually("the first pages on the server", DRAIN, || async {
        (server_pages(&server).await.len() >= 5).then_some(())
    })
    .await;

    // Both directions go silent and nobody sends a FIN: only heartbeats can tell.
    proxy.go_dark();
    let connections = proxy.connections();
    let status = eventually(
        "the desk to notice the half-open link",
        Duration::from_secs(20),
        || async {
            let status = agent.status();
            status
                .lines()
                .any(|l| {
                    l.starts_with("link: disconnected")
                        && (l.contains("half-open") || l.contains("took no data"))
                })
                .then_some(status)
        },
    )
    .await;
    eprintln!("{status}");
    eventually(
        "the server to end the silent session",
        Duration::from_secs(20),
        || async { (!agent_connected(&server, &id).await).then_some(()) },
    )
    .await;
    eventually(
        "the agent to try again (swallowed by the dark path)",
        Duration::from_secs(20),
        || async { (proxy.connections() > connections).then_some(()) },
    )
    .await;

    proxy.light_up();
    dropper.join().expect("dropper");
    let stored = wait_for_all(&server, &expected).await;
    assert_exactly_once(&stored, &expected);
    eventually("the desk to show the link up again", DRAIN, || async {
        agent
            .status()
            .lines()
            .any(|l| l.starts_with("link: connected"))
            .then_some(())
    })
    .await;
}

/// The agent's queue database, read beside the running agent (WAL allows it).
fn agent_queue(agent: &TestAgent) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(agent.root.join("data").join("queue.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db
}

/// One value from the agent's queue, once the query finds a row.
async fn from_queue(agent: &TestAgent, what: &str, sql: &str) -> String {
    eventually(what, DRAIN, || async {
        agent_queue(agent)
            .query_row(sql, [], |r| r.get::<_, String>(0))
            .ok()
    })
    .await
}

fn flip_byte(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_seal_the_server_refuses_for_good_is_set_aside_and_shown_not_retried() {
    let mut server = TestServer::start_at(&free_addr());
    let mut agent = TestAgent::enroll(&server).await;
    let token = agent.config_value("token");
    server.kill();
    agent.start();
    let page = scan::jpeg(&scan::text_page(51), 80);
    agent.drop_file("contradicted.jpg", &page);
    let packet = from_queue(
        &agent,
        "the packet to close on the desk",
        "SELECT id FROM packets WHERE sealed = 1",
    )
    .await;
    agent.kill();
    server.restart();
    // The same desk credential stored another page of that packet and sealed
    // it earlier with another page count: the server holds a seal the
    // agent's can never match. (A seal of a packet with no stored page is
    // refused, so a page goes first.)
    let mut raw = crate::raw_uplink::RawAgent::connect(&server, &token).await;
    let packet_id = packet.parse().unwrap();
    let other = scan::jpeg(&scan::text_page(52), 80);
    let mut offer = crate::raw_uplink::offer(uuid::Uuid::new_v4(), packet_id, &other);
    offer.page_index = 1;
    let capture_id = offer.capture_id;
    raw.send(&imc_shared::protocol::AgentMessage::Offer(offer))
        .await;
    assert_eq!(
        raw.recv().await,
        Some(imc_shared::protocol::ServerMessage::Resume {
            capture_id,
            offset: 0
        })
    );
    raw.chunk(capture_id, 0, &other).await;
    assert_eq!(
        raw.recv().await,
        Some(imc_shared::protocol::ServerMessage::Stored { capture_id })
    );
    raw.send(&imc_shared::protocol::AgentMessage::Seal(
        imc_shared::protocol::PacketSeal {
            packet_id,
            cover_code: None,
            page_count: 5,
            empty: false,
            packet_seq: None,
            cover_problem: None,
            rescan_of: None,
        },
    ))
    .await;
    assert_eq!(
        raw.recv().await,
        Some(imc_shared::protocol::ServerMessage::Sealed { packet_id })
    );
    drop(raw);

    agent.start();
    let expected = [
        ("contradicted.jpg".into(), page.clone()),
        ("raw page".into(), other.clone()),
    ];
    let stored = wait_for_all(&server, &expected).await;
    assert_exactly_once(&stored, &expected);
    let status = eventually("the desk to show the refused seal", DRAIN, || async {
        let status = agent.status();
        status.contains("failed packets: 1").then_some(status)
    })
    .await;
    assert!(
        status
            .lines()
            .any(|l| l.contains("FAILED: the server refused its seal")
                && l.contains("sealed with 5 pages, not 1")
                && l.contains("(conflict)")),
        "{status}"
    );
    // Not retried: the link stays up instead of dropping and reconnecting.
    for _ in 0..10 {
        let status = agent.status();
        assert!(
            status.lines().any(|l| l.starts_with("link: connected")),
            "{status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_spool_copy_corrupted_on_the_desk_is_failed_with_the_reason_and_the_rest_go_on() {
    let mut server = TestServer::start_at(&free_addr());
    let mut agent = TestAgent::enroll(&server).await;
    server.kill();
    agent.start();
    let rotten = scan::jpeg(&scan::text_page(61), 80);
    agent.drop_file("rotten.jpg", &rotten);
    let spool = from_queue(
        &agent,
        "the page to be spooled",
        "SELECT spool_path FROM pages WHERE state = 'queued'",
    )
    .await;
    // Same size, one byte different: what a failing disk does.
    flip_byte(std::path::Path::new(&spool), rotten.len() / 2);
    server.restart();
    let status = eventually("the desk to fail the corrupt page", DRAIN, || async {
        let status = agent.status();
        status.contains("failed pages: 1").then_some(status)
    })
    .await;
    let line = status
        .lines()
        .find(|l| l.contains("rotten.jpg"))
        .unwrap_or_else(|| panic!("a line for rotten.jpg: {status}"));
    assert!(line.contains("corrupt on this desk's disk"), "{line}");
    assert!(line.contains(&sha256_hex(&rotten)), "{line}");

    let good = scan::jpeg(&scan::text_page(62), 80);
    agent.drop_file("good.jpg", &good);
    let stored = wait_for_all(&server, &[("good.jpg".into(), good.clone())]).await;
    assert_eq!(
        stored,
        vec![sha256_hex(&good)],
        "nothing of the corrupt page"
    );
}

#[tokio::test]
async fn a_partial_upload_spoiled_on_the_server_is_sent_again_from_the_intact_spool_copy() {
    let server = TestServer::start();
    let mut agent = TestAgent::enroll(&server).await;
    let id = agent.config_value("agent_id");
    let upstream = server.base.trim_start_matches("http://").parse().unwrap();
    // The first connection is cut mid-page (after two 256 KiB chunks); the second hangs long enough to
    // spoil what the server kept; the third goes through.
    let proxy = Proxy::start(
        upstream,
        vec![
            Fault::CutAfter(560_000),
            Fault::Stall {
                after: 0,
                for_: Duration::from_secs(4),
            },
        ],
    )
    .await;
    agent.set_server_url(&proxy.url());
    let big = pages(2, 2).remove(1);
    assert!(big.1.len() > 600_000, "two whole chunks fit before the cut");
    agent.start();
    agent.drop_file(&big.0, &big.1);
    let partials = server.data_dir.join("partials").join(&id);
    let partial = eventually("a partial upload to be kept", DRAIN, || async {
        if proxy.connections() < 2 {
            return None;
        }
        let entry = std::fs::read_dir(&partials).ok()?.flatten().next()?;
        let len = entry.metadata().ok()?.len();
        (len > 10_000).then(|| entry.path())
    })
    .await;
    flip_byte(&partial, 5_000);
    let stored = wait_for_all(&server, std::slice::from_ref(&big)).await;
    assert_eq!(stored, vec![sha256_hex(&big.1)]);
    assert!(
        proxy.connections() >= 4,
        "resumed, refused, then sent again"
    );
    let status = agent.status();
    assert!(status.contains("failed pages: 0"), "{status}");
}
