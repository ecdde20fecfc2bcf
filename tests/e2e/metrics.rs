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

/// `serve --config FILE` takes its address, data dir and metrics token from
/// the file, and `--log-format json` makes every log line a JSON object.
#[tokio::test]
async fn config_file_and_json_logs() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("server.toml");
    let data_dir = tmp.path().join("data");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nmetrics_token = \"scrape-secret\"\n",
            data_dir.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(crate::harness::bin("imc-server"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env("IMC_LOG", "info")
        // A fresh data dir logs that it stored this token.
        .env("IMC_BOOTSTRAP_TOKEN", crate::harness::TOKEN)
        .env_remove("IMC_DATA_DIR")
        .env_remove("IMC_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("imc-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let client = reqwest::Client::new();
    let url = format!("{base}/metrics");
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401, "the file's metrics token is required");
    let r = client
        .get(&url)
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        data_dir.join("imc.sqlite3").exists(),
        "data dir from the file"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("IMC_BOOTSTRAP_TOKEN stored")),
        "{logs}"
    );
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["fields"].is_object(),
            "{line}"
        );
    }
}
