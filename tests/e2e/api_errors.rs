//! What a careless or hostile API caller gets back: clear JSON errors.

use crate::harness::{TOKEN, TestServer};
use serde_json::{Value, json};

#[tokio::test]
async fn callers_without_a_valid_token_get_401() {
    let server = TestServer::start();
    let r = server
        .client
        .get(server.url("/documents/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let r = server
        .client
        .get(server.url("/documents/1"))
        .bearer_auth("imc_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = server
        .client
        .get(format!("{}/api/v1/agent/uplink", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the uplink refuses before upgrading");
}

#[tokio::test]
async fn unknown_things_are_404_with_a_json_body() {
    let server = TestServer::start();
    let (status, body) = server.get("/documents/424242").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("424242"),
        "{body}"
    );
    let (status, body) = server.get("/no-such-route").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = server.get("/images/99").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field() {
    let server = TestServer::start();
    let (status, body) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_type": "expense", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("doc_no"),
        "{body}"
    );

    let (status, body) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": " ", "doc_type": "x", "org": "HQ"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("doc_no"))
    );

    let (status, body) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "A1", "doc_type": "x", "org": "HQ", "amount": "12,5"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("amount"))
    );

    let (status, body) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "A1", "doc_type": "x", "org": "HQ", "cover_code": "not-a-cover"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("cover_code"))
    );

    let r = server
        .client
        .post(server.url("/documents"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");

    let (status, body) = server.put("/schemes/x", json!({"mode": "telepathy"})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn documents_are_idempotent_on_their_key_and_transitions_are_checked() {
    let server = TestServer::start();
    let doc = server.match_document("IDEM-1").await;
    let body =
        json!({"source_system": "ERP", "doc_no": "IDEM-1", "doc_type": "expense", "org": "HQ"});
    let (status, again) = server.post("/documents", body).await;
    assert_eq!(status, 200);
    assert_eq!(
        (again["id"].clone(), again["cover_code"].clone()),
        (doc["id"].clone(), doc["cover_code"].clone())
    );

    let id = doc["id"].as_i64().unwrap();
    let (status, body) = server
        .post(&format!("/documents/{id}/sign-off"), json!({}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["current_status"], "awaiting_images");
    let (status, body) = server
        .post(&format!("/documents/{id}/reject"), json!({"reason": "  "}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("reason"))
    );

    let (status, bulk) = server
        .post(
            "/documents/status:query",
            json!({"doc_nos": ["IDEM-1", "NOPE"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(bulk["results"][0]["status"], "awaiting_images");
    assert_eq!(bulk["not_found"], json!(["NOPE"]));
    let ids: Vec<i64> = (0..1001).collect();
    let (status, _) = server
        .post("/documents/status:query", json!({ "ids": ids }))
        .await;
    assert_eq!(status, 400);

    let (status, pdf) = server
        .get_bytes(&format!("/documents/{id}/cover.pdf"))
        .await;
    assert_eq!(status, 200);
    assert!(pdf.starts_with(b"%PDF-"));
}

#[tokio::test]
async fn wrong_types_and_oversize_bodies_are_refused_and_change_nothing() {
    let server = TestServer::start();
    let (status, body) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": 5, "doc_type": "x", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "doc_no", "{body}");

    let (status, doc) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "BIG-1", "doc_type": "x", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201);
    let id = doc["id"].as_i64().unwrap();
    let (status, body) = server
        .put("/settings", json!({"max_image_bytes": 2048}))
        .await;
    assert_eq!(status, 200, "{body}");
    let page = crate::scan::png(&crate::scan::text_page(8));
    assert!(page.len() > 2048);
    let r = server
        .client
        .post(server.url(&format!("/documents/{id}/images")))
        .bearer_auth(TOKEN)
        .body(page)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (_, st) = server.get(&format!("/documents/{id}/status")).await;
    assert_eq!(
        (st["status"].as_str(), st["image_count"].as_u64()),
        (Some("awaiting_images"), Some(0))
    );
}
