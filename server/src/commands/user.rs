//! `imc-server user add|disable|enable|password`: staff users of the sign-off desk.

use super::stores::StoreArgs;
use crate::config::ServerConfig;
use crate::store::{Actor, SqliteStore};
use crate::web::passwords;
use crate::web::store::NewUser;
use crate::web::users::{check_password, validate};
use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Add a user; asks for the password when --password is not given.
    Add {
        #[command(flatten)]
        at: StoreArgs,
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
        at: StoreArgs,
        #[arg(long)]
        name: String,
    },
    /// Let a disabled user log in again.
    Enable {
        #[command(flatten)]
        at: StoreArgs,
        #[arg(long)]
        name: String,
    },
    /// Set a new password (asks for it when --password is not given); the
    /// user's sessions end.
    Password {
        #[command(flatten)]
        at: StoreArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        password: Option<String>,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Add {
            at,
            name,
            role,
            site,
            password,
        } => add(&at, &name, &role, site, password).await,
        Command::Disable { at, name } => set_disabled(&at, &name, true).await,
        Command::Enable { at, name } => set_disabled(&at, &name, false).await,
        Command::Password { at, name, password } => set_password(&at, &name, password).await,
    }
}

/// `imc-server user add`: asks for the password when none is given.
async fn add(
    at: &StoreArgs,
    name: &str,
    role: &str,
    site: Option<String>,
    password: Option<String>,
) -> anyhow::Result<()> {
    let password = password_or_prompt(name, password)?;
    let new = validate(name, role, site, &password)?;
    // An embedded installation may not exist yet: the first admin comes before the server.
    if let Some(data_dir) = &at.data_dir {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let db = ServerConfig::new(data_dir.clone()).database_path();
        SqliteStore::open(&db).with_context(|| format!("opening database {}", db.display()))?;
    }
    let store = at.open().await?.desk;
    let password_hash = passwords::hash(password).await?;
    let user = store
        .add_user(
            NewUser {
                password_hash,
                ..new
            },
            &Actor("cli:user-add".into()),
        )
        .await
        .with_context(|| format!("adding user {name}"))?;
    println!(
        "user {} added with role {}{}",
        user.name,
        user.role.as_str(),
        user.site
            .as_deref()
            .map(|s| format!(" at site {s}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// `imc-server user disable|enable`.
async fn set_disabled(at: &StoreArgs, name: &str, disabled: bool) -> anyhow::Result<()> {
    let store = at.open().await?.desk;
    let (verb, actor) = if disabled {
        ("disabling", "cli:user-disable")
    } else {
        ("enabling", "cli:user-enable")
    };
    store
        .set_user_disabled(name, disabled, &Actor(actor.into()))
        .await
        .with_context(|| format!("{verb} user {name}"))?;
    if disabled {
        println!("user {name} disabled; their sessions have ended");
    } else {
        println!("user {name} enabled");
    }
    Ok(())
}

/// `imc-server user password`: asks for it when none is given.
async fn set_password(at: &StoreArgs, name: &str, password: Option<String>) -> anyhow::Result<()> {
    let password = password_or_prompt(name, password)?;
    check_password(&password)?;
    let store = at.open().await?.desk;
    let password_hash = passwords::hash(password).await?;
    store
        .set_user_password(name, &password_hash, &Actor("cli:user-password".into()))
        .await
        .with_context(|| format!("setting the password of user {name}"))?;
    println!("password of user {name} changed; their sessions have ended");
    Ok(())
}

fn password_or_prompt(name: &str, given: Option<String>) -> anyhow::Result<String> {
    if let Some(password) = given {
        return Ok(password);
    }
    let first = rpassword::prompt_password(format!("password for {name}: "))
        .context("reading the password")?;
    let again = rpassword::prompt_password("again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}
