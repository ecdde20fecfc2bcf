//! The scan desk's console, served by the real agent: driven in Debian's
//! headless Chromium by `tests/browser/console.mjs` through a whole day's
//! events (a match, an unknown cover, a rejection, a reprint, the server
//! going away, a short packet scanned offline), and probed over HTTP for
//! what it must refuse.
//!
//! `IMC_SCREENSHOTS=DIR` makes the browser script save the console there
//! in both languages (`scripts/screenshots.sh` uses it).

use crate::browser;
use crate::harness::{TestAgent, TestServer, bin, eventually, free_addr};
use crate::scan;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const REASON: &str = "Page 2 is blurred";

async fn document(server: &TestServer, doc_no: &str, attachments: u32, title: &str) -> Value {
    let (status, doc) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": doc_no, "doc_type": "expense", "org": "HQ",
                   "title": title, "amount": "1234.50", "submitter": "Zhang San",
                   "attachment_count": attachments}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    doc
}

/// An agent with its console on a free loopback port; returns its URL.
async fn agent_with_console(server: &TestServer) -> (TestAgent, String) {
    let agent = TestAgent::enroll(server).await;
    let addr = free_addr();
    agent.configure("console", addr.clone().into());
    (agent, format!("http://{addr}/"))
}

/// The CSRF token the console's page carries.
async fn console_token(client: &reqwest::Client, url: &str) -> String {
    let page = client.get(url).send().await.unwrap().text().await.unwrap();
    page.split("name=\"console-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

async fn console_up(url: &str) {
    let client = reqwest::Client::new();
    eventually("the console to answer", WAIT, || async {
        client
            .get(url)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn the_desk_console_in_a_real_browser() {
    let mut server = TestServer::start();
    let (status, _) = server
        .put("/schemes/all-match", json!({"mode": "match"}))
        .await;
    assert_eq!(status, 200);
    let doc_a = document(&server, "EXP-CON-0001", 2, "Travel to Shanghai").await;
    let doc_b = document(&server, "EXP-CON-0002", 3, "Office supplies").await;
    let cover_a = server.cover_scan(&doc_a).await;
    let cover_b = server.cover_scan(&doc_b).await;
    let id_a = doc_a["id"].as_i64().unwrap();

    let (mut agent, url) = agent_with_console(&server).await;
    agent.start();
    console_up(&url).await;
    // The desk's copy of its documents, fetched when the link came up.
    eventually("the desk's copy of its documents", WAIT, || async {
        agent.status().contains("link: connected").then_some(())
    })
    .await;

    let pdf_dir = tempfile::tempdir().unwrap();
    let pdf_out = pdf_dir.path().join("reprinted-cover.pdf");
    let env = [
        ("IMC_CONSOLE_URL", url.clone()),
        ("IMC_DOC_A", "EXP-CON-0001".to_owned()),
        ("IMC_DOC_B", "EXP-CON-0002".to_owned()),
        ("IMC_REJECT_REASON", REASON.to_owned()),
        ("IMC_COVER_PDF_OUT", pdf_out.display().to_string()),
    ];
    let limit = Duration::from_secs(180);
    browser::drive("console.mjs", &env, "CONSOLE OK", limit, async |line| {
        match line {
            "READY" => {
                agent.drop_file("a_0001.jpg", &cover_a);
                agent.drop_file("a_0002.png", &scan::png(&scan::text_page(51)));
                agent.drop_file("a_0003.png", &scan::png(&scan::text_page(52)));
            }
            "MATCHED" => {
                let code = imc_shared::CoverCode::issue(0x00C0_FFEE_0001).to_string();
                agent.drop_file("u_0001.png", &scan::png(&scan::barcode_page(&code)));
                agent.drop_file("u_0002.png", &scan::png(&scan::text_page(53)));
            }
            "WAITING" => {
                let (status, body) = server
                    .post(
                        &format!("/documents/{id_a}/reject"),
                        json!({ "reason": REASON }),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
            "RESCAN" => {
                agent.drop_file("r_0001.png", &scan::png(&scan::text_page(55)));
                agent.drop_file("r_0002.png", &scan::png(&scan::text_page(56)));
            }
            "RESCANNED" => {
                // The rescan's pages replaced A's, and A waits for sign-off again.
                let (_, doc) = server.get(&format!("/documents/{id_a}")).await;
                assert_eq!(doc["status"], "matched", "{doc}");
                assert_eq!(doc["images"].as_array().unwrap().len(), 2, "{doc}");
                server.kill();
            }
            "OFFLINE" => {
                agent.drop_file("b_0001.jpg", &cover_b);
                agent.drop_file("b_0002.png", &scan::png(&scan::text_page(54)));
            }
            _ => {}
        }
    })
    .await;

    // The reprinted cover is the server's cover: its barcode reads as A's code.
    let output = Command::new(bin("imc-agent"))
        .arg("--config")
        .arg(pdf_dir.path().join("none.toml"))
        .arg("inspect")
        .arg(&pdf_out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "inspect of the reprint: {text}");
    // (Read without the desk's keys: the barcode, not the signed QR's verdict.)
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(
        first["barcodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["format"] == "code128" && b["text"] == doc_a["cover_code"]),
        "{text}"
    );
}

#[tokio::test]
async fn the_console_refuses_other_hosts_origins_and_actions_without_its_token() {
    let server = TestServer::start();
    let (mut agent, url) = agent_with_console(&server).await;
    agent.start();
    console_up(&url).await;
    let client = reqwest::Client::new();
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();

    // DNS rebinding: a name that resolves to loopback is still not this console.
    let r = client
        .get(format!("{url}view"))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .get(format!("{url}view"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // An action without the page's token, even from its own origin.
    let r = client
        .post(format!("{url}actions/close-packet"))
        .header("origin", url.trim_end_matches('/'))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("token"),
        "{body}"
    );
    // With the token from the page, it works.
    let token = console_token(&client, &url).await;
    let r = client
        .post(format!("{url}actions/close-packet"))
        .header("x-console-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["closed"], 0);
    // A quarantined file that is not there.
    let r = client
        .post(format!("{url}actions/retry-file"))
        .header("x-console-token", &token)
        .json(&json!({"id": 999}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A rescan chosen for a document that was never rejected here is refused by
/// the server: the packet waits in the exception queue saying why.
#[tokio::test]
async fn a_rescan_the_server_refuses_leaves_the_packet_unmatched_with_the_reason() {
    let server = TestServer::start();
    let doc = server.match_document("EXP-CON-0009").await;
    let (mut agent, url) = agent_with_console(&server).await;
    agent.start();
    console_up(&url).await;
    let client = reqwest::Client::new();
    let token = console_token(&client, &url).await;
    let chose = client
        .post(format!("{url}actions/rescan"))
        .header("x-console-token", &token)
        .json(&json!({"id": doc["id"], "doc_no": "EXP-CON-0009"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chose.status(), 200);
    agent.drop_file("r_0001.png", &scan::png(&scan::text_page(61)));
    let packet = eventually(
        "the refused rescan in the exception queue",
        WAIT,
        || async {
            let (_, list) = server.get("/packets?state=unmatched").await;
            list["packets"].as_array().and_then(|p| p.first().cloned())
        },
    )
    .await;
    assert_eq!(packet["reason"], "no cover sheet before these pages");
    assert_eq!(
        server.status_of(doc["id"].as_i64().unwrap()).await,
        "awaiting_images"
    );
    // The clerk reads why on the console, next to the document it was chosen for.
    let shown = eventually("the refusal on the console", WAIT, || async {
        let view: Value = client
            .get(format!("{url}view"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let shown = view["packets"][0].clone();
        (shown["state"] == "no_cover").then_some(shown)
    })
    .await;
    assert_eq!(shown["rescan_of"], "EXP-CON-0009", "{shown}");
    let message = shown["message"].as_str().unwrap();
    assert!(
        message.contains("not taken as the chosen rescan")
            && message.contains("not awaiting a rescan"),
        "{shown}"
    );
}

/// The agent's own routes answer for its site only: a document rejected
/// after another site's scan is "not found" to this desk, and an API token
/// cannot use them.
#[tokio::test]
async fn a_desk_sees_only_its_sites_documents() {
    let server = TestServer::start();
    let doc = server.match_document("EXP-CON-0010").await;
    let id = doc["id"].as_i64().unwrap();
    let cover = server.cover_scan(&doc).await;
    let mut here = TestAgent::enroll(&server).await;
    here.start();
    here.drop_file("s_0001.jpg", &cover);
    here.drop_file("s_0002.png", &scan::png(&scan::text_page(71)));
    server.wait_for_status(id, "matched", WAIT).await;
    let (status, _) = server
        .post(
            &format!("/documents/{id}/reject"),
            json!({"reason": "torn"}),
        )
        .await;
    assert_eq!(status, 200);
    let elsewhere = TestAgent::enroll_at(&server, "branch-02", &["--insecure".into()])
        .await
        .unwrap();

    let client = reqwest::Client::new();
    let ask = |agent: &TestAgent, path: String| {
        let request = client
            .get(format!("{}/api/v1{path}", server.base))
            .bearer_auth(agent.config_value("token"));
        async move { request.send().await.unwrap() }
    };
    // The site that scanned it: listed for rescan, and its cover reprints.
    let listed: Value = ask(&here, "/agent/documents".into())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed["documents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == id && d["status"] == "rejected" && d["reject_reason"] == "torn"),
        "{listed}"
    );
    let pdf = ask(&here, format!("/agent/documents/{id}/cover.pdf")).await;
    assert_eq!(pdf.status(), 200);
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));
    // Another site: not listed, not found, not even by number.
    let listed: Value = ask(&elsewhere, "/agent/documents".into())
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !listed["documents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == id),
        "{listed}"
    );
    let pdf = ask(&elsewhere, format!("/agent/documents/{id}/cover.pdf")).await;
    assert_eq!(pdf.status(), 404);
    let found: Value = ask(&elsewhere, "/agent/documents?q=EXP-CON-0010".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["documents"], json!([]));
    // An API token is not a desk.
    let (status, body) = server.get("/agent/documents").await;
    assert_eq!(status, 403, "{body}");
}
