//! The agent's one config file (TOML), written by `imc-agent enroll`.
//!
//! Defaults live in the OS's standard places (`directories`): the config under
//! the user's config dir, the queue and spool under the local data dir. Every
//! command takes `--config PATH` to point elsewhere (tests, several agents on
//! one PC).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no config at {0}: enrol this desk first with `imc-agent enroll --server URL --code CODE`"
    )]
    Missing(PathBuf),
    #[error("config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no standard config folder on this system; pass --config PATH")]
    NoHome,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Base URL of the server, e.g. `https://imc.example.com`.
    pub server_url: String,
    pub agent_id: String,
    pub site: String,
    /// The agent's credential; shown nowhere, not even in Debug output.
    pub token: String,
    /// Scanner output folders to watch.
    #[serde(default)]
    pub watch: Vec<PathBuf>,
    /// Queue database and page spool. Defaults to the OS's local data folder.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Where delivered source files go; defaults to `done` next to each inbox.
    #[serde(default)]
    pub done_dir: Option<PathBuf>,
    /// Where unreadable files go; defaults to `quarantine` next to each inbox.
    #[serde(default)]
    pub quarantine_dir: Option<PathBuf>,
    /// How long size and mtime must stay unchanged before a file is taken.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Full rescan of the folders, for shares where events never fire.
    #[serde(default = "default_rescan_secs")]
    pub rescan_secs: u64,
    /// `events` (change events plus the periodic rescan) or `poll` (the rescan
    /// only, every `rescan_secs`): network shares often never fire events, and
    /// some SMB clients misbehave with a watch on them.
    #[serde(default)]
    pub watch_mode: WatchMode,
    /// A packet with no new page for this long is closed (the batch is over).
    #[serde(default = "default_seal_after_ms")]
    pub seal_after_ms: u64,
    /// Once a packet holds the attachment count its cover declares, it closes
    /// after this much quiet instead (room for a trailing blank back).
    #[serde(default = "default_declared_grace_ms")]
    pub declared_grace_ms: u64,
    /// Also look for every barcode symbology on each page (slower).
    #[serde(default)]
    pub full_barcode_scan: bool,
    /// Pages waiting in the spool, in MiB, beyond which new scans wait in the inbox.
    #[serde(default = "default_max_spool_mb")]
    pub max_spool_mb: u64,
    /// Free space, in MiB, the agent leaves on the disk holding its data; below
    /// it new scans wait in the inbox and the desk is told the disk is nearly full.
    #[serde(default = "default_min_free_disk_mb")]
    pub min_free_disk_mb: u64,
    /// The CA (PEM) that signs the server's certificate, pinned at enrolment
    /// (`enroll --ca`); the system roots are used when absent.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// Plain http/ws allowed: only for a lab (`enroll --insecure`).
    #[serde(default)]
    pub insecure: bool,
    /// How often the agent pings the server on an open link.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// A link on which the server said nothing, or took no frame, for this
    /// long is half-open: the agent drops it and reconnects. Also the limit
    /// for opening a connection. A chunk (at most 256 KiB) must cross the
    /// link within it.
    #[serde(default = "default_link_timeout_secs")]
    pub link_timeout_secs: u64,
    /// Mutual TLS: this desk's certificate (PEM), signed by the server at
    /// enrolment, and its private key (PEM, made on the desk, owner-only).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// The server's public cover keys as given at enrolment; the desk keeps
    /// newer ones in its queue once connected ([`crate::cover_rules`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cover_keys: Vec<imc_shared::cover_keys::CoverKey>,
    /// Where the clerk's console listens (`ADDR:PORT`), or `off`; default
    /// [`DEFAULT_CONSOLE`], loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<String>,
    /// The PIN a console bound beyond loopback asks for (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_pin: Option<String>,
}

/// The console's address when the config names none.
pub const DEFAULT_CONSOLE: &str = "127.0.0.1:8411";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    #[default]
    Events,
    Poll,
}

fn default_settle_ms() -> u64 {
    1000
}
fn default_rescan_secs() -> u64 {
    10
}
fn default_seal_after_ms() -> u64 {
    5000
}
fn default_declared_grace_ms() -> u64 {
    1000
}
fn default_max_spool_mb() -> u64 {
    20 * 1024
}
fn default_min_free_disk_mb() -> u64 {
    1024
}
fn default_heartbeat_secs() -> u64 {
    10
}
fn default_link_timeout_secs() -> u64 {
    35
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server_url", &self.server_url)
            .field("agent_id", &self.agent_id)
            .field("site", &self.site)
            .field("token", &"<hidden>")
            .field("watch", &self.watch)
            .field("data_dir", &self.data_dir)
            .field("settle_ms", &self.settle_ms)
            .field("rescan_secs", &self.rescan_secs)
            .field("watch_mode", &self.watch_mode)
            .field("seal_after_ms", &self.seal_after_ms)
            .field("declared_grace_ms", &self.declared_grace_ms)
            .field("max_spool_mb", &self.max_spool_mb)
            .field("min_free_disk_mb", &self.min_free_disk_mb)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pinned CA>"))
            .field("insecure", &self.insecure)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .field("link_timeout_secs", &self.link_timeout_secs)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("cover_keys", &self.cover_keys.len())
            .field("console", &self.console)
            .field("console_pin", &self.console_pin.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl AgentConfig {
    pub fn new(server_url: String, agent_id: String, site: String, token: String) -> AgentConfig {
        AgentConfig {
            server_url,
            agent_id,
            site,
            token,
            watch: Vec::new(),
            data_dir: None,
            done_dir: None,
            quarantine_dir: None,
            settle_ms: default_settle_ms(),
            rescan_secs: default_rescan_secs(),
            watch_mode: WatchMode::Events,
            seal_after_ms: default_seal_after_ms(),
            declared_grace_ms: default_declared_grace_ms(),
            full_barcode_scan: false,
            max_spool_mb: default_max_spool_mb(),
            min_free_disk_mb: default_min_free_disk_mb(),
            ca_pem: None,
            insecure: false,
            heartbeat_secs: default_heartbeat_secs(),
            link_timeout_secs: default_link_timeout_secs(),
            client_cert: None,
            client_key: None,
            cover_keys: Vec::new(),
            console: None,
            console_pin: None,
        }
    }

    /// The console's address, or None when it is turned off.
    pub fn console_addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let text = self.console.as_deref().unwrap_or(DEFAULT_CONSOLE).trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|e| ConfigError::Invalid {
            path: PathBuf::from("console"),
            message: format!("console {text:?} is not ADDR:PORT or off: {e}"),
        })
    }

    /// The desk's own certificate and key, when enrolled with a server that
    /// runs mutual TLS.
    pub fn client_identity(&self) -> Option<crate::tls::ClientIdentity> {
        Some(crate::tls::ClientIdentity {
            cert: self.client_cert.clone()?,
            key: self.client_key.clone()?,
        })
    }

    pub fn trust(&self) -> crate::tls::Trust {
        crate::tls::Trust {
            ca_pem: self.ca_pem.clone(),
            insecure: self.insecure,
        }
    }

    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing(path.to_owned()));
            }
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Writes the file readable by its owner only: it holds the token.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        restrict_to_owner(&tmp).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => default_data_dir(),
        }
    }

    pub fn settle(&self) -> Duration {
        Duration::from_millis(self.settle_ms)
    }

    pub fn rescan(&self) -> Duration {
        Duration::from_secs(self.rescan_secs.max(1))
    }

    pub fn room(&self) -> crate::room::Room {
        crate::room::Room {
            max_spool_bytes: self.max_spool_mb.saturating_mul(1024 * 1024),
            min_free_bytes: self.min_free_disk_mb.saturating_mul(1024 * 1024),
        }
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.max(1))
    }

    /// Never shorter than two heartbeats, so a live link always answers in time.
    pub fn link_timeout(&self) -> Duration {
        Duration::from_secs(self.link_timeout_secs).max(self.heartbeat() * 2)
    }

    pub fn seal_after(&self) -> Duration {
        Duration::from_millis(self.seal_after_ms)
    }

    /// Never longer than the quiet time itself.
    pub fn declared_grace(&self) -> Duration {
        Duration::from_millis(self.declared_grace_ms).min(self.seal_after())
    }

    /// `done` next to the inbox, unless configured.
    pub fn done_dir_for(&self, inbox: &Path) -> PathBuf {
        self.done_dir
            .clone()
            .unwrap_or_else(|| sibling(inbox, "done"))
    }

    pub fn quarantine_dir_for(&self, inbox: &Path) -> PathBuf {
        self.quarantine_dir
            .clone()
            .unwrap_or_else(|| sibling(inbox, "quarantine"))
    }
}

fn sibling(inbox: &Path, name: &str) -> PathBuf {
    match inbox.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(name),
        _ => inbox.join(name),
    }
}

fn project_dirs() -> Result<directories::ProjectDirs, ConfigError> {
    directories::ProjectDirs::from("com", "IMC", "imc-agent").ok_or(ConfigError::NoHome)
}

pub fn default_config_path() -> Result<PathBuf, ConfigError> {
    Ok(project_dirs()?.config_dir().join("agent.toml"))
}

pub fn default_data_dir() -> Result<PathBuf, ConfigError> {
    Ok(project_dirs()?.data_local_dir().to_owned())
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> std::io::Result<()> {
    // On Windows the per-user config folder is already private to the user.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let mut config = AgentConfig::new(
            "http://127.0.0.1:1".into(),
            "a1".into(),
            "hq".into(),
            "secret".into(),
        );
        config.watch.push(dir.path().join("inbox"));
        config.save(&path).unwrap();
        let back = AgentConfig::load(&path).unwrap();
        assert_eq!(back.token, "secret");
        assert_eq!(back.watch, config.watch);
        assert!(!format!("{back:?}").contains("secret"));
        assert_eq!(
            back.done_dir_for(&dir.path().join("inbox")),
            dir.path().join("done")
        );
    }

    #[test]
    fn watch_mode_defaults_to_events_and_reads_poll() {
        let base = "server_url = \"http://x\"\nagent_id = \"a\"\nsite = \"s\"\ntoken = \"t\"\n";
        let config: AgentConfig = toml::from_str(base).unwrap();
        assert_eq!(config.watch_mode, WatchMode::Events);
        let config: AgentConfig =
            toml::from_str(&format!("{base}watch_mode = \"poll\"\nrescan_secs = 30\n")).unwrap();
        assert_eq!(config.watch_mode, WatchMode::Poll);
        assert_eq!(config.rescan(), Duration::from_secs(30));
        assert!(
            toml::from_str::<AgentConfig>(&format!("{base}watch_mode = \"inotify\"\n")).is_err()
        );
    }

    #[test]
    fn missing_config_says_how_to_enrol() {
        let err = AgentConfig::load(Path::new("/nonexistent/agent.toml")).unwrap_err();
        assert!(err.to_string().contains("imc-agent enroll"), "{err}");
    }
}
