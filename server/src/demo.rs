//! `imc-server demo`: the whole product on one machine, in one command.
//!
//! Starts the server on a data dir under the demo folder, enrols a desk
//! agent (the `imc-agent` program, as its own process) that watches
//! `<demo>/inbox`, creates sample documents in
//! match mode through the real HTTP API, writes their cover sheets and a few
//! sample pages, and reports each document's status as paper arrives.

use crate::auth;
use crate::config::ServerConfig;
use crate::store::{Actor, NewApiToken};
use anyhow::Context;
use image::{GrayImage, Luma};
use imc_shared::api::{DocumentCreated, EnrollmentCode, StatusView};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct DemoOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// The `imc-agent` program (see [`agent_program`]).
    pub agent: PathBuf,
}

const SAMPLES: &[(&str, &str, &str, &str)] = &[
    (
        "EXP-2026-0001",
        "expense",
        "差旅费报销 北京-上海 Travel Beijing-Shanghai",
        "3260.50",
    ),
    (
        "EXP-2026-0002",
        "expense",
        "办公用品采购 Office supplies",
        "418.00",
    ),
    (
        "AP-2026-0107",
        "payable",
        "供应商发票 Supplier invoice 上海某某科技有限公司",
        "12800.00",
    ),
];

pub async fn run(options: DemoOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = &options.dir;
    let inbox = dir.join("inbox");
    let covers_dir = dir.join("covers");
    let samples_dir = dir.join("samples");
    for d in [&inbox, &covers_dir, &samples_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut config = ServerConfig::new(dir.join("server"));
    config.bootstrap_token = None;
    let state = crate::open(config).await?;
    let token = auth::new_secret("imc");
    state
        .store
        .add_api_token(
            NewApiToken {
                name: "demo".into(),
                scopes: vec![imc_shared::api::TokenScope::Admin],
                source_systems: None,
                token_hash: auth::hash_secret(&token),
            },
            &Actor("demo".into()),
        )
        .await?;
    add_desk_users(&state).await?;

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| {
            format!(
                "binding {} (pass --listen to use another address)",
                options.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let server_stop = shutdown.clone();
    let server = tokio::spawn(crate::serve_state(state, listener, async move {
        server_stop.cancelled().await
    }));

    let api = Api::new(&base, &token);
    api.put("/schemes/demo", serde_json::json!({"mode": "match"}))
        .await?;
    let mut docs = Vec::new();
    for (doc_no, doc_type, title, amount) in SAMPLES {
        let created: DocumentCreated = api
            .post(
                "/documents",
                serde_json::json!({
                    "source_system": "DEMO-ERP", "doc_no": doc_no, "doc_type": doc_type,
                    "org": "HQ 总部", "title": title, "amount": amount, "submitter": "张伟 Zhang Wei"
                }),
            )
            .await?;
        let png = api
            .bytes(&format!("/documents/{}/cover.png", created.id))
            .await?;
        let cover_path = covers_dir.join(format!("{doc_no}-cover.png"));
        std::fs::write(&cover_path, png)
            .with_context(|| format!("writing {}", cover_path.display()))?;
        docs.push(created);
    }
    write_sample_pages(&samples_dir)?;

    // The desk agent enrols like any desk, with a one-time code, and runs
    // as its own process, as it does at a real desk.
    let code: EnrollmentCode = api
        .post("/sites/demo-site/enrollment-codes", serde_json::json!({}))
        .await?;
    let mut desk = start_desk(&options.agent, &base, &code.code, dir, &inbox).await?;

    print_welcome(&base, &token, &docs, dir);
    tokio::select! {
        () = watch_statuses(&api, &docs, &shutdown) => {}
        exited = desk.wait() => {
            shutdown.cancel();
            server.await?.context("demo server")?;
            anyhow::bail!("the demo's desk agent stopped ({}); its log is above", exited?);
        }
    }

    shutdown.cancel();
    stop_desk(desk).await;
    server.await?.context("demo server")?;
    Ok(())
}

/// The `imc-agent` program the demo runs: `--agent PATH`, else the one
/// built beside this program.
pub fn agent_program(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        anyhow::ensure!(
            path.is_file(),
            "--agent {}: no such program",
            path.display()
        );
        return Ok(path);
    }
    let me = std::env::current_exe().context("finding this program's own path")?;
    let beside = me.with_file_name(format!("imc-agent{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        beside.is_file(),
        "the demo runs the desk agent as its own process and {} is missing: \
         build it with `cargo build --release -p imc-agent` (scripts/demo.sh does) \
         or pass --agent PATH",
        beside.display()
    );
    Ok(beside)
}

/// Enrols the demo desk with `code`, points it at `inbox` with short
/// settle and seal times, and starts `imc-agent run`.
async fn start_desk(
    agent: &Path,
    base: &str,
    code: &str,
    dir: &Path,
    inbox: &Path,
) -> anyhow::Result<tokio::process::Child> {
    let config = dir.join("agent").join("agent.toml");
    let _ = std::fs::remove_file(&config);
    let enrolled = tokio::process::Command::new(agent)
        .arg("--config")
        .arg(&config)
        .args([
            "enroll",
            "--server",
            base,
            "--code",
            code,
            "--name",
            "demo-desk",
            // Plain http on loopback: the desk must be told that is meant.
            "--insecure",
        ])
        .output()
        .await
        .with_context(|| format!("starting {}", agent.display()))?;
    anyhow::ensure!(
        enrolled.status.success(),
        "enrolling the demo desk with {}: {}",
        agent.display(),
        String::from_utf8_lossy(&enrolled.stderr).trim()
    );
    let written = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {}", config.display()))?;
    let mut settings: toml::Table = written
        .parse()
        .with_context(|| format!("reading {}", config.display()))?;
    let path = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned());
    settings.insert("watch".into(), toml::Value::Array(vec![path(inbox)]));
    settings.insert("data_dir".into(), path(&dir.join("agent").join("data")));
    settings.insert("settle_ms".into(), toml::Value::Integer(300));
    settings.insert("seal_after_ms".into(), toml::Value::Integer(2000));
    std::fs::write(&config, toml::to_string(&settings)?)
        .with_context(|| format!("writing {}", config.display()))?;
    tokio::process::Command::new(agent)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} run", agent.display()))
}

/// Ctrl-C reaches the desk too; give it time to stop on its own before
/// ending it (its queue survives either way).
async fn stop_desk(mut desk: tokio::process::Child) {
    if tokio::time::timeout(Duration::from_secs(5), desk.wait())
        .await
        .is_err()
    {
        let _ = desk.kill().await;
    }
}

fn print_welcome(base: &str, token: &str, docs: &[DocumentCreated], dir: &Path) {
    let d = dir.display();
    println!();
    println!("IMC demo is running. Press Ctrl-C to stop.");
    println!();
    println!("  API            {base}/api/v1   (Authorization: Bearer {token})");
    println!("  health         {base}/healthz");
    println!(
        "  sign-off desk  {base}/ui/   (log in as {DESK_SIGNOFF} / {DESK_PASSWORD}, or {DESK_ADMIN} / {DESK_PASSWORD})"
    );
    println!("  agent inbox    {d}/inbox   (watched by the demo's desk agent)");
    // The agent's default console address (imc-agent's config::DEFAULT_CONSOLE).
    println!("  desk console   http://127.0.0.1:8411/   (what the scan-desk clerk sees, live)");
    println!("  cover sheets   {d}/covers");
    println!();
    println!("Sample documents (match mode):");
    for doc in docs {
        println!(
            "  #{:<3} {:<14} cover {}  {}{}",
            doc.id, doc.doc_no, doc.cover_code, base, doc.cover_url
        );
    }
    if let Some(first) = docs.first() {
        println!();
        println!("Scan a packet: copy a cover sheet, then its pages, into the inbox:");
        println!(
            "  cp {d}/covers/{}-cover.png {d}/inbox/ && cp {d}/samples/*.png {d}/inbox/",
            first.doc_no
        );
        println!("Then look at the document and sign it off:");
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' {base}/api/v1/documents/{}",
            first.id
        );
        println!(
            "  curl -s -X POST -H 'Authorization: Bearer {token}' {base}/api/v1/documents/{}/sign-off",
            first.id
        );
    }
    println!();
}

/// The demo's desk logins. Fixed, so a second run of the demo on the same
/// folder prints a login that works; the demo listens on loopback.
const DESK_SIGNOFF: &str = "signoff";
const DESK_ADMIN: &str = "admin";
const DESK_PASSWORD: &str = "imc-demo-desk";

async fn add_desk_users(state: &crate::ServerState) -> anyhow::Result<()> {
    use crate::web::store::{NewUser, Role};
    for (name, role) in [(DESK_SIGNOFF, Role::SignOff), (DESK_ADMIN, Role::Admin)] {
        if state.web.store.user_by_name(name).await?.is_some() {
            continue;
        }
        let password_hash = crate::web::passwords::hash_blocking(DESK_PASSWORD)?;
        state
            .web
            .store
            .add_user(
                NewUser {
                    name: name.to_owned(),
                    role,
                    site: None,
                    password_hash,
                },
                &crate::store::Actor("demo".into()),
            )
            .await
            .with_context(|| format!("adding the demo desk user {name}"))?;
    }
    Ok(())
}

async fn watch_statuses(api: &Api, docs: &[DocumentCreated], shutdown: &CancellationToken) {
    let mut last: HashMap<i64, String> =
        docs.iter().map(|d| (d.id, d.status.to_string())).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for doc in docs {
            let Ok(status) = api
                .get::<StatusView>(&format!("/documents/{}/status", doc.id))
                .await
            else {
                continue;
            };
            let now = status.status.to_string();
            if last.get(&doc.id) != Some(&now) {
                println!(
                    "{} is now {} ({} images)",
                    doc.doc_no, now, status.image_count
                );
                last.insert(doc.id, now);
            }
        }
    }
}

/// Two plain "receipt" pages to scan after a cover.
fn write_sample_pages(dir: &Path) -> anyhow::Result<()> {
    for n in 1..=2u32 {
        let mut page = GrayImage::from_pixel(1240, 1754, Luma([250]));
        for line in 0..(12 + n * 4) {
            let y = 200 + line * 70;
            let width = 400 + (line * 137 % 600);
            for yy in y..y + 24 {
                for x in 150..150 + width {
                    page.put_pixel(x, yy, Luma([40]));
                }
            }
        }
        let path = dir.join(format!("receipt-{n}.png"));
        page.save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A small client for the demo's own calls to its server.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(base: &str, token: &str) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: format!("{base}/api/v1"),
            token: token.to_owned(),
        }
    }

    async fn check(response: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("{what}: {status}: {body}")
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<T> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        Ok(Self::check(response, path).await?.json().await?)
    }

    async fn put(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let response = self
            .client
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        Self::check(response, path).await?;
        Ok(())
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(Self::check(response, path).await?.json().await?)
    }

    async fn bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(Self::check(response, path).await?.bytes().await?.to_vec())
    }
}
