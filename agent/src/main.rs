//! `imc-agent`: parses arguments, sets up logging, and calls the library.

use clap::{Parser, Subcommand};
use imc_agent::config::{self, AgentConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "imc-agent", version, about = "IMC scan-desk agent")]
struct Cli {
    /// Config file (default: the OS's standard config folder).
    #[arg(long, global = true, env = "IMC_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol this desk with a server, using a one-time code from the administrator.
    Enroll {
        #[arg(long)]
        server: String,
        #[arg(long)]
        code: String,
        /// Name shown to administrators (default: the computer name).
        #[arg(long)]
        name: Option<String>,
        /// Trust only this CA (PEM) for the server's certificate, e.g. the
        /// ca.pem of `imc-server cert init`; kept in the config.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Allow plain http:// and ws:// (a lab without TLS; never across a network).
        #[arg(long)]
        insecure: bool,
    },
    /// Watch scanner folders and deliver pages until stopped.
    Run {
        /// A scanner output folder; repeat for several. Adds to the config's list.
        #[arg(long)]
        watch: Vec<PathBuf>,
        /// Where the clerk's console listens (ADDR:PORT), or `off`
        /// (default: the config's `console`, else 127.0.0.1:8411).
        #[arg(long)]
        console: Option<String>,
    },
    /// Open the clerk's console in the default browser.
    Console,
    /// Show the link, the queue, recent packets and quarantined files.
    Status,
    /// Print pages, barcodes and the packet split of files as JSON lines; uploads nothing.
    Inspect {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check config, folders, disk space, the server, TLS, the token and the clock; one line each.
    Doctor,
    /// Run under the Windows service control manager (registered by imc-installer).
    #[cfg(windows)]
    Service,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IMC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = match cli.config {
        Some(path) => path,
        None => config::default_config_path()?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Enroll {
            server,
            code,
            name,
            ca,
            insecure,
        } => {
            let trust = imc_agent::tls::Trust::from_args(ca.as_deref(), insecure)?;
            let config = runtime.block_on(imc_agent::enroll::enroll(
                &config_path,
                &server,
                &code,
                name,
                trust,
            ))?;
            println!(
                "enrolled as agent {} at site {}; config in {}",
                config.agent_id,
                config.site,
                config_path.display()
            );
        }
        Command::Run { watch, console } => {
            let mut config = AgentConfig::load(&config_path)?;
            config.watch.extend(watch);
            if console.is_some() {
                config.console = console;
            }
            config.console_addr()?;
            let shutdown = tokio_util::sync::CancellationToken::new();
            runtime.block_on(async {
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    imc_agent::signal::stop_requested().await;
                    stop.cancel();
                });
                imc_agent::run(config, shutdown).await
            })?;
        }
        Command::Console => {
            let config = AgentConfig::load(&config_path)?;
            let Some(addr) = config.console_addr()? else {
                anyhow::bail!(
                    "the console is off in {}: set console = \"127.0.0.1:8411\"",
                    config_path.display()
                );
            };
            let url = imc_agent::console::url_for(addr);
            println!("{url}");
            let reach = match addr.ip().is_unspecified() {
                true => std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())),
                false => addr,
            };
            if std::net::TcpStream::connect_timeout(&reach, std::time::Duration::from_secs(2))
                .is_err()
            {
                anyhow::bail!(
                    "nothing answers at {url}: the agent is not running (start its service, or `imc-agent run`)"
                );
            }
            imc_agent::console::open_in_browser(&url)?;
        }
        Command::Status => print!(
            "{}",
            imc_agent::status::render(&AgentConfig::load(&config_path)?)?
        ),
        Command::Inspect { files } => {
            // Read covers as this desk does, with what it learned from its
            // server, when it has learned anything.
            let config = AgentConfig::load(&config_path).ok();
            let queue = config
                .as_ref()
                .and_then(|c| c.data_dir().ok())
                .and_then(|dir| imc_agent::queue::Queue::open(&dir).ok());
            let (patterns, keys) = match (&config, &queue) {
                (Some(config), Some(queue)) => (
                    imc_agent::cover_rules::patterns(queue),
                    imc_agent::cover_rules::keys(queue, config),
                ),
                _ => Default::default(),
            };
            let failed = imc_agent::inspect::inspect(
                &files,
                &patterns,
                &keys,
                &mut std::io::stdout().lock(),
            )?;
            if failed > 0 {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Doctor => {
            let findings = runtime.block_on(imc_agent::doctor::check(&config_path));
            for finding in &findings {
                println!("{finding}");
            }
            if findings.iter().any(|f| !f.ok) {
                return Ok(ExitCode::FAILURE);
            }
        }
        #[cfg(windows)]
        Command::Service => imc_agent::winservice::run(config_path)?,
    }
    Ok(ExitCode::SUCCESS)
}
