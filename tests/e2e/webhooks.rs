//! Status changes pushed to a real HTTP listener in this test: signed,
//! retried after a 500, logged per document.

use crate::harness::{TOKEN, TestServer, eventually};
use crate::scan;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "whsec_0123456789abcdef";

#[derive(Default)]
struct Received {
    /// (signature header, raw body, status answered)
    calls: Vec<(String, Vec<u8>, u16)>,
}

/// Answers 500 to the first call, 200 to every later one.
async fn receiver() -> (String, Arc<Mutex<Received>>, tokio::task::JoinHandle<()>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&state);
            async move {
                let mut r = state.lock().unwrap();
                let status = if r.calls.is_empty() { 500 } else { 200 };
                let signature = headers
                    .get("x-imc-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                r.calls.push((signature, body.to_vec(), status));
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received, task)
}

fn stored_secret(db: &std::path::Path) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT secret FROM webhooks WHERE source_system = 'ERP'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn status_changes_are_pushed_signed_and_retried() {
    let (url, received, task) = receiver().await;
    let mut server = TestServer::start();
    let (status, body) = server
        .put("/webhooks/ERP", json!({"url": url, "secret": SECRET}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("secret").is_none(), "the secret is never shown");
    let db = server.data_dir.join("imc.sqlite3");
    let stored = stored_secret(&db);
    assert!(
        stored.starts_with("v1:") && !stored.contains(SECRET),
        "stored sealed: {stored}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = server.data_dir.join("secrets.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secrets.key readable by others: {mode:o}");
    }
    // An installation from before sealing kept the plain text: the next
    // start seals it in place, and delivery below still signs with it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE webhooks SET secret = ?1", [SECRET])
        .unwrap();
    server.restart();
    // The address is printed before the store is opened: wait for the seal.
    let upgraded = eventually("the legacy secret sealed", Duration::from_secs(20), || {
        let stored = stored_secret(&db);
        async move { stored.starts_with("v1:").then_some(stored) }
    })
    .await;
    assert!(
        upgraded.starts_with("v1:") && upgraded != stored,
        "legacy secret sealed at start: {upgraded}"
    );
    let (status, body) = server
        .put("/webhooks/ERP", json!({"url": "ftp://x", "secret": SECRET}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("url"))
    );
    let (status, body) = server
        .put("/webhooks/ERP", json!({"url": url, "secret": "short"}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("secret"))
    );
    let (status, _) = server
        .put(
            "/settings",
            json!({"webhook_retry": {"base_delay_secs": 1}}),
        )
        .await;
    assert_eq!(status, 200);

    let (_, doc) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "WH-1", "doc_type": "misc", "org": "HQ"}),
        )
        .await;
    let id = doc["id"].as_i64().unwrap();
    let r = server
        .client
        .post(server.url(&format!("/documents/{id}/images")))
        .bearer_auth(TOKEN)
        .body(scan::png(&scan::text_page(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // awaiting_images -> ready: 500 first, then delivered again after the backoff.
    let calls = eventually("the event twice", Duration::from_secs(30), || async {
        let r = received.lock().unwrap();
        (r.calls.len() >= 2).then(|| r.calls.clone())
    })
    .await;
    let events: Vec<Value> = calls
        .iter()
        .map(|(signature, body, _)| {
            assert_eq!(signature, &sign(body), "signature over the raw body");
            serde_json::from_slice(body).unwrap()
        })
        .collect();
    assert_eq!(events[0], events[1], "a retry sends the same event");
    assert_eq!(events[0]["document_id"], id);
    assert_eq!(events[0]["doc_no"], "WH-1");
    assert_eq!(events[0]["source_system"], "ERP");
    assert_eq!(events[0]["old_status"], "awaiting_images");
    assert_eq!(events[0]["new_status"], "ready");
    assert!(
        events[0]["event_id"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert!(events[0]["at"].as_str().is_some());

    // ready -> cancelled: delivered at the first attempt.
    let (status, _) = server
        .post(&format!("/documents/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    let log = eventually(
        "three delivery attempts logged",
        Duration::from_secs(30),
        || async {
            let (_, log) = server
                .get(&format!("/documents/{id}/webhook-deliveries"))
                .await;
            (log["deliveries"].as_array()?.len() == 3).then_some(log)
        },
    )
    .await;
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries
            .iter()
            .map(|d| (
                d["attempt"].as_u64().unwrap(),
                d["http_status"].as_u64().unwrap(),
                d["delivered"].as_bool().unwrap()
            ))
            .collect::<Vec<_>>(),
        [(1, 500, false), (2, 200, true), (1, 200, true)]
    );
    assert_eq!(deliveries[0]["event_id"], events[0]["event_id"]);
    let calls = received.lock().unwrap().calls.clone();
    assert_eq!(calls.len(), 3, "each event delivered once after success");
    let last: Value = serde_json::from_slice(&calls[2].1).unwrap();
    assert_eq!(last["new_status"], "cancelled");
    assert_eq!(last["old_status"], "ready");
    assert_eq!(calls[2].0, sign(&calls[2].1));

    // Other source systems without a webhook get nothing.
    let (_, other) = server
        .post(
            "/documents",
            json!({"source_system": "OTHER", "doc_no": "WH-2", "doc_type": "misc", "org": "HQ"}),
        )
        .await;
    let other = other["id"].as_i64().unwrap();
    server
        .post(&format!("/documents/{other}/cancel"), json!({}))
        .await;
    let (_, log) = server
        .get(&format!("/documents/{other}/webhook-deliveries"))
        .await;
    assert_eq!(log["deliveries"], json!([]));
    task.abort();
}

fn imc_server(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = std::process::Command::new(crate::harness::bin("imc-server"))
        .args(args)
        .env("IMC_LOG", "warn")
        .env_remove("IMC_SECRETS_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `secrets rotate` re-seals with a new key; a backup holds the sealed
/// secret but not the key; a restore refuses to start without that key and
/// signs with the right secret once the key is back.
#[tokio::test]
async fn rotation_and_restore_keep_the_secret_and_need_the_key() {
    let (url, received, task) = receiver().await;
    let mut server = TestServer::start();
    let (status, body) = server
        .put("/webhooks/ERP", json!({"url": url, "secret": SECRET}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = server
        .put(
            "/settings",
            json!({"webhook_retry": {"base_delay_secs": 1}}),
        )
        .await;
    assert_eq!(status, 200);
    let db = server.data_dir.join("imc.sqlite3");
    let before = stored_secret(&db);
    server.kill();

    let data = server.data_dir.clone();
    let (ok, out) = imc_server(&[
        "secrets".as_ref(),
        "rotate".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    assert!(ok, "rotate: {out}");
    let after = stored_secret(&db);
    let id = |s: &str| s.split(':').nth(1).unwrap().to_owned();
    assert_ne!(id(&before), id(&after), "re-sealed with the new key");
    let keys = std::fs::read_to_string(data.join("secrets.key")).unwrap();
    assert_eq!(keys.lines().count(), 2, "the old key stays for opening");

    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("backup");
    let restored = tmp.path().join("restored");
    let (ok, out) = imc_server(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--to".as_ref(),
        backup.as_os_str(),
    ]);
    assert!(ok, "backup: {out}");
    assert!(
        !backup.join("secrets.key").exists(),
        "the key is not in the backup"
    );
    let (ok, out) = imc_server(&[
        "restore".as_ref(),
        "--from".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
    ]);
    assert!(ok, "restore: {out}");

    // Without the key: a new one is made, and the start is refused.
    let mut child = std::process::Command::new(crate::harness::bin("imc-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&restored)
        .env("IMC_LOG", "warn")
        .env_remove("IMC_SECRETS_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = eventually("the keyless start refused", Duration::from_secs(30), || {
        let exited = child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!exited.success());
    assert!(err.contains("cannot be opened"), "{err}");

    std::fs::copy(data.join("secrets.key"), restored.join("secrets.key")).unwrap();
    let restored = TestServer::start_on(&restored);
    let (_, doc) = restored
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "WR-1", "doc_type": "misc", "org": "HQ"}),
        )
        .await;
    let doc = doc["id"].as_i64().unwrap();
    let (status, _) = restored
        .post(&format!("/documents/{doc}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    let calls = eventually("the event delivered", Duration::from_secs(30), || async {
        let r = received.lock().unwrap();
        r.calls.iter().any(|c| c.2 == 200).then(|| r.calls.clone())
    })
    .await;
    for (signature, body, _) in &calls {
        assert_eq!(signature, &sign(body), "signed with the restored secret");
    }
    task.abort();
}
