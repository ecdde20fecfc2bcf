//! `imc-loadgen` against a real server: its JSON summary adds up, the server
//! holds every page it reports, and a refused page makes it fail.

use crate::harness::{TOKEN, TestServer, bin};
use serde_json::Value;
use std::collections::HashSet;

async fn loadgen(server: &TestServer, extra: &[&str]) -> (i32, Value) {
    let out = tokio::process::Command::new(bin("imc-loadgen"))
        .args([
            "--server",
            &server.base,
            "--admin-token",
            TOKEN,
            "--insecure",
            "--json",
        ])
        .args(extra)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON summary ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), summary)
}

#[tokio::test]
async fn loadgen_streams_verifies_and_reports_every_page() {
    let _alone = crate::harness::machine_heavy().await;
    let server = TestServer::start();
    let (code, summary) = loadgen(
        &server,
        &[
            "--agents",
            "3",
            "--pages-per-agent",
            "20",
            "--pages-per-packet",
            "7",
            "--page-size",
            "20000",
            "--erp-clients",
            "2",
        ],
    )
    .await;
    assert_eq!(code, 0, "{summary:#}");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["pages_offered"], 60);
    assert_eq!(summary["pages_stored"], 60);
    assert_eq!(summary["page_latency_ms"]["count"], 60);
    assert_eq!(summary["protocol_errors"], 0);
    assert_eq!(summary["status_errors"], 0);
    assert!(summary["status_calls"].as_u64().unwrap() > 0, "{summary:#}");
    assert!(summary["pages_per_sec"].as_f64().unwrap() > 0.0);
    // 20 pages in packets of 7: 3 documents per agent.
    assert_eq!(summary["verify"]["documents"], 9);
    assert_eq!(summary["verify"]["pages_verified"], 60);
    assert_eq!(summary["verify"]["pages_lost"], 0);

    // The server's own view: each agent enrolled, every page on a matched document, none alike.
    let (_, agents) = server.get("/agents").await;
    let loadgen_agents = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["site"] == "loadgen")
        .count();
    assert_eq!(loadgen_agents, 3);
    let mut hashes = HashSet::new();
    for id in summary["verify"]["document_ids"].as_array().unwrap() {
        let (status, doc) = server.get(&format!("/documents/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(doc["status"], "matched", "{doc:#}");
        for image in doc["images"].as_array().unwrap() {
            assert_eq!(image["size"], 20000);
            hashes.insert(image["sha256"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(hashes.len(), 60);
}

#[tokio::test]
async fn loadgen_fails_when_the_server_refuses_pages() {
    // Pages beyond the server's limit are refused (`bad_offer`): nothing is stored.
    let server = TestServer::start_with_env("127.0.0.1:0", &[("IMC_MAX_PAGE_BYTES", "1000")]);
    let (code, summary) = loadgen(
        &server,
        &[
            "--agents",
            "1",
            "--pages-per-agent",
            "3",
            "--page-size",
            "5000",
            "--erp-clients",
            "1",
        ],
    )
    .await;
    assert_eq!(code, 1, "{summary:#}");
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["pages_stored"], 0);
    assert!(
        summary["protocol_errors"].as_u64().unwrap() >= 3,
        "{summary:#}"
    );
    assert!(
        summary["error_samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("bad_offer")),
        "{summary:#}"
    );
}
