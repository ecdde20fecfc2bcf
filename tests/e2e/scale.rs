//! Scaled out: `imc-server` on PostgreSQL and an S3 store (Garage), both
//! started by `scripts/services.sh`. A scanned packet is matched through one
//! server and its images are served byte for byte by a second server that
//! shares only the database and the bucket (its own, empty data dir); the
//! audit chain both wrote to verifies.

use crate::harness::{TestAgent, TestServer, bin, sha256_hex};
use crate::scan;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// The settings `scripts/services.sh` wrote (process variables win).
pub(crate) fn services() -> HashMap<String, String> {
    let file = std::env::var_os("IMC_SERVICES_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/imc-tools/services.env")
        });
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/services.sh first", file.display()));
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let value = std::env::var(k.trim()).unwrap_or_else(|_| v.trim().to_owned());
            (k.trim().to_owned(), value)
        })
        .collect()
}

/// A fresh schema in the test database, as a URL whose connections use it.
pub(crate) async fn fresh_database(settings: &HashMap<String, String>) -> String {
    let url = &settings["IMC_TEST_DATABASE_URL"];
    let schema = format!("e2e_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    format!("{url}?options=-c%20search_path%3D{schema}")
}

/// `imc-server migrate` on `database`; its output, once it succeeded.
pub(crate) fn migrate(database: &str) -> String {
    let migrated = std::process::Command::new(bin("imc-server"))
        .args(["migrate", "--database", database])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&migrated.stdout).into_owned();
    assert!(
        migrated.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    stdout
}

/// A prefix of the test bucket no other test uses.
pub(crate) fn fresh_blobs(settings: &HashMap<String, String>, label: &str) -> String {
    format!(
        "{}/{label}-{}",
        settings["IMC_TEST_S3_URL"].trim_end_matches('/'),
        uuid::Uuid::new_v4()
    )
}

/// How a server reaches Garage: the `AWS_*` settings.
pub(crate) fn aws_env(settings: &HashMap<String, String>) -> Vec<(&str, &str)> {
    settings
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// `serve` arguments for a replica on the shared database and bucket prefix.
pub(crate) fn replica_args(database: &str, blobs: &str) -> [String; 4] {
    [
        "--database".to_owned(),
        database.to_owned(),
        "--blobs".to_owned(),
        blobs.to_owned(),
    ]
}

/// `imc-server audit verify` on the shared database says the chain is intact.
pub(crate) fn assert_audit_chain_intact(database: &str) {
    let verified = std::process::Command::new(bin("imc-server"))
        .args(["audit", "verify", "--database", database])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(stdout.contains("audit chain intact"), "{stdout}");
}

#[tokio::test]
async fn replicas_on_postgres_and_garage_share_documents_and_images() {
    let _alone = crate::harness::machine_heavy().await;
    let settings = services();
    let database = fresh_database(&settings).await;

    // Serving an unmigrated database is refused with the way out.
    let refused = std::process::Command::new(bin("imc-server"))
        .args([
            "serve",
            "--data-dir",
            "/nonexistent/imc",
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("imc-server migrate"), "{stderr}");
    assert!(
        !stderr.contains(&settings["IMC_TEST_DATABASE_URL"]),
        "password leaked: {stderr}"
    );

    let stdout = migrate(&database);
    // Every migration the server ships, in order.
    let shipped = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../server/src/store/postgres/migrations"),
    )
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
    })
    .count();
    let versions: Vec<String> = (1..=shipped).map(|v| v.to_string()).collect();
    let applied = format!("applied [{}]", versions.join(", "));
    assert!(stdout.contains(&applied), "{stdout}");

    let args = replica_args(&database, &fresh_blobs(&settings, "e2e"));
    let env = aws_env(&settings);
    let first = TestServer::start_full("127.0.0.1:0", &args, &env, reqwest::Client::new());
    let second = TestServer::start_full("127.0.0.1:0", &args, &env, reqwest::Client::new());

    let doc = first.match_document("EXP-S-1").await;
    let id = doc["id"].as_i64().unwrap();
    let (status, cover_png) = first.get_bytes(&format!("/documents/{id}/cover.png")).await;
    assert_eq!(status, 200);
    let cover = scan::jpeg(&scan::decode_gray(&cover_png), 85);
    let page = scan::png(&scan::text_page(2));

    let mut agent = TestAgent::enroll(&first).await;
    agent.start();
    agent.drop_file("scan_0001.jpg", &cover);
    agent.drop_file("scan_0002.png", &page);
    first.wait_for_status(id, "matched", WAIT).await;

    // The other server knows the document and serves the bytes from the bucket.
    let (status, seen) = second.get(&format!("/documents/{id}")).await;
    assert_eq!(status, 200, "{seen}");
    let images = seen["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{seen}");
    for (image, bytes) in images.iter().zip([&cover, &page]) {
        assert_eq!(image["sha256"], sha256_hex(bytes));
        let path = image["url"].as_str().unwrap().trim_start_matches("/api/v1");
        let (status, served) = second.get_bytes(path).await;
        assert_eq!(status, 200);
        assert!(&served == bytes, "image {} differs", image["page_no"]);
    }
    assert!(
        !second.data_dir.join("blobs").exists(),
        "no image bytes on the replica's disk"
    );

    let (status, signed) = second
        .post(&format!("/documents/{id}/sign-off"), json!({}))
        .await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(first.status_of(id).await, "ready");

    // Both servers appended to one audit chain, and it checks out.
    assert_audit_chain_intact(&database);
}
