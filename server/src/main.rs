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
        /// An agent uplink silent this long (no heartbeat) is half-open and closed (default 90).
        #[arg(long, env = "IMC_UPLINK_IDLE_SECS")]
        uplink_idle_secs: Option<u64>,
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
        #[command(flatten)]
        stores: Stores,
    },
    /// Bring a PostgreSQL database's schema up to this version (forward only; safe to
    /// run from several hosts at once).
    Migrate {
        #[arg(long, env = "IMC_DATABASE")]
        database: String,
    },
    /// Copy an embedded installation (the data dir's SQLite database and image blobs)
    /// into a scaled-out one: a fresh PostgreSQL database and an object store.
    /// Stop the embedded server first: what it writes after the copy starts stays behind
    /// (the copy itself is one consistent snapshot either way). Ids, token hashes and
    /// the audit chain are kept, so ERPs, scan desks and desk users carry on unchanged.
    MigrateStore {
        /// The embedded server's data dir.
        #[arg(long)]
        from: PathBuf,
        /// The target database, `postgres://user:password@host:port/db`; it is migrated
        /// and must hold no data.
        #[arg(long, env = "IMC_DATABASE", hide_env_values = true)]
        to: String,
        /// Where image bytes go: `s3://bucket/prefix` (endpoint and credentials from
        /// AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a folder.
        /// Blobs already there are checked, not sent again, so a failed run can be repeated.
        #[arg(long, env = "IMC_BLOBS")]
        blobs: String,
    },
    /// Copy the data dir (database and image blobs) into a folder while the server runs.
    /// Embedded installations only: on PostgreSQL and S3 use pg_dump and the store's replication.
    Backup {
        /// The server's config file, to learn where its data lives.
        #[arg(long, env = "IMC_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Backup folder; a later backup into the same folder copies only new blobs.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        stores: Stores,
    },
    /// Rebuild a data dir from a backup folder (the data dir must hold no database).
    Restore {
        /// The server's config file, to learn where its data lives.
        #[arg(long, env = "IMC_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        from: PathBuf,
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        stores: Stores,
    },
    /// Run the whole product on this machine: server, an agent watching a demo inbox, sample documents.
    Demo {
        /// Folder for the demo's data, inbox and cover sheets.
        #[arg(long, default_value = "imc-demo")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The desk agent program (default: `imc-agent` beside this program).
        #[arg(long)]
        agent: Option<PathBuf>,
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
    /// Webhook secrets at rest: rotate the key that seals them.
    Secrets {
        #[command(subcommand)]
        command: imc_server::cli::SecretsCommand,
    },
    /// Cover signing keys: list, rotate.
    CoverKeys {
        #[command(subcommand)]
        command: imc_server::cli::CoverKeysCommand,
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
        #[command(flatten)]
        at: imc_server::cli::StoreArgs,
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
    /// Disable a user: their sessions end at once and they cannot log in.
    Disable {
        #[command(flatten)]
        at: imc_server::cli::StoreArgs,
        #[arg(long)]
        name: String,
    },
    /// Let a disabled user log in again.
    Enable {
        #[command(flatten)]
        at: imc_server::cli::StoreArgs,
        #[arg(long)]
        name: String,
    },
    /// Set a new password (asks for it when --password is not given); the
    /// user's sessions end.
    Password {
        #[command(flatten)]
        at: imc_server::cli::StoreArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
}

/// Where a scaled-out server keeps its data instead of the data dir.
#[derive(clap::Args)]
struct Stores {
    /// A shared PostgreSQL database, `postgres://user:password@host:port/db`, for
    /// running several replicas (run `imc-server migrate` first). Default: the
    /// embedded SQLite database in the data dir.
    #[arg(long, env = "IMC_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Where image bytes live: `s3://bucket/prefix` (endpoint and credentials from
    /// AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a folder.
    /// Default: the `blobs` folder in the data dir.
    #[arg(long, env = "IMC_BLOBS")]
    blobs: Option<String>,
}

impl Stores {
    /// The flags (or their environment variables), else the config file's keys.
    fn or_file(self, file: &ServerFile) -> Stores {
        Stores {
            database: self.database.or(file.database.clone()),
            blobs: self.blobs.or(file.blobs.clone()),
        }
    }
}

#[derive(Subcommand)]
enum AuditCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_file = match &cli.command {
        Command::Serve { config, .. }
        | Command::Backup { config, .. }
        | Command::Restore { config, .. } => config.as_ref(),
        _ => None,
    };
    let file = match config_file {
        Some(path) => match ServerFile::load(path) {
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

/// A token cancelled by Ctrl-C or, on Unix, by SIGTERM from the service manager.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            stop.cancel();
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    token
}

/// The data dir from the flag (or its environment variable), else the config file.
fn data_dir_of(flag: Option<PathBuf>, file: &ServerFile) -> anyhow::Result<PathBuf> {
    flag.or(file.data_dir.clone()).ok_or_else(|| {
        anyhow::anyhow!(
            "no data dir: pass --data-dir, set IMC_DATA_DIR or `data_dir` in the config file"
        )
    })
}

fn run(cli: Cli, file: ServerFile) -> anyhow::Result<()> {
    match cli.command {
        Command::Backup {
            data_dir,
            to,
            stores,
            config: _,
        } => {
            let stores = stores.or_file(&file);
            imc_server::backup::embedded_only(stores.database.as_deref(), stores.blobs.as_deref())?;
            let done = imc_server::backup::backup(&data_dir_of(data_dir, &file)?, &to)?;
            println!(
                "backed up {} documents, {} pages, {} images ({} blobs) into {}",
                done.documents,
                done.pages,
                done.images,
                done.blobs,
                to.display()
            );
            Ok(())
        }
        Command::Restore {
            from,
            data_dir,
            stores,
            config: _,
        } => {
            let stores = stores.or_file(&file);
            imc_server::backup::embedded_only(stores.database.as_deref(), stores.blobs.as_deref())?;
            let data_dir = data_dir_of(data_dir, &file)?;
            let done = imc_server::backup::restore(&from, &data_dir)?;
            println!(
                "restored {} documents, {} pages, {} images from the backup of {} into {}; audit chain intact",
                done.documents,
                done.pages,
                done.images,
                done.created_at,
                data_dir.display()
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { data_dir, database },
        } => audit_verify(data_dir, database),
        Command::Cert { command } => imc_server::cli::cert(&command),
        command => run_async(command, file),
    }
}

fn audit_verify(data_dir: Option<PathBuf>, database: Option<String>) -> anyhow::Result<()> {
    let check = match (data_dir, database) {
        (_, Some(url)) => {
            let shown = imc_server::config::redact_password(&url);
            tokio::runtime::Runtime::new()?
                .block_on(async { imc_server::store::PgStore::pool(&url)?.verify_audit().await })
                .map_err(|e| anyhow::anyhow!("checking the audit chain in {shown}: {e}"))?
        }
        (Some(data_dir), None) => {
            let db = ServerConfig::new(data_dir).database_path();
            imc_server::store::verify_audit_file(&db)?
        }
        (None, None) => anyhow::bail!("give --data-dir or --database"),
    };
    match check {
        imc_server::store::AuditCheck::Intact { rows } => {
            println!("audit chain intact: {rows} rows");
            Ok(())
        }
        imc_server::store::AuditCheck::Broken { row, reason } => {
            anyhow::bail!("audit chain broken at row {row}: {reason}")
        }
    }
}

fn run_async(command: Command, file: ServerFile) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match command {
            Command::Serve {
                config: _,
                data_dir,
                listen,
                cover_font,
                metrics_token,
                max_page_bytes,
                stores,
                uplink_idle_secs,
                tls_cert,
                tls_key,
                client_ca_cert,
                client_ca_key,
                rate_per_ip,
                rate_per_token,
                header_timeout_secs,
            } => {
                let data_dir = data_dir_of(data_dir, &file)?;
                let stores = stores.or_file(&file);
                let listen = listen
                    .or(file.listen)
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
                let mut config = ServerConfig::new(data_dir);
                file.apply_limits(&mut config);
                file.apply_retention(&mut config)?;
                config.bootstrap_token = std::env::var("IMC_BOOTSTRAP_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty());
                config.cover_font = cover_font.or(file.cover_font.clone());
                config.metrics_token = metrics_token.or(file.metrics_token.clone());
                if let Some(limit) = max_page_bytes.or(file.max_page_bytes) {
                    config.max_page_bytes = limit;
                }
                config.database = stores.database;
                config.blobs = stores.blobs;
                if let Some(secs) = uplink_idle_secs.or(file.uplink_idle_secs) {
                    config.uplink_idle_timeout = std::time::Duration::from_secs(secs.max(1));
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
            Command::Demo { dir, listen, agent } => {
                let agent = imc_server::demo::agent_program(agent)?;
                let shutdown = shutdown_on_signal();
                let options = imc_server::demo::DemoOptions { dir, listen, agent };
                imc_server::demo::run(options, shutdown).await
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
            Command::MigrateStore { from, to, blobs } => {
                let options = imc_server::migrate_store::Options {
                    from,
                    to,
                    blobs,
                    progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                };
                let summary = imc_server::migrate_store::run(&options).await?;
                print_migration(&options, &summary);
                Ok(())
            }
            Command::User {
                command:
                    UserCommand::Add {
                        at,
                        name,
                        role,
                        site,
                        password,
                    },
            } => imc_server::web::users::add_from_cli(&at, &name, &role, site, password).await,
            Command::User {
                command: UserCommand::Disable { at, name },
            } => imc_server::web::users::set_disabled_from_cli(&at, &name, true).await,
            Command::User {
                command: UserCommand::Enable { at, name },
            } => imc_server::web::users::set_disabled_from_cli(&at, &name, false).await,
            Command::User {
                command: UserCommand::Password { at, name, password },
            } => imc_server::web::users::set_password_from_cli(&at, &name, password).await,
            Command::Token { command } => imc_server::cli::token(command).await,
            Command::Secrets { command } => imc_server::cli::secrets(command).await,
            Command::CoverKeys { command } => imc_server::cli::cover_keys(command).await,
            // Handled without a runtime in `run`.
            Command::Audit { .. }
            | Command::Backup { .. }
            | Command::Restore { .. }
            | Command::Cert { .. } => Ok(()),
        }
    })
}

fn print_migration(
    options: &imc_server::migrate_store::Options,
    summary: &imc_server::migrate_store::Summary,
) {
    let rows: Vec<String> = summary
        .tables
        .iter()
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    println!(
        "copied {} into {} and {}",
        options.from.display(),
        imc_server::config::redact_password(&options.to),
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
