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
        /// Serve HTTPS/WSS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, env = "IMC_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, env = "IMC_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// API requests per second from one IP address (bursts of twice that); 0: no limit.
        #[arg(long, env = "IMC_RATE_PER_IP", default_value_t = 200)]
        rate_per_ip: u32,
        /// API requests per second with one token (bursts of twice that); 0: no limit.
        #[arg(long, env = "IMC_RATE_PER_TOKEN", default_value_t = 100)]
        rate_per_token: u32,
    },
    /// Run the whole product on this machine: server, an agent watching a demo inbox, sample documents.
    Demo {
        /// Folder for the demo's data, inbox and cover sheets.
        #[arg(long, default_value = "imc-demo")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// TLS certificates: a private CA and a server certificate.
    Cert {
        #[command(subcommand)]
        command: imc_server::cli::CertCommand,
    },
    /// API tokens: create, list, rotate, revoke.
    Token {
        #[command(subcommand)]
        command: imc_server::cli::TokenCommand,
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
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: PathBuf,
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
        command: AuditCommand::Verify { data_dir },
    } = &cli.command
    {
        let db = ServerConfig::new(data_dir.clone()).database_path();
        return match imc_server::store::verify_audit_file(&db)? {
            imc_server::store::AuditCheck::Intact { rows } => {
                println!("audit chain intact: {rows} rows");
                Ok(())
            }
            imc_server::store::AuditCheck::Broken { row, reason } => {
                anyhow::bail!("audit chain broken at row {row}: {reason}")
            }
        };
    }
    if let Command::Cert { command } = &cli.command {
        return imc_server::cli::cert(command);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve {
                data_dir,
                listen,
                cover_font,
                tls_cert,
                tls_key,
                rate_per_ip,
                rate_per_token,
            } => {
                let mut config = ServerConfig::new(data_dir);
                config.bootstrap_token = std::env::var("IMC_BOOTSTRAP_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty());
                config.cover_font = cover_font;
                config.tls = tls_cert
                    .zip(tls_key)
                    .map(|(cert, key)| imc_server::config::TlsFiles { cert, key });
                config.rate_limits = imc_server::ratelimit::RateLimits {
                    per_ip: std::num::NonZeroU32::new(rate_per_ip),
                    per_token: std::num::NonZeroU32::new(rate_per_token),
                };
                let scheme = if config.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
                // Printed on stdout so scripts (and tests binding port 0) learn the address.
                println!(
                    "imc-server listening on {scheme}://{}",
                    listener.local_addr()?
                );
                let shutdown = shutdown_on_signal();
                imc_server::serve(config, listener, async move { shutdown.cancelled().await }).await
            }
            Command::Demo { dir, listen } => {
                let shutdown = shutdown_on_signal();
                imc_server::demo::run(imc_server::demo::DemoOptions { dir, listen }, shutdown).await
            }
            Command::Token { command } => imc_server::cli::token(command).await,
            Command::Audit { .. } | Command::Cert { .. } => Ok(()),
        }
    })
}
