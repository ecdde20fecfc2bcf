//! Declared attachment counts (附件张数) with a real agent: the count is
//! printed in the cover's QR, and once the packet is matched the document
//! says whether the non-blank pages after the cover agree with it.

use crate::harness::{TestAgent, TestServer};
use crate::scan;
use image::{GrayImage, Luma};
use serde_json::{Value, json};
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

#[tokio::test]
async fn matched_packets_are_checked_against_the_declared_count() {
    let server = TestServer::start();
    let short = document(&server, "ATT-SHORT", Some(3)).await;
    let exact = document(&server, "ATT-EXACT", Some(2)).await;
    let plain = document(&server, "ATT-PLAIN", None).await;
    let blank = scan::png(&GrayImage::from_pixel(1240, 1754, Luma([255])));

    // One batch, as a scanner writes it: each cover and the sheets behind it.
    let mut files = vec![server.cover_scan(&short).await];
    files.extend((0..2).map(|n| scan::png(&scan::text_page(700 + n))));
    files.push(server.cover_scan(&exact).await);
    files.extend((0..2).map(|n| scan::png(&scan::text_page(710 + n))));
    files.push(blank);
    files.push(server.cover_scan(&plain).await);
    files.push(scan::png(&scan::text_page(720)));

    let mut agent = TestAgent::enroll(&server).await;
    let at = SystemTime::now() - Duration::from_secs(60);
    for (n, bytes) in files.iter().enumerate() {
        let path = agent.drop_file(&format!("scan_{:02}.png", n + 1), bytes);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(at))
            .unwrap();
    }
    agent.start();

    let mut views = Vec::new();
    for doc in [&short, &exact, &plain] {
        let id = doc["id"].as_i64().unwrap();
        server.wait_for_status(id, "matched", WAIT).await;
        let (status, view) = server.get(&format!("/documents/{id}")).await;
        assert_eq!(status, 200);
        views.push(view);
    }
    assert_eq!(views[0]["attachment_count"], 3);
    assert_eq!(
        views[0]["attachment_check"],
        json!({"declared": 3, "scanned": 2, "verdict": "missing"}),
        "{}",
        views[0]
    );
    assert_eq!(views[1]["images"].as_array().unwrap().len(), 4);
    assert_eq!(
        views[1]["attachment_check"],
        json!({"declared": 2, "scanned": 2, "verdict": "ok"}),
        "cover and blank back not counted: {}",
        views[1]
    );
    assert_eq!(views[2]["attachment_count"], Value::Null);
    assert_eq!(views[2]["attachment_check"], Value::Null, "{}", views[2]);

    // By doc_no too.
    let (_, found) = server.get("/documents?doc_no=ATT-SHORT").await;
    assert_eq!(
        found["documents"][0]["attachment_check"]["verdict"],
        "missing"
    );
}

#[tokio::test]
async fn an_attachment_count_that_is_not_a_whole_number_in_range_is_400() {
    let server = TestServer::start();
    for (n, bad) in [json!("3"), json!(3.5), json!(-1), json!(10_001)]
        .into_iter()
        .enumerate()
    {
        let body = json!({"source_system": "ERP", "doc_no": format!("BAD-{n}"), "doc_type": "expense",
                          "org": "HQ", "attachment_count": bad});
        let (status, body) = server.post("/documents", body).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("attachment_count")),
            "{bad}: {body}"
        );
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
    }
    // null is no count; the limit itself is fine; the same key again is the
    // same document.
    let body = json!({"source_system": "ERP", "doc_no": "OK-1", "doc_type": "expense", "org": "HQ",
                      "attachment_count": null});
    let (status, doc) = server.post("/documents", body).await;
    assert_eq!(status, 201, "{doc}");
    let body = json!({"source_system": "ERP", "doc_no": "OK-2", "doc_type": "expense", "org": "HQ",
                      "attachment_count": 10_000});
    let (status, first) = server.post("/documents", body.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = server.post("/documents", body).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    let id = first["id"].as_i64().unwrap();
    let (_, view) = server.get(&format!("/documents/{id}")).await;
    assert_eq!(view["attachment_count"], 10_000);
    assert_eq!(view["attachment_check"], Value::Null);
}
