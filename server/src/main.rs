//! `imc-server`: parses the command line, sets up logging and runs the
//! subcommand (each in `commands/`).

use clap::Parser;
use imc_server::commands::{Cli, LogFormat, init_logging, run};
use imc_server::config::ServerFile;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match cli.command.config_file().map(ServerFile::load) {
        None => ServerFile::default(),
        Some(Ok(file)) => file,
        Some(Err(e)) => return failed(e),
    };
    match LogFormat::choose(cli.log_format, file.log_format.as_deref()) {
        Ok(format) => init_logging(format),
        Err(e) => return failed(e),
    }
    match run(cli.command, file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

fn failed(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}
