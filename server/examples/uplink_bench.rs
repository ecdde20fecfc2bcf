//! Delivery benchmark: pages per second through the real uplink protocol,
//! against the disk's durable-write ceiling measured in the same run.
//!
//! `cargo run --release -p imc-server --example uplink_bench -- [PAGES] [AGENTS]`
//! (defaults 300 pages of 300 KB, 1 and 20 agents). Server and agents run
//! in-process on loopback; the agents' queues are pre-filled so only delivery
//! is measured (no folder watching, no barcode reading).

use imc_agent::config::AgentConfig;
use imc_agent::queue::{FileKey, NewPage, Queue};
use imc_agent::uplink::Uplink;
use imc_server::config::ServerConfig;
use imc_server::store::{Actor, NewApiToken};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const PAGE_BYTES: usize = 300 * 1024;

fn page(seed: u64) -> Vec<u8> {
    // Cheap, distinct, incompressible-looking bytes.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..PAGE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The same pages written one at a time the durable way: write, fsync, rename, fsync dir.
fn durable_write_ceiling(dir: &Path, pages: usize) -> anyhow::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let bytes: Vec<Vec<u8>> = (0..pages as u64).map(page).collect();
    let started = Instant::now();
    for (i, b) in bytes.iter().enumerate() {
        let tmp = dir.join(format!("{i}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(b)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(format!("{i}")))?;
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(pages as f64 / started.elapsed().as_secs_f64())
}

fn fill_queue(queue: &Queue, agent: usize, pages: usize) -> anyhow::Result<()> {
    let inbox = Path::new("/bench/inbox");
    for i in 0..pages {
        let bytes = page((agent * 1_000_000 + i) as u64);
        let capture_id = uuid::Uuid::now_v7();
        let spool_path = queue.spool_dir().join(capture_id.to_string());
        std::fs::write(&spool_path, &bytes)?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let key = FileKey {
            path: inbox.join(format!("{agent}-{i}.jpg")),
            size: bytes.len() as u64,
            mtime_ns: i as i64,
        };
        let new_page = NewPage {
            capture_id,
            spool_path,
            sha256: sha.clone(),
            size: bytes.len() as u64,
            content_type: "image/jpeg".into(),
            source_name: format!("{i}.jpg"),
            cover_code: None,
            barcodes_json: "[]".into(),
            blank: false,
        };
        queue.enqueue(inbox, &key, &sha, &[new_page])?;
    }
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

async fn run_agents(root: &Path, agents: usize, pages_each: usize) -> anyhow::Result<(f64, u64)> {
    let mut config = ServerConfig::new(root.join(format!("server-{agents}")));
    config.bootstrap_token = None;
    let state = imc_server::open(config).await?;
    let store = state.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    let server = tokio::spawn(imc_server::serve_state(state, listener, async move {
        server_stop.cancelled().await
    }));
    store
        .add_api_token(
            NewApiToken {
                name: "bench".into(),
                scopes: vec![imc_shared::api::TokenScope::Admin],
                source_systems: None,
                token_hash: imc_server::auth::hash_secret("bench"),
            },
            &Actor("bench".into()),
        )
        .await?;

    let mut queues = Vec::new();
    let mut configs = Vec::new();
    for a in 0..agents {
        let code = format!("bench-code-{agents}-{a}");
        store
            .add_enrollment_code(
                "bench",
                &imc_server::auth::hash_secret(&code),
                "2999-01-01T00:00:00Z",
                &Actor("bench".into()),
            )
            .await?;
        let dir = root.join(format!("agent-{agents}-{a}"));
        let mut config = imc_agent::enroll::enroll(
            &dir.join("agent.toml"),
            &base,
            &code,
            Some(format!("a{a}")),
            // Loopback, in one process: TLS would measure the handshake, not the uplink.
            imc_agent::tls::Trust {
                ca_pem: None,
                insecure: true,
            },
        )
        .await?;
        config.data_dir = Some(dir.join("data"));
        let queue = Arc::new(Queue::open(&dir.join("data"))?);
        fill_queue(&queue, a, pages_each)?;
        queues.push(queue);
        configs.push(config);
    }
    let rss_before = rss_kib();
    let started = Instant::now();
    let agents_stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for (queue, config) in queues.iter().zip(configs) {
        let uplink = Uplink {
            config: Arc::new(config as AgentConfig),
            queue: Arc::clone(queue),
            patterns: Arc::new(RwLock::new(imc_shared::CoverPatterns::default())),
            work: Arc::new(tokio::sync::Notify::new()),
        };
        tasks.push(tokio::spawn(uplink.run(agents_stop.clone())));
    }
    loop {
        let mut waiting = 0;
        for q in &queues {
            waiting += q.stats()?.pages;
        }
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = (agents * pages_each) as f64 / started.elapsed().as_secs_f64();
    let rss_growth = rss_kib().saturating_sub(rss_before);
    agents_stop.cancel();
    for t in tasks {
        t.await??;
    }
    stop.cancel();
    server.await??;
    Ok((rate, rss_growth))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pages = args.first().copied().unwrap_or(300);
    let many = args.get(1).copied().unwrap_or(20);
    // Same filesystem as the server's data dir, so the ceiling is comparable.
    let root = tempfile::tempdir_in(".")?;
    let ceiling = durable_write_ceiling(&root.path().join("ceiling"), pages)?;
    println!("durable-write ceiling (write+fsync+rename+dir fsync, 300 KB): {ceiling:.0} pages/s");
    let (one, _) = run_agents(root.path(), 1, pages).await?;
    println!(
        "1 agent through the uplink:   {one:.0} pages/s = {:.2} x ceiling",
        one / ceiling
    );
    let per_agent = (pages / many).max(5);
    let (all, rss) = run_agents(root.path(), many, per_agent).await?;
    println!(
        "{many} agents through the uplink: {all:.0} pages/s = {:.2} x ceiling (process RSS grew {} KiB during the run)",
        all / ceiling,
        rss
    );
    Ok(())
}
