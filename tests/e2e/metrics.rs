//! `/metrics` counts what an agent actually delivered, and names the agent.

use crate::harness::{TestAgent, TestServer, eventually};
use crate::scan;
use std::time::Duration;

async fn scrape(server: &TestServer) -> String {
    let r = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_the_pages_an_agent_sent() {
    let server = TestServer::start();
    let before = scrape(&server).await;
    assert_eq!(sample(&before, "imc_pages_received_total"), Some(0.0));

    let mut agent = TestAgent::enroll(&server).await;
    agent.start();
    let mut sent_bytes = 0;
    for i in 0..3 {
        let page = scan::png(&scan::text_page(i));
        sent_bytes += page.len();
        agent.drop_file(&format!("page-{i}.png"), &page);
    }
    let text = eventually("3 pages in /metrics", Duration::from_secs(30), || async {
        let text = scrape(&server).await;
        (sample(&text, "imc_pages_received_total") == Some(3.0)).then_some(text)
    })
    .await;
    assert_eq!(
        sample(&text, "imc_page_bytes_received_total"),
        Some(sent_bytes as f64),
        "{text}"
    );
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(&agent.config).unwrap()).unwrap();
    let agent_id = config["agent_id"].as_str().unwrap();
    assert!(
        text.lines().any(
            |l| l.starts_with("imc_agent_last_seen_timestamp_seconds{") && l.contains(agent_id)
        ),
        "{text}"
    );
    assert_eq!(sample(&text, "imc_webhook_backlog"), Some(0.0), "{text}");
}
