//! Security end to end: TLS with a pinned CA, plain http refused, scoped
//! tokens, rotation and revocation, single-use enrolment codes, the audit of
//! auth failures.

use crate::harness::{TOKEN, TestAgent, TestServer, bin, eventually};
use crate::scan::{self, Degrade};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// `imc-server cert init` through the real binary.
fn cert_init(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let output = Command::new(bin("imc-server"))
        .args(["cert", "init", "--dir"])
        .arg(dir)
        .args(["--host", "localhost", "--host", "127.0.0.1"])
        .output()
        .expect("run imc-server cert init");
    assert!(
        output.status.success(),
        "cert init: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    )
}

fn tls_server(certs: &Path) -> TestServer {
    let (ca, cert, key) = cert_init(certs);
    let ca_pem = std::fs::read(&ca).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    let args = [
        "--tls-cert".to_owned(),
        cert.to_string_lossy().into_owned(),
        "--tls-key".to_owned(),
        key.to_string_lossy().into_owned(),
    ];
    let server = TestServer::start_with("127.0.0.1:0", &args, client);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    server
}

#[tokio::test]
async fn agent_over_wss_with_a_pinned_ca_delivers_and_a_wrong_ca_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let server = tls_server(certs.path());
    let other = tempfile::tempdir().unwrap();
    let (wrong_ca, _, _) = cert_init(other.path());

    // Plain HTTP to the TLS port gets nothing useful; the API answers over HTTPS.
    let doc = server.match_document("SEC-TLS-1").await;
    let id = doc["id"].as_i64().unwrap();

    // Over TLS the desk asks browsers to stay on HTTPS and marks its cookies Secure.
    let login = server
        .client
        .get(format!("{}/ui/login", server.base))
        .send()
        .await
        .unwrap();
    assert!(
        login.headers().contains_key("strict-transport-security"),
        "{:?}",
        login.headers()
    );
    let cookies: Vec<_> = login.headers().get_all("set-cookie").iter().collect();
    assert!(
        !cookies.is_empty()
            && cookies
                .iter()
                .all(|c| c.to_str().unwrap().contains("; Secure")),
        "{cookies:?}"
    );

    // A CA that did not sign the server's certificate: enrolment fails, saying why.
    let refused = TestAgent::enroll_with(&server, &["--ca".into(), wrong_ca.clone().into()])
        .await
        .err()
        .expect("enrolment with the wrong CA must fail");
    assert!(refused.contains("not trusted"), "{refused}");

    let ca = certs.path().join("ca.pem");
    let mut agent = TestAgent::enroll_with(&server, &["--ca".into(), ca.into()])
        .await
        .expect("enrolment with the pinned CA");
    let config = std::fs::read_to_string(&agent.config).unwrap();
    assert!(
        config.contains("BEGIN CERTIFICATE"),
        "CA kept in the config"
    );
    assert!(!config.contains("insecure = true"));

    let (_, cover_png) = server
        .get_bytes(&format!("/documents/{id}/cover.png"))
        .await;
    let scanned = scan::degrade(
        &scan::decode_gray(&cover_png),
        &Degrade {
            dpi: 200,
            skew_degrees: 0.5,
            noise: 5,
            jpeg_quality: 80,
        },
        7,
    );
    agent.start();
    agent.drop_file("scan_0001.jpg", &scanned);
    // A cover alone is an empty packet: the paper behind it makes the match.
    agent.drop_file("scan_0002.jpg", &scan::jpeg(&scan::text_page(2), 80));
    server.wait_for_status(id, "matched", WAIT).await;
    agent.kill();

    // The same desk with the wrong CA pinned cannot open the uplink, and says why.
    agent.configure("ca_pem", std::fs::read_to_string(&wrong_ca).unwrap().into());
    agent.start();
    eventually(
        "the agent to report the untrusted certificate",
        WAIT,
        || async { agent.status().contains("not trusted").then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn plain_http_is_refused_without_insecure() {
    let server = TestServer::start();
    let refused = TestAgent::enroll_with(&server, &[])
        .await
        .err()
        .expect("plain http enrolment must fail");
    assert!(refused.contains("--insecure"), "{refused}");

    // A desk whose config says plain http without the lab flag does not connect either.
    let mut agent = TestAgent::enroll(&server).await;
    agent.configure("insecure", false.into());
    agent.start();
    eventually("the agent to refuse plain http", WAIT, || async {
        agent.status().contains("plain http").then_some(())
    })
    .await;
}

async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn new_token(server: &TestServer, body: Value) -> (i64, String) {
    let (status, made) = server.post("/tokens", body).await;
    assert_eq!(status, 201, "{made}");
    (
        made["id"].as_i64().unwrap(),
        made["secret"].as_str().unwrap().to_owned(),
    )
}

fn audit_actions(server: &TestServer, action: &str) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(server.data_dir.join("imc.sqlite3")).unwrap();
    let mut stmt = db
        .prepare("SELECT actor, reason FROM audit WHERE action = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map([action], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn scoped_tokens_rotate_revoke_and_every_refusal_is_audited() {
    use reqwest::Method;
    let server = TestServer::start();
    let doc = server.match_document("SEC-SCOPE-1").await;
    let id = doc["id"].as_i64().unwrap();

    // A reporting system: status only.
    let (report_id, report) =
        new_token(&server, json!({"name": "reporting", "scopes": ["status"]})).await;
    let status_path = format!("/documents/{id}/status");
    assert_eq!(
        call(&server, Method::GET, &status_path, &report, None)
            .await
            .0,
        200
    );
    let (status, body) = call(
        &server,
        Method::GET,
        &format!("/documents/{id}"),
        &report,
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scope read"),
        "{body}"
    );
    let create =
        json!({"source_system": "ERP", "doc_no": "X-1", "doc_type": "expense", "org": "HQ"});
    assert_eq!(
        call(
            &server,
            Method::POST,
            "/documents",
            &report,
            Some(create.clone())
        )
        .await
        .0,
        403
    );

    // An ERP limited to its own source system: another system's documents do not exist for it.
    let (_, erp2) = new_token(
        &server,
        json!({"name": "erp2", "scopes": ["read", "write"], "source_systems": ["ERP2"]}),
    )
    .await;
    assert_eq!(
        call(
            &server,
            Method::GET,
            &format!("/documents/{id}"),
            &erp2,
            None
        )
        .await
        .0,
        404
    );
    let (status, body) = call(
        &server,
        Method::POST,
        "/documents",
        &erp2,
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let own = json!({"source_system": "ERP2", "doc_no": "X-2", "doc_type": "expense", "org": "HQ"});
    assert_eq!(
        call(&server, Method::POST, "/documents", &erp2, Some(own))
            .await
            .0,
        201
    );

    // Rotation: both secrets work during the overlap; without overlap the old one stops.
    let (status, rotated) = server
        .post(
            &format!("/tokens/{report_id}/rotate"),
            json!({"overlap_secs": 3600}),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let report2 = rotated["secret"].as_str().unwrap().to_owned();
    let report2_id = rotated["id"].as_i64().unwrap();
    assert_eq!(rotated["scopes"], json!(["status"]));
    assert_eq!(
        call(&server, Method::GET, &status_path, &report, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, Method::GET, &status_path, &report2, None)
            .await
            .0,
        200
    );
    let (status, rotated) = server
        .post(
            &format!("/tokens/{report2_id}/rotate"),
            json!({"overlap_secs": 0}),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let report3 = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&server, Method::GET, &status_path, &report2, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(&server, Method::GET, &status_path, &report3, None)
            .await
            .0,
        200
    );

    // Revocation is immediate.
    let report3_id = rotated["id"].as_i64().unwrap();
    let (status, revoked) = server
        .post(&format!("/tokens/{report3_id}/revoke"), json!({}))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(
        call(&server, Method::GET, &status_path, &report3, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(&server, Method::GET, "/tokens", "imc_not_a_token", None)
            .await
            .0,
        401
    );

    // The list shows no secrets; the CLI sees the same tokens.
    let (_, list) = server.get("/tokens").await;
    assert!(!list.to_string().contains(&report3));
    let output = Command::new(bin("imc-server"))
        .args(["token", "list", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(
        listed.contains("reporting") && listed.contains("revoked"),
        "{listed}"
    );

    // Credential changes and refusals are in the audit trail.
    let changes: Vec<String> = ["token.create", "token.rotate", "token.revoke"]
        .iter()
        .map(|a| format!("{a}:{}", audit_actions(&server, a).len()))
        .collect();
    assert_eq!(
        changes,
        ["token.create:3", "token.rotate:2", "token.revoke:1"]
    );
    let failures = audit_actions(&server, "auth.failure");
    assert!(failures.len() >= 5, "{failures:?}");
    assert!(
        failures
            .iter()
            .any(|(actor, reason)| actor.starts_with("token:")
                && reason.contains("needs a token with scope read")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|(actor, _)| actor.starts_with("ip:127.0.0.1")),
        "{failures:?}"
    );
    let _ = TOKEN;
}

#[tokio::test]
async fn enrolment_codes_are_single_use() {
    let server = TestServer::start();
    let code = server.enrollment_code("site-a").await;
    let enroll = |name: &'static str| {
        let code = code.clone();
        let url = server.url("/agents/enroll");
        let client = server.client.clone();
        async move {
            client
                .post(url)
                .json(&json!({"code": code, "name": name}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(enroll("desk-a").await, 200);
    assert_eq!(enroll("desk-b").await, 403);
    assert_eq!(audit_actions(&server, "agent.enroll").len(), 1);
    let failures = audit_actions(&server, "auth.failure");
    assert!(
        failures
            .iter()
            .any(|(_, reason)| reason.contains("enrolment refused")),
        "{failures:?}"
    );
}
