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
    // By cover code (影像编码), single and bulk: the same answers.
    let (_, doc) = server.get(&format!("/documents/{id}")).await;
    let code = doc["cover_code"].as_str().unwrap().to_owned();
    let (status, found) = server.get(&format!("/documents?cover_code={code}")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["documents"][0]["id"], id);
    let (status, bulk) = server
        .post(
            "/documents/status:query",
            json!({"cover_codes": [code, "IMCNOSUCH"]}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["results"][0]["id"], id);
    assert_eq!(bulk["not_found"], json!(["IMCNOSUCH"]));
    let (status, body) = server
        .post(
            "/documents/status:query",
            json!({"doc_nos": ["IDEM-1"], "cover_codes": [code]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = server.get("/documents").await;
    assert_eq!(status, 400);
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

/// Posts `body` as it is: a `serde_json::Value` would already have turned
/// the amounts into floats.
async fn post_text(server: &TestServer, path: &str, body: &str) -> (u16, Value) {
    let r = server
        .client
        .post(server.url(path))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn amounts_are_stored_and_returned_exactly_as_sent() {
    let server = TestServer::start();
    for (n, amount, kept) in [
        (1, "123456789012345.67", "123456789012345.67"),
        (2, "1280.50", "1280.50"),
        (3, r#"" 1280.50 ""#, "1280.50"),
        (4, "-0.000001", "-0.000001"),
    ] {
        let body = format!(
            r#"{{"source_system":"ERP","doc_no":"AMT-{n}","doc_type":"x","org":"HQ","amount":{amount}}}"#
        );
        let (status, created) = post_text(&server, "/documents", &body).await;
        assert_eq!(status, 201, "{amount}: {created}");
        let (_, doc) = server.get(&format!("/documents/{}", created["id"])).await;
        assert_eq!(doc["amount"], kept, "{amount}: {doc}");
    }
    for amount in [
        "1e2",
        "1E+2",
        r#""+5""#,
        r#""1 000""#,
        "1.1234567",
        "1234567890123456",
        r#""12,5""#,
        "true",
        "[1]",
    ] {
        let body = format!(
            r#"{{"source_system":"ERP","doc_no":"AMT-BAD","doc_type":"x","org":"HQ","amount":{amount}}}"#
        );
        let (status, error) = post_text(&server, "/documents", &body).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (400, Some("amount")),
            "{amount}: {error}"
        );
    }
}

#[tokio::test]
async fn identifiers_with_controls_or_bidi_overrides_are_400_naming_the_field() {
    let server = TestServer::start();
    let base = json!({"source_system": "ERP", "doc_no": "TXT-1", "doc_type": "x", "org": "HQ"});
    // Every identifier field refuses the right-to-left override, NUL and
    // escape; and the other bidi and C1 characters besides.
    let mut cases: Vec<(&str, String)> = Vec::new();
    for field in [
        "source_system",
        "doc_no",
        "doc_type",
        "org",
        "cover_code",
        "submitter",
    ] {
        for bad in ['\u{202e}', '\u{0}', '\u{1b}'] {
            cases.push((field, format!("A{bad}B")));
        }
    }
    for (field, value) in [
        ("doc_no", "INV-\u{202e}1-VNI"),
        ("org", "HQ\u{2066}"),
        ("doc_type", "x\u{85}y"),
        ("source_system", "ERP\u{200f}"),
        ("submitter", "zhang\u{1b}[31m"),
        ("cover_code", "IMC\u{61c}X"),
    ] {
        cases.push((field, value.to_owned()));
    }
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = json!(value);
        let (status, error) = server.post("/documents", body).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (400, Some(field)),
            "{value:?}: {error}"
        );
    }
    // A title is cleaned instead: NFC, no controls or bidi formatting.
    let mut body = base.clone();
    body["title"] = json!("Cafe\u{301} \u{202e}trip\u{7}");
    let (status, created) = server.post("/documents", body).await;
    assert_eq!(status, 201, "{created}");
    let (_, doc) = server.get(&format!("/documents/{}", created["id"])).await;
    assert_eq!(doc["title"], "Caf\u{e9} trip");

    for metadata in [
        json!([1, 2]),
        json!("x"),
        json!({"blob": "x".repeat(20_000)}),
    ] {
        let mut body = base.clone();
        body["doc_no"] = json!("TXT-2");
        body["metadata"] = metadata;
        let (status, error) = server.post("/documents", body).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (400, Some("metadata")),
            "{error}"
        );
    }

    // The same three on every other identifier the API takes: scheme
    // filters, token names and sources, an agent's name and version, a
    // webhook's source system; and the other bidi overrides besides.
    let code = server.enrollment_code("txt-site").await;
    for bad in ['\u{202e}', '\u{0}', '\u{1b}', '\u{202d}', '\u{2067}'] {
        let value = format!("A{bad}B");
        let refusals = [
            (
                "org",
                server
                    .put("/schemes/s1", json!({"mode": "match", "org": value}))
                    .await,
            ),
            (
                "doc_type",
                server
                    .put("/schemes/s1", json!({"mode": "match", "doc_type": value}))
                    .await,
            ),
            (
                "name",
                server
                    .post("/tokens", json!({"name": value, "scopes": ["read"]}))
                    .await,
            ),
            (
                "source_systems",
                server
                    .post(
                        "/tokens",
                        json!({"name": "t1", "scopes": ["read"], "source_systems": [value]}),
                    )
                    .await,
            ),
            (
                "name",
                server
                    .post("/agents/enroll", json!({"code": code, "name": value}))
                    .await,
            ),
            (
                "agent_version",
                server
                    .post(
                        "/agents/enroll",
                        json!({"code": code, "name": "desk-1", "agent_version": value}),
                    )
                    .await,
            ),
            (
                "source_system",
                server
                    .put(
                        &format!("/webhooks/{}", percent_encode(&value)),
                        json!({"url": "https://erp.example.com/hook", "secret": "s3cret-s3cret-s3cret"}),
                    )
                    .await,
            ),
        ];
        for (field, (status, error)) in refusals {
            assert_eq!(
                (status, error["error"]["field"].as_str()),
                (400, Some(field)),
                "{field} = {value:?}: {error}"
            );
        }
    }
    // Nothing refused used the code up.
    let (status, agent) = server
        .post("/agents/enroll", json!({"code": code, "name": "desk-1"}))
        .await;
    assert_eq!(
        (status, agent["site"].as_str()),
        (200, Some("txt-site")),
        "{agent}"
    );
}

/// Every byte outside unreserved ASCII as %XX, so a control character
/// reaches the route as the caller typed it.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn webhook_urls_must_be_plain_http_urls() {
    let server = TestServer::start();
    let secret = "s3cret-s3cret-s3cret";
    for url in [
        "ftp://erp.example.com/hook",
        "https://erp.exa\nmple.com/hook",
        "https://erp.example.com/hook\r\nX-Evil: 1",
        "https://erp.example.com/\u{202e}",
        "not a url",
    ] {
        let (status, error) = server
            .put("/webhooks/ERP", json!({"url": url, "secret": secret}))
            .await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (400, Some("url")),
            "{url:?}: {error}"
        );
    }
    let (status, view) = server
        .put(
            "/webhooks/ERP",
            json!({"url": "https://erp.example.com/hook", "secret": secret}),
        )
        .await;
    assert_eq!(
        (status, view["url"].as_str()),
        (200, Some("https://erp.example.com/hook"))
    );
}

/// Schemes are listed, read one by one and deleted; a deleted scheme no
/// longer decides the mode, and documents keep the mode they were made with.
#[tokio::test]
async fn schemes_are_listed_read_and_deleted() {
    let server = TestServer::start();
    for (name, body) in [
        ("all-match", json!({"mode": "match"})),
        ("payables", json!({"doc_type": "payable", "mode": "sync"})),
    ] {
        let (status, body) = server.put(&format!("/schemes/{name}"), body).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, list) = server.get("/schemes").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["schemes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["all-match", "payables"]);
    let (status, one) = server.get("/schemes/payables").await;
    assert_eq!((status, one["mode"].as_str()), (200, Some("sync")));
    let (status, body) = server.get("/schemes/nope").await;
    assert_eq!(status, 404, "{body}");

    let before = server.match_document("SCH-1").await;
    let (status, _) = server.delete("/schemes/all-match").await;
    assert_eq!(status, 204);
    let (status, body) = server.delete("/schemes/all-match").await;
    assert_eq!(status, 404, "{body}");
    let (status, after) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "SCH-2", "doc_type": "expense", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201, "{after}");
    assert_eq!(after["mode"], "basic", "no scheme left for it");
    let (_, kept) = server.get(&format!("/documents/{}", before["id"])).await;
    assert_eq!(kept["mode"], "match");
}

/// Scheme rules: a rule IMC does not know is refused when the scheme is
/// saved; `require_attachment_count` refuses a cover push without the count.
#[tokio::test]
async fn scheme_rules_are_checked_and_a_required_count_is_enforced() {
    let server = TestServer::start();
    let (status, body) = server
        .put(
            "/schemes/typo",
            json!({"mode": "match", "rules": {"require_attachement_count": true}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "rules");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("require_attachement_count"),
        "{body}"
    );
    let (status, _) = server.get("/schemes/typo").await;
    assert_eq!(status, 404, "nothing saved");

    let (status, body) = server
        .put(
            "/schemes/expenses",
            json!({"doc_type": "expense", "mode": "match", "rules": {"require_attachment_count": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let push = |doc_no: &str, count: Option<u32>| {
        let mut body =
            json!({"source_system": "ERP", "doc_no": doc_no, "doc_type": "expense", "org": "HQ"});
        if let Some(n) = count {
            body["attachment_count"] = n.into();
        }
        body
    };
    let (status, body) = server.post("/documents", push("REQ-1", None)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "attachment_count");
    let (status, body) = server.post("/documents", push("REQ-1", Some(2))).await;
    assert_eq!(status, 201, "{body}");
    // Another type is not under that scheme.
    let (status, body) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "REQ-2", "doc_type": "payable", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
