//! The console on a real listener, with a real queue: the PIN beyond loopback.

use super::*;

/// A desk of site `hq` whose server is nowhere (port 9).
fn test_config() -> AgentConfig {
    let mut config = AgentConfig::new(
        "http://127.0.0.1:9".into(),
        "agent-1".into(),
        "hq".into(),
        "imc_agent_secret".into(),
    );
    config.insecure = true;
    config
}

async fn console_beyond_loopback(
    pin: &str,
) -> (tempfile::TempDir, String, String, CancellationToken) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.data_dir = Some(dir.path().join("data"));
    config.console_pin = Some(pin.into());
    let queue = Arc::new(Queue::open(&dir.path().join("data")).unwrap());
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let bound = listener.local_addr().unwrap();
    let console = Console::new(Arc::new(config), queue, Arc::new(Notify::new()), bound).unwrap();
    let csrf = console.inner.guard.csrf.clone();
    let stop = CancellationToken::new();
    tokio::spawn(serve(console, listener, stop.clone()));
    (
        dir,
        format!("http://127.0.0.1:{}", bound.port()),
        csrf,
        stop,
    )
}

async fn login(client: &reqwest::Client, base: &str, csrf: &str, pin: &str) -> reqwest::Response {
    client
        .post(format!("{base}/login"))
        .header(guard::CSRF_HEADER, csrf)
        .json(&serde_json::json!({ "pin": pin }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn beyond_loopback_the_console_asks_for_the_pin_and_slows_down_guessing() {
    let (_dir, base, csrf, stop) = console_beyond_loopback("2468").await;
    let client = reqwest::Client::new();
    // The page loads (it asks for the PIN); the desk's data does not.
    assert_eq!(
        client
            .get(format!("{base}/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{base}/view"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    for _ in 0..guard::PIN_ATTEMPTS {
        assert_eq!(login(&client, &base, &csrf, "1111").await.status(), 401);
    }
    // Even the right PIN waits once the guesses ran out.
    assert_eq!(login(&client, &base, &csrf, "2468").await.status(), 429);
    stop.cancel();

    let (_dir, base, csrf, stop) = console_beyond_loopback("2468").await;
    let answer = login(&client, &base, &csrf, "2468").await;
    assert_eq!(answer.status(), 204);
    let cookie = answer
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let view = client
        .get(format!("{base}/view"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), 200);
    let view: serde_json::Value = view.json().await.unwrap();
    assert_eq!(view["site"], "hq");
    assert_eq!(view["link"]["state"], "never");
    stop.cancel();
}

#[tokio::test]
async fn a_retried_quarantined_file_goes_back_to_its_inbox_and_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let quarantine = dir.path().join("quarantine");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&quarantine).unwrap();
    let kept = quarantine.join("scan_0007.pdf");
    std::fs::write(&kept, b"%PDF-1.4 fixed").unwrap();
    let mut config = test_config();
    config.watch = vec![inbox.clone()];
    let queue = Arc::new(Queue::open(&dir.path().join("data")).unwrap());
    let key = crate::queue::FileKey {
        path: inbox.join("scan_0007.pdf"),
        size: 9,
        mtime_ns: 1,
    };
    queue
        .quarantine(&inbox, &key, "not a PDF: no trailer", Some(&kept))
        .unwrap();
    let id = queue.quarantined(10).unwrap()[0].id;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound = listener.local_addr().unwrap();
    let console = Console::new(
        Arc::new(config),
        Arc::clone(&queue),
        Arc::new(Notify::new()),
        bound,
    )
    .unwrap();
    let csrf = console.inner.guard.csrf.clone();
    let stop = CancellationToken::new();
    tokio::spawn(serve(console, listener, stop.clone()));
    let answer = reqwest::Client::new()
        .post(format!("http://{bound}/actions/retry-file"))
        .header(guard::CSRF_HEADER, &csrf)
        .json(&serde_json::json!({ "id": id }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(inbox.join("scan_0007.pdf").exists());
    assert!(!kept.exists());
    assert!(queue.quarantined(10).unwrap().is_empty());
    assert!(!queue.knows(&key, "").unwrap(), "the watcher would skip it");
    stop.cancel();
}
