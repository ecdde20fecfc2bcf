//! `imc-server token create|list|rotate|revoke`: the ERPs' API tokens.

use super::actor;
use super::stores::StoreArgs;
use crate::tokens;
use clap::Subcommand;
use imc_shared::api::{CreateToken, TokenView};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum Command {
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

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create {
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
        Command::List { at } => {
            let store = at.open().await?.store;
            for token in store.api_tokens().await? {
                print_token(&tokens::view(token));
            }
        }
        Command::Rotate {
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
        Command::Revoke { at, id } => {
            let store = at.open().await?.store;
            let token = store.revoke_api_token(id, &actor()).await?;
            print_token(&tokens::view(token));
        }
    }
    Ok(())
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
