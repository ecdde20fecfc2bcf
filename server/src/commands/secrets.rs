//! `imc-server secrets rotate`: a new key seals the webhook secrets at rest.

use super::stores::{open_postgres, open_sqlite};
use crate::store::Store;
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new secrets key current (older keys stay in the key file, for
    /// opening) and re-seal every stored webhook secret with it, in one
    /// transaction. With IMC_SECRETS_KEY set, no key is made: set the new key
    /// there and the old ones in IMC_SECRETS_KEY_PREVIOUS first. Restart the
    /// server(s) afterwards, each with the new keys.
    Rotate {
        /// The data dir holding secrets.key (and, without --database, the database).
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// A scaled-out installation's PostgreSQL database (`postgres://...`).
        #[arg(long, env = "IMC_DATABASE", hide_env_values = true)]
        database: Option<String>,
        /// The key file, when not `<data dir>/secrets.key`.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Rotate {
        data_dir,
        database,
        key_file,
    } = command;
    let store: Arc<dyn Store> = match (&database, &data_dir) {
        (Some(url), _) => Arc::new(open_postgres(url).await?),
        (None, Some(dir)) => Arc::new(open_sqlite(dir)?),
        (None, None) => anyhow::bail!("give --data-dir or --database"),
    };
    let key_file = key_file.or_else(|| data_dir.as_deref().map(crate::secrets::key_file));
    let done = crate::secrets::rotate(&*store, key_file.as_deref()).await?;
    println!("{done}");
    Ok(())
}
