//! Which installation a subcommand works on: the data dir, or a shared
//! PostgreSQL database and object store.

use crate::config::{ServerConfig, ServerFile};
use crate::store::{PgStore, SqliteStore, Store};
use crate::web::store::WebStore;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a scaled-out server keeps its data instead of the data dir.
#[derive(clap::Args)]
pub struct Stores {
    /// A shared PostgreSQL database, `postgres://user:password@host:port/db`, for
    /// running several replicas (run `imc-server migrate` first). Default: the
    /// embedded SQLite database in the data dir.
    #[arg(long, env = "IMC_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Where image bytes live: `s3://bucket/prefix` (endpoint and credentials from
    /// AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a folder.
    /// Default: the `blobs` folder in the data dir.
    #[arg(long, env = "IMC_BLOBS")]
    pub blobs: Option<String>,
}

impl Stores {
    /// The flags (or their environment variables), else the config file's keys.
    pub fn or_file(self, file: &ServerFile) -> Stores {
        Stores {
            database: self.database.or(file.database.clone()),
            blobs: self.blobs.or(file.blobs.clone()),
        }
    }
}

/// The data dir from the flag (or its environment variable), else the config file.
pub fn data_dir_of(flag: Option<PathBuf>, file: &ServerFile) -> anyhow::Result<PathBuf> {
    flag.or(file.data_dir.clone()).ok_or_else(|| {
        anyhow::anyhow!(
            "no data dir: pass --data-dir, set IMC_DATA_DIR or `data_dir` in the config file"
        )
    })
}

/// Which installation an administration command works on.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// An embedded installation's data dir.
    #[arg(long, env = "IMC_DATA_DIR", required_unless_present = "database")]
    pub data_dir: Option<PathBuf>,
    /// A scaled-out installation's PostgreSQL database (`postgres://...`).
    #[arg(
        long,
        env = "IMC_DATABASE",
        conflicts_with = "data_dir",
        hide_env_values = true
    )]
    pub database: Option<String>,
}

/// The store as the API and the desk see it.
pub struct AdminStores {
    pub store: Arc<dyn Store>,
    pub desk: Arc<dyn WebStore>,
}

impl StoreArgs {
    /// Opens the installation's existing database; never creates one, so a
    /// mistyped path or URL is an error rather than a new empty installation.
    pub async fn open(&self) -> anyhow::Result<AdminStores> {
        match (&self.database, &self.data_dir) {
            (Some(url), _) => {
                let store = open_postgres(url).await?;
                Ok(AdminStores {
                    store: Arc::new(store.clone()),
                    desk: Arc::new(store),
                })
            }
            (None, Some(data_dir)) => {
                let store = open_sqlite(data_dir)?;
                Ok(AdminStores {
                    store: Arc::new(store.clone()),
                    desk: Arc::new(store),
                })
            }
            (None, None) => anyhow::bail!("give --data-dir or --database"),
        }
    }
}

pub async fn open_postgres(url: &str) -> anyhow::Result<PgStore> {
    let shown = crate::config::redact_password(url);
    PgStore::open(url)
        .await
        .with_context(|| format!("opening database {shown}"))
}

/// The data dir's existing database (never a new one).
pub fn open_sqlite(data_dir: &Path) -> anyhow::Result<SqliteStore> {
    let db = ServerConfig::new(data_dir.to_owned()).database_path();
    if !db.exists() {
        anyhow::bail!(
            "no database at {}: is --data-dir the server's?",
            db.display()
        );
    }
    SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))
}
