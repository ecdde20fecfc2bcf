//! `imc-installer`: registers the IMC agent as an OS service.
//!
//! Not built yet: service registration (systemd, launchd, the Windows service
//! manager) is planned work. Until then this binary says so plainly instead of
//! pretending, and points at the manual way.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "imc-installer",
    version,
    about = "Install the IMC agent as an OS service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol the agent and register it as a service.
    Install,
    /// Remove the service.
    Uninstall,
    /// Report the service state.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let action = match cli.command {
        Command::Install => "install",
        Command::Uninstall => "uninstall",
        Command::Status => "status",
    };
    eprintln!(
        "imc-installer {action}: service registration is not available in this version yet.\n\
         Meanwhile enrol with `imc-agent enroll --server URL --code CODE` and run\n\
         `imc-agent run --watch DIR` under your service manager (see README)."
    );
    ExitCode::from(2)
}
