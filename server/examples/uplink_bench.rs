//! Delivery benchmark: pages per second through the real uplink protocol,
//! against the disk's durable-write ceiling measured in the same run, and
//! the server's memory and CPU as more agents stream at once.
//!
//! `cargo build --release -p imc-server --bins && \
//!  cargo run --release -p imc-server --example uplink_bench -- [PAGES] [AGENTS...]`
//! (defaults: 300 pages of 300 KB; 1, 5 and 20 agents). The server is the real
//! `imc-server` binary in its own process (found next to this example, or at
//! `IMC_SERVER_BIN`), so its resident memory and CPU time are read from
//! `/proc` while the agents stream; the agents run in-process with their
//! queues pre-filled (on `/dev/shm` unless `IMC_BENCH_AGENTS_DIR` says
//! otherwise: desks have their own disks), so only delivery is measured (no
//! folder watching, no barcode reading). Linux only.

use imc_agent::config::AgentConfig;
use imc_agent::queue::{FileKey, NewPage, Queue};
use imc_agent::uplink::Uplink;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const ADMIN_TOKEN: &str = "imc_bench_admin_token_0123456789";

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
            declared: None,
            count_note: None,
            cover_problem: None,
            barcodes_json: "[]".into(),
            blank: false,
        };
        queue.enqueue(inbox, &key, &sha, &[new_page])?;
    }
    Ok(())
}

/// The real server binary, started on a fresh data dir; killed on drop.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    fn start(data_dir: &Path) -> anyhow::Result<ServerProcess> {
        let bin = match std::env::var_os("IMC_SERVER_BIN") {
            Some(path) => PathBuf::from(path),
            None => {
                let exe = std::env::current_exe()?;
                let dir = exe
                    .parent()
                    .and_then(Path::parent)
                    .ok_or_else(|| anyhow::anyhow!("no target dir above {}", exe.display()))?;
                dir.join(format!("imc-server{}", std::env::consts::EXE_SUFFIX))
            }
        };
        if !bin.exists() {
            anyhow::bail!(
                "{} is missing: run `cargo build --release -p imc-server --bins` first (or set IMC_SERVER_BIN)",
                bin.display()
            );
        }
        let mut child = Command::new(&bin)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("IMC_BOOTSTRAP_TOKEN", ADMIN_TOKEN)
            .env(
                "IMC_LOG",
                std::env::var("IMC_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no server stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("imc-server listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow::anyhow!("imc-server did not report its address"))?;
        Ok(ServerProcess { child, base })
    }

    /// Private resident memory now, in KiB: the heap, stacks and buffers
    /// that grow with work. Mapped program text is left out: it is shared,
    /// does not grow with desks, and how much of it is resident depends on
    /// the page cache.
    fn anon_rss_kib(&self) -> u64 {
        proc_status_number(self.child.id(), "RssAnon:")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A number from `/proc/PID/status` (`RssAnon:` in KiB, `Threads:`...); 0 when unreadable.
fn proc_status_number(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time a process used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12
    // here), in clock ticks of 1/100 s (Linux's USER_HZ).
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

struct Run {
    pages_per_sec: f64,
    /// Server RSS once agents are enrolled, before any page moves.
    idle_rss_kib: u64,
    /// Highest server RSS sampled while the agents streamed.
    peak_rss_kib: u64,
    /// Most threads the server had at once while the agents streamed.
    peak_threads: u64,
    /// CPU time per page while streaming, in ms: the server's, and this
    /// process's (the agents').
    server_cpu_ms: f64,
    agents_cpu_ms: f64,
    /// The durable-write ceiling, measured just before this run streamed.
    ceiling: f64,
}

async fn run_agents(
    root: &Path,
    agents_root: &Path,
    agents: usize,
    pages_each: usize,
) -> anyhow::Result<Run> {
    let server = ServerProcess::start(&root.join(format!("server-{agents}")))?;
    let http = reqwest::Client::new();
    let mut queues = Vec::new();
    let mut configs = Vec::new();
    for a in 0..agents {
        let code: serde_json::Value = http
            .post(format!(
                "{}/api/v1/sites/bench/enrollment-codes",
                server.base
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let code = code["code"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no enrollment code in {code}"))?;
        let dir = agents_root.join(format!("agent-{agents}-{a}"));
        let mut config = imc_agent::enroll::enroll(
            &dir.join("agent.toml"),
            &server.base,
            code,
            Some(format!("a{a}")),
            // Loopback: TLS would measure the handshake, not the uplink.
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
    // The disk's speed drifts on a shared machine: the baseline is taken
    // right before the run it is compared with, on the server's file system.
    let ceiling =
        durable_write_ceiling(&root.join(format!("ceiling-{agents}")), agents * pages_each)?;
    let idle_rss_kib = server.anon_rss_kib();
    let peak = Arc::new(AtomicU64::new(idle_rss_kib));
    let peak_threads = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, peak_threads, sampling, pid) = (
            Arc::clone(&peak),
            Arc::clone(&peak_threads),
            Arc::clone(&sampling),
            server.child.id(),
        );
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(proc_status_number(pid, "RssAnon:"), Ordering::Relaxed);
                peak_threads.fetch_max(proc_status_number(pid, "Threads:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let server_cpu = cpu_seconds(server.child.id());
    let agents_cpu = cpu_seconds(std::process::id());
    let started = Instant::now();
    let agents_stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for (queue, config) in queues.iter().zip(configs) {
        let uplink = Uplink {
            config: Arc::new(config as AgentConfig),
            queue: Arc::clone(queue),
            patterns: Arc::new(RwLock::new(imc_shared::CoverPatterns::default())),
            cover_keys: Arc::default(),
            work: Arc::new(tokio::sync::Notify::new()),
            desk_changed: Arc::new(tokio::sync::Notify::new()),
        };
        tasks.push(tokio::spawn(uplink.run(agents_stop.clone())));
    }
    // The cheapest question the queue answers (one index probe), so that
    // watching costs the agents next to nothing.
    loop {
        let mut waiting = false;
        for q in &queues {
            waiting |= q.next_page()?.is_some();
        }
        if !waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pages = (agents * pages_each) as f64;
    let pages_per_sec = pages / started.elapsed().as_secs_f64();
    let server_cpu_ms = (cpu_seconds(server.child.id()) - server_cpu) * 1000.0 / pages;
    let agents_cpu_ms = (cpu_seconds(std::process::id()) - agents_cpu) * 1000.0 / pages;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    agents_stop.cancel();
    for t in tasks {
        t.await??;
    }
    Ok(Run {
        pages_per_sec,
        idle_rss_kib,
        peak_rss_kib: peak.load(Ordering::Relaxed),
        peak_threads: peak_threads.load(Ordering::Relaxed),
        server_cpu_ms,
        agents_cpu_ms,
        ceiling,
    })
}

/// Where the agents keep their queues: `IMC_BENCH_AGENTS_DIR`, else
/// `/dev/shm`, else beside the server. Desks have their own disks; on one
/// shared ext4 without a journal, every file the server creates scans the
/// inodes the agents' spools just freed (`recently_deleted`, a quarter of
/// the server's CPU in `perf`), which no real deployment pays.
fn agents_root() -> anyhow::Result<tempfile::TempDir> {
    let dir = match std::env::var_os("IMC_BENCH_AGENTS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => PathBuf::from("."),
    };
    Ok(tempfile::tempdir_in(dir)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pages = args.first().copied().unwrap_or(300);
    let agent_counts = match &args[1.min(args.len())..] {
        [] => vec![1, 5, 20],
        counts => counts.to_vec(),
    };
    // Same filesystem as the server's data dir, so the ceiling is comparable.
    let root = tempfile::tempdir_in(".")?;
    let agents_root = agents_root()?;
    println!(
        "server data and ceiling under {}, agents' queues under {}",
        root.path().display(),
        agents_root.path().display()
    );
    println!(
        "ceiling = the same pages written one at a time: write, fsync, rename, directory fsync"
    );
    println!(
        "| agents | pages | ceiling pages/s | pages/s | x ceiling | server anon RSS idle | server anon RSS peak | server threads peak | CPU ms/page server | agents |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for agents in agent_counts {
        // At least a few windows' worth per agent, so each one really streams.
        let each = (pages / agents).max(30);
        let run = run_agents(root.path(), agents_root.path(), agents, each).await?;
        println!(
            "| {agents} | {} | {:.0} | {:.0} | {:.2} | {:.1} MiB | {:.1} MiB | {} | {:.2} | {:.2} |",
            agents * each,
            run.ceiling,
            run.pages_per_sec,
            run.pages_per_sec / run.ceiling,
            run.idle_rss_kib as f64 / 1024.0,
            run.peak_rss_kib as f64 / 1024.0,
            run.peak_threads,
            run.server_cpu_ms,
            run.agents_cpu_ms
        );
        std::io::stdout().flush()?;
    }
    Ok(())
}
