//! `imc-server backup` while an agent streams pages, then `restore` into a
//! fresh data dir: the restored server's documents, image bytes (SHA-256)
//! and audit chain all check out.

use crate::harness::{TestAgent, TestServer, bin, eventually, sha256_hex};
use crate::scan;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn imc_server(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(bin("imc-server"))
        .args(args)
        .env("IMC_LOG", "warn")
        .output()
        .expect("run imc-server");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn backup_during_streaming_restores_documents_images_and_audit() {
    let server = TestServer::start();
    let doc = server.match_document("BK-0001").await;
    let id = doc["id"].as_i64().unwrap();
    let cover = scan::decode_gray(
        &server
            .get_bytes(&format!("/documents/{id}/cover.png"))
            .await
            .1,
    );
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();
    agent.drop_file("a-0001.png", &scan::png(&cover));
    agent.drop_file("a-0002.png", &scan::png(&scan::text_page(1)));
    server.wait_for_status(id, "matched", WAIT).await;

    // Pages keep arriving while the backup runs.
    let inbox = agent.inbox.clone();
    let streaming = std::thread::spawn(move || {
        for i in 0..12 {
            let path = inbox.join(format!("b-{i:04}.png"));
            let tmp = inbox.join(format!("b-{i:04}.png.tmp"));
            std::fs::write(&tmp, scan::png(&scan::text_page(100 + i))).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let metric = |text: String| {
        text.lines()
            .find_map(|l| l.strip_prefix("imc_pages_received_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap()
    };
    let scrape = |s: &TestServer| {
        let url = format!("{}/metrics", s.base);
        let client = s.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let live = scrape(&server).await;
    assert!(
        live.lines()
            .any(|l| l == "imc_match_latency_seconds_count 1"),
        "the match was timed: {live}"
    );
    eventually("streamed pages to start arriving", WAIT, || async {
        (metric(scrape(&server).await) >= 4.0).then_some(())
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let backup_dir = tmp.path().join("backup");
    let (ok, out) = imc_server(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        server.data_dir.as_os_str(),
        "--to".as_ref(),
        backup_dir.as_os_str(),
    ]);
    assert!(ok, "backup: {out}");
    streaming.join().unwrap();

    let restored_dir = tmp.path().join("restored");
    let (ok, out) = imc_server(&[
        "restore".as_ref(),
        "--from".as_ref(),
        backup_dir.as_os_str(),
        "--data-dir".as_ref(),
        restored_dir.as_os_str(),
    ]);
    assert!(ok, "restore: {out}");
    let (ok, out) = imc_server(&[
        "restore".as_ref(),
        "--from".as_ref(),
        backup_dir.as_os_str(),
        "--data-dir".as_ref(),
        restored_dir.as_os_str(),
    ]);
    assert!(
        !ok && out.contains("already holds"),
        "a second restore must refuse: {out}"
    );
    let (ok, out) = imc_server(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--data-dir".as_ref(),
        restored_dir.as_os_str(),
    ]);
    assert!(ok && out.contains("intact"), "audit verify: {out}");

    let restored = TestServer::start_on(&restored_dir);
    let (status, doc) = restored.get(&format!("/documents/{id}")).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["status"], "matched");
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{doc}");
    for image in images {
        let (status, bytes) = restored
            .get_bytes(image["url"].as_str().unwrap().trim_start_matches("/api/v1"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(image["sha256"].as_str().unwrap(), sha256_hex(&bytes));
    }
    // Every page the backup holds can be served; the live server has at least as many.
    let restored_pages = metric(scrape(&restored).await);
    assert!(
        restored_pages >= 4.0,
        "the backup holds the pages stored before it"
    );
    let (_, packets) = restored.get("/packets?limit=100").await;
    let mut served = 0;
    for packet in packets["packets"].as_array().unwrap() {
        let pid = packet["id"].as_str().unwrap();
        for page in packet["pages"].as_array().unwrap() {
            let index = page["page_index"].as_u64().unwrap();
            let (status, bytes) = restored
                .get_bytes(&format!("/packets/{pid}/pages/{index}"))
                .await;
            assert_eq!(status, 200, "packet {pid} page {index}");
            assert_eq!(page["sha256"].as_str().unwrap(), sha256_hex(&bytes));
            served += 1;
        }
    }
    assert_eq!(
        served as f64, restored_pages,
        "every restored page is served"
    );
    eprintln!("backup held {restored_pages} of 14 pages");
    eventually("all streamed pages on the live server", WAIT, || async {
        (metric(scrape(&server).await) >= 14.0).then_some(())
    })
    .await;
    assert!(restored_pages <= 14.0);
}
