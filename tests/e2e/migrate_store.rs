//! Moving up: an embedded server (SQLite + blob folder) is populated through
//! its API and a real scan desk, stopped, and copied by `imc-server
//! migrate-store` into a fresh PostgreSQL schema and Garage prefix. A server
//! on the copy has the same documents, statuses and image bytes, the audit
//! chain verifies, and the same scan desk (same token) delivers to it.

use crate::harness::{TestAgent, TestServer, bin, desk_login, sha256_hex};
use crate::scale::{
    assert_audit_chain_intact, aws_env, fresh_blobs, fresh_database, replica_args, services,
};
use crate::scan;
use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "desk-password-1";

async fn desk_queue_status(base: &str, session: &str) -> u16 {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/ui/queue"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn migrate_store(
    from: &std::path::Path,
    database: &str,
    blobs: &str,
    env: &[(&str, &str)],
) -> Output {
    std::process::Command::new(bin("imc-server"))
        .arg("migrate-store")
        .arg("--from")
        .arg(from)
        .args(["--to", database, "--blobs", blobs])
        .envs(env.iter().copied())
        .env("IMC_LOG", "warn")
        .output()
        .unwrap()
}

/// Scans a document's cover sheet and one page into the agent's inbox.
async fn scan_document(server: &TestServer, agent: &TestAgent, id: i64, seed: u64) {
    let (status, cover_png) = server
        .get_bytes(&format!("/documents/{id}/cover.png"))
        .await;
    assert_eq!(status, 200);
    let cover = scan::jpeg(&scan::decode_gray(&cover_png), 85);
    agent.drop_file(&format!("scan_{seed:04}_0.jpg"), &cover);
    agent.drop_file(
        &format!("scan_{seed:04}_1.png"),
        &scan::png(&scan::text_page(seed)),
    );
}

#[tokio::test]
async fn an_embedded_installation_moves_to_postgres_and_garage() {
    let settings = services();
    let env = aws_env(&settings);

    // ── An embedded installation in use ──
    let mut embedded = TestServer::start();
    let (status, body) = embedded
        .put(
            "/webhooks/ERP",
            // Nothing listens there: the outbox keeps its events and failed attempts.
            json!({"url": "http://127.0.0.1:9/hook", "secret": "whsec_0123456789abcdef"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let added = std::process::Command::new(bin("imc-server"))
        .args(["user", "add", "--data-dir"])
        .arg(&embedded.data_dir)
        .args([
            "--name",
            "zhao",
            "--role",
            "signoff",
            "--password",
            PASSWORD,
        ])
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let session = desk_login(&embedded.base, "zhao", PASSWORD).await;
    assert_eq!(desk_queue_status(&embedded.base, &session).await, 200);
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(
            embedded.match_document(&format!("MIG-{n}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    // A declared attachment count (a column added after the first release) moves too.
    let (status, declared) = embedded
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "MIG-ATT", "doc_type": "expense", "org": "HQ",
                   "attachment_count": 2}),
        )
        .await;
    assert_eq!(status, 201, "{declared}");
    ids.push(declared["id"].as_i64().unwrap());
    let mut agent = TestAgent::enroll(&embedded).await;
    agent.start();
    scan_document(&embedded, &agent, ids[0], 1).await;
    embedded.wait_for_status(ids[0], "matched", WAIT).await;
    scan_document(&embedded, &agent, ids[1], 2).await;
    embedded.wait_for_status(ids[1], "matched", WAIT).await;
    let (status, body) = embedded
        .post(&format!("/documents/{}/sign-off", ids[0]), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut before = Vec::new();
    for id in &ids {
        let (status, doc) = embedded.get(&format!("/documents/{id}")).await;
        assert_eq!(status, 200, "{doc}");
        before.push(doc);
    }
    let deliveries_path = format!("/documents/{}/webhook-deliveries", ids[0]);
    let (_, deliveries_before) = embedded.get(&deliveries_path).await;
    agent.kill();
    embedded.kill();

    // ── The move ──
    let database = fresh_database(&settings).await;
    let blobs = fresh_blobs(&settings, "e2e-migrate");
    // A blob gone from the folder stops the run before any row is written...
    let images = before[0]["images"].as_array().unwrap();
    let missing_sha = images[1]["sha256"].as_str().unwrap();
    let missing = embedded
        .data_dir
        .join("blobs")
        .join(&missing_sha[..2])
        .join(missing_sha);
    let aside = missing.with_extension("aside");
    std::fs::rename(&missing, &aside).unwrap();
    let failed = migrate_store(&embedded.data_dir, &database, &blobs, &env);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "blob {missing_sha} is named by a page or image but missing"
        )),
        "{stderr}"
    );
    std::fs::rename(&aside, &missing).unwrap();

    // ...so running it again completes, sending only the blobs not there yet.
    let moved = migrate_store(&embedded.data_dir, &database, &blobs, &env);
    let stdout = String::from_utf8_lossy(&moved.stdout);
    assert!(
        moved.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(stdout.contains("documents 4"), "{stdout}");
    let blob_line = stdout.lines().find(|l| l.starts_with("blobs: ")).unwrap();
    let numbers: Vec<u64> = blob_line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // "blobs: C copied (B bytes), A already there; ... SHA-256"
    assert_eq!(numbers[0] + numbers[2], 4, "{blob_line}");
    assert!(numbers[0] >= 1, "the missing blob was sent: {blob_line}");
    assert!(
        stdout.contains("audit chain intact on the target"),
        "{stdout}"
    );

    // A second run into the now populated target is refused and changes nothing.
    let again = migrate_store(&embedded.data_dir, &database, &blobs, &env);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{stderr}");
    assert!(
        stderr.contains("is not empty (table api_tokens has rows)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&settings["IMC_TEST_DATABASE_URL"]),
        "password leaked: {stderr}"
    );

    // ── The scaled-out server on the copy ──
    let args = replica_args(&database, &blobs);
    // Webhook secrets moved sealed: the scaled-out server needs the embedded one's key.
    let key = std::fs::read_to_string(embedded.data_dir.join("secrets.key")).unwrap();
    let mut env = env.clone();
    env.push(("IMC_SECRETS_KEY", key.lines().next().unwrap()));
    let scaled = TestServer::start_full("127.0.0.1:0", &args, &env, reqwest::Client::new());
    assert_eq!(before[3]["attachment_count"], 2);
    for (id, was) in ids.iter().zip(&before) {
        let (status, doc) = scaled.get(&format!("/documents/{id}")).await;
        assert_eq!(status, 200, "{doc}");
        for field in [
            "doc_no",
            "status",
            "cover_code",
            "created_at",
            "updated_at",
            "attachment_count",
            "attachment_check",
        ] {
            assert_eq!(doc[field], was[field], "document {id} {field}");
        }
        assert_eq!(doc["images"], was["images"], "document {id} images");
        for image in doc["images"].as_array().unwrap() {
            let path = image["url"].as_str().unwrap().trim_start_matches("/api/v1");
            let (status, bytes) = scaled.get_bytes(path).await;
            assert_eq!(status, 200);
            assert_eq!(Value::from(sha256_hex(&bytes)), image["sha256"], "{path}");
        }
    }
    assert_eq!(scaled.status_of(ids[0]).await, "ready");
    // The desk user's browser session carries over, and so does the password.
    assert_eq!(desk_queue_status(&scaled.base, &session).await, 200);
    assert_ne!(
        desk_queue_status(&scaled.base, "imc_session=ses_x").await,
        200
    );
    desk_login(&scaled.base, "zhao", PASSWORD).await;
    assert_eq!(scaled.status_of(ids[1]).await, "matched");
    // The outbox and its attempts came along (the new server may have tried again since).
    let (status, deliveries) = scaled.get(&deliveries_path).await;
    assert_eq!(status, 200, "{deliveries}");
    let attempts_before = deliveries_before["deliveries"].as_array().unwrap();
    assert!(!attempts_before.is_empty(), "{deliveries_before}");
    assert_eq!(
        &deliveries["deliveries"].as_array().unwrap()[..attempts_before.len()],
        &attempts_before[..]
    );

    assert_audit_chain_intact(&database);

    // New documents get ids after the copied ones.
    let (status, doc) = scaled
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "MIG-NEW", "doc_type": "expense", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    assert!(doc["id"].as_i64().unwrap() > ids[2], "{doc}");

    // The same scan desk, with the token it enrolled with, delivers to the new server.
    agent.set_server_url(&scaled.base);
    agent.start();
    scan_document(&scaled, &agent, ids[2], 3).await;
    scaled.wait_for_status(ids[2], "matched", WAIT).await;
}
