//! `imc-server`: parses arguments, sets up logging, and calls the library.

use clap::{Parser, Subcommand, ValueEnum};
use imc_server::config::{ServerConfig, ServerFile};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "imc-server", version, about = "IMC central server")]
struct Cli {
    /// Log lines as human-readable text or as JSON objects (one per line).
    #[arg(long, global = true, env = "IMC_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the agent uplink.
    Serve {
        /// A TOML file with these settings; flags and environment variables win over it.
        #[arg(long, env = "IMC_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, env = "IMC_LISTEN")]
        listen: Option<SocketAddr>,
        /// A TTF/OTF/TTC font with Chinese glyphs for cover sheets (default: search system fonts).
        #[arg(long, env = "IMC_COVER_FONT")]
        cover_font: Option<PathBuf>,
        /// Require this bearer token on GET /metrics.
        #[arg(long, env = "IMC_METRICS_TOKEN", hide_env_values = true)]
        metrics_token: Option<String>,
        /// Largest page a scan desk may deliver, in bytes (at most 64 MiB).
        #[arg(long, env = "IMC_MAX_PAGE_BYTES")]
        max_page_bytes: Option<u64>,
        /// Serve HTTPS/WSS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, env = "IMC_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, env = "IMC_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Mutual TLS for agents: the client CA certificate (PEM) that signs each
        /// desk's certificate at enrolment; the uplink then requires it. Needs --tls-cert.
        #[arg(long, env = "IMC_CLIENT_CA_CERT", requires_all = ["client_ca_key", "tls_cert"])]
        client_ca_cert: Option<PathBuf>,
        /// The private key (PEM) of --client-ca-cert.
        #[arg(long, env = "IMC_CLIENT_CA_KEY", requires = "client_ca_cert")]
        client_ca_key: Option<PathBuf>,
        /// API requests per second from one IP address (bursts of twice that); 0: no limit.
        #[arg(long, env = "IMC_RATE_PER_IP", default_value_t = 200)]
        rate_per_ip: u32,
        /// API requests per second with one token (bursts of twice that); 0: no limit.
        #[arg(long, env = "IMC_RATE_PER_TOKEN", default_value_t = 100)]
        rate_per_token: u32,
        /// Seconds a client has to send a request's headers (slow clients are
        /// dropped); also how long an idle keep-alive connection stays open.
        #[arg(long, env = "IMC_HEADER_TIMEOUT_SECS")]
        header_timeout_secs: Option<u64>,
    },
    /// Copy the data dir (database and image blobs) into a folder while the server runs.
    Backup {
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: PathBuf,
        /// Backup folder; a later backup into the same folder copies only new blobs.
        #[arg(long)]
        to: PathBuf,
    },
    /// Rebuild a data dir from a backup folder (the data dir must hold no database).
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: PathBuf,
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
    /// Staff users of the sign-off desk.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; asks for the password when --password is not given.
    Add {
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        name: String,
        /// signoff, clerk or admin.
        #[arg(long)]
        role: String,
        /// The clerk's site.
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        password: Option<String>,
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
    let cli = Cli::parse();
    let file = match &cli.command {
        Command::Serve {
            config: Some(path), ..
        } => match ServerFile::load(path) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => ServerFile::default(),
    };
    let format = match (cli.log_format, file.log_format.as_deref()) {
        (Some(format), _) => format,
        (None, Some(name)) => match LogFormat::from_str(name, true) {
            Ok(format) => format,
            Err(_) => {
                eprintln!(
                    "error: log_format {name:?} in the config file: use \"text\" or \"json\""
                );
                return ExitCode::FAILURE;
            }
        },
        (None, None) => LogFormat::Text,
    };
    init_logging(format);
    match run(cli, file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMC_LOG")
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().with_current_span(true).init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
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

fn run(cli: Cli, file: ServerFile) -> anyhow::Result<()> {
    match &cli.command {
        Command::Backup { data_dir, to } => {
            let done = imc_server::backup::backup(data_dir, to)?;
            println!(
                "backed up {} documents, {} pages, {} images ({} blobs) into {}",
                done.documents,
                done.pages,
                done.images,
                done.blobs,
                to.display()
            );
            return Ok(());
        }
        Command::Restore { from, data_dir } => {
            let done = imc_server::backup::restore(from, data_dir)?;
            println!(
                "restored {} documents, {} pages, {} images from the backup of {} into {}; audit chain intact",
                done.documents,
                done.pages,
                done.images,
                done.created_at,
                data_dir.display()
            );
            return Ok(());
        }
        _ => {}
    }
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
                config: _,
                data_dir,
                listen,
                cover_font,
                metrics_token,
                max_page_bytes,
                tls_cert,
                tls_key,
                client_ca_cert,
                client_ca_key,
                rate_per_ip,
                rate_per_token,
                header_timeout_secs,
            } => {
                let Some(data_dir) = data_dir.or(file.data_dir.clone()) else {
                    anyhow::bail!("no data dir: pass --data-dir, set IMC_DATA_DIR or `data_dir` in the config file");
                };
                let listen = listen
                    .or(file.listen)
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
                let mut config = ServerConfig::new(data_dir);
                file.apply_limits(&mut config);
                config.bootstrap_token = std::env::var("IMC_BOOTSTRAP_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty());
                config.cover_font = cover_font.or(file.cover_font.clone());
                config.metrics_token = metrics_token.or(file.metrics_token.clone());
                if let Some(limit) = max_page_bytes.or(file.max_page_bytes) {
                    config.max_page_bytes = limit;
                }
                config.tls = tls_cert
                    .zip(tls_key)
                    .map(|(cert, key)| imc_server::config::TlsFiles { cert, key });
                config.client_ca = client_ca_cert
                    .zip(client_ca_key)
                    .map(|(cert, key)| imc_server::config::TlsFiles { cert, key });
                if let Some(secs) = header_timeout_secs.or(file.header_timeout_secs) {
                    anyhow::ensure!(secs > 0, "the header timeout must be at least 1 second");
                    config.connection_limits.headers = std::time::Duration::from_secs(secs);
                }
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
            Command::User {
                command:
                    UserCommand::Add {
                        data_dir,
                        name,
                        role,
                        site,
                        password,
                    },
            } => {
                imc_server::web::users::add_from_cli(&data_dir, &name, &role, site, password).await
            }
            Command::Token { command } => imc_server::cli::token(command).await,
            Command::Audit { .. }
            | Command::Backup { .. }
            | Command::Restore { .. }
            | Command::Cert { .. } => Ok(()),
        }
    })
}
