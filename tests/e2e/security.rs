//! Security end to end: TLS with a pinned CA, plain http refused, scoped
//! tokens, rotation and revocation, single-use enrolment codes, the audit of
//! auth failures.

use crate::harness::{TOKEN, TestAgent, TestServer, bin, eventually, no_redirects};
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

pub(crate) fn audit_actions(server: &TestServer, action: &str) -> Vec<(String, String)> {
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
    let mut server = TestServer::start();
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
    // Anonymous failures from one address are itemised once a minute and
    // counted otherwise; stopping the server writes the count.
    server.stop_gracefully();
    let failures = audit_actions(&server, "auth.failure");
    assert!(failures.len() >= 4, "{failures:?}");
    assert!(
        failures
            .iter()
            .any(|(actor, reason)| actor == "ip:127.0.0.1"
                && reason.starts_with("2 more of: an unknown, revoked or expired token")),
        "{failures:?}"
    );
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

/// Enrols a bare uplink client at `site`; returns its token.
async fn enroll_raw_at(server: &TestServer, site: &str) -> String {
    let code = server.enrollment_code(site).await;
    let (status, body) = server
        .post(
            "/agents/enroll",
            json!({"code": code, "name": format!("desk-{site}")}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Delivers a cover and one page for `doc` from the desk holding `token`;
/// returns the packet id once the document is matched.
async fn deliver_packet(server: &TestServer, token: &str, doc: &Value) -> uuid::Uuid {
    use crate::raw_uplink::{RawAgent, offer};
    use imc_shared::protocol::{AgentMessage, PacketSeal, ServerMessage};
    let cover_code = doc["cover_code"].as_str().unwrap().to_owned();
    let mut agent = RawAgent::connect(server, token).await;
    let packet = uuid::Uuid::new_v4();
    for index in 0..2u32 {
        // Bytes of their own: a page the server already holds is not sent again.
        let seed = doc["id"].as_u64().unwrap() * 10 + u64::from(index);
        let bytes = scan::jpeg(&scan::text_page(seed), 80);
        let capture = uuid::Uuid::new_v4();
        let mut page = offer(capture, packet, &bytes);
        page.page_index = index;
        page.cover_code = Some(cover_code.clone());
        agent.send(&AgentMessage::Offer(page)).await;
        match agent.recv().await {
            Some(ServerMessage::Resume { offset: 0, .. }) => {}
            other => panic!("expected resume at 0, got {other:?}"),
        }
        agent.chunk(capture, 0, &bytes).await;
        loop {
            match agent.recv().await {
                Some(ServerMessage::Stored { capture_id }) if capture_id == capture => break,
                Some(ServerMessage::PacketOutcome(_) | ServerMessage::Notice(_)) => {}
                other => panic!("expected stored, got {other:?}"),
            }
        }
    }
    agent
        .send(&AgentMessage::Seal(PacketSeal {
            packet_id: packet,
            cover_code: Some(cover_code),
            page_count: 2,
            empty: false,
            packet_seq: None,
            cover_problem: None,
            rescan_of: None,
        }))
        .await;
    server
        .wait_for_status(doc["id"].as_i64().unwrap(), "matched", WAIT)
        .await;
    packet
}

/// A desk user made with `imc-server user add`, logged in over HTTP; returns
/// the session cookie.
async fn desk_login(server: &TestServer, name: &str, role: &str, site: Option<&str>) -> String {
    let mut command = Command::new(bin("imc-server"));
    command
        .args(["user", "add", "--data-dir"])
        .arg(&server.data_dir)
        .args([
            "--name",
            name,
            "--role",
            role,
            "--password",
            "desk-password-1",
        ]);
    if let Some(site) = site {
        command.args(["--site", site]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    crate::harness::desk_login(&server.base, name, "desk-password-1").await
}

/// The next `change` events of a desk event stream, as JSON, until `until`
/// holds for one of them (which is included).
async fn events_until(
    stream: &mut reqwest::Response,
    until: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut text = String::new();
    loop {
        let chunk = tokio::time::timeout(WAIT, stream.chunk())
            .await
            .expect("an event within the limit")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                let value: Value = serde_json::from_str(data.trim()).unwrap();
                let done = until(&value);
                seen.push(value);
                if done {
                    return seen;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_clerk_from_site_a_cannot_read_site_b_documents() {
    let server = TestServer::start();
    let doc_a = server.match_document("SCOPE-A-1").await;
    let doc_b = server.match_document("SCOPE-B-1").await;
    let (id_a, id_b) = (doc_a["id"].as_i64().unwrap(), doc_b["id"].as_i64().unwrap());
    let token_a = enroll_raw_at(&server, "site-a").await;
    let token_b = enroll_raw_at(&server, "site-b").await;
    let packet_a = deliver_packet(&server, &token_a, &doc_a).await;
    let packet_b = deliver_packet(&server, &token_b, &doc_b).await;
    let image_of = |id: i64| {
        let server = &server;
        async move {
            let (_, list) = server.get(&format!("/documents/{id}/images")).await;
            list["images"][0]["id"].as_i64().unwrap()
        }
    };
    let (image_a, image_b) = (image_of(id_a).await, image_of(id_b).await);

    let clerk = desk_login(&server, "clerk-a", "clerk", Some("site-a")).await;
    let staff = desk_login(&server, "signoff", "signoff", None).await;
    let client = no_redirects();
    let get = |cookie: &str, path: &str| {
        client
            .get(format!("{}{path}", server.base))
            .header("cookie", cookie)
            .header("origin", server.base.as_str())
            .send()
    };

    // The list: only site A's document, whatever site the query asks for.
    for query in ["", "?site=site-b", "?site="] {
        let page = get(&clerk, &format!("/ui/queue{query}")).await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("SCOPE-A-1"), "{query}");
        assert!(!html.contains("SCOPE-B-1"), "{query}: site B listed");
        assert!(!html.contains("site-b"), "{query}: site B counted");
    }
    // Open, image bytes, renditions, packet pages: site B's are not found.
    let refused = [
        format!("/ui/documents/{id_b}"),
        format!("/ui/images/{image_b}/file"),
        format!("/ui/images/{image_b}/view"),
        format!("/ui/images/{image_b}/thumb"),
        format!("/ui/packets/{packet_b}"),
        format!("/ui/packets/{packet_b}/pages/1/file"),
        format!("/ui/packets/{packet_b}/pages/1/thumb"),
    ];
    for path in &refused {
        let r = get(&clerk, path).await.unwrap();
        assert_eq!(r.status(), 404, "clerk of site A read {path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("SCOPE-B-1"), "{path}");
    }
    let allowed = [
        format!("/ui/documents/{id_a}"),
        format!("/ui/images/{image_a}/file"),
        format!("/ui/images/{image_a}/thumb"),
        format!("/ui/packets/{packet_a}/pages/1/thumb"),
    ];
    for path in &allowed {
        assert_eq!(get(&clerk, path).await.unwrap().status(), 200, "{path}");
    }
    // Sign-off staff see every site: the refusals above are the clerk's scope.
    for path in refused.iter().chain(&allowed) {
        assert_eq!(get(&staff, path).await.unwrap().status(), 200, "{path}");
    }

    // Events: a change to B's document is not told to the clerk; A's is.
    let mut stream = get(&clerk, "/ui/events").await.unwrap();
    assert_eq!(stream.status(), 200);
    for id in [id_b, id_a] {
        let (status, body) = server
            .post(&format!("/documents/{id}/sign-off"), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let lists = |event: &Value, id: i64| {
        event["documents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_i64() == Some(id))
    };
    let seen = events_until(&mut stream, |e| lists(e, id_a)).await;
    assert!(
        !seen.iter().any(|e| lists(e, id_b)),
        "site B's document reached the clerk's events: {seen:?}"
    );
}

/// When the agent `id` last reached the server, if it has.
async fn last_seen(server: &TestServer, id: &str) -> Option<String> {
    let (status, agents) = server.get("/agents").await;
    assert_eq!(status, 200, "{agents}");
    agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .and_then(|a| a["last_seen_at"].as_str().map(str::to_owned))
}

/// Waits for an `auth.failure` about `agent_id` whose reason says `why`.
async fn refused_for(server: &TestServer, agent_id: &str, why: &str) {
    eventually(
        &format!("agent {agent_id} refused: {why}"),
        WAIT,
        || async {
            audit_actions(server, "auth.failure")
                .into_iter()
                .any(|(actor, reason)| actor.contains(agent_id) && reason.contains(why))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn mutual_tls_needs_the_agents_own_certificate_on_the_uplink() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = cert_init(certs.path());
    let ca_pem = std::fs::read(&ca).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    let arg = |p: &Path| p.to_string_lossy().into_owned();
    let args = [
        "--tls-cert".to_owned(),
        arg(&cert),
        "--tls-key".to_owned(),
        arg(&key),
        "--client-ca-cert".to_owned(),
        arg(&certs.path().join("client-ca.pem")),
        "--client-ca-key".to_owned(),
        arg(&certs.path().join("client-ca-key.pem")),
    ];
    let server = TestServer::start_with("127.0.0.1:0", &args, client);
    // Client certificates are optional at the TLS layer: API clients and
    // browsers without one are served as before.
    let (status, _) = server.get("/settings").await;
    assert_eq!(status, 200);

    let pinned: [std::ffi::OsString; 2] = ["--ca".into(), ca.clone().into()];
    let enroll = || TestAgent::enroll_with(&server, &pinned);
    let mut own = enroll().await.expect("enrolment under mutual TLS");
    let mut other = enroll().await.expect("enrolment under mutual TLS");
    let mut bare = enroll().await.expect("enrolment under mutual TLS");
    let own_id = own.config_value("agent_id");
    let client_cert = PathBuf::from(own.config_value("client_cert"));
    let client_key = PathBuf::from(own.config_value("client_key"));
    assert!(
        std::fs::read_to_string(&client_cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(
        std::fs::read_to_string(&client_key)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&client_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "client key mode {mode:o}");
    }

    // Its own certificate: the uplink accepts the agent.
    own.start();
    eventually("the agent with its certificate connects", WAIT, || async {
        last_seen(&server, &own_id).await
    })
    .await;
    own.kill();

    // Another agent's certificate with this agent's token: refused.
    let other_id = other.config_value("agent_id");
    other.configure("client_cert", arg(&client_cert).into());
    other.configure("client_key", arg(&client_key).into());
    other.start();
    refused_for(&server, &other_id, "belongs to another agent").await;
    other.kill();

    // The token without a certificate: refused.
    let bare_id = bare.config_value("agent_id");
    let mut table: toml::Table =
        toml::from_str(&std::fs::read_to_string(&bare.config).unwrap()).unwrap();
    table.remove("client_cert");
    table.remove("client_key");
    std::fs::write(&bare.config, toml::to_string(&table).unwrap()).unwrap();
    bare.start();
    refused_for(&server, &bare_id, "requires the agent's client certificate").await;
    bare.kill();
    assert_eq!(last_seen(&server, &other_id).await, None);
    assert_eq!(last_seen(&server, &bare_id).await, None);

    // A desk that sends no certificate request is not enrolled (and keeps its code).
    let code = server.enrollment_code("test-site").await;
    let (status, body) = server
        .post("/agents/enroll", json!({"code": code, "name": "old-desk"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mutual TLS"),
        "{body}"
    );
}
