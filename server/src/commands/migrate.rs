//! `imc-server migrate`: a PostgreSQL database's schema up to this version.

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "IMC_DATABASE")]
    pub database: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let shown = crate::config::redact_password(&args.database);
    let store = crate::store::PgStore::pool(&args.database)?;
    let applied = store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("migrating {shown}: {e}"))?;
    let version = crate::store::postgres::migrate::latest();
    if applied.is_empty() {
        println!("{shown}: schema already at version {version}");
    } else {
        println!("{shown}: applied {applied:?}; schema at version {version}");
    }
    Ok(())
}
