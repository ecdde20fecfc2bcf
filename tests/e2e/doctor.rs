//! `imc-agent doctor` on a healthy desk, then with each problem seeded:
//! a missing inbox, a refused token, an unreachable server.

use crate::harness::{TestAgent, TestServer, bin, free_addr};
use std::process::Command;

fn doctor(agent: &TestAgent) -> (bool, String) {
    let output = Command::new(bin("imc-agent"))
        .arg("--config")
        .arg(&agent.config)
        .arg("doctor")
        .env("IMC_LOG", "warn")
        .output()
        .expect("run imc-agent doctor");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn problems(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.starts_with("FIX")).collect()
}

#[tokio::test]
async fn doctor_finds_each_seeded_problem() {
    let server = TestServer::start();
    let agent = TestAgent::enroll(&server).await;
    // The harness passes --watch to `run`; doctor reads the folders from the config.
    agent.configure(
        "watch",
        toml::Value::Array(vec![agent.inbox.to_string_lossy().into_owned().into()]),
    );

    let (healthy, report) = doctor(&agent);
    assert!(healthy, "a fresh desk is healthy:\n{report}");
    assert!(report.contains("token accepted"), "{report}");
    assert!(report.contains("clock within"), "{report}");
    assert!(report.contains("free for the spool"), "{report}");

    std::fs::remove_dir(&agent.inbox).unwrap();
    let (healthy, report) = doctor(&agent);
    assert!(!healthy);
    let found = problems(&report);
    assert_eq!(found.len(), 1, "{report}");
    assert!(
        found[0].contains(&agent.inbox.display().to_string()) && found[0].contains("missing"),
        "{report}"
    );
    std::fs::create_dir(&agent.inbox).unwrap();

    agent.configure("token", "imc_agent_not_a_real_token".into());
    let (healthy, report) = doctor(&agent);
    assert!(!healthy);
    let found = problems(&report);
    assert_eq!(found.len(), 1, "{report}");
    assert!(found[0].contains("refuses this desk's token"), "{report}");

    agent.set_server_url(&format!("http://{}", free_addr()));
    let (healthy, report) = doctor(&agent);
    assert!(!healthy);
    let found = problems(&report);
    assert_eq!(found.len(), 1, "{report}");
    assert!(found[0].contains("cannot reach server"), "{report}");
}
