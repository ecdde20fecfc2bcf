//! `imc-server archive export|verify|public-key`: signed-off documents as
//! self-verifying archive packages (docs/ARCHIVE.md), and their check.

use super::stores::StoreArgs;
use crate::archive::destination;
use crate::archive::export::{Progress, Sources, export};
use crate::archive::filter::filter;
use crate::archive::verify;
use crate::config::ServerConfig;
use crate::cover_keys::CoverSigner;
use anyhow::{Context, bail};
use base64::Engine;
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write one BagIt bag per document (version) into --out: only what the
    /// folder does not hold yet. Safe while the server runs.
    Export {
        #[command(flatten)]
        at: StoreArgs,
        /// Where image bytes live for a --database installation
        /// (`s3://bucket/prefix` or a folder); default `<data dir>/blobs`.
        #[arg(long, env = "IMC_BLOBS")]
        blobs: Option<String>,
        /// The secrets key file, when not `<data dir>/secrets.key`.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The destination: a folder, or `s3://bucket/prefix` (the `AWS_*`
        /// settings as for blobs); new, empty, or one exported to before.
        #[arg(long)]
        out: String,
        /// Documents created on or after this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        from: Option<String>,
        /// Documents created on or before this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        to: Option<String>,
        /// Only this ERP's documents.
        #[arg(long)]
        source_system: Option<String>,
        /// Documents in this status.
        #[arg(long, default_value = "ready")]
        status: String,
    },
    /// Check bags (one, or a folder of them) for integrity, authenticity,
    /// usability and security; exit status 1 on any failure.
    Verify {
        /// A bag, or a folder of bags.
        dir: PathBuf,
        /// Trusted public keys (base64, one a line); default: each bag's own.
        #[arg(long)]
        key: Option<PathBuf>,
        /// A JSON report instead of one line per failure.
        #[arg(long)]
        json: bool,
    },
    /// Print every public key that signs packages (base64, one a line), for
    /// `archive verify --key`.
    PublicKey {
        #[command(flatten)]
        at: StoreArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Export {
            at,
            blobs,
            key_file,
            out,
            from,
            to,
            source_system,
            status,
        } => {
            let filter = filter("--", &status, from.as_deref(), to.as_deref(), source_system)?;
            // Everything read is opened and checked before the destination
            // is touched: a wrong --data-dir writes nothing anywhere.
            let store = at.open().await?.store;
            let blobs = match (&blobs, &at.data_dir) {
                (Some(location), _) => location.clone(),
                (None, Some(data_dir)) => ServerConfig::new(data_dir.clone())
                    .blobs_dir()
                    .display()
                    .to_string(),
                (None, None) => bail!("a --database installation needs --blobs"),
            };
            let blobs = crate::blobs::open(&blobs)
                .with_context(|| format!("opening the blob store {blobs}"))?;
            let secrets = Arc::new(crate::secrets::Keyring::load_existing(
                at.data_dir.as_deref(),
                key_file.as_deref(),
            )?);
            let keys = CoverSigner::new(secrets).current(&*store).await?;
            let destination = destination::open(&out, at.data_dir.as_deref()).await?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let sources = Sources {
                store: &*store,
                blobs: &*blobs,
                keys: &keys,
            };
            let done = export(&sources, &destination, &filter, |p| {
                bar.set_message(line(p))
            })
            .await;
            bar.finish_and_clear();
            let done = done?;
            println!("{} into {}", line(&done), destination.describe());
            Ok(())
        }
        Command::Verify { dir, key, json } => {
            let keys = key.as_deref().map(verify::read_key_file).transpose()?;
            let report = verify::verify(&dir, keys.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for failure in &report.failures {
                    println!("{failure}");
                }
                if report.bags == 0 {
                    println!("no bags in {}: nothing to check", dir.display());
                    return Ok(());
                }
                println!(
                    "{} bags, {} images checked: {}",
                    report.bags,
                    report.images,
                    if report.ok() {
                        "all pass".to_owned()
                    } else {
                        format!("{} failures", report.failures.len())
                    }
                );
            }
            if !report.ok() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::PublicKey { at } => {
            let store = at.open().await?.store;
            for key in crate::cover_keys::list(&*store).await? {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(&key.public_key)
                    .context("a stored public key is not base64")?;
                println!("{}", base64::engine::general_purpose::STANDARD.encode(raw));
            }
            Ok(())
        }
    }
}

fn line(p: &Progress) -> String {
    let deferred = if p.deferred > 0 {
        format!(
            ", {} changed while read (the next run takes them)",
            p.deferred
        )
    } else {
        String::new()
    };
    format!(
        "{} documents: {} bags written ({:.1} MB), {} already held{deferred}",
        p.documents,
        p.bags,
        p.bytes as f64 / 1_000_000.0,
        p.unchanged
    )
}
