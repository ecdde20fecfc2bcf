//! The document lifecycle through real HTTP: every mode, every transition
//! (valid and refused), settings, webhooks, the audit chain and the
//! duplicate-invoice flag.

use crate::harness::{TOKEN, TestAgent, TestServer, bin, eventually};
use crate::scan;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn create(server: &TestServer, doc_no: &str, doc_type: &str) -> i64 {
    let (status, doc) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": doc_no, "doc_type": doc_type, "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    doc["id"].as_i64().unwrap()
}

async fn upload(server: &TestServer, id: i64, query: &str, source: Option<&str>) -> (u16, Value) {
    let mut req = server
        .client
        .post(server.url(&format!("/documents/{id}/images{query}")))
        .bearer_auth(TOKEN)
        .body(scan::png(&scan::text_page(id as u64)));
    if let Some(source) = source {
        req = req.header("X-IMC-Source", source);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Asserts a call is refused with 409 naming the document's current status.
fn refused(what: &str, (status, body): (u16, Value), current: &str) {
    assert_eq!(status, 409, "{what}: {body}");
    assert_eq!(
        body["error"]["code"], "invalid_transition",
        "{what}: {body}"
    );
    assert_eq!(body["error"]["current_status"], current, "{what}: {body}");
}

async fn decide(server: &TestServer, id: i64, action: &str, reason: Option<&str>) -> (u16, Value) {
    let body = reason.map_or(json!({}), |r| json!({ "reason": r }));
    server
        .post(&format!("/documents/{id}/{action}"), body)
        .await
}

async fn actions(server: &TestServer, id: i64) -> Vec<String> {
    let (status, audit) = server.get(&format!("/documents/{id}/audit")).await;
    assert_eq!(status, 200, "{audit}");
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn settings_are_validated_and_updated_partially() {
    let server = TestServer::start();
    let (status, defaults) = server.get("/settings").await;
    assert_eq!(status, 200, "{defaults}");
    assert_eq!(defaults["webhook_retry"]["max_attempts"], 10);
    assert!(defaults["cover_code_patterns"].as_array().unwrap().len() == 1);

    let patterns = json!(["^IMC[0-9A-HJKMNP-TV-Z]{10}$", "^KD-[0-9]{8}$"]);
    let (status, after) = server
        .put(
            "/settings",
            json!({"cover_code_patterns": patterns, "webhook_retry": {"base_delay_secs": 2}}),
        )
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["cover_code_patterns"], patterns);
    assert_eq!(after["webhook_retry"]["base_delay_secs"], 2);
    assert_eq!(after["webhook_retry"]["max_attempts"], 10, "kept");
    assert_eq!(after["retention_days"], defaults["retention_days"], "kept");
    let (_, again) = server.get("/settings").await;
    assert_eq!(again, after);

    // An ERP code in the new format is now accepted.
    let (status, doc) = server
        .post(
            "/documents",
            json!({"source_system": "KD", "doc_no": "P-1", "doc_type": "pay", "org": "HQ", "cover_code": "KD-20240101"}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");

    for (body, field) in [
        (
            json!({"cover_code_patterns": ["(unclosed"]}),
            "cover_code_patterns",
        ),
        (json!({"cover_code_patterns": []}), "cover_code_patterns"),
        (
            json!({"accepted_content_types": ["image/gif"]}),
            "accepted_content_types",
        ),
        (json!({"max_image_bytes": 1}), "max_image_bytes"),
        (
            json!({"webhook_retry": {"max_attempts": 0}}),
            "webhook_retry.max_attempts",
        ),
        (json!({"retention_days": "long"}), "retention_days"),
    ] {
        let (status, err) = server.put("/settings", body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    let (status, _) = server.put("/settings", json!({"colour": "blue"})).await;
    assert_eq!(status, 400, "unknown fields are refused");
    let (_, unchanged) = server.get("/settings").await;
    assert_eq!(unchanged, after, "nothing half-written");

    // Accepted types and the size limit apply to the capture API.
    let id = create(&server, "B-SET", "misc").await;
    server
        .put(
            "/settings",
            json!({"accepted_content_types": ["image/jpeg"]}),
        )
        .await;
    let (status, body) = upload(&server, id, "", None).await;
    assert_eq!(status, 400, "a PNG is no longer accepted: {body}");
}

#[tokio::test]
async fn basic_and_sync_modes_become_ready_on_upload_and_refuse_sign_off() {
    let server = TestServer::start();
    let (status, _) = server
        .put(
            "/schemes/invoices",
            json!({"doc_type": "invoice", "mode": "sync"}),
        )
        .await;
    assert_eq!(status, 200);

    // Basic: awaiting_images -> ready (upload) -> ready (another upload) -> cancelled.
    let basic = create(&server, "B-1", "misc").await;
    for action in ["sign-off", "reject", "unsign"] {
        refused(
            action,
            decide(&server, basic, action, Some("r")).await,
            "awaiting_images",
        );
    }
    assert_eq!(upload(&server, basic, "", None).await.0, 201);
    assert_eq!(server.status_of(basic).await, "ready");
    assert_eq!(upload(&server, basic, "", None).await.0, 201);
    for action in ["sign-off", "reject", "unsign"] {
        refused(
            action,
            decide(&server, basic, action, Some("r")).await,
            "ready",
        );
    }
    assert_eq!(decide(&server, basic, "cancel", None).await.0, 200);
    refused(
        "upload",
        upload(&server, basic, "", None).await,
        "cancelled",
    );
    refused(
        "cancel",
        decide(&server, basic, "cancel", None).await,
        "cancelled",
    );
    assert_eq!(
        actions(&server, basic).await,
        [
            "document.create",
            "images.upload",
            "images.receive",
            "images.upload",
            "images.receive",
            "cancel"
        ]
    );

    // Sync: images pushed by another system, named by query or header.
    let sync = create(&server, "INV-1", "invoice").await;
    let (_, doc) = server.get(&format!("/documents/{sync}")).await;
    assert_eq!(doc["mode"], "sync");
    let (status, body) = upload(&server, sync, "?source=invoice-receiving", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(server.status_of(sync).await, "ready");
    assert_eq!(upload(&server, sync, "", Some("ocr-hub")).await.0, 201);
    let (_, audit) = server.get(&format!("/documents/{sync}/audit")).await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[1]["action"], "images.sync");
    assert_eq!(entries[1]["from_status"], "awaiting_images");
    assert_eq!(entries[1]["to_status"], "ready");
    assert_eq!(entries[1]["reason"], "pushed by invoice-receiving");
    assert_eq!(entries[2]["action"], "images.receive");
    assert_eq!(entries[3]["reason"], "pushed by ocr-hub");
    refused(
        "sign-off",
        decide(&server, sync, "sign-off", None).await,
        "ready",
    );
    let (status, body) = upload(&server, sync, "?colour=red", None).await;
    assert_eq!(status, 400, "unknown query fields are refused: {body}");
    assert_eq!(decide(&server, sync, "cancel", Some("dup")).await.0, 200);
    refused("upload", upload(&server, sync, "", None).await, "cancelled");
}

/// Drops a page and returns the id of the unmatched packet it became.
async fn packet(
    server: &TestServer,
    agent: &TestAgent,
    seen: &mut HashSet<String>,
    page: &[u8],
) -> String {
    let name = format!("scan_{:04}.png", seen.len());
    agent.drop_file(&name, page);
    let id = eventually("a new unmatched packet", WAIT, || async {
        let (_, list) = server.get("/packets?state=unmatched").await;
        list["packets"]
            .as_array()?
            .iter()
            .filter_map(|p| p["id"].as_str())
            .find(|id| !seen.contains(*id))
            .map(str::to_owned)
    })
    .await;
    seen.insert(id.clone());
    id
}

async fn attach(server: &TestServer, packet: &str, id: i64, mode: Option<&str>) -> (u16, Value) {
    let mut body = json!({ "document_id": id });
    if let Some(mode) = mode {
        body["mode"] = json!(mode);
    }
    server.post(&format!("/packets/{packet}/match"), body).await
}

fn image_count(doc: &Value) -> usize {
    doc["images"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn match_mode_goes_through_every_transition() {
    let server = TestServer::start();
    let id = server.match_document("M-1").await["id"].as_i64().unwrap();
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();
    let mut seen = HashSet::new();

    // awaiting_images: no decision applies, uploads are refused.
    for action in ["sign-off", "reject", "unsign"] {
        refused(
            action,
            decide(&server, id, action, Some("r")).await,
            "awaiting_images",
        );
    }
    refused(
        "upload",
        upload(&server, id, "", None).await,
        "awaiting_images",
    );

    // awaiting_images -> matched
    let p1 = packet(&server, &agent, &mut seen, &scan::png(&scan::text_page(31))).await;
    let (status, doc) = attach(&server, &p1, id, None).await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (200, Some("matched")),
        "{doc}"
    );
    refused(
        "unsign",
        decide(&server, id, "unsign", Some("r")).await,
        "matched",
    );
    refused("upload", upload(&server, id, "", None).await, "matched");

    // matched -> rejected (a reason is required)
    assert_eq!(decide(&server, id, "reject", Some(" ")).await.0, 400);
    let (status, doc) = decide(&server, id, "reject", Some("page 2 missing")).await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (200, Some("rejected")),
        "{doc}"
    );
    assert_eq!(doc["reject_reason"], "page 2 missing");
    for action in ["sign-off", "reject", "unsign"] {
        refused(
            action,
            decide(&server, id, action, Some("r")).await,
            "rejected",
        );
    }

    // rejected -> matched by a supplement: pages are added.
    let p2 = packet(&server, &agent, &mut seen, &scan::png(&scan::text_page(32))).await;
    let (status, doc) = attach(&server, &p2, id, Some("supplement")).await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (200, Some("matched")),
        "{doc}"
    );
    assert_eq!(image_count(&doc), 2);

    // matched -> rejected -> matched by a rescan: pages are replaced.
    assert_eq!(decide(&server, id, "reject", Some("blurred")).await.0, 200);
    let p3 = packet(&server, &agent, &mut seen, &scan::png(&scan::text_page(33))).await;
    let (status, doc) = attach(&server, &p3, id, Some("rescan")).await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (200, Some("matched")),
        "{doc}"
    );
    assert_eq!(image_count(&doc), 1, "{doc}");

    // An unknown attach mode is a 400 naming the field.
    let p4 = packet(&server, &agent, &mut seen, &scan::png(&scan::text_page(34))).await;
    let (status, body) = attach(&server, &p4, id, Some("staple")).await;
    assert_eq!(status, 400, "{body}");

    // matched -> ready -> matched (revoke) -> ready
    let (status, doc) = decide(&server, id, "sign-off", None).await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (200, Some("ready")),
        "{doc}"
    );
    for action in ["sign-off", "reject"] {
        refused(
            action,
            decide(&server, id, action, Some("r")).await,
            "ready",
        );
    }
    refused("packet", attach(&server, &p4, id, None).await, "ready");
    assert_eq!(decide(&server, id, "unsign", Some("")).await.0, 400);
    let (status, doc) = decide(&server, id, "unsign", Some("wrong amount")).await;
    assert_eq!(
        (status, doc["status"].as_str()),
        (200, Some("matched")),
        "{doc}"
    );
    assert_eq!(decide(&server, id, "sign-off", None).await.0, 200);

    // ready -> cancelled: nothing more is accepted.
    assert_eq!(
        decide(&server, id, "cancel", Some("withdrawn")).await.0,
        200
    );
    for action in ["sign-off", "reject", "unsign", "cancel"] {
        refused(
            action,
            decide(&server, id, action, Some("r")).await,
            "cancelled",
        );
    }
    refused(
        "packet",
        attach(&server, &p4, id, Some("supplement")).await,
        "cancelled",
    );
    refused("upload", upload(&server, id, "", None).await, "cancelled");

    assert_eq!(
        actions(&server, id).await,
        [
            "document.create",
            "packet.match",
            "images.receive",
            "reject",
            "packet.supplement",
            "images.receive",
            "reject",
            "packet.rescan",
            "images.receive",
            "sign-off",
            "unsign",
            "sign-off",
            "cancel"
        ]
    );
    let (_, audit) = server.get(&format!("/documents/{id}/audit")).await;
    assert_eq!(audit["entries"][3]["reason"], "page 2 missing");
    assert!(
        audit["entries"][3]["actor"]
            .as_str()
            .unwrap()
            .starts_with("admin:")
    );

    // A scanned packet cannot go to a basic mode document.
    let basic = {
        server
            .put("/schemes/all-match", json!({"mode": "basic"}))
            .await;
        create(&server, "B-9", "misc").await
    };
    refused(
        "packet",
        attach(&server, &p4, basic, None).await,
        "awaiting_images",
    );
}

#[tokio::test]
async fn the_audit_chain_verifies_and_detects_an_edited_row() {
    let mut server = TestServer::start();
    let data_dir = server.data_dir.clone();
    let id = create(&server, "AUD-1", "misc").await;
    assert_eq!(upload(&server, id, "", None).await.0, 201);
    assert_eq!(decide(&server, id, "cancel", Some("typo")).await.0, 200);
    server.put("/settings", json!({"retention_days": 30})).await;
    server.kill();

    let verify = || {
        std::process::Command::new(bin("imc-server"))
            .args(["audit", "verify", "--data-dir"])
            .arg(&data_dir)
            .output()
            .unwrap()
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Five document and settings rows (the upload's receipt among them),
    // after the bootstrap token's creation.
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 6 rows"));

    let db = rusqlite::Connection::open(data_dir.join("imc.sqlite3")).unwrap();
    let row: i64 = db
        .query_row("SELECT id FROM audit WHERE action = 'cancel'", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE audit SET reason = 'nothing to see' WHERE id = ?1",
        [row],
    )
    .unwrap();
    drop(db);
    let out = verify();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("row {row}")), "{stderr}");
}
