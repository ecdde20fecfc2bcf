//! How long a clerk waits to see a packet matched: from the last page
//! landing in the desk's inbox to its document being `matched`, with real
//! server and agent processes on loopback.
//!
//! Three cases a round, in the same run so the ratios hold on a noisy
//! machine: a cover that declares 2 attachments, then 2 pages and a blank
//! back (closes as soon as the back is in); the same without the back
//! (closes after `declared_grace_ms`); a cover that declares nothing (closes
//! after `seal_after_ms` of quiet, the product's default 5 s: the baseline).
//!
//! `cargo build --release --bins && cargo bench -p imc-tests --bench match_latency`
//! (`IMC_BENCH_ROUNDS`, default 5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../e2e/scan.rs"]
mod scan;

use harness::{TestAgent, TestServer};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Case {
    DeclaredWithBlankBack,
    Declared,
    Undeclared,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::DeclaredWithBlankBack => "2 declared, 2 pages + blank back",
            Case::Declared => "2 declared, 2 pages",
            Case::Undeclared => "no count (idle seal, baseline)",
        }
    }
}

async fn document(server: &TestServer, n: usize, declared: Option<u32>) -> Value {
    let mut body = json!({"source_system": "BENCH", "doc_no": format!("LAT-{n:05}"),
        "doc_type": "expense", "org": "HQ"});
    if let Some(count) = declared {
        body["attachment_count"] = count.into();
    }
    let (status, doc) = server.post("/documents", body).await;
    assert_eq!(status, 201, "{doc}");
    doc
}

async fn one(server: &TestServer, agent: &TestAgent, n: usize, case: Case) -> Duration {
    let declared = (case != Case::Undeclared).then_some(2);
    let doc = document(server, n, declared).await;
    let id = doc["id"].as_i64().unwrap();
    let (_, png) = server
        .get_bytes(&format!("/documents/{id}/cover.png"))
        .await;
    let mut files = vec![scan::jpeg(&scan::decode_gray(&png), 80)];
    files.push(scan::jpeg(&scan::text_page(2 * n as u64), 80));
    files.push(scan::jpeg(&scan::text_page(2 * n as u64 + 1), 80));
    if case == Case::DeclaredWithBlankBack {
        let white = image::GrayImage::from_pixel(1240, 1754, image::Luma([255]));
        files.push(scan::png(&white));
    }
    for (i, bytes) in files.iter().enumerate() {
        agent.drop_file(&format!("lat_{n:05}_{i}.jpg"), bytes);
    }
    let landed = Instant::now();
    loop {
        if server.status_of(id).await == "matched" {
            return landed.elapsed();
        }
        assert!(
            landed.elapsed() < Duration::from_secs(60),
            "document {id} never matched"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn summary(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    )
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("IMC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let server = TestServer::start();
    let (status, _) = server
        .put("/schemes/all-match", json!({"mode": "match"}))
        .await;
    assert_eq!(status, 200);
    let mut agent = TestAgent::enroll(&server).await;
    // The product's defaults for the quiet and the grace; the harness's short settle time.
    agent.configure("seal_after_ms", 5000.into());
    agent.configure("declared_grace_ms", 1000.into());
    agent.start();
    let cases = [
        Case::DeclaredWithBlankBack,
        Case::Declared,
        Case::Undeclared,
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut n = 0;
    for _ in 0..rounds {
        for (c, case) in cases.iter().enumerate() {
            n += 1;
            times[c].push(one(&server, &agent, n, *case).await);
        }
    }
    let (_, baseline, _) = summary(&mut times[2].clone());
    println!("last page in the inbox -> matched, {rounds} rounds (ms):");
    println!(
        "{:<36} {:>8} {:>8} {:>8} {:>10}",
        "case", "min", "median", "max", "x baseline"
    );
    for (case, times) in cases.iter().zip(times.iter_mut()) {
        let (min, median, max) = summary(times);
        println!(
            "{:<36} {min:>8.0} {median:>8.0} {max:>8.0} {:>10.2}",
            case.name(),
            median / baseline
        );
    }
}
