//! The cluster: PostgreSQL + Garage (from `scripts/services.sh`) and two
//! `imc-server` replicas behind a plain TCP load balancer in this test.
//! Ten agents stream 500 pages through the balancer; one replica is killed
//! (kill -9) mid-stream and comes back; every page arrives exactly once and
//! byte-identical, documents are signed off through either replica, each
//! status change is pushed to the webhook once, and the desk's live updates
//! and the agents' session events cross from one replica to the other.

use crate::harness::{TestAgent, TestServer, bin, eventually, sha256_hex};
use crate::raw_uplink::{RawAgent, enroll, error_code};
use crate::scale::{aws_env, fresh_blobs, fresh_database, migrate, replica_args, services};
use crate::scan;
use axum::body::Bytes;
use image::{GrayImage, Luma};
use imc_shared::protocol::ServerMessage;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(180);
const AGENTS: usize = 10;
const PACKETS_PER_AGENT: usize = 2;
/// A cover and 24 pages: 10 agents × 2 packets × 25 = 500 pages (covers are
/// the costly part to make and to read, so few of them).
const PAGES_PER_PACKET: usize = 25;
const PASSWORD: &str = "cluster-password-1";
const SECRET: &str = "whsec_cluster_0123456789";

/// Round-robin over the backends, skipping one that refuses connections.
struct Balancer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    async fn start(backends: Vec<String>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let backends = backends.clone();
                let first = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    for i in 0..backends.len() {
                        let backend = &backends[(first + i) % backends.len()];
                        if let Ok(mut server) = TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                });
            }
        });
        Balancer { addr, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn host_port(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Counts deliveries per (document, old status, new status).
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let state = Arc::clone(&state);
            async move {
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                state.lock().unwrap().push(event);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received)
}

/// A small scanned page with unique bytes (cheap to decode for barcodes).
fn small_page(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut page = GrayImage::from_pixel(420, 594, Luma([250]));
    for y in (40..540).step_by(24) {
        let mut x = 30;
        while x < 380 {
            let word = rng.random_range(10..50);
            for yy in y..y + 9 {
                for xx in x..(x + word).min(390) {
                    page.put_pixel(xx, yy, Luma([rng.random_range(10..80)]));
                }
            }
            x += word + 10;
        }
    }
    scan::png(&page)
}

fn add_user(database: &str, name: &str) {
    let output = std::process::Command::new(bin("imc-server"))
        .args(["user", "add", "--database", database])
        .args(["--name", name, "--role", "signoff", "--password", PASSWORD])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const SECRETS_KEY: &str = "3f1c9a5e7b2d4086a1c3e5f7091b2d4f6a8c0e1f3a5b7c9d1e3f5a7b9c1d3e5f";

/// Starts two replicas on a fresh schema and bucket prefix.
async fn replicas() -> (String, TestServer, TestServer) {
    let settings = services();
    let database = fresh_database(&settings).await;
    migrate(&database);
    let args = replica_args(&database, &fresh_blobs(&settings, "cluster"));
    let mut env = aws_env(&settings);
    // Every replica signs webhooks: all share one secrets key.
    env.push(("IMC_SECRETS_KEY", SECRETS_KEY));
    // No idle connections kept: one a replica closed while busy would fail
    // the next request for the test's sake, not the server's.
    let client = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let first = TestServer::start_full("127.0.0.1:0", &args, &env, client());
    let second = TestServer::start_full("127.0.0.1:0", &args, &env, client());
    (database, first, second)
}

async fn pages_stored(database: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let count: i64 = client
        .query_one("SELECT count(*) FROM pages", &[])
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = task.await;
    count
}

#[tokio::test]
async fn two_replicas_survive_a_kill_and_agree() {
    let started = std::time::Instant::now();
    let (database, first, mut second) = replicas().await;
    let balancer = Balancer::start(vec![host_port(&first), host_port(&second)]).await;
    let (hook, deliveries) = webhook_receiver().await;
    let (status, body) = first
        .put("/webhooks/ERP", json!({"url": hook, "secret": SECRET}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Documents come in over the API, alternately through each replica.
    let (status, _) = first
        .put("/schemes/all-match", json!({"mode": "match"}))
        .await;
    assert_eq!(status, 200);
    let made = futures_util::future::join_all((0..AGENTS * PACKETS_PER_AGENT).map(|n| {
        let via = if n % 2 == 0 { &first } else { &second };
        async move {
            let (status, doc) = via
                .post(
                    "/documents",
                    json!({"source_system": "ERP", "doc_no": format!("EXP-C-{n:03}"), "doc_type": "expense", "org": "HQ"}),
                )
                .await;
            assert_eq!(status, 201, "{doc}");
            let id = doc["id"].as_i64().unwrap();
            let (status, cover_png) = via.get_bytes(&format!("/documents/{id}/cover.png")).await;
            assert_eq!(status, 200);
            (n, id, cover_png)
        }
    }))
    .await;
    let mut documents = Vec::new();
    let mut dropped: HashMap<i64, Vec<String>> = HashMap::new();
    let mut plans = vec![Vec::new(); AGENTS];
    for (n, id, cover_png) in made {
        let mut files = vec![scan::jpeg(&scan::decode_gray(&cover_png), 85)];
        files.extend((1..PAGES_PER_PACKET).map(|p| small_page((n * 100 + p) as u64)));
        dropped.insert(id, files.iter().map(|f| sha256_hex(f)).collect());
        plans[n % AGENTS].push(files);
        documents.push(id);
    }

    eprintln!("cluster: documents ready at {:?}", started.elapsed());
    let mut agents = Vec::new();
    for plan in &plans {
        let mut agent = TestAgent::enroll(&first).await;
        agent.set_server_url(&balancer.url());
        agent.start();
        let mut k = 0;
        for files in plan {
            for (i, bytes) in files.iter().enumerate() {
                k += 1;
                let ext = if i == 0 { "jpg" } else { "png" };
                agent.drop_file(&format!("scan_{k:04}.{ext}"), bytes);
            }
        }
        agents.push(agent);
    }

    // Mid-stream, one replica dies without a goodbye; agents on it reconnect
    // through the balancer to the other and resume there.
    let total = (AGENTS * PACKETS_PER_AGENT * PAGES_PER_PACKET) as i64;
    let at_kill = eventually("some pages stored", WAIT, || async {
        let n = pages_stored(&database).await;
        (n >= total / 5).then_some(n)
    })
    .await;
    second.kill();
    eprintln!(
        "cluster: replica killed at {:?} after {at_kill} pages",
        started.elapsed()
    );
    assert!(at_kill < total, "the kill came too late: {at_kill} pages");
    for id in &documents {
        first.wait_for_status(*id, "matched", WAIT).await;
    }
    eprintln!("cluster: all matched at {:?}", started.elapsed());
    second.restart();
    assert_eq!(
        pages_stored(&database).await,
        total,
        "each page exactly once"
    );

    // Every page byte-identical, read back through either replica.
    for (n, id) in documents.iter().enumerate() {
        let via = if n % 2 == 0 { &first } else { &second };
        let (status, doc) = via.get(&format!("/documents/{id}")).await;
        assert_eq!(status, 200, "{doc}");
        let images = doc["images"].as_array().unwrap();
        let seen: Vec<String> = images
            .iter()
            .map(|i| i["sha256"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen, dropped[id], "document {id}'s pages");
        for image in images {
            let path = image["url"].as_str().unwrap().trim_start_matches("/api/v1");
            let (status, bytes) = via.get_bytes(path).await;
            assert_eq!(status, 200);
            assert_eq!(sha256_hex(&bytes), image["sha256"].as_str().unwrap());
        }
    }

    // A desk user watching replica two sees a sign-off made on replica one.
    add_user(&database, "wang");
    let session = crate::harness::desk_login(&second.base, "wang", PASSWORD).await;
    let mut events = reqwest::Client::new()
        .get(format!("{}/ui/events", second.base))
        .header("cookie", &session)
        .header("origin", second.base.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    // The agents' heartbeats show the stream is live before the change.
    let mut stream = String::new();
    while !stream.contains("event: change") {
        let chunk = tokio::time::timeout(WAIT, events.chunk()).await;
        stream.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap().unwrap()));
    }
    eprintln!("cluster: desk stream live at {:?}", started.elapsed());
    let watched = documents[0];
    let (status, body) = first
        .post(&format!("/documents/{watched}/sign-off"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = events.chunk().await.unwrap() {
            stream.push_str(&String::from_utf8_lossy(&chunk));
            let announced = stream.lines().any(|l| {
                l.strip_prefix("data:")
                    .and_then(|d| serde_json::from_str::<Value>(d.trim()).ok())
                    .is_some_and(|c| {
                        c["documents"]
                            .as_array()
                            .is_some_and(|d| d.contains(&json!(watched)))
                    })
            });
            if announced {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no live update for {watched} on replica two: {stream}"));

    eprintln!("cluster: live update seen at {:?}", started.elapsed());
    // The rest are signed off through either replica.
    for (n, id) in documents.iter().enumerate().skip(1) {
        let via = if n % 2 == 0 { &first } else { &second };
        let (status, body) = via
            .post(&format!("/documents/{id}/sign-off"), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    // One delivery per transition: matched and ready for each document.
    let expected = documents.len() * 2;
    eventually("every webhook", WAIT, || async {
        (deliveries.lock().unwrap().len() >= expected).then_some(())
    })
    .await;
    // Time for a duplicate to show up, if either replica sent one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deliveries = deliveries.lock().unwrap().clone();
    let mut transitions = HashSet::new();
    for event in &deliveries {
        let key = (
            event["document_id"].as_i64().unwrap(),
            event["new_status"].as_str().unwrap().to_owned(),
        );
        assert!(transitions.insert(key.clone()), "delivered twice: {key:?}");
    }
    for id in &documents {
        for status in ["matched", "ready"] {
            assert!(
                transitions.contains(&(*id, status.to_owned())),
                "no {status} webhook for {id}: {deliveries:?}"
            );
        }
    }
    assert_eq!(deliveries.len(), expected, "{deliveries:?}");
    drop(agents);
}

/// Revoking an agent on one replica closes its session on the other, and a
/// newer session on one replica replaces an older one on the other.
#[tokio::test]
async fn agent_sessions_are_closed_across_replicas() {
    let (_database, first, second) = replicas().await;
    let (agent_id, token) = enroll(&first, "desk-x").await;
    let mut older = RawAgent::connect(&first, &token).await;
    // The older session must be registered before the newer one starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut newer = RawAgent::connect(&second, &token).await;
    let said = older.until_closed().await;
    assert!(
        said.iter()
            .any(|m| error_code(m) == Some(("replaced", true, false))),
        "{said:?}"
    );

    let (status, body) = first
        .post(&format!("/agents/{agent_id}/revoke"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let said = tokio::time::timeout(Duration::from_secs(10), newer.until_closed())
        .await
        .expect("the session on the other replica closes at once");
    assert!(
        said.iter()
            .any(|m| matches!(m, ServerMessage::Error(e) if e.code == "revoked" && e.fatal)),
        "{said:?}"
    );
}

/// A large page half sent to one replica resumes on the other from the
/// bytes the first checkpointed, and is stored whole.
#[tokio::test]
async fn an_upload_resumes_on_another_replica() {
    let (database, first, second) = replicas().await;
    let (_agent_id, token) = enroll(&first, "desk-r").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut page: Vec<u8> = (0..3 * 1024 * 1024 + 1000).map(|_| rng.random()).collect();
    // Offered as JPEG: the server checks the first bytes against the type.
    page[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
    let offer = crate::raw_uplink::offer(uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), &page);
    let id = offer.capture_id;
    const CHUNK: usize = 256 * 1024;

    let mut there = RawAgent::connect(&first, &token).await;
    there
        .send(&imc_shared::protocol::AgentMessage::Offer(offer.clone()))
        .await;
    assert!(matches!(
        there.recv().await,
        Some(ServerMessage::Resume { offset: 0, .. })
    ));
    let sent = 10 * CHUNK; // 2.5 MiB
    for at in (0..sent).step_by(CHUNK) {
        there.chunk(id, at as u64, &page[at..at + CHUNK]).await;
    }
    // The first replica checkpoints what it received while the page streams.
    let (client, connection) = tokio_postgres::connect(&database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    eventually("checkpointed bytes", WAIT, || async {
        let held: Option<i64> = client
            .query_opt("SELECT durable FROM upload_partials", &[])
            .await
            .unwrap()
            .map(|r| r.get(0));
        held.filter(|&h| h >= 2 * 1024 * 1024).map(|_| ())
    })
    .await;
    // The link breaks; the agent's next connection lands on the other replica.
    drop(there);

    let mut here = RawAgent::connect(&second, &token).await;
    here.send(&imc_shared::protocol::AgentMessage::Offer(offer))
        .await;
    let offset = match here.recv().await {
        Some(ServerMessage::Resume { offset, .. }) => offset as usize,
        other => panic!("expected resume, got {other:?}"),
    };
    assert!(
        (2 * 1024 * 1024..=sent).contains(&offset),
        "resumed at {offset}"
    );
    for at in (offset..page.len()).step_by(CHUNK) {
        here.chunk(id, at as u64, &page[at..(at + CHUNK).min(page.len())])
            .await;
    }
    match here.recv().await {
        Some(ServerMessage::Stored { capture_id }) => assert_eq!(capture_id, id),
        other => panic!("expected stored, got {other:?}"),
    }
    // The shared partial is gone once the page is stored.
    eventually("the shared partial to be dropped", WAIT, || async {
        let left: i64 = client
            .query_one("SELECT count(*) FROM upload_partials", &[])
            .await
            .unwrap()
            .get(0);
        (left == 0).then_some(())
    })
    .await;
    let stored: String = client
        .query_one(
            "SELECT sha256 FROM pages WHERE capture_id = $1",
            &[&id.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, sha256_hex(&page));
}

/// A TCP front that forwards every connection to one backend at a time; on
/// `switch` it cuts the connections it holds, as a balancer does when a
/// health check takes a backend out.
struct Switch {
    addr: SocketAddr,
    backend: Arc<Mutex<String>>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Switch {
    async fn start(backend: String) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = Arc::new(Mutex::new(backend));
        let links: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (backend, links, accepted) = (
                Arc::clone(&backend),
                Arc::clone(&links),
                Arc::clone(&accepted),
            );
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let to = backend.lock().unwrap().clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&to).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().unwrap().push(link.abort_handle());
                }
            }
        });
        Switch {
            addr,
            backend,
            links,
            accepted,
            task,
        }
    }

    fn switch(&self, backend: String) {
        *self.backend.lock().unwrap() = backend;
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.task.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

/// A page of about 8 MiB: a grayscale PNG of noise (which does not
/// compress), unique by `seed`.
fn big_page(seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut page = GrayImage::new(2900, 2900);
    for p in page.pixels_mut() {
        p.0[0] = rng.random();
    }
    scan::png(&page)
}

async fn query_i64(database: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let value: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
    drop(client);
    let _ = task.await;
    value
}

/// How the first replica fails while it holds the desk's session.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGSTOP, and SIGCONT once the desk finished on the other replica.
    Freeze,
    /// kill -9, and a restart once the desk finished on the other replica.
    Kill,
}

fn signal(server: &TestServer, signal: &str) {
    let pid = server.pid().expect("the replica runs").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

async fn agent_connected(server: &TestServer, id: &str) -> bool {
    let (status, list) = server.get("/agents").await;
    assert_eq!(status, 200, "{list}");
    list["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["id"] == id))
        .is_some_and(|a| a["connected"] == true)
}

/// A desk streams 8 MiB pages to replica A; once A checkpointed part of a
/// page to the shared partials, A fails (`fault`) and the desk's link moves
/// to replica B, where it finishes; then A comes back. Every page is stored
/// once, every packet matched, no shared partial is left, and the desk's
/// session stays put on B (no takeover loop between the replicas).
async fn a_desk_moves_off_a_failed_replica(fault: Fault) {
    let _alone = crate::harness::machine_heavy().await;
    const PACKETS: usize = 2;
    const BIG_PER_PACKET: usize = 2;
    let started = std::time::Instant::now();
    let (database, mut first, second) = replicas().await;
    let front = Switch::start(host_port(&first)).await;

    let mut documents = Vec::new();
    let mut files = Vec::new();
    let mut expected: HashMap<i64, Vec<String>> = HashMap::new();
    for n in 0..PACKETS {
        let doc = first.match_document(&format!("EXP-F-{n}")).await;
        let id = doc["id"].as_i64().unwrap();
        let (status, cover_png) = first.get_bytes(&format!("/documents/{id}/cover.png")).await;
        assert_eq!(status, 200);
        let mut packet = vec![("jpg", scan::jpeg(&scan::decode_gray(&cover_png), 85))];
        packet.extend((0..BIG_PER_PACKET).map(|p| ("png", big_page((n * 10 + p) as u64 + 1000))));
        expected.insert(id, packet.iter().map(|(_, f)| sha256_hex(f)).collect());
        files.extend(packet);
        documents.push(id);
    }
    assert!(
        files
            .iter()
            .skip(1)
            .all(|(_, f)| f.len() > 7 * 1024 * 1024 || f.len() < 1024 * 1024)
    );
    eprintln!(
        "failover({fault:?}): pages ready at {:?}",
        started.elapsed()
    );

    let mut agent = TestAgent::enroll(&first).await;
    let agent_id = agent.config_value("agent_id");
    agent.set_server_url(&front.url());
    agent.configure("heartbeat_secs", 1.into());
    agent.configure("link_timeout_secs", 3.into());
    agent.start();
    for (k, (ext, bytes)) in files.iter().enumerate() {
        agent.drop_file(&format!("scan_{k:04}.{ext}"), bytes);
    }

    // Part of a big page is in the shared partials, checkpointed by A.
    eventually("a checkpointed part of a page", WAIT, || async {
        let held = query_i64(
            &database,
            "SELECT coalesce(max(durable), 0) FROM upload_partials",
        )
        .await;
        (held >= 1024 * 1024).then_some(())
    })
    .await;
    let stored_before = pages_stored(&database).await;
    match fault {
        Fault::Freeze => signal(&first, "-STOP"),
        Fault::Kill => first.kill(),
    }
    front.switch(host_port(&second));
    eprintln!(
        "failover({fault:?}): A down at {:?} with {stored_before} pages stored",
        started.elapsed()
    );
    assert!(
        (stored_before as usize) < files.len(),
        "the fault came too late"
    );

    for id in &documents {
        second.wait_for_status(*id, "matched", WAIT).await;
    }
    eprintln!(
        "failover({fault:?}): all matched on B at {:?}",
        started.elapsed()
    );
    match fault {
        Fault::Freeze => signal(&first, "-CONT"),
        Fault::Kill => first.restart(),
    }

    // The desk stays on B: connected throughout, no new links.
    eventually("the desk connected to B", WAIT, || async {
        agent_connected(&second, &agent_id).await.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let links = front.accepted();
    for _ in 0..20 {
        assert!(
            agent_connected(&second, &agent_id).await,
            "the desk's session on B was closed after A came back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        front.accepted(),
        links,
        "the desk reconnected after A came back"
    );
    assert!(
        !agent_connected(&first, &agent_id).await,
        "A still holds a session"
    );

    // Every page once, byte-identical, each document with its packet's pages.
    assert_eq!(pages_stored(&database).await, files.len() as i64);
    assert_eq!(
        query_i64(&database, "SELECT count(DISTINCT sha256) FROM pages").await,
        files.len() as i64,
        "a page stored twice"
    );
    assert_eq!(
        query_i64(
            &database,
            "SELECT count(*) FROM packets WHERE state <> 'matched'"
        )
        .await,
        0,
        "a packet not matched"
    );
    for id in &documents {
        let (status, doc) = first.get(&format!("/documents/{id}")).await;
        assert_eq!(status, 200, "{doc}");
        assert_eq!(doc["status"], "matched");
        let seen: Vec<String> = doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["sha256"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen, expected[id], "document {id}'s pages");
    }
    // Nothing is left in the shared partials once A has wound down too.
    eventually(
        "the shared partials to be empty",
        Duration::from_secs(15),
        || async {
            let left = query_i64(&database, "SELECT count(*) FROM upload_partials").await;
            (left == 0).then_some(())
        },
    )
    .await;
    eprintln!("failover({fault:?}): done at {:?}", started.elapsed());
    drop(agent);
}

#[tokio::test]
async fn a_desk_moves_off_a_frozen_replica_and_stays_moved() {
    a_desk_moves_off_a_failed_replica(Fault::Freeze).await;
}

#[tokio::test]
async fn a_desk_moves_off_a_killed_replica_and_stays_moved() {
    a_desk_moves_off_a_failed_replica(Fault::Kill).await;
}
