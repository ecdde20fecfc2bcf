//! Scan order under faults, with real processes: pages land on their own
//! document, once, in the order the scanner wrote them, whatever the file
//! system's timestamps, a slow split or a full spool do to the timing.

use crate::harness::{TestAgent, TestServer, eventually, sha256_hex};
use crate::scan;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, SystemTime};

const WAIT: Duration = Duration::from_secs(120);

/// The SHA-256 of a document's images, in page order.
async fn images_of(server: &TestServer, doc: &Value) -> Vec<String> {
    let id = doc["id"].as_i64().unwrap();
    let (_, doc) = server.get(&format!("/documents/{id}")).await;
    doc["images"]
        .as_array()
        .unwrap_or_else(|| panic!("images of {doc}"))
        .iter()
        .map(|i| i["sha256"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn set_mtime(path: &Path, at: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(at))
        .unwrap_or_else(|e| panic!("setting the mtime of {}: {e}", path.display()));
}

async fn packets_in(server: &TestServer, state: &str) -> usize {
    let (_, list) = server.get(&format!("/packets?state={state}")).await;
    list["packets"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn twelve_files_with_one_mtime_go_in_natural_name_order() {
    let server = TestServer::start();
    let doc = server.match_document("ORDER-0001").await;
    let mut agent = TestAgent::enroll(&server).await;
    // As a FAT-formatted scanner card or a fast scanner leaves them: one timestamp.
    let at = SystemTime::now() - Duration::from_secs(60);
    let mut want = Vec::new();
    for n in 1..=12u64 {
        let bytes = match n {
            1 => server.cover_scan(&doc).await,
            _ => scan::png(&scan::text_page(100 + n)),
        };
        want.push(sha256_hex(&bytes));
        let path = agent.drop_file(&format!("scan_{n}.jpg"), &bytes);
        set_mtime(&path, at);
    }
    agent.start();
    let id = doc["id"].as_i64().unwrap();
    server.wait_for_status(id, "matched", WAIT).await;
    assert_eq!(
        images_of(&server, &doc).await,
        want,
        "scan_2 … scan_12 in that order after the cover"
    );
}

#[tokio::test]
async fn a_cover_then_a_tiff_that_splits_slower_than_the_quiet_time_is_one_packet() {
    let server = TestServer::start();
    let doc = server.match_document("SLOW-SPLIT-1").await;
    let mut agent = TestAgent::enroll(&server).await;
    // Quiet closes a packet after 0.3 s; splitting 80 G4 pages takes far longer.
    agent.configure("seal_after_ms", 300.into());
    let cover = server.cover_scan(&doc).await;
    let pages: Vec<_> = (0..4)
        .map(|n| scan::bitonal(&scan::text_page(200 + n), 300))
        .collect();
    let eighty: Vec<_> = (0..80).map(|n| pages[n % pages.len()].clone()).collect();
    let tiff = scan::tiff_g4(&eighty, None);
    agent.start();
    // As a scanner writes them: the cover, and at once the long batch after it.
    agent.drop_file("batch_0001.jpg", &cover);
    agent.drop_file("batch_0002.tif", &tiff);

    let id = doc["id"].as_i64().unwrap();
    server.wait_for_status(id, "matched", WAIT).await;
    assert_eq!(
        images_of(&server, &doc).await.len(),
        81,
        "cover and 80 pages"
    );
    assert_eq!(
        packets_in(&server, "empty").await,
        0,
        "the cover was not closed alone"
    );
    assert_eq!(
        packets_in(&server, "unmatched").await,
        0,
        "no coverless packet"
    );
}

#[tokio::test]
async fn a_spool_that_fills_mid_batch_and_drains_keeps_each_document_to_its_own_pages() {
    let mut server = TestServer::start();
    let mut docs = Vec::new();
    for n in 1..=3 {
        docs.push(server.match_document(&format!("SPOOL-{n:04}")).await);
    }
    let mut agent = TestAgent::enroll(&server).await;
    // A spool of 1 MiB holds about three of these pages; the server is away,
    // so the batch stops part way and waits in the inbox.
    agent.configure("max_spool_mb", 1.into());
    let mut wants = Vec::new();
    let mut files = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        let cover = server.cover_scan(doc).await;
        let mut want = vec![sha256_hex(&cover)];
        files.push(cover);
        for p in 0..3 {
            let page = scan::jpeg(&scan::text_page(300 + 10 * d as u64 + p), 95);
            want.push(sha256_hex(&page));
            files.push(page);
        }
        wants.push(want);
    }
    server.kill();
    agent.start();
    for (n, bytes) in files.iter().enumerate() {
        agent.drop_file(&format!("scan_{:04}.jpg", n + 1), bytes);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    eventually("the desk to say the spool is full", WAIT, || async {
        agent.status().contains("WARNING: spool full").then_some(())
    })
    .await;
    assert!(
        std::fs::read_dir(&agent.inbox).unwrap().count() == files.len(),
        "every scan is still in the inbox"
    );
    server.restart();
    for (doc, want) in docs.iter().zip(&wants) {
        let id = doc["id"].as_i64().unwrap();
        server.wait_for_status(id, "matched", WAIT).await;
        assert_eq!(&images_of(&server, doc).await, want, "{}", doc["doc_no"]);
    }
    assert_eq!(packets_in(&server, "unmatched").await, 0);
    assert_eq!(packets_in(&server, "empty").await, 0);
}
