//! The spine: a scanned cover sheet reaches its document, which is signed off.

use crate::harness::{TestAgent, TestServer, eventually, sha256_hex};
use crate::scan::{self, Degrade};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_scanned_packet_matches_its_document_and_is_signed_off() {
    let server = TestServer::start();
    let doc = server.match_document("EXP-0001").await;
    let id = doc["id"].as_i64().unwrap();
    assert_eq!(doc["status"], "awaiting_images");
    assert_eq!(doc["mode"], "match");

    let (status, cover_png) = server
        .get_bytes(&format!("/documents/{id}/cover.png"))
        .await;
    assert_eq!(status, 200);
    let cover = scan::decode_gray(&cover_png);
    assert_eq!(cover.dimensions(), (2480, 3508), "A4 at 300 dpi");
    let scanned_cover = scan::degrade(
        &cover,
        &Degrade {
            dpi: 200,
            skew_degrees: 1.5,
            noise: 12,
            jpeg_quality: 70,
        },
        1,
    );
    let page2 = scan::jpeg(&scan::text_page(2), 80);
    let page3 = scan::png(&scan::text_page(3));

    let mut agent = TestAgent::enroll(&server).await;
    agent.start();
    let dropped = [
        agent.drop_file("scan_0001.jpg", &scanned_cover),
        agent.drop_file("scan_0002.jpg", &page2),
        agent.drop_file("scan_0003.png", &page3),
    ];
    server.wait_for_status(id, "matched", WAIT).await;

    let (_, doc) = server.get(&format!("/documents/{id}")).await;
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 3, "{doc}");
    for (image, bytes) in images.iter().zip([&scanned_cover, &page2, &page3]) {
        assert_eq!(image["sha256"], sha256_hex(bytes));
        let (status, served) = server
            .get_bytes(image["url"].as_str().unwrap().trim_start_matches("/api/v1"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            &served, bytes,
            "image {} differs from the dropped file",
            image["page_no"]
        );
    }
    assert_eq!(
        images[0]["barcodes"].as_array().map(|b| b.is_empty()),
        Some(false),
        "cover barcodes recorded"
    );

    // Delivered files leave the inbox for `done`, never deleted.
    eventually("delivered files to move to done", WAIT, || async {
        dropped.iter().all(|p| !p.exists()).then_some(())
    })
    .await;
    for name in ["scan_0001.jpg", "scan_0002.jpg", "scan_0003.png"] {
        assert!(agent.done_dir().join(name).exists(), "{name} in done");
    }

    let (status, signed) = server
        .post(&format!("/documents/{id}/sign-off"), json!({}))
        .await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["status"], "ready");
    let (_, st) = server.get(&format!("/documents/{id}/status")).await;
    assert_eq!(
        (
            st["status"].as_str(),
            st["ready"].as_bool(),
            st["image_count"].as_u64()
        ),
        (Some("ready"), Some(true), Some(3))
    );

    // The clerk sees the packet's fate on the desk (the outcome may still be on its way).
    eventually("the desk to show the packet matched", WAIT, || async {
        agent
            .status()
            .contains("matched to document EXP-0001")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_scan_is_quarantined_and_the_agent_carries_on() {
    let server = TestServer::start();
    let doc = server.match_document("EXP-0002").await;
    let id = doc["id"].as_i64().unwrap();
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();

    let mut truncated = scan::jpeg(&scan::text_page(9), 80);
    truncated.truncate(truncated.len() / 3);
    agent.drop_file("broken.jpg", &truncated);
    agent.drop_file("notes.txt.jpg", b"this is not an image at all");

    let note = agent.quarantine_dir().join("notes.txt.jpg.reason.txt");
    eventually("the bad files to be quarantined", WAIT, || async {
        (note.exists() && agent.quarantine_dir().join("broken.jpg").exists()).then_some(())
    })
    .await;
    let reason = std::fs::read_to_string(&note).unwrap();
    assert!(reason.contains("not an image format"), "{reason}");
    let status = agent.status();
    assert!(status.contains("quarantined files: 2"), "{status}");
    assert!(status.contains("broken.jpg"), "{status}");

    // Still working: a good packet after the bad files goes through.
    let (_, cover_png) = server
        .get_bytes(&format!("/documents/{id}/cover.png"))
        .await;
    agent.drop_file("good_0001.png", &cover_png);
    agent.drop_file("good_0002.png", &scan::png(&scan::text_page(4)));
    server.wait_for_status(id, "matched", WAIT).await;
}

#[tokio::test]
async fn paper_that_arrives_before_its_document_waits_and_binds_late() {
    let server = TestServer::start();
    server
        .put("/schemes/all-match", json!({"mode": "match"}))
        .await;
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();

    let code = imc_shared::CoverCode::issue(0x0123_4567_89AB).to_string();
    let cover = scan::degrade(
        &scan::barcode_page(&code),
        &Degrade {
            dpi: 200,
            skew_degrees: -1.0,
            noise: 8,
            jpeg_quality: 75,
        },
        7,
    );
    agent.drop_file("early_0001.jpg", &cover);
    agent.drop_file("early_0002.png", &scan::png(&scan::text_page(11)));

    let packet = eventually("an unmatched packet", WAIT, || async {
        let (_, list) = server.get("/packets?state=unmatched").await;
        list["packets"].as_array().and_then(|p| p.first().cloned())
    })
    .await;
    assert_eq!(packet["cover_code"], code.as_str());
    assert_eq!(packet["page_count"], 2);
    assert!(
        packet["reason"]
            .as_str()
            .unwrap()
            .contains("names no document"),
        "{packet}"
    );

    // The ERP pushes the document with that cover code later: it attaches at once.
    let (status, doc) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "LATE-1", "doc_type": "expense", "org": "HQ", "cover_code": code}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["status"], "matched");
    let (_, list) = server.get("/packets?state=unmatched").await;
    assert_eq!(list["packets"].as_array().map(Vec::len), Some(0));

    // The desk hears about it on the same connection, and about a rejection too.
    eventually("the desk to hear of the late match", WAIT, || async {
        agent
            .status()
            .contains("matched to document LATE-1 when it was created")
            .then_some(())
    })
    .await;
    let id = doc["id"].as_i64().unwrap();
    let (status, _) = server
        .post(
            &format!("/documents/{id}/reject"),
            json!({"reason": "blurred receipt"}),
        )
        .await;
    assert_eq!(status, 200);
    eventually("the desk to hear of the rejection", WAIT, || async {
        agent
            .status()
            .contains("sign-off rejected the paper: blurred receipt")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn pages_without_a_cover_are_matched_by_hand() {
    let server = TestServer::start();
    let doc = server.match_document("EXP-0003").await;
    let id = doc["id"].as_i64().unwrap();
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();
    agent.drop_file("stray.png", &scan::png(&scan::text_page(21)));

    let packet = eventually("a coverless unmatched packet", WAIT, || async {
        let (_, list) = server.get("/packets?state=unmatched").await;
        list["packets"].as_array().and_then(|p| p.first().cloned())
    })
    .await;
    assert!(packet["cover_code"].is_null());
    let packet_id = packet["id"].as_str().unwrap();

    let (status, body) = server
        .post(
            &format!("/packets/{packet_id}/match"),
            json!({"document_id": id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "matched");
    assert_eq!(body["images"].as_array().map(Vec::len), Some(1));
    // A packet is matched once.
    let (status, body) = server
        .post(
            &format!("/packets/{packet_id}/match"),
            json!({"document_id": id}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
}
