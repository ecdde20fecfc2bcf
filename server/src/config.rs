//! The server's settings: where data lives and the limits it enforces.

use anyhow::Context;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `imc-server serve --config FILE`: the same settings as the flags, in TOML.
/// A flag or its environment variable wins over the file; the file wins over
/// the built-in default. See docs/OPERATIONS.md.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub cover_font: Option<PathBuf>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    pub metrics_token: Option<String>,
    pub max_agents: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub partial_ttl_hours: Option<u64>,
    pub max_page_bytes: Option<u64>,
    pub header_timeout_secs: Option<u64>,
}

impl ServerFile {
    pub fn load(path: &Path) -> anyhow::Result<ServerFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Applies the file's limits to `config` (paths and the address are merged by the caller).
    pub fn apply_limits(&self, config: &mut ServerConfig) {
        if let Some(n) = self.max_agents {
            config.max_agents = n;
        }
        if let Some(n) = self.max_body_bytes {
            config.max_body_bytes = n;
        }
        if let Some(hours) = self.partial_ttl_hours {
            config.partial_ttl = Duration::from_secs(hours * 3600);
        }
    }
}

#[derive(Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// On a fresh data dir, becomes an admin API token (env `IMC_BOOTSTRAP_TOKEN`).
    pub bootstrap_token: Option<String>,
    /// Largest JSON or image body accepted over HTTP.
    pub max_body_bytes: usize,
    /// How long an enrollment code stays valid.
    pub enrollment_code_ttl: Duration,
    /// A font file for cover sheets; system fonts are searched when unset.
    pub cover_font: Option<PathBuf>,
    /// Most agents connected at once; more wait for a slot.
    pub max_agents: usize,
    /// A partial upload untouched this long is abandoned and removed.
    pub partial_ttl: Duration,
    /// When set, `GET /metrics` requires it as a bearer token.
    pub metrics_token: Option<String>,
    /// Largest page an agent may deliver (at most the protocol's 64 MiB); a
    /// larger one is refused for good and the desk shows it as failed.
    pub max_page_bytes: u64,
    /// Serve HTTPS/WSS with this certificate chain and key (PEM) instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Mutual TLS for agents: the client CA's certificate and key (PEM). It
    /// signs each desk's certificate at enrolment, and the uplink then
    /// requires the agent's own certificate. Needs `tls`.
    pub client_ca: Option<TlsFiles>,
    pub connection_limits: crate::net::ConnectionLimits,
    pub rate_limits: crate::ratelimit::RateLimits,
    /// A request body that sends nothing for this long is cut off (slow clients).
    pub body_idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            data_dir,
            bootstrap_token: None,
            max_body_bytes: 64 * 1024 * 1024,
            enrollment_code_ttl: Duration::from_secs(7 * 24 * 3600),
            cover_font: None,
            max_agents: 1024,
            partial_ttl: Duration::from_secs(24 * 3600),
            metrics_token: None,
            max_page_bytes: imc_shared::protocol::MAX_PAGE_BYTES,
            tls: None,
            client_ca: None,
            connection_limits: crate::net::ConnectionLimits::default(),
            rate_limits: crate::ratelimit::RateLimits::default(),
            body_idle_timeout: Duration::from_secs(30),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("imc.sqlite3")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Uploads in progress; kept across restarts so agents can resume.
    pub fn partials_dir(&self) -> PathBuf {
        self.data_dir.join("partials")
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<hidden>"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("enrollment_code_ttl", &self.enrollment_code_ttl)
            .field("cover_font", &self.cover_font)
            .field("max_agents", &self.max_agents)
            .field("partial_ttl", &self.partial_ttl)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<hidden>"),
            )
            .field("max_page_bytes", &self.max_page_bytes)
            .field("tls", &self.tls)
            .field("client_ca", &self.client_ca)
            .field("connection_limits", &self.connection_limits)
            .field("rate_limits", &self.rate_limits)
            .field("body_idle_timeout", &self.body_idle_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_reads_known_keys_and_refuses_typos() {
        let file: ServerFile = toml::from_str(
            "data_dir = \"/var/lib/imc\"\nlisten = \"0.0.0.0:8080\"\nmax_agents = 50\nlog_format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(file.listen, Some("0.0.0.0:8080".parse().unwrap()));
        let mut config = ServerConfig::new("/x".into());
        file.apply_limits(&mut config);
        assert_eq!(config.max_agents, 50);
        assert!(toml::from_str::<ServerFile>("listne = \"0.0.0.0:1\"").is_err());
    }
}
