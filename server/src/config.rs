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
    /// Where image bytes live: `s3://bucket/prefix` or a folder; `None` is
    /// the `blobs` folder in the data dir.
    pub blobs: Option<String>,
    /// `postgres://...` for a shared database (replicas); `None` is the
    /// embedded SQLite file in the data dir.
    pub database: Option<String>,
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
            blobs: None,
            database: None,
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
            .field("blobs", &self.blobs)
            .field("database", &self.database.as_deref().map(redact_password))
            .finish()
    }
}

/// A connection URL fit for logs: the password replaced.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_logs() {
        let shown = super::redact_password("postgres://imc:s3cret@db:5432/imc");
        assert_eq!(shown, "postgres://imc:***@db:5432/imc");
    }
}
