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
#[derive(Default, Deserialize)]
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
    /// `postgres://...`: a shared database for replicas (see `ServerConfig::database`).
    pub database: Option<String>,
    /// `s3://bucket/prefix` or a folder (see `ServerConfig::blobs`).
    pub blobs: Option<String>,
    /// How often the retention task runs (seconds).
    pub retention_interval_secs: Option<u64>,
    /// How long a blob marked for deletion waits before it is deleted (seconds).
    pub blob_delete_grace_secs: Option<u64>,
    /// Seconds without a frame from an agent before its session is dropped.
    pub uplink_idle_secs: Option<u64>,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_secs: Option<u64>,
    /// Where `POST /api/v1/archive/exports` writes archive packages.
    pub archive_dir: Option<PathBuf>,
}

/// Like `ServerConfig`'s: the database password and the metrics token are
/// not shown. Destructured, so a new field cannot be forgotten here.
impl fmt::Debug for ServerFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ServerFile {
            data_dir,
            listen,
            cover_font,
            log_format,
            metrics_token,
            max_agents,
            max_body_bytes,
            partial_ttl_hours,
            max_page_bytes,
            database,
            blobs,
            retention_interval_secs,
            blob_delete_grace_secs,
            uplink_idle_secs,
            header_timeout_secs,
            archive_dir,
        } = self;
        f.debug_struct("ServerFile")
            .field("data_dir", data_dir)
            .field("listen", listen)
            .field("cover_font", cover_font)
            .field("log_format", log_format)
            .field("metrics_token", &metrics_token.as_ref().map(|_| "<hidden>"))
            .field("max_agents", max_agents)
            .field("max_body_bytes", max_body_bytes)
            .field("partial_ttl_hours", partial_ttl_hours)
            .field("max_page_bytes", max_page_bytes)
            .field("database", &database.as_deref().map(redact_password))
            .field("blobs", blobs)
            .field("retention_interval_secs", retention_interval_secs)
            .field("blob_delete_grace_secs", blob_delete_grace_secs)
            .field("uplink_idle_secs", uplink_idle_secs)
            .field("header_timeout_secs", header_timeout_secs)
            .field("archive_dir", archive_dir)
            .finish()
    }
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

    /// Retention's timing: the file, then its environment variables (which
    /// win), including the test-only `IMC_TEST_RETENTION_DAY_SECS`.
    pub fn apply_retention(&self, config: &mut ServerConfig) -> anyhow::Result<()> {
        let env_secs = |name: &str| -> anyhow::Result<Option<u64>> {
            match std::env::var(name) {
                Ok(text) => text
                    .trim()
                    .parse()
                    .map(Some)
                    .with_context(|| format!("{name}={text:?}: give whole seconds")),
                Err(_) => Ok(None),
            }
        };
        let timing = &mut config.retention;
        if let Some(secs) =
            env_secs("IMC_RETENTION_INTERVAL_SECS")?.or(self.retention_interval_secs)
        {
            anyhow::ensure!(secs >= 1, "retention_interval_secs must be at least 1");
            timing.interval = Duration::from_secs(secs);
        }
        if let Some(secs) = env_secs("IMC_BLOB_DELETE_GRACE_SECS")?.or(self.blob_delete_grace_secs)
        {
            timing.grace = Duration::from_secs(secs);
            if timing.grace < MIN_BLOB_DELETE_GRACE {
                tracing::warn!(
                    configured_secs = secs,
                    used_secs = MIN_BLOB_DELETE_GRACE.as_secs(),
                    "blob_delete_grace_secs is below its floor; using the floor"
                );
                timing.grace = MIN_BLOB_DELETE_GRACE;
            }
        }
        // Tests only: a retention "day" this many seconds long, so that an
        // end-to-end test sees a purge within seconds; likewise a grace
        // below the floor.
        // A release build ignores both, whatever the environment says: a
        // short "day" or a grace below the floor would purge or delete what
        // must be kept. They exist for debug-built test servers.
        if let Some(secs) = env_secs("IMC_TEST_RETENTION_DAY_SECS")? {
            if cfg!(debug_assertions) {
                timing.day = Duration::from_secs(secs);
            } else {
                tracing::warn!("IMC_TEST_RETENTION_DAY_SECS is ignored by a release build");
            }
        }
        if let Some(secs) = env_secs("IMC_TEST_BLOB_DELETE_GRACE_SECS")? {
            if cfg!(debug_assertions) {
                timing.grace = Duration::from_secs(secs);
            } else {
                tracing::warn!(
                    "IMC_TEST_BLOB_DELETE_GRACE_SECS is ignored by a release build; the grace stays at its floor or above"
                );
            }
        }
        Ok(())
    }
}

/// The shortest grace a marked blob gets: a shorter one could delete bytes
/// that an upload reserved and is about to commit a row for (a slow disk or
/// database makes that window seconds long), losing an acknowledged page.
pub const MIN_BLOB_DELETE_GRACE: Duration = Duration::from_secs(60);

/// When the retention task runs and how long it waits (see `crate::retention`).
#[derive(Debug, Clone, Copy)]
pub struct RetentionTiming {
    pub interval: Duration,
    /// A blob marked for deletion is deleted only this long after it was
    /// marked: longer than any upload of the same bytes can take between its
    /// reservation and its database commit.
    pub grace: Duration,
    /// The length of a day in `image_retention_days` (tests shorten it).
    pub day: Duration,
}

impl Default for RetentionTiming {
    fn default() -> Self {
        RetentionTiming {
            interval: Duration::from_secs(3600),
            grace: Duration::from_secs(3600),
            day: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// Where `POST /archive/exports` writes its bags; none: the API cannot export.
    pub archive_dir: Option<PathBuf>,
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
    /// Where image bytes live: `s3://bucket/prefix` or a folder; `None` is
    /// the `blobs` folder in the data dir.
    pub blobs: Option<String>,
    /// `postgres://...` for a shared database (replicas); `None` is the
    /// embedded SQLite file in the data dir.
    pub database: Option<String>,
    /// When set, `GET /metrics` requires it as a bearer token.
    pub metrics_token: Option<String>,
    /// Largest page an agent may deliver (at most the protocol's 64 MiB); a
    /// larger one is refused for good and the desk shows it as failed.
    pub max_page_bytes: u64,
    /// An uplink on which the agent sent nothing (its heartbeat included) for
    /// this long is half-open: the session ends and its partial uploads wait.
    pub uplink_idle_timeout: Duration,
    /// Serve HTTPS/WSS with this certificate chain and key (PEM) instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Mutual TLS for agents: the client CA's certificate and key (PEM). It
    /// signs each desk's certificate at enrolment, and the uplink then
    /// requires the agent's own certificate. Needs `tls`.
    pub client_ca: Option<TlsFiles>,
    pub connection_limits: crate::net::ConnectionLimits,
    pub rate_limits: crate::ratelimit::RateLimits,
    /// What an anonymous caller may spend (`preauth`).
    pub preauth: crate::preauth::PreAuthLimits,
    /// A request body that sends nothing for this long is cut off (slow clients).
    pub body_idle_timeout: Duration,
    pub retention: RetentionTiming,
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
            archive_dir: None,
            bootstrap_token: None,
            max_body_bytes: 64 * 1024 * 1024,
            enrollment_code_ttl: Duration::from_secs(7 * 24 * 3600),
            cover_font: None,
            max_agents: 1024,
            partial_ttl: Duration::from_secs(24 * 3600),
            blobs: None,
            database: None,
            metrics_token: None,
            max_page_bytes: imc_shared::protocol::MAX_PAGE_BYTES,
            uplink_idle_timeout: Duration::from_secs(90),
            tls: None,
            client_ca: None,
            connection_limits: crate::net::ConnectionLimits::default(),
            rate_limits: crate::ratelimit::RateLimits::default(),
            preauth: crate::preauth::PreAuthLimits::default(),
            body_idle_timeout: Duration::from_secs(30),
            retention: RetentionTiming::default(),
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
            .field("archive_dir", &self.archive_dir)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<hidden>"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("enrollment_code_ttl", &self.enrollment_code_ttl)
            .field("cover_font", &self.cover_font)
            .field("max_agents", &self.max_agents)
            .field("partial_ttl", &self.partial_ttl)
            .field("blobs", &self.blobs)
            .field("database", &self.database.as_deref().map(redact_password))
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<hidden>"),
            )
            .field("max_page_bytes", &self.max_page_bytes)
            .field("uplink_idle_timeout", &self.uplink_idle_timeout)
            .field("tls", &self.tls)
            .field("client_ca", &self.client_ca)
            .field("connection_limits", &self.connection_limits)
            .field("rate_limits", &self.rate_limits)
            .field("body_idle_timeout", &self.body_idle_timeout)
            .field("retention", &self.retention)
            .finish()
    }
}

/// Query parameters of a connection URL that hold a secret (libpq reads a
/// password from the query too).
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// A connection URL fit for logs: the password replaced, in the user part
/// and in the query.
pub fn redact_password(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable URL>".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let secret = |key: &str| SECRET_PARAMS.iter().any(|s| key.eq_ignore_ascii_case(s));
    if parsed.query_pairs().any(|(key, _)| secret(&key)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret(&key) { "***".into() } else { value };
                (key.into_owned(), value.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
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
        let scaled: ServerFile =
            toml::from_str("database = \"postgres://imc@db/imc\"\nblobs = \"s3://scans/imc\"\n")
                .unwrap();
        assert_eq!(scaled.database.as_deref(), Some("postgres://imc@db/imc"));
        assert_eq!(scaled.blobs.as_deref(), Some("s3://scans/imc"));
    }

    #[test]
    fn debug_output_shows_no_database_password_nor_metrics_token() {
        let url = "postgres://imc:pw-in-userinfo@db:5432/imc?sslmode=require&password=pw-in-query";
        let mut config = ServerConfig::new("/x".into());
        config.database = Some(url.into());
        config.metrics_token = Some("metrics-secret".into());
        let file: ServerFile = toml::from_str(&format!(
            "database = \"{url}\"\nmetrics_token = \"metrics-secret\"\n"
        ))
        .unwrap();
        for shown in [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{file:?}"),
            format!("{file:#?}"),
        ] {
            for secret in ["pw-in-userinfo", "pw-in-query", "metrics-secret"] {
                assert!(!shown.contains(secret), "{secret} shown in {shown}");
            }
            // Still says where the database is, and that a token is set.
            assert!(
                shown.contains("db:5432") && shown.contains("sslmode=require"),
                "{shown}"
            );
            assert!(shown.contains("metrics_token: Some"), "{shown}");
        }
    }

    #[test]
    fn the_blob_delete_grace_has_a_floor() {
        let grace = |text: &str| {
            let file: ServerFile = toml::from_str(text).unwrap();
            let mut config = ServerConfig::new("/x".into());
            file.apply_retention(&mut config).unwrap();
            config.retention.grace
        };
        assert_eq!(grace(""), Duration::from_secs(3600));
        assert_eq!(grace("blob_delete_grace_secs = 5"), Duration::from_secs(60));
        assert_eq!(grace("blob_delete_grace_secs = 0"), Duration::from_secs(60));
        assert_eq!(
            grace("blob_delete_grace_secs = 60"),
            Duration::from_secs(60)
        );
        assert_eq!(
            grace("blob_delete_grace_secs = 7200"),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        let shown = redact_password("postgres://imc:s3cret@db:5432/imc");
        assert_eq!(shown, "postgres://imc:***@db:5432/imc");
    }
}
