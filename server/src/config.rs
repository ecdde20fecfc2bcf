//! The server's settings: where data lives and the limits it enforces.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Serve HTTPS/WSS with this certificate chain and key (PEM) instead of plain HTTP.
    pub tls: Option<TlsFiles>,
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
            tls: None,
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
            .field("tls", &self.tls)
            .field("connection_limits", &self.connection_limits)
            .field("rate_limits", &self.rate_limits)
            .field("body_idle_timeout", &self.body_idle_timeout)
            .finish()
    }
}
