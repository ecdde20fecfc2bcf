//! The capture API of basic mode: images uploaded straight onto a document.

use crate::harness::{TOKEN, TestServer};
use crate::scan;
use serde_json::{Value, json};

#[tokio::test]
async fn basic_mode_documents_are_ready_once_an_image_is_uploaded() {
    let server = TestServer::start();
    let (status, doc) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "B-1", "doc_type": "misc", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(doc["mode"], "basic", "no scheme means basic");
    let id = doc["id"].as_i64().unwrap();

    let page = scan::png(&scan::text_page(5));
    let upload = |body: Vec<u8>| {
        server
            .client
            .post(server.url(&format!("/documents/{id}/images")))
            .bearer_auth(TOKEN)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    let r = upload(b"GIF89a not really".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = upload(page.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let image: Value = r.json().await.unwrap();
    assert_eq!(image["content_type"], "image/png");
    assert_eq!(server.status_of(id).await, "ready");

    let (_, served) = server.get_bytes(&format!("/images/{}", image["id"])).await;
    assert_eq!(served, page);

    let (status, _) = server
        .post(
            &format!("/documents/{id}/cancel"),
            json!({"reason": "duplicate"}),
        )
        .await;
    assert_eq!(status, 200);
    let r = upload(page).await.unwrap();
    assert_eq!(r.status(), 409, "a cancelled document takes no images");
}
