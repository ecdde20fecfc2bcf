//! Signed covers with real processes: the server signs every cover QR it
//! prints, the desk checks the signature offline with the keys it learned,
//! a cover whose QR was altered makes no cover (its pages become an
//! unmatched packet that says why), and a key rotation keeps the covers
//! printed before it valid.

use crate::harness::{TestAgent, TestServer, bin, eventually};
use crate::scan;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, SystemTime};

const WAIT: Duration = Duration::from_secs(120);

async fn document(server: &TestServer, doc_no: &str, count: Option<u32>) -> Value {
    let (status, _) = server
        .put("/schemes/all-match", json!({"mode": "match"}))
        .await;
    assert_eq!(status, 200);
    let mut body =
        json!({"source_system": "ERP", "doc_no": doc_no, "doc_type": "expense", "org": "HQ"});
    if let Some(n) = count {
        body["attachment_count"] = n.into();
    }
    let (status, doc) = server.post("/documents", body).await;
    assert_eq!(status, 201, "{doc}");
    doc
}

/// The QR text of a document's printed cover.
async fn printed_qr(server: &TestServer, doc: &Value) -> String {
    let id = doc["id"].as_i64().unwrap();
    let (status, png) = server
        .get_bytes(&format!("/documents/{id}/cover.png"))
        .await;
    assert_eq!(status, 200);
    scan::read_qr(&scan::decode_gray(&png))
}

/// Files dropped as one batch, in scan order, with one old mtime.
fn scan_batch(agent: &TestAgent, prefix: &str, files: &[Vec<u8>]) {
    let at = SystemTime::now() - Duration::from_secs(60);
    for (n, bytes) in files.iter().enumerate() {
        let path = agent.drop_file(&format!("{prefix}_{:02}.png", n + 1), bytes);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(at))
            .unwrap();
    }
}

#[tokio::test]
async fn an_altered_cover_matches_nothing_and_its_pages_are_kept_apart() {
    let server = TestServer::start();
    let a = document(&server, "SIG-A", Some(2)).await;
    let b = document(&server, "SIG-B", Some(1)).await;
    let qr = printed_qr(&server, &b).await;
    let b_code = b["cover_code"].as_str().unwrap();
    assert!(
        qr.starts_with(&format!("IMC1|{b_code}|1|")) && qr.split('|').count() == 5,
        "a printed cover's QR is signed: {qr}"
    );
    // Someone copies B's cover and raises its count.
    let forged_qr = qr.replacen(&format!("|{b_code}|1|"), &format!("|{b_code}|4|"), 1);
    let forged = scan::png(&scan::cover_page(b_code, &forged_qr));

    let mut files = vec![server.cover_scan(&a).await];
    files.extend((0..2).map(|n| scan::png(&scan::text_page(800 + n))));
    files.push(forged);
    files.push(scan::png(&scan::text_page(810)));
    files.push(server.cover_scan(&b).await);
    files.push(scan::png(&scan::text_page(820)));

    let mut agent = TestAgent::enroll(&server).await;
    assert!(
        agent.status().contains("cover keys: "),
        "the desk holds the keys from its enrolment"
    );
    scan_batch(&agent, "scan", &files);
    agent.start();

    for (doc, images) in [(&a, 3), (&b, 2)] {
        let id = doc["id"].as_i64().unwrap();
        server.wait_for_status(id, "matched", WAIT).await;
        let (_, view) = server.get(&format!("/documents/{id}")).await;
        assert_eq!(
            view["images"].as_array().unwrap().len(),
            images,
            "only its own pages: {view}"
        );
        assert_eq!(view["attachment_check"]["verdict"], "ok", "{view}");
    }
    let refused = eventually("the forged packet to be unmatched", WAIT, || async {
        let (_, list) = server.get("/packets?state=unmatched").await;
        list["packets"].as_array().and_then(|packets| {
            packets
                .iter()
                .find(|p| {
                    p["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("cover_signature_invalid"))
                })
                .cloned()
        })
    })
    .await;
    assert_eq!(
        refused["page_count"], 2,
        "the forged sheet and its page, kept: {refused}"
    );
    assert_eq!(refused["cover_code"], Value::Null, "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains(b_code),
        "{refused}"
    );
    let status = agent.status();
    assert!(
        status.contains("REFUSED (cover_signature_invalid"),
        "{status}"
    );
}

#[tokio::test]
async fn after_a_rotation_old_and_new_covers_both_match_at_a_connected_desk() {
    let server = TestServer::start();
    let before = document(&server, "ROT-OLD", None).await;
    let old_cover = server.cover_scan(&before).await;
    let old_key = printed_qr(&server, &before)
        .await
        .split('|')
        .nth(3)
        .unwrap()
        .to_owned();

    let mut agent = TestAgent::enroll(&server).await;
    agent.configure("heartbeat_secs", 1.into());
    agent.start();
    eventually("the desk to connect", WAIT, || async {
        agent.status().contains("link: connected").then_some(())
    })
    .await;

    // Rotated beside the running server, signing at once.
    let rotated = Command::new(bin("imc-server"))
        .args(["cover-keys", "rotate", "--lead-hours", "0", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let listing = String::from_utf8_lossy(&rotated.stdout).into_owned();
    let new_key = listing
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_ne!(new_key, old_key, "{listing}");
    assert!(listing.contains(&old_key), "the old key stays: {listing}");

    // The connected desk learns the new key without reconnecting.
    eventually("the desk to learn the new key", WAIT, || async {
        agent.status().contains(&new_key).then_some(())
    })
    .await;
    let after = document(&server, "ROT-NEW", None).await;
    let new_qr = eventually("covers to be signed with the new key", WAIT, || async {
        let qr = printed_qr(&server, &after).await;
        qr.contains(&format!("|{new_key}|")).then_some(qr)
    })
    .await;
    assert!(!new_qr.contains(&old_key));

    let files = vec![
        old_cover,
        scan::png(&scan::text_page(830)),
        server.cover_scan(&after).await,
        scan::png(&scan::text_page(831)),
    ];
    scan_batch(&agent, "rot", &files);
    for doc in [&before, &after] {
        let id = doc["id"].as_i64().unwrap();
        server.wait_for_status(id, "matched", WAIT).await;
    }
}
