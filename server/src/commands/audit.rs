//! `imc-server audit verify`: the audit hash chain checked row by row.

use crate::config::ServerConfig;
use crate::store::AuditCheck;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Command {
    /// Check the audit hash chain; exits non-zero naming the first bad row.
    Verify {
        /// The embedded installation's data dir.
        #[arg(long, env = "IMC_DATA_DIR", required_unless_present = "database")]
        data_dir: Option<PathBuf>,
        /// A shared PostgreSQL database instead (`postgres://...`).
        #[arg(
            long,
            env = "IMC_DATABASE",
            conflicts_with = "data_dir",
            hide_env_values = true
        )]
        database: Option<String>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Verify { data_dir, database } = command;
    let check = match (data_dir, database) {
        (_, Some(url)) => {
            let shown = crate::config::redact_password(&url);
            tokio::runtime::Runtime::new()?
                .block_on(async { crate::store::PgStore::pool(&url)?.verify_audit().await })
                .map_err(|e| anyhow::anyhow!("checking the audit chain in {shown}: {e}"))?
        }
        (Some(data_dir), None) => {
            let db = ServerConfig::new(data_dir).database_path();
            crate::store::verify_audit_file(&db)?
        }
        (None, None) => anyhow::bail!("give --data-dir or --database"),
    };
    match check {
        AuditCheck::Intact { rows } => {
            println!("audit chain intact: {rows} rows");
            Ok(())
        }
        AuditCheck::Broken { row, reason } => {
            anyhow::bail!("audit chain broken at row {row}: {reason}")
        }
    }
}
