//! `imc-server demo`: the whole product on this machine.

use crate::demo::{DemoOptions, agent_program};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the demo's data, inbox and cover sheets.
    #[arg(long, default_value = "imc-demo")]
    pub dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The desk agent program (default: `imc-agent` beside this program).
    #[arg(long)]
    pub agent: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let options = DemoOptions {
        dir: args.dir,
        listen: args.listen,
        agent: agent_program(args.agent)?,
    };
    crate::demo::run(options, super::shutdown_on_signal()).await
}
