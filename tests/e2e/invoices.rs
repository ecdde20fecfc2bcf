//! The duplicate-invoice guard, end to end: the same VAT invoice scanned into
//! two documents flags both.

use crate::harness::{TestAgent, TestServer};
use crate::scan;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const VAT_QR: &str = "01,10,3200154130,12345678,1234.56,20240105,12345678901234567890,ABCD,";

#[tokio::test]
async fn the_same_invoice_on_two_documents_flags_both() {
    let server = TestServer::start();
    let a = server.match_document("EXP-A").await;
    let b = server.match_document("EXP-B").await;
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let mut agent = TestAgent::enroll(&server).await;
    let console = crate::harness::free_addr();
    agent.configure("console", console.clone().into());
    agent.start();
    let invoice = scan::png(&scan::qr_page(VAT_QR));
    for (n, id) in [(1, a), (2, b)] {
        let (_, cover) = server
            .get_bytes(&format!("/documents/{id}/cover.png"))
            .await;
        agent.drop_file(&format!("batch{n}_0001.png"), &cover);
        agent.drop_file(&format!("batch{n}_0002.png"), &invoice);
        server.wait_for_status(id, "matched", WAIT).await;
    }
    for (id, other) in [(a, b), (b, a)] {
        let (_, doc) = server.get(&format!("/documents/{id}")).await;
        let conflicts = doc["conflicts"].as_array().cloned().unwrap_or_default();
        assert_eq!(conflicts.len(), 1, "{doc}");
        assert_eq!(conflicts[0]["kind"], "duplicate_invoice");
        assert_eq!(conflicts[0]["invoice_number"], "12345678");
        assert_eq!(conflicts[0]["other_document_id"], other);
    }
    // The clerk is told at the desk: the second packet matched, with a warning.
    let view = crate::harness::eventually("the warning on the desk's console", WAIT, || async {
        let view: serde_json::Value = reqwest::get(format!("http://{console}/view"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (view["packets"][0]["state"] == "matched").then_some(view)
    })
    .await;
    assert_eq!(
        view["packets"][0]["warnings"],
        serde_json::json!(["duplicate invoice 3200154130 12345678 is already on document EXP-A"]),
        "{view}"
    );
    assert_eq!(
        view["packets"][1]["warnings"],
        serde_json::json!([]),
        "{view}"
    );
}
