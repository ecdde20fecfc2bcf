//! `imc-server migrate-store`: an embedded installation copied into
//! PostgreSQL and an object store.

use crate::migrate_store::{Options, Summary};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The embedded server's data dir.
    #[arg(long)]
    pub from: PathBuf,
    /// The target database, `postgres://user:password@host:port/db`; it is migrated
    /// and must hold no data.
    #[arg(long, env = "IMC_DATABASE", hide_env_values = true)]
    pub to: String,
    /// Where image bytes go: `s3://bucket/prefix` (endpoint and credentials from
    /// AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a folder.
    /// Blobs already there are checked, not sent again, so a failed run can be repeated.
    #[arg(long, env = "IMC_BLOBS")]
    pub blobs: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let options = Options {
        from: args.from,
        to: args.to,
        blobs: args.blobs,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let summary = crate::migrate_store::run(&options).await?;
    print_migration(&options, &summary);
    Ok(())
}

fn print_migration(options: &Options, summary: &Summary) {
    let rows: Vec<String> = summary
        .tables
        .iter()
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    println!(
        "copied {} into {} and {}",
        options.from.display(),
        crate::config::redact_password(&options.to),
        options.blobs
    );
    println!("rows: {}", rows.join(", "));
    println!(
        "blobs: {} copied ({} bytes), {} already there; every one read back and checked against its SHA-256",
        summary.blobs.copied, summary.blobs.bytes, summary.blobs.already_there
    );
    println!(
        "audit chain intact on the target: {} rows",
        summary.audit_rows
    );
}
