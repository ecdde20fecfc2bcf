//! `imc-agent doctor`: checks what a desk needs to deliver pages and prints
//! one line per finding, saying what to fix.

use crate::config::AgentConfig;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Less free space than this next to the spool is a problem: a day of scans
/// must fit while the server is unreachable.
const MIN_FREE_BYTES: u64 = 1024 * 1024 * 1024;
/// Tokens and TLS tolerate some skew; more than this breaks log correlation and certificates.
const MAX_CLOCK_SKEW_SECS: i64 = 60;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Finding {
    pub ok: bool,
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = if self.ok { "ok " } else { "FIX" };
        write!(f, "{tag} {}", self.text)
    }
}

fn ok(text: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        text: text.into(),
    }
}

fn fix(text: impl Into<String>) -> Finding {
    Finding {
        ok: false,
        text: text.into(),
    }
}

/// Every check, in the order a person would fix them.
pub async fn check(config_path: &Path) -> Vec<Finding> {
    let config = match AgentConfig::load(config_path) {
        Ok(config) => config,
        Err(e) => return vec![fix(format!("{e}"))],
    };
    let mut findings = vec![ok(format!("config {}", config_path.display()))];
    findings.extend(check_folders(&config));
    findings.extend(check_spool(&config));
    findings.extend(check_server(&config).await);
    findings
}

fn check_folders(config: &AgentConfig) -> Vec<Finding> {
    if config.watch.is_empty() {
        return vec![fix(
            "no folder to watch: add `watch = [\"DIR\"]` to the config or reinstall with --watch DIR",
        )];
    }
    let mut findings = Vec::new();
    for inbox in &config.watch {
        findings.push(match std::fs::metadata(inbox) {
            Ok(meta) if meta.is_dir() => writable("inbox", inbox),
            Ok(_) => fix(format!(
                "inbox {} is a file, not a folder: point `watch` at the scanner's folder",
                inbox.display()
            )),
            Err(_) => fix(format!(
                "inbox {} is missing: create it and point the scanner at it (or fix `watch`)",
                inbox.display()
            )),
        });
        for (what, dir) in [
            ("done folder", config.done_dir_for(inbox)),
            ("quarantine folder", config.quarantine_dir_for(inbox)),
        ] {
            findings.push(if dir.is_dir() {
                writable(what, &dir)
            } else {
                // The agent creates it on first use; its parent must let it.
                match nearest_existing(&dir) {
                    Some(parent) => match probe(&parent) {
                        Ok(()) => ok(format!("{what} {} (created on first use)", dir.display())),
                        Err(e) => fix(format!(
                            "{what} {} is missing and {} is not writable ({e}): create it for the agent's user",
                            dir.display(),
                            parent.display()
                        )),
                    },
                    None => fix(format!("{what} {} cannot be created", dir.display())),
                }
            });
        }
    }
    findings
}

fn check_spool(config: &AgentConfig) -> Vec<Finding> {
    let data_dir = match config.data_dir() {
        Ok(dir) => dir,
        Err(e) => return vec![fix(format!("{e}"))],
    };
    let Some(existing) = nearest_existing(&data_dir) else {
        return vec![fix(format!(
            "data folder {} cannot be created",
            data_dir.display()
        ))];
    };
    let mut findings = vec![match probe(&existing) {
        Ok(()) => ok(format!("data folder {}", data_dir.display())),
        Err(e) => fix(format!(
            "data folder {} is not writable ({e}): give the agent's user write access",
            existing.display()
        )),
    }];
    findings.push(match fs4::available_space(&existing) {
        Ok(free) if free >= MIN_FREE_BYTES => {
            ok(format!("{} MiB free for the spool", free / (1024 * 1024)))
        }
        Ok(free) => fix(format!(
            "only {} MiB free on {}: free at least {} MiB or move `data_dir` to a larger disk",
            free / (1024 * 1024),
            existing.display(),
            MIN_FREE_BYTES / (1024 * 1024)
        )),
        Err(e) => fix(format!(
            "cannot read free space on {}: {e}",
            existing.display()
        )),
    });
    findings
}

async fn check_server(config: &AgentConfig) -> Vec<Finding> {
    let base = config.server_url.trim_end_matches('/');
    let client = match reqwest::Client::builder().timeout(HTTP_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => return vec![fix(format!("cannot set up HTTP: {e}"))],
    };
    let health = format!("{base}/healthz");
    let response = match client.get(&health).send().await {
        Ok(response) => response,
        Err(e) => return vec![unreachable(base, &e)],
    };
    let mut findings = Vec::new();
    if !response.status().is_success() {
        findings.push(fix(format!(
            "server {base} answered {} on /healthz: check the server's log",
            response.status()
        )));
    } else {
        findings.push(ok(format!("server {base} reachable")));
    }
    if base.starts_with("https://") {
        findings.push(ok("TLS certificate accepted"));
    }
    findings.push(clock_skew(&response));

    let uplink = format!("{base}/api/v1/agent/uplink");
    findings.push(
        match client.get(&uplink).bearer_auth(&config.token).send().await {
            // Accepted credentials get as far as "this is a WebSocket endpoint".
            Ok(r) if r.status() == reqwest::StatusCode::BAD_REQUEST
                || r.status() == reqwest::StatusCode::UPGRADE_REQUIRED =>
            {
                ok(format!("token accepted (agent {})", config.agent_id))
            }
            Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED
                || r.status() == reqwest::StatusCode::FORBIDDEN =>
            {
                fix(format!(
                    "the server refuses this desk's token (agent {}): ask for a new code and run `imc-agent enroll`",
                    config.agent_id
                ))
            }
            Ok(r) => fix(format!(
                "the server answered {} when checking the token: check the server's log",
                r.status()
            )),
            Err(e) => unreachable(base, &e),
        },
    );
    findings
}

fn unreachable(base: &str, error: &reqwest::Error) -> Finding {
    let detail = error_chain(error);
    let tls = ["certificate", "tls", "handshake"]
        .iter()
        .any(|word| detail.to_lowercase().contains(word));
    if tls {
        fix(format!(
            "TLS with {base} failed ({detail}): install the server's CA certificate or fix the server's certificate"
        ))
    } else {
        fix(format!(
            "cannot reach server {base} ({detail}): check the URL, the network and the firewall"
        ))
    }
}

fn clock_skew(response: &reqwest::Response) -> Finding {
    let server_time = response
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok());
    let Some(server_time) = server_time else {
        return fix("the server sent no Date header, so clock skew cannot be checked");
    };
    // The Date header has whole seconds; allow for that and the round trip.
    let skew = (chrono::Utc::now() - server_time.to_utc()).num_seconds();
    if skew.abs() > MAX_CLOCK_SKEW_SECS {
        let direction = if skew > 0 { "ahead of" } else { "behind" };
        fix(format!(
            "this PC's clock is {} s {direction} the server's: turn on time synchronisation (NTP)",
            skew.abs()
        ))
    } else {
        ok(format!("clock within {} s of the server", skew.abs()))
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}

fn writable(what: &str, dir: &Path) -> Finding {
    match probe(dir) {
        Ok(()) => ok(format!("{what} {}", dir.display())),
        Err(e) => fix(format!(
            "{what} {} is not writable ({e}): give the agent's user write access",
            dir.display()
        )),
    }
}

/// Creates and removes a hidden file (the watcher ignores dot files).
fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(format!(".imc-doctor-{}", std::process::id()));
    std::fs::write(&path, b"")?;
    std::fs::remove_file(&path)
}

fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors().find(|p| p.is_dir()).map(Path::to_owned)
}
