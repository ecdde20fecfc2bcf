//! `imc-server backup`: the data dir copied into a folder while the server runs.

use super::stores::{Stores, data_dir_of};
use crate::config::ServerFile;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The server's config file, to learn where its data lives.
    #[arg(long, env = "IMC_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "IMC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Backup folder; a later backup into the same folder copies only new blobs.
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    pub stores: Stores,
}

pub fn run(args: Args, file: &ServerFile) -> anyhow::Result<()> {
    let stores = args.stores.or_file(file);
    crate::backup::embedded_only(stores.database.as_deref(), stores.blobs.as_deref())?;
    let done = crate::backup::backup(&data_dir_of(args.data_dir, file)?, &args.to)?;
    println!(
        "backed up {} documents, {} pages, {} images ({} blobs) into {}",
        done.documents,
        done.pages,
        done.images,
        done.blobs,
        args.to.display()
    );
    Ok(())
}
