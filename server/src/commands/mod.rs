//! The subcommands of `imc-server`, one file each: its clap arguments and its
//! `run`. `main.rs` only parses, sets up logging and calls [`run`].
//!
//! These are adapters like the HTTP routes: they call the library's use
//! cases and stores and print what happened for a person at a terminal.

mod archive;
mod audit;
mod backup;
mod cert;
mod cover_keys;
mod demo;
mod logging;
mod migrate;
mod migrate_store;
mod restore;
mod secrets;
mod serve;
mod stores;
mod token;
mod user;

pub use logging::{LogFormat, init as init_logging};
pub use stores::StoreArgs;

use crate::config::ServerFile;
use clap::{Parser, Subcommand};
use std::future::Future;
use std::path::Path;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "imc-server", version, about = "IMC central server")]
pub struct Cli {
    /// Log lines as human-readable text or as JSON objects (one per line).
    #[arg(long, global = true, env = "IMC_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the API and the agent uplink.
    Serve(serve::Args),
    /// Bring a PostgreSQL database's schema up to this version (forward only; safe to
    /// run from several hosts at once).
    Migrate(migrate::Args),
    /// Copy an embedded installation (the data dir's SQLite database and image blobs)
    /// into a scaled-out one: a fresh PostgreSQL database and an object store.
    /// Stop the embedded server first: what it writes after the copy starts stays behind
    /// (the copy itself is one consistent snapshot either way). Ids, token hashes and
    /// the audit chain are kept, so ERPs, scan desks and desk users carry on unchanged.
    MigrateStore(migrate_store::Args),
    /// Copy the data dir (database and image blobs) into a folder while the server runs.
    /// Embedded installations only: on PostgreSQL and S3 use pg_dump and the store's replication.
    Backup(backup::Args),
    /// Rebuild a data dir from a backup folder (the data dir must hold no database).
    Restore(restore::Args),
    /// Run the whole product on this machine: server, an agent watching a demo inbox, sample documents.
    Demo(demo::Args),
    /// TLS certificates: a private CA and a server certificate.
    Cert {
        #[command(subcommand)]
        command: cert::Command,
    },
    /// API tokens: create, list, rotate, revoke.
    Token {
        #[command(subcommand)]
        command: token::Command,
    },
    /// Webhook secrets at rest: rotate the key that seals them.
    Secrets {
        #[command(subcommand)]
        command: secrets::Command,
    },
    /// Cover signing keys: list, rotate.
    CoverKeys {
        #[command(subcommand)]
        command: cover_keys::Command,
    },
    /// Archive packages: export signed-off documents as BagIt bags, verify them.
    Archive {
        #[command(subcommand)]
        command: archive::Command,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: audit::Command,
    },
    /// Staff users of the sign-off desk.
    User {
        #[command(subcommand)]
        command: user::Command,
    },
}

impl Command {
    /// The `--config` file of the subcommands that read one.
    pub fn config_file(&self) -> Option<&Path> {
        match self {
            Command::Serve(args) => args.config.as_deref(),
            Command::Backup(args) => args.config.as_deref(),
            Command::Restore(args) => args.config.as_deref(),
            _ => None,
        }
    }
}

/// Runs `command`; `file` is its config file's settings (empty without one).
pub fn run(command: Command, file: ServerFile) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => block_on(serve::run(args, file)),
        Command::Migrate(args) => block_on(migrate::run(args)),
        Command::MigrateStore(args) => block_on(migrate_store::run(args)),
        Command::Backup(args) => backup::run(args, &file),
        Command::Restore(args) => restore::run(args, &file),
        Command::Demo(args) => block_on(demo::run(args)),
        Command::Cert { command } => cert::run(&command),
        Command::Token { command } => block_on(token::run(command)),
        Command::Secrets { command } => block_on(secrets::run(command)),
        Command::CoverKeys { command } => block_on(cover_keys::run(command)),
        Command::Archive { command } => block_on(archive::run(command)),
        Command::Audit { command } => audit::run(command),
        Command::User { command } => block_on(user::run(command)),
    }
}

fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(work)
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

/// Who an administration command acts as, for the audit trail.
fn actor() -> crate::store::Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    crate::store::Actor(format!("cli:{user}"))
}
