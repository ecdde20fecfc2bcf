//! `imc-server`: parses arguments, sets up logging, and calls the library.

use clap::{Parser, Subcommand};
use imc_server::config::ServerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "imc-server", version, about = "IMC central server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the agent uplink.
    Serve {
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, env = "IMC_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A TTF/OTF/TTC font with Chinese glyphs for cover sheets (default: search system fonts).
        #[arg(long, env = "IMC_COVER_FONT")]
        cover_font: Option<PathBuf>,
        /// Where image bytes live: `s3://bucket/prefix` (endpoint and credentials from
        /// AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a folder.
        /// Default: the `blobs` folder in the data dir.
        #[arg(long, env = "IMC_BLOBS")]
        blobs: Option<String>,
        /// A shared PostgreSQL database, `postgres://user:password@host:port/db`, for
        /// running several replicas (run `imc-server migrate` first). Default: the
        /// embedded SQLite database in the data dir.
        #[arg(long, env = "IMC_DATABASE")]
        database: Option<String>,
    },
    /// Bring a PostgreSQL database's schema up to this version (forward only; safe to
    /// run from several hosts at once).
    Migrate {
        #[arg(long, env = "IMC_DATABASE")]
        database: String,
    },
    /// Run the whole product on this machine: server, an agent watching a demo inbox, sample documents.
    Demo {
        /// Folder for the demo's data, inbox and cover sheets.
        #[arg(long, default_value = "imc-demo")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit hash chain; exits non-zero naming the first bad row.
    Verify {
        /// The embedded installation's data dir.
        #[arg(long, env = "IMC_DATA_DIR", required_unless_present = "database")]
        data_dir: Option<PathBuf>,
        /// A shared PostgreSQL database instead (`postgres://...`).
        #[arg(long, env = "IMC_DATABASE", conflicts_with = "data_dir")]
        database: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IMC_LOG")
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        imc_agent::signal::stop_requested().await;
        stop.cancel();
    });
    token
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Audit {
        command: AuditCommand::Verify { data_dir, database },
    } = &cli.command
    {
        let check = match (data_dir, database) {
            (_, Some(url)) => {
                let shown = imc_server::config::redact_password(url);
                tokio::runtime::Runtime::new()?
                    .block_on(async { imc_server::store::PgStore::pool(url)?.verify_audit().await })
                    .map_err(|e| anyhow::anyhow!("checking the audit chain in {shown}: {e}"))?
            }
            (Some(data_dir), None) => {
                let db = ServerConfig::new(data_dir.clone()).database_path();
                imc_server::store::verify_audit_file(&db)?
            }
            (None, None) => anyhow::bail!("give --data-dir or --database"),
        };
        return match check {
            imc_server::store::AuditCheck::Intact { rows } => {
                println!("audit chain intact: {rows} rows");
                Ok(())
            }
            imc_server::store::AuditCheck::Broken { row, reason } => {
                anyhow::bail!("audit chain broken at row {row}: {reason}")
            }
        };
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve {
                data_dir,
                listen,
                cover_font,
                blobs,
                database,
            } => {
                let mut config = ServerConfig::new(data_dir);
                config.bootstrap_token = std::env::var("IMC_BOOTSTRAP_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty());
                config.cover_font = cover_font;
                config.blobs = blobs;
                config.database = database;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
                // Printed on stdout so scripts (and tests binding port 0) learn the address.
                println!("imc-server listening on http://{}", listener.local_addr()?);
                let shutdown = shutdown_on_signal();
                imc_server::serve(config, listener, async move { shutdown.cancelled().await }).await
            }
            Command::Demo { dir, listen } => {
                let shutdown = shutdown_on_signal();
                imc_server::demo::run(imc_server::demo::DemoOptions { dir, listen }, shutdown).await
            }
            Command::Migrate { database } => {
                let shown = imc_server::config::redact_password(&database);
                let store = imc_server::store::PgStore::pool(&database)?;
                let applied = store
                    .migrate()
                    .await
                    .map_err(|e| anyhow::anyhow!("migrating {shown}: {e}"))?;
                let version = imc_server::store::postgres::migrate::latest();
                if applied.is_empty() {
                    println!("{shown}: schema already at version {version}");
                } else {
                    println!("{shown}: applied {applied:?}; schema at version {version}");
                }
                Ok(())
            }
            Command::Audit { .. } => Ok(()),
        }
    })
}
