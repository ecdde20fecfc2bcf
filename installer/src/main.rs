//! `imc-installer`: enrols the IMC agent on a scan-desk PC and registers
//! `imc-agent run` as an OS service (systemd, launchd or the Windows service
//! manager, through `service-manager`).

mod folders;
mod install;
mod layout;
mod service;
mod shortcut;
mod unit;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "imc-installer",
    version,
    about = "Install the IMC agent as an OS service"
)]
struct Cli {
    /// Stage every file under DIR instead of the system (no service manager is called).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol the agent, prepare its folders and register it as a service. Safe to run again.
    Install {
        /// The server's base URL, e.g. https://imc.example.com.
        #[arg(long)]
        server: String,
        /// The one-time enrolment code from the administrator.
        #[arg(long)]
        code: String,
        /// A scanner output folder; repeat for several.
        #[arg(long, required = true)]
        watch: Vec<PathBuf>,
        /// Name shown to administrators (default: the computer name).
        #[arg(long)]
        name: Option<String>,
        /// The agent executable the service runs (default: imc-agent beside this installer).
        #[arg(long)]
        agent_bin: Option<PathBuf>,
        /// Unix group of the scanners (or the file-share user): it may drop files into the
        /// inbox and read done and quarantine.
        #[arg(long)]
        scanner_group: Option<String>,
        /// The CA (PEM) that signs the server's certificate, when it is not in the system roots.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Allow plain http:// (a lab only).
        #[arg(long)]
        insecure: bool,
    },
    /// Remove the service; the config and queue stay unless --purge.
    Uninstall {
        /// Also remove the config, the queue and empty folders.
        #[arg(long)]
        purge: bool,
        /// With --purge: delete pages the server has not received yet.
        #[arg(long, requires = "purge")]
        discard_unsent: bool,
    },
    /// Report the service state and the agent's own status.
    Status,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IMC_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = layout::Layout::new(cli.root.as_deref()).and_then(|layout| match cli.command {
        Command::Install {
            server,
            code,
            watch,
            name,
            agent_bin,
            scanner_group,
            ca,
            insecure,
        } => install::install(
            &layout,
            install::InstallOptions {
                server,
                code,
                watch,
                name,
                agent_bin,
                scanner_group,
                ca,
                insecure,
            },
        ),
        Command::Uninstall {
            purge,
            discard_unsent,
        } => install::uninstall(
            &layout,
            install::UninstallOptions {
                purge,
                discard_unsent,
            },
        ),
        Command::Status => install::status(&layout),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
