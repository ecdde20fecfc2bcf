//! Starts real server and agent processes for a test and cleans up on drop.

use anyhow::{Context, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "imc_test_admin_token_0123456789";

/// Where cargo put the workspace's executables: next to this test's `deps` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`, done by scripts/test.sh)",
        path.display()
    );
    path
}

/// Polls `check` until it returns Some, or fails after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct TestServer {
    child: Option<Child>,
    /// Extra environment for the server process (kept for restarts).
    env: Vec<(String, String)>,
    pub base: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
    /// Further `serve` arguments (TLS files, limits), kept for `restart`.
    extra_args: Vec<String>,
}

fn spawn_server(
    data_dir: &Path,
    listen: &str,
    extra: &[String],
    env: &[(String, String)],
) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(bin("imc-server"))
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", listen])
        .args(extra)
        .env("IMC_BOOTSTRAP_TOKEN", TOKEN)
        .env("IMC_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning imc-server")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("imc-server listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(base) => Ok((child, base)),
        Err(_) => {
            let _ = child.kill();
            bail!("imc-server did not report its address within 30 s")
        }
    }
}

/// Held by the tests that load the whole machine (a flood of connections,
/// replicas failing over, the load generator), so that they do not run at
/// the same time on a 2-core machine: one that measures answers under its
/// own load must not be measuring another's. Other tests run beside them.
pub async fn machine_heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// A free loopback port, for a server that must come up later on a known address.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_at("127.0.0.1:0")
    }

    pub fn start_at(listen: &str) -> TestServer {
        TestServer::start_with(listen, &[], reqwest::Client::new())
    }

    /// Starts with extra environment variables (e.g. a lower limit).
    pub fn start_with_env(listen: &str, env: &[(&str, &str)]) -> TestServer {
        TestServer::start_full(listen, &[], env, reqwest::Client::new())
    }

    /// A server with further `serve` arguments, reached with `client`
    /// (e.g. one trusting a test CA).
    pub fn start_with(listen: &str, extra: &[String], client: reqwest::Client) -> TestServer {
        TestServer::start_full(listen, extra, &[], client)
    }

    pub fn start_full(
        listen: &str,
        extra: &[String],
        env: &[(&str, &str)],
        client: reqwest::Client,
    ) -> TestServer {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let (child, base) = spawn_server(&data_dir, listen, extra, &env).expect("server starts");
        TestServer {
            child: Some(child),
            env,
            base,
            data_dir,
            _tmp: Some(tmp),
            client,
            extra_args: extra.to_vec(),
        }
    }

    /// Starts on an existing data dir (a restored backup); the caller owns the folder.
    pub fn start_on(data_dir: &Path) -> TestServer {
        let (child, base) = spawn_server(data_dir, "127.0.0.1:0", &[], &[]).expect("server starts");
        TestServer {
            child: Some(child),
            env: Vec::new(),
            base,
            data_dir: data_dir.to_owned(),
            _tmp: None,
            client: reqwest::Client::new(),
            extra_args: Vec::new(),
        }
    }

    /// How many files the server process holds open whose path ends with `suffix`.
    #[cfg(target_os = "linux")]
    pub fn open_files_ending(&self, suffix: &str) -> usize {
        let pid = self.child.as_ref().expect("the server is running").id();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("the server's descriptors")
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().ends_with(suffix))
            .count()
    }

    /// The server's process id, while it runs (for signals).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// kill -9: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the server to finish its shutdown.
    pub fn stop_gracefully(&mut self) {
        if let Some(mut child) = self.child.take() {
            let terminated = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            assert!(terminated.is_ok_and(|s| s.success()), "kill -TERM");
            let status = child.wait().expect("the server exits");
            assert!(status.success(), "the server stopped with {status}");
        }
    }

    /// Starts again on the same data dir and address, as after a crash.
    pub fn restart(&mut self) {
        self.kill();
        let addr = self
            .base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match spawn_server(&self.data_dir, &addr, &self.extra_args, &self.env) {
                Ok((child, _)) => {
                    self.child = Some(child);
                    return;
                }
                // The old socket may linger for a moment.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart: {e:#}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("server did not restart: {e:#}"),
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.bytes().await.expect("body").to_vec())
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .put(self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("PUT");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("DELETE");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A document in match mode (the scheme makes every document match mode).
    pub async fn match_document(&self, doc_no: &str) -> Value {
        let (status, _) = self
            .put("/schemes/all-match", serde_json::json!({"mode": "match"}))
            .await;
        assert_eq!(status, 200);
        let (status, doc) = self
            .post(
                "/documents",
                serde_json::json!({"source_system": "ERP", "doc_no": doc_no, "doc_type": "expense", "org": "HQ"}),
            )
            .await;
        assert_eq!(status, 201, "{doc}");
        doc
    }

    /// The cover sheet this server prints for a document, as a scanner's JPEG of it.
    pub async fn cover_scan(&self, doc: &Value) -> Vec<u8> {
        let id = doc["id"].as_i64().expect("document id");
        let (status, png) = self.get_bytes(&format!("/documents/{id}/cover.png")).await;
        assert_eq!(status, 200, "cover of document {id}");
        crate::scan::jpeg(&crate::scan::decode_gray(&png), 80)
    }

    pub async fn status_of(&self, id: i64) -> String {
        let (_, status) = self.get(&format!("/documents/{id}/status")).await;
        status["status"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn wait_for_status(&self, id: i64, want: &str, limit: Duration) {
        eventually(
            &format!("document {id} to become {want}"),
            limit,
            || async { (self.status_of(id).await == want).then_some(()) },
        )
        .await
    }

    pub async fn enrollment_code(&self, site: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/sites/{site}/enrollment-codes"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["code"].as_str().expect("code").to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct TestAgent {
    child: Option<Child>,
    pub config: PathBuf,
    pub inbox: PathBuf,
    pub root: PathBuf,
    _tmp: tempfile::TempDir,
}

impl TestAgent {
    /// Enrols through the real `imc-agent enroll` and tunes timings for tests.
    /// Tests run over plain http on loopback, hence `--insecure`.
    pub async fn enroll(server: &TestServer) -> TestAgent {
        TestAgent::enroll_with(server, &["--insecure".into()])
            .await
            .unwrap_or_else(|stderr| panic!("enroll failed: {stderr}"))
    }

    /// Enrols with further `enroll` arguments; Err is the command's stderr.
    pub async fn enroll_with(
        server: &TestServer,
        extra: &[std::ffi::OsString],
    ) -> Result<TestAgent, String> {
        TestAgent::enroll_at(server, "test-site", extra).await
    }

    /// Enrols a desk of `site`.
    pub async fn enroll_at(
        server: &TestServer,
        site: &str,
        extra: &[std::ffi::OsString],
    ) -> Result<TestAgent, String> {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().to_owned();
        let config = root.join("agent.toml");
        let code = server.enrollment_code(site).await;
        let output = Command::new(bin("imc-agent"))
            .arg("--config")
            .arg(&config)
            .args([
                "enroll",
                "--server",
                &server.base,
                "--code",
                &code,
                "--name",
                "desk-1",
            ])
            .args(extra)
            .output()
            .expect("run imc-agent enroll");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let mut table: toml::Table =
            toml::from_str(&std::fs::read_to_string(&config).expect("config")).expect("toml");
        table.insert(
            "data_dir".into(),
            root.join("data").to_string_lossy().into_owned().into(),
        );
        table.insert("settle_ms".into(), 200.into());
        table.insert("seal_after_ms".into(), 1500.into());
        table.insert("rescan_secs".into(), 2.into());
        // Many agents run at once: none takes the console's default port
        // unless a test gives it one.
        table.insert("console".into(), "off".into());
        std::fs::write(&config, toml::to_string(&table).expect("toml")).expect("write config");
        let inbox = root.join("inbox");
        std::fs::create_dir_all(&inbox).expect("inbox");
        Ok(TestAgent {
            child: None,
            config,
            inbox,
            root,
            _tmp: tmp,
        })
    }

    /// Sets one key of the agent's config file (before `start`).
    pub fn configure(&self, key: &str, value: toml::Value) {
        let mut table: toml::Table =
            toml::from_str(&std::fs::read_to_string(&self.config).expect("config")).expect("toml");
        table.insert(key.into(), value);
        std::fs::write(&self.config, toml::to_string(&table).expect("toml")).expect("write config");
    }

    /// Points the agent at another address (a proxy, a server not up yet).
    pub fn set_server_url(&self, url: &str) {
        self.configure("server_url", url.into());
    }

    pub fn start(&mut self) {
        let child = Command::new(bin("imc-agent"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .arg("--watch")
            .arg(&self.inbox)
            .env("IMC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn imc-agent run");
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The running agent's peak resident memory (VmHWM), in KiB.
    #[cfg(target_os = "linux")]
    pub fn peak_memory_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// A key of the agent's config file (its id, its token...).
    pub fn config_value(&self, key: &str) -> String {
        let table: toml::Table =
            toml::from_str(&std::fs::read_to_string(&self.config).expect("config")).expect("toml");
        table[key].as_str().expect("a string setting").to_owned()
    }

    pub fn done_dir(&self) -> PathBuf {
        self.root.join("done")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Writes a file into the inbox the way a scanner finishing a page would.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let tmp = self.inbox.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).expect("write scan");
        let path = self.inbox.join(name);
        std::fs::rename(&tmp, &path).expect("rename scan");
        path
    }

    pub fn status(&self) -> String {
        let output = Command::new(bin("imc-agent"))
            .arg("--config")
            .arg(&self.config)
            .arg("status")
            .output()
            .expect("run imc-agent status");
        assert!(
            output.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A client that shows redirects instead of following them (the desk
/// answers a login with 303).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs a desk user in through the login form (which first sets its CSRF
/// cookie); returns the session cookie, `imc_session=...`.
pub async fn desk_login(base: &str, name: &str, password: &str) -> String {
    let ok = desk_login_attempt(base, name, password).await;
    assert_eq!(ok.status(), 303, "login of {name}");
    set_cookie(&ok, "imc_session").expect("a session cookie")
}

/// `name=value` of the cookie `name` that a response sets.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok()?.split(';').next().map(str::to_owned))
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// Sends the login form as a browser would; the answer, whatever it is.
pub async fn desk_login_attempt(base: &str, name: &str, password: &str) -> reqwest::Response {
    login_with(no_redirects(), base, name, password).await
}

/// The same, from the loopback address `from` (127.0.0.0/8).
pub async fn desk_login_attempt_from(
    from: std::net::IpAddr,
    base: &str,
    name: &str,
    password: &str,
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .local_address(from)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    login_with(client, base, name, password).await
}

async fn login_with(
    client: reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> reqwest::Response {
    let login = format!("{base}/ui/login");
    let page = client.get(&login).send().await.unwrap();
    let csrf = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    client
        .post(&login)
        .header("cookie", format!("imc_login_csrf={csrf}"))
        .form(&[("name", name), ("password", password), ("_csrf", &csrf)])
        .send()
        .await
        .unwrap()
}
