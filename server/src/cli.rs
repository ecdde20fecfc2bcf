//! The administration subcommands of `imc-server`: `cert`, `token`,
//! `secrets` and `cover-keys`.
//!
//! They work on the stores directly (certificates, the data dir's database or
//! the shared PostgreSQL one), so they need no running server; both databases
//! let them run beside one.

use crate::config::ServerConfig;
use crate::store::{Actor, PgStore, SqliteStore, Store};
use crate::tokens;
use crate::web::store::WebStore;
use anyhow::Context;
use clap::Subcommand;
use imc_shared::api::{CreateToken, TokenView};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Make a private CA and a server certificate signed by it (for sites without a PKI).
    Init {
        /// Folder for ca.pem, ca-key.pem, server.pem and server-key.pem.
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address the server is reached by; repeat for several
        /// (default: localhost, 127.0.0.1, ::1).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Make a new secrets key current (older keys stay in the key file, for
    /// opening) and re-seal every stored webhook secret with it, in one
    /// transaction. With IMC_SECRETS_KEY set, no key is made: set the new key
    /// there and the old ones in IMC_SECRETS_KEY_PREVIOUS first. Restart the
    /// server(s) afterwards, each with the new keys.
    Rotate {
        /// The data dir holding secrets.key (and, without --database, the database).
        #[arg(long, env = "IMC_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// A scaled-out installation's PostgreSQL database (`postgres://...`).
        #[arg(long, env = "IMC_DATABASE", hide_env_values = true)]
        database: Option<String>,
        /// The key file, when not `<data dir>/secrets.key`.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

pub async fn secrets(command: SecretsCommand) -> anyhow::Result<()> {
    let SecretsCommand::Rotate {
        data_dir,
        database,
        key_file,
    } = command;
    let store: Arc<dyn Store> = match (&database, &data_dir) {
        (Some(url), _) => {
            let shown = crate::config::redact_password(url);
            Arc::new(
                PgStore::open(url)
                    .await
                    .with_context(|| format!("opening database {shown}"))?,
            )
        }
        (None, Some(dir)) => Arc::new(open_sqlite(dir)?),
        (None, None) => anyhow::bail!("give --data-dir or --database"),
    };
    let key_file = key_file.or_else(|| data_dir.as_deref().map(crate::secrets::key_file));
    let done = crate::secrets::rotate(&*store, key_file.as_deref()).await?;
    println!("{done}");
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum CoverKeysCommand {
    /// List the cover signing keys: id, made, signs from (never a private key).
    List {
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Add a cover signing key. Desks learn it at once (on connect; connected
    /// ones within seconds) and it signs covers from `--lead-hours` on, so a
    /// desk offline now learns it before it meets a cover signed with it.
    /// Older keys stay valid for the covers printed with them.
    Rotate {
        #[command(flatten)]
        at: StoreArgs,
        /// Hours until the new key signs; 0 signs at once (desks offline now
        /// refuse its covers until they connect).
        #[arg(long, default_value_t = crate::cover_keys::DEFAULT_LEAD.as_secs() / 3600)]
        lead_hours: u64,
        /// The secrets key file, when not `<data dir>/secrets.key`.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

pub async fn cover_keys(command: CoverKeysCommand) -> anyhow::Result<()> {
    let (at, rotation) = match command {
        CoverKeysCommand::List { at } => (at, None),
        CoverKeysCommand::Rotate {
            at,
            lead_hours,
            key_file,
        } => (at, Some((lead_hours, key_file))),
    };
    let store = at.open().await?.store;
    let keys = match rotation {
        None => crate::cover_keys::list(&*store).await?,
        Some((lead_hours, key_file)) => {
            let secrets = crate::secrets::Keyring::load_existing(
                at.data_dir.as_deref(),
                key_file.as_deref(),
            )?;
            let lead = Duration::from_secs(lead_hours.saturating_mul(3600));
            crate::cover_keys::rotate(&*store, &secrets, lead).await?
        }
    };
    if keys.is_empty() {
        println!("no cover signing keys yet: the server makes the first at its first start");
    }
    for key in keys {
        println!(
            "{}  made {}  signs from {}",
            key.id,
            key.created_at.format("%Y-%m-%d %H:%M:%SZ"),
            key.signs_from.format("%Y-%m-%d %H:%M:%SZ")
        );
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; prints its secret once.
    Create {
        #[command(flatten)]
        at: StoreArgs,
        /// Who uses it, e.g. erp-finance.
        #[arg(long)]
        name: String,
        /// Comma-separated: status, read, write, decide, packets, webhooks, admin.
        #[arg(long, value_parser = tokens::parse_scopes)]
        scopes: Vec<TokenScopes>,
        /// A source system whose documents it may touch; repeat for several (default: all).
        #[arg(long = "source-system")]
        source_systems: Vec<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Give a token a new secret; the old one keeps working for the overlap.
    Rotate {
        #[command(flatten)]
        at: StoreArgs,
        id: i64,
        /// Seconds the old secret stays valid.
        #[arg(long, default_value_t = tokens::DEFAULT_OVERLAP.as_secs())]
        overlap_secs: u64,
    },
    /// Revoke a token at once.
    Revoke {
        #[command(flatten)]
        at: StoreArgs,
        id: i64,
    },
}

type TokenScopes = Vec<imc_shared::api::TokenScope>;

/// Which installation an administration command works on.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// An embedded installation's data dir.
    #[arg(long, env = "IMC_DATA_DIR", required_unless_present = "database")]
    pub data_dir: Option<PathBuf>,
    /// A scaled-out installation's PostgreSQL database (`postgres://...`).
    #[arg(
        long,
        env = "IMC_DATABASE",
        conflicts_with = "data_dir",
        hide_env_values = true
    )]
    pub database: Option<String>,
}

/// The store as the API and the desk see it.
pub struct AdminStores {
    pub store: Arc<dyn Store>,
    pub desk: Arc<dyn WebStore>,
}

impl StoreArgs {
    /// Opens the installation's existing database; never creates one, so a
    /// mistyped path or URL is an error rather than a new empty installation.
    pub async fn open(&self) -> anyhow::Result<AdminStores> {
        match (&self.database, &self.data_dir) {
            (Some(url), _) => {
                let shown = crate::config::redact_password(url);
                let store = PgStore::open(url)
                    .await
                    .with_context(|| format!("opening database {shown}"))?;
                Ok(AdminStores {
                    store: Arc::new(store.clone()),
                    desk: Arc::new(store),
                })
            }
            (None, Some(data_dir)) => {
                let store = open_sqlite(data_dir)?;
                Ok(AdminStores {
                    store: Arc::new(store.clone()),
                    desk: Arc::new(store),
                })
            }
            (None, None) => anyhow::bail!("give --data-dir or --database"),
        }
    }
}

pub fn cert(command: &CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::Init { dir, hosts } => {
            let files = crate::net::tls::init_certs(dir, hosts)?;
            println!(
                "CA certificate (give to agents: imc-agent enroll --ca): {}",
                files.ca_cert.display()
            );
            println!(
                "CA key (keep offline):                      {}",
                files.ca_key.display()
            );
            println!(
                "server certificate (serve --tls-cert):      {}",
                files.server_cert.display()
            );
            println!(
                "server key (serve --tls-key):               {}",
                files.server_key.display()
            );
            println!(
                "client CA, for mutual TLS with agents (serve --client-ca-cert / --client-ca-key): {} {}",
                files.client_ca_cert.display(),
                files.client_ca_key.display()
            );
            Ok(())
        }
    }
}

fn open_sqlite(data_dir: &std::path::Path) -> anyhow::Result<SqliteStore> {
    let db = ServerConfig::new(data_dir.to_owned()).database_path();
    if !db.exists() {
        anyhow::bail!(
            "no database at {}: is --data-dir the server's?",
            db.display()
        );
    }
    SqliteStore::open(&db).with_context(|| format!("opening {}", db.display()))
}

fn actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Actor(format!("cli:{user}"))
}

fn print_token(token: &TokenView) {
    let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
    let sources = token
        .source_systems
        .as_ref()
        .map_or("all".to_owned(), |s| s.join(","));
    let state = match (&token.revoked_at, &token.expires_at) {
        (Some(at), _) => format!("revoked {at}"),
        (None, Some(at)) => format!("expires {at}"),
        (None, None) => "active".to_owned(),
    };
    println!(
        "{}\t{}\tscopes={}\tsources={}\tcreated {}\t{}",
        token.id,
        token.name,
        scopes.join(","),
        sources,
        token.created_at,
        state
    );
}

pub async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            at,
            name,
            scopes,
            source_systems,
        } => {
            let store = at.open().await?.store;
            let request = CreateToken {
                name,
                scopes: scopes.into_iter().flatten().collect(),
                source_systems: (!source_systems.is_empty()).then_some(source_systems),
            };
            let (token, secret) = tokens::create(&*store, request, &actor()).await?;
            print_token(&tokens::view(token));
            println!("secret (shown once): {secret}");
        }
        TokenCommand::List { at } => {
            let store = at.open().await?.store;
            for token in store.api_tokens().await? {
                print_token(&tokens::view(token));
            }
        }
        TokenCommand::Rotate {
            at,
            id,
            overlap_secs,
        } => {
            let store = at.open().await?.store;
            let (token, secret) =
                tokens::rotate(&*store, id, Duration::from_secs(overlap_secs), &actor()).await?;
            print_token(&tokens::view(token));
            println!("secret (shown once): {secret}");
        }
        TokenCommand::Revoke { at, id } => {
            let store = at.open().await?.store;
            let token = store.revoke_api_token(id, &actor()).await?;
            print_token(&tokens::view(token));
        }
    }
    Ok(())
}
