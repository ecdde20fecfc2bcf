//! `imc-server restore`: a data dir rebuilt from a backup folder.

use super::stores::{Stores, data_dir_of};
use crate::config::ServerFile;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The server's config file, to learn where its data lives.
    #[arg(long, env = "IMC_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub from: PathBuf,
    #[arg(long, env = "IMC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub stores: Stores,
}

pub fn run(args: Args, file: &ServerFile) -> anyhow::Result<()> {
    let stores = args.stores.or_file(file);
    crate::backup::embedded_only(stores.database.as_deref(), stores.blobs.as_deref())?;
    let data_dir = data_dir_of(args.data_dir, file)?;
    let done = crate::backup::restore(&args.from, &data_dir)?;
    println!(
        "restored {} documents, {} pages, {} images from the backup of {} into {}; audit chain intact",
        done.documents,
        done.pages,
        done.images,
        done.created_at,
        data_dir.display()
    );
    Ok(())
}
