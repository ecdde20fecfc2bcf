//! The clerk's console with 500 packets in its recent list, served by the
//! agent's code on loopback with a real queue: memory with the page open,
//! idle CPU with the page open, and the time from a packet's match being
//! recorded to the page's event stream carrying it. Baselines from the same
//! run: the process before the console starts (memory), the same idle
//! period with no page open (CPU), and one read of the view (latency).
//!
//! Run: `cargo bench -p imc-agent --bench console` (Linux: reads /proc).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use imc_agent::config::AgentConfig;
use imc_agent::console::{Console, serve, view};
use imc_agent::queue::{FateKind, FileKey, NewPage, PacketFate, Queue};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PACKETS: usize = 500;
const IDLE: Duration = Duration::from_secs(20);
const MATCHES: usize = 50;

fn page(cover: Option<String>, n: usize) -> NewPage {
    NewPage {
        capture_id: Uuid::new_v4(),
        spool_path: PathBuf::from(format!("/spool/{n}")),
        sha256: format!("{n:064x}"),
        size: 200_000,
        content_type: "image/png".into(),
        source_name: format!("scan_{n:05}.png"),
        declared: cover.as_ref().map(|_| 2),
        cover_code: cover,
        count_note: None,
        cover_problem: None,
        barcodes_json: "[]".into(),
        blank: false,
    }
}

/// One packet (a cover and two pages, one file each), sealed; returns its id.
fn packet(queue: &Queue, inbox: &std::path::Path, n: usize) -> Uuid {
    for (i, cover) in [Some(format!("IMC{n:010}")), None, None]
        .into_iter()
        .enumerate()
    {
        let key = FileKey {
            path: inbox.join(format!("scan_{n:05}_{i}.png")),
            size: 200_000,
            mtime_ns: (n * 3 + i) as i64,
        };
        queue
            .enqueue(inbox, &key, &format!("{n}-{i}"), &[page(cover, n * 3 + i)])
            .unwrap();
    }
    queue.seal_open_packet(inbox).unwrap();
    let id = queue.recent_packets(1).unwrap()[0].id.clone();
    Uuid::parse_str(&id).unwrap()
}

fn matched(queue: &Queue, id: Uuid, doc_no: &str) {
    let message = format!("matched to document {doc_no}");
    queue
        .record_outcome(
            id,
            &PacketFate {
                kind: FateKind::Matched,
                message: &message,
                doc_no: Some(doc_no),
                document_id: Some(1),
                warnings: &[],
            },
        )
        .unwrap();
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    [11, 12]
        .iter()
        .map(|&i| fields[i].parse::<f64>().unwrap())
        .sum::<f64>()
        / 100.0
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let queue = Arc::new(Queue::open(&dir.path().join("data")).unwrap());
    for n in 0..PACKETS {
        let id = packet(&queue, &inbox, n);
        matched(&queue, id, &format!("EXP-{n:06}"));
    }
    let mut config = AgentConfig::new(
        "http://127.0.0.1:9".into(),
        "bench-desk".into(),
        "hq".into(),
        "imc_agent_x".into(),
    );
    config.insecure = true;
    config.watch = vec![inbox.clone()];
    let config = Arc::new(config);

    // Latency baseline: one read of the whole view.
    let reads = 20;
    let started = Instant::now();
    for _ in 0..reads {
        let v = view::read(&config, &queue).unwrap();
        assert_eq!(v.packets.len(), PACKETS);
    }
    let read_ms = started.elapsed().as_secs_f64() * 1000.0 / reads as f64;

    // Memory baseline: the queue open, no console.
    let rss_before = rss_kib();
    // CPU baseline: idle, the console serving, no page open.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound = listener.local_addr().unwrap();
    let console = Console::new(
        Arc::clone(&config),
        Arc::clone(&queue),
        Arc::new(Notify::new()),
        bound,
    )
    .unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(console, listener, stop.clone()));
    let cpu = cpu_seconds();
    tokio::time::sleep(IDLE).await;
    let idle_closed = cpu_seconds() - cpu;

    // The page open: its event stream.
    let client = reqwest::Client::new();
    let mut events = client
        .get(format!("http://{bound}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut buffer = String::new();
    while !buffer.contains("\n\n") {
        let chunk = events.chunk().await.unwrap().unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first_event_bytes = buffer.len();
    buffer.clear();
    let rss_open = rss_kib();
    let cpu = cpu_seconds();
    tokio::time::sleep(IDLE).await;
    let idle_open = cpu_seconds() - cpu;
    // Drain what the heartbeat sent meanwhile (nothing changed: nothing should come).
    let idle_bytes = {
        let mut n = 0;
        while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_millis(50), events.chunk())
            .await
            .unwrap_or(Ok(None))
        {
            n += chunk.len();
        }
        n
    };

    // A match recorded → the stream carries it.
    let mut latencies = Vec::new();
    for m in 0..MATCHES {
        let id = packet(&queue, &inbox, PACKETS + m);
        let doc_no = format!("LIVE-{m:04}");
        // Let the packet's own changes go out first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(Ok(Some(_))) =
            tokio::time::timeout(Duration::from_millis(20), events.chunk()).await
        {}
        let started = Instant::now();
        matched(&queue, id, &doc_no);
        let needle = format!("\"state\":\"matched\",\"message\":\"matched to document {doc_no}\"");
        let mut seen = String::new();
        while !seen.contains(&needle) {
            let chunk = events.chunk().await.unwrap().unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let p95 = latencies[latencies.len() * 95 / 100];
    stop.cancel();

    println!("console bench: {PACKETS} packets in the recent list");
    println!("  view read (baseline)        {read_ms:.1} ms");
    println!(
        "  first event                 {} KiB",
        first_event_bytes / 1024
    );
    println!(
        "  memory: before console {} MiB, page open {} MiB (ratio {:.2})",
        rss_before / 1024,
        rss_open / 1024,
        rss_open as f64 / rss_before as f64
    );
    println!(
        "  idle CPU over {} s: no page {:.2} s, page open {:.2} s ({:.2}% of one core; {} bytes sent while idle)",
        IDLE.as_secs(),
        idle_closed,
        idle_open,
        idle_open / IDLE.as_secs_f64() * 100.0,
        idle_bytes
    );
    println!(
        "  match → event: median {median:.0} ms, p95 {p95:.0} ms (ratio to one view read {:.1})",
        median / read_ms
    );
}
