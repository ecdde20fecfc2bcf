//! `imc-server cover-keys list|rotate`: the keys that sign cover QR codes.

use super::stores::StoreArgs;
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum Command {
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

pub async fn run(command: Command) -> anyhow::Result<()> {
    let (at, rotation) = match command {
        Command::List { at } => (at, None),
        Command::Rotate {
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
