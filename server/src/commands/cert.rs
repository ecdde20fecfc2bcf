//! `imc-server cert init`: a private CA and a server certificate.

use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum Command {
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

pub fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Init { dir, hosts } => {
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
