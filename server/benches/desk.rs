//! The sign-off desk's heaviest pages, through the real server on loopback:
//! the queue with 10,000 matched documents (first page, a filtered page, a
//! deep page) and a document with 200 pages. Baselines from the same run:
//! the API's status of one document, and the API's JSON of the same
//! 200-page document.
//!
//! Run: `cargo bench -p imc-server --bench desk` (release build). Data is
//! written straight into the SQLite file in one transaction.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use imc_server::auth::hash_secret;
use imc_server::config::ServerConfig;
use imc_server::store::{Actor, NewApiToken};
use imc_server::web::store::{NewUser, Role};
use std::time::{Duration, Instant};

const MATCHED: i64 = 10_000;
const BIG_DOC_PAGES: i64 = 200;
const RUNS: usize = 200;

fn fill(path: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut doc = tx
            .prepare(
                "INSERT INTO documents (id, source_system, doc_no, doc_type, org, cover_code, title, amount, \
                 mode, status, created_at, updated_at) \
                 VALUES (?1, 'ERP', ?2, ?3, ?4, ?5, '差旅费报销 Travel', '1280.00', 'match', 'matched', ?6, ?6)",
            )
            .unwrap();
        let mut packet = tx
            .prepare(
                "INSERT INTO packets (id, agent_id, site, cover_code, state, sealed_page_count, document_id, \
                 created_at, updated_at) VALUES (?1, 'agent-1', ?2, ?3, 'matched', ?4, ?5, ?6, ?6)",
            )
            .unwrap();
        let mut image = tx
            .prepare(
                "INSERT INTO images (document_id, page_no, sha256, size, content_type, blank, barcodes, created_at) \
                 VALUES (?1, ?2, ?3, 250000, 'image/jpeg', ?4, ?5, ?6)",
            )
            .unwrap();
        let sites = ["beijing", "shanghai", "shenzhen", "chengdu"];
        let orgs = ["HQ", "East", "South"];
        let types = ["expense", "payable"];
        for id in 1..=MATCHED {
            // Distinct, increasing times: the queue orders by them.
            let at = format!(
                "2026-01-{:02}T{:02}:{:02}:{:02}.000Z",
                1 + id / 3600 % 28,
                id / 60 % 24,
                id % 60,
                id % 60
            );
            let code = format!("IMC{id:010}");
            doc.execute(rusqlite::params![
                id,
                format!("EXP-{id:07}"),
                types[(id % 2) as usize],
                orgs[(id % 3) as usize],
                code,
                at
            ])
            .unwrap();
            let pages = if id == 1 { BIG_DOC_PAGES } else { 1 + id % 4 };
            packet
                .execute(rusqlite::params![
                    uuid::Uuid::new_v4().to_string(),
                    sites[(id % 4) as usize],
                    code,
                    pages,
                    id,
                    at
                ])
                .unwrap();
            for page in 1..=pages {
                let barcodes = if page == 1 {
                    format!(r#"[{{"format":"code128","text":"{code}","orientation":0}}]"#)
                } else {
                    "[]".to_owned()
                };
                image
                    .execute(rusqlite::params![
                        id,
                        page,
                        format!("{:064x}", id * 1000 + page),
                        page % 17 == 0,
                        barcodes,
                        at
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn time(
    client: &reqwest::Client,
    url: &str,
    header: (&str, &str),
    must_contain: &str,
) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let response = client
            .get(url)
            .header(header.0, header.1)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body = response.text().await.unwrap();
        samples.push(started.elapsed());
        assert!(body.contains(must_contain), "{url} lacks {must_contain}");
    }
    percentiles(samples)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(dir.path().to_owned());
        // The bench's 800 requests from one token would be rate-limited.
        config.rate_limits = imc_server::ratelimit::RateLimits {
            per_ip: None,
            per_token: None,
        };
        let state = imc_server::open(config.clone()).await.unwrap();
        fill(&config.database_path());
        state
            .store
            .add_api_token(
                NewApiToken {
                    name: "bench".into(),
                    scopes: vec![imc_shared::api::TokenScope::Admin],
                    source_systems: None,
                    token_hash: hash_secret("bench-token"),
                },
                &Actor("bench".into()),
            )
            .await
            .unwrap();
        let user = state
            .web
            .store
            .add_user(
                NewUser {
                    name: "bench".into(),
                    role: Role::SignOff,
                    site: None,
                    password_hash: "unused".into(),
                },
                &Actor("bench".into()),
            )
            .await
            .unwrap();
        state
            .web
            .store
            .create_session(
                &hash_secret("ses_bench"),
                user.id,
                "csrf_bench",
                "2999-01-01T00:00:00.000Z",
            )
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let server_stop = stop.clone();
        let server = tokio::spawn(imc_server::serve_state(state, listener, async move {
            server_stop.cancelled().await
        }));
        let client = reqwest::Client::new();
        let cookie = ("cookie", "imc_session=ses_bench");
        let bearer = ("authorization", "Bearer bench-token");

        let rows = [
            (
                "API: status of one document (baseline)",
                format!("{base}/api/v1/documents/5000/status"),
                bearer,
                "matched",
            ),
            (
                "API: 200-page document as JSON (baseline)",
                format!("{base}/api/v1/documents/1"),
                bearer,
                "EXP-0000001",
            ),
            (
                "desk: queue, first page of 10,000",
                format!("{base}/ui/queue"),
                cookie,
                "EXP-0000002",
            ),
            (
                "desk: queue filtered by site and org",
                format!("{base}/ui/queue?site=shanghai&org=East"),
                cookie,
                "shanghai",
            ),
            (
                "desk: queue, page 150 (deep offset)",
                format!("{base}/ui/queue?page=150"),
                cookie,
                "EXP-",
            ),
            (
                "desk: document with 200 pages",
                format!("{base}/ui/documents/1"),
                cookie,
                "page-detail",
            ),
        ];
        println!("| request | runs | p50 | p99 | p50 vs status baseline |");
        println!("|---|---|---|---|---|");
        let mut baseline = None;
        for (name, url, header, needle) in rows {
            // Warm the page cache and the statement cache first.
            time(&client, &url, header, needle).await;
            let (p50, p99) = time(&client, &url, header, needle).await;
            let base50 = *baseline.get_or_insert(p50);
            println!(
                "| {name} | {RUNS} | {} | {} | {:.1}× |",
                ms(p50),
                ms(p99),
                p50.as_secs_f64() / base50.as_secs_f64()
            );
        }
        stop.cancel();
        server.await.unwrap().unwrap();
    });
}
