//! Retention of image bytes on a real server: a retention "day" shortened to
//! one second (`IMC_TEST_RETENTION_DAY_SECS`, test only), the task every
//! second and a one-second grace (test-only variables: a real grace is at
//! least a minute). A signed-off document's image bytes are
//! purged (410 with when and why, on the API and the desk), a document still
//! in progress keeps them, and `/metrics` counts the purge.

use crate::harness::{TestAgent, TestServer, bin, desk_login, eventually, sha256_hex};
use crate::scan;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "desk-password-1";

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn blob_file(server: &TestServer, sha: &str) -> std::path::PathBuf {
    server.data_dir.join("blobs").join(&sha[..2]).join(sha)
}

/// A desk session cookie for a new sign-off user.
async fn desk_session(server: &TestServer) -> String {
    let output = Command::new(bin("imc-server"))
        .args(["user", "add", "--data-dir"])
        .arg(&server.data_dir)
        .args(["--name", "li", "--role", "signoff", "--password", PASSWORD])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    desk_login(&server.base, "li", PASSWORD).await
}

#[tokio::test]
async fn final_documents_lose_their_image_bytes_and_documents_in_progress_keep_theirs() {
    let server = TestServer::start_with_env(
        "127.0.0.1:0",
        &[
            ("IMC_TEST_RETENTION_DAY_SECS", "1"),
            ("IMC_RETENTION_INTERVAL_SECS", "1"),
            ("IMC_TEST_BLOB_DELETE_GRACE_SECS", "1"),
        ],
    );
    let signed = server.match_document("RET-1").await["id"].as_i64().unwrap();
    let waiting = server.match_document("RET-2").await["id"].as_i64().unwrap();
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();
    let pages = [
        scan::png(&scan::text_page(21)),
        scan::png(&scan::text_page(22)),
    ];
    for (i, id) in [signed, waiting].into_iter().enumerate() {
        let (_, cover) = server
            .get_bytes(&format!("/documents/{id}/cover.png"))
            .await;
        agent.drop_file(&format!("ret_{i}_1.png"), &cover);
        agent.drop_file(&format!("ret_{i}_2.png"), &pages[i]);
        server.wait_for_status(id, "matched", WAIT).await;
    }
    let (status, _) = server
        .post(&format!("/documents/{signed}/sign-off"), json!({}))
        .await;
    assert_eq!(status, 200);
    // Off by default: nothing happens until the setting is on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, doc) = server.get(&format!("/documents/{signed}")).await;
    assert!(doc["images"][0].get("purged").is_none(), "{doc}");
    let (status, settings) = server
        .put("/settings", json!({"image_retention_days": 2}))
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["image_retention_days"], 2);

    let doc: Value = eventually("the signed-off document's images purged", WAIT, || async {
        let (_, doc) = server.get(&format!("/documents/{signed}")).await;
        doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("purged").is_some())
            .then_some(doc)
    })
    .await;
    assert_eq!(doc["status"], "ready", "the document itself stays");
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[1]["sha256"], sha256_hex(&pages[0]), "SHA-256 kept");
    for image in images {
        let url = image["url"].as_str().unwrap().trim_start_matches("/api/v1");
        let (status, body) = server.get(url).await;
        assert_eq!(status, 410, "{body}");
        assert_eq!(body["error"]["code"], "purged");
        let reason = body["error"]["purged"]["reason"].as_str().unwrap();
        assert!(reason.contains("retention"), "{body}");
        assert_eq!(body["error"]["purged"]["at"], image["purged"]["at"]);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("purged")
        );
    }
    let (_, audit) = server.get(&format!("/documents/{signed}/audit")).await;
    assert!(audit.to_string().contains("images.purge"), "{audit}");

    // The document in progress keeps its bytes.
    let (_, kept) = server.get(&format!("/documents/{waiting}")).await;
    for image in kept["images"].as_array().unwrap() {
        assert!(image.get("purged").is_none(), "{kept}");
        let url = image["url"].as_str().unwrap().trim_start_matches("/api/v1");
        let (status, bytes) = server.get_bytes(url).await;
        assert_eq!(status, 200);
        assert_eq!(sha256_hex(&bytes), image["sha256"].as_str().unwrap());
    }
    // After the grace period the purged blobs are gone from the folder.
    let gone = images[1]["sha256"].as_str().unwrap().to_owned();
    eventually("the purged blob deleted", WAIT, || async {
        (!blob_file(&server, &gone).exists()).then_some(())
    })
    .await;
    let kept_sha = kept["images"][1]["sha256"].as_str().unwrap();
    assert!(blob_file(&server, kept_sha).exists());

    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&metrics, "imc_images_purged_total"),
        Some(2.0),
        "{metrics}"
    );

    // The desk shows the purge instead of a broken image.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = desk_session(&server).await;
    let id = images[1]["id"].as_i64().unwrap();
    let thumb = client
        .get(format!("{}/ui/images/{id}/thumb", server.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 410);
    assert_eq!(thumb.headers()["content-type"], "image/svg+xml");
    assert!(thumb.text().await.unwrap().contains("Image purged"));
    let page = client
        .get(format!("{}/ui/documents/{signed}", server.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("purged by retention"), "{page}");
}
