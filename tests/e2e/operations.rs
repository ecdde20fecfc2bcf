//! Running the server like a product: environment variables win over the
//! config file, `/healthz` answers while the process lives, and `/readyz`
//! follows the database (here a PostgreSQL schema that disappears).

use crate::harness::{TOKEN, bin};
use crate::scale::{fresh_database, migrate, services};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn env_beats_the_config_file_and_readyz_follows_the_database() {
    let settings = services();
    let database = fresh_database(&settings).await;
    migrate(&database);
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nmetrics_token = \"from-the-file\"\n\
             database = {database:?}\n",
            tmp.path().join("data").to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(bin("imc-server"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("IMC_METRICS_TOKEN", "from-the-environment")
        .env("IMC_BOOTSTRAP_TOKEN", TOKEN)
        .env("IMC_LOG", "error")
        .env_remove("IMC_DATA_DIR")
        .env_remove("IMC_LISTEN")
        .env_remove("IMC_DATABASE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("imc-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(get("/metrics", Some("from-the-file")).await.unwrap()),
        401
    );
    assert_eq!(
        status(get("/metrics", Some("from-the-environment")).await.unwrap()),
        200,
        "the environment variable wins over the file"
    );
    let health = get("/healthz", None).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready = get("/readyz", None).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready");

    // The database loses its tables: not ready, though still alive.
    let schema = database.rsplit("search_path%3D").next().unwrap().to_owned();
    let url = &settings["IMC_TEST_DATABASE_URL"];
    let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    drop(admin);
    let _ = task.await;
    let ready = get("/readyz", None).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("database"));
    assert_eq!(status(get("/healthz", None).await.unwrap()), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Started with the usual low soft limit on open files (1,024 on most
/// systems, below what the default 1,024 desks need), the server raises it
/// to the hard limit itself.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_raises_its_open_file_limit_to_the_hard_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // `prlimit` sets the limits and then becomes the server (same pid).
    let mut child = Command::new("prlimit")
        .args(["--nofile=512:4096", "--"])
        .arg(bin("imc-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env("IMC_BOOTSTRAP_TOKEN", TOKEN)
        .env("IMC_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the server");
    let stdout = child.stdout.take().unwrap();
    let base = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("imc-server listening on ")
                .map(str::to_owned)
        })
        .expect("the server reports its address");
    let pid = child.id();
    let soft_limit = || -> Option<String> {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3).map(str::to_owned)
    };
    // Serving by then, so the limit is the one it serves with.
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .map(|r| r.status().as_u16());
    let limit = soft_limit();
    // Stopped before asserting, so a failure leaves no server behind.
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health.ok(), Some(200));
    assert_eq!(
        limit.as_deref(),
        Some("4096"),
        "soft limit raised to the hard one"
    );
}
