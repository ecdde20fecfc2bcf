//! Status queries with 100,000 documents in the store: single p50/p99 and
//! bulk (1,000 ids) p50/p99, through the `Store` trait as the handlers call it.
//!
//! Run: `cargo bench -p imc-server --bench status` (release build). The
//! documents are written straight into the SQLite file in one transaction:
//! creating them one by one through the store would fsync 100,000 times.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use imc_server::store::{SqliteStore, Store};
use rand::Rng;
use std::time::{Duration, Instant};

const DOCUMENTS: i64 = 100_000;
const SINGLE_RUNS: usize = 5_000;
const BULK_RUNS: usize = 200;
const BULK_SIZE: usize = 1_000;

fn fill(path: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut doc = tx
            .prepare(
                "INSERT INTO documents (id, source_system, doc_no, doc_type, org, cover_code, mode, status, \
                 created_at, updated_at) VALUES (?1, 'ERP', ?2, 'expense', 'HQ', ?3, 'match', ?4, ?5, ?5)",
            )
            .unwrap();
        let mut image = tx
            .prepare(
                "INSERT INTO images (document_id, page_no, sha256, size, content_type, created_at) \
                 VALUES (?1, ?2, ?3, 1000, 'image/jpeg', ?4)",
            )
            .unwrap();
        let at = "2025-01-01T00:00:00.000Z";
        let statuses = [
            "awaiting_images",
            "matched",
            "ready",
            "rejected",
            "cancelled",
        ];
        for id in 1..=DOCUMENTS {
            let status = statuses[(id % 5) as usize];
            doc.execute(rusqlite::params![
                id,
                format!("EXP-{id:07}"),
                format!("IMC{id:010}"),
                status,
                at
            ])
            .unwrap();
            // Most documents have a few pages: the status counts them.
            for page in 1..=(id % 4) {
                image
                    .execute(rusqlite::params![id, page, format!("{id:064}"), at])
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
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imc.sqlite3");
        drop(SqliteStore::open(&path).unwrap());
        let started = Instant::now();
        fill(&path);
        eprintln!("filled {DOCUMENTS} documents in {:.1?}", started.elapsed());
        let store = SqliteStore::open(&path).unwrap();
        let mut rng = rand::rng();

        let mut single = Vec::with_capacity(SINGLE_RUNS);
        for _ in 0..SINGLE_RUNS {
            let id = rng.random_range(1..=DOCUMENTS);
            let t = Instant::now();
            let doc = store.document(id).await.unwrap();
            single.push(t.elapsed());
            assert!(doc.is_some());
        }
        let mut bulk_ids = Vec::with_capacity(BULK_RUNS);
        let mut bulk_nos = Vec::with_capacity(BULK_RUNS);
        for _ in 0..BULK_RUNS {
            let ids: Vec<i64> = (0..BULK_SIZE)
                .map(|_| rng.random_range(1..=DOCUMENTS))
                .collect();
            let nos: Vec<String> = ids.iter().map(|id| format!("EXP-{id:07}")).collect();
            let t = Instant::now();
            let docs = store.documents_by_ids(&ids).await.unwrap();
            bulk_ids.push(t.elapsed());
            assert!(!docs.is_empty());
            let t = Instant::now();
            let docs = store.documents_by_doc_nos(&nos).await.unwrap();
            bulk_nos.push(t.elapsed());
            assert!(!docs.is_empty());
        }
        println!("| query ({DOCUMENTS} documents) | runs | p50 | p99 |");
        println!("|---|---|---|---|");
        for (name, runs, samples) in [
            ("single status by id", SINGLE_RUNS, single),
            ("bulk status, 1,000 ids", BULK_RUNS, bulk_ids),
            ("bulk status, 1,000 doc_nos", BULK_RUNS, bulk_nos),
        ] {
            let (p50, p99) = percentiles(samples);
            println!("| {name} | {runs} | {} | {} |", ms(p50), ms(p99));
        }
    });
}
