//! `imc-server serve`: the API, the sign-off desk and the agent uplink.

use super::stores::{Stores, data_dir_of};
use crate::config::{ServerConfig, ServerFile, TlsFiles};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// A TOML file with these settings; flags and environment variables win over it.
    #[arg(long, env = "IMC_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "IMC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "IMC_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// A TTF/OTF/TTC font with Chinese glyphs for cover sheets (default: search system fonts).
    #[arg(long, env = "IMC_COVER_FONT")]
    pub cover_font: Option<PathBuf>,
    /// Require this bearer token on GET /metrics.
    #[arg(long, env = "IMC_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Largest page a scan desk may deliver, in bytes (at most 64 MiB).
    #[arg(long, env = "IMC_MAX_PAGE_BYTES")]
    pub max_page_bytes: Option<u64>,
    /// An agent uplink silent this long (no heartbeat) is half-open and closed (default 90).
    #[arg(long, env = "IMC_UPLINK_IDLE_SECS")]
    pub uplink_idle_secs: Option<u64>,
    /// Serve HTTPS/WSS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "IMC_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "IMC_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS for agents: the client CA certificate (PEM) that signs each
    /// desk's certificate at enrolment; the uplink then requires it. Needs --tls-cert.
    #[arg(long, env = "IMC_CLIENT_CA_CERT", requires_all = ["client_ca_key", "tls_cert"])]
    pub client_ca_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-ca-cert.
    #[arg(long, env = "IMC_CLIENT_CA_KEY", requires = "client_ca_cert")]
    pub client_ca_key: Option<PathBuf>,
    /// API requests per second from one IP address (bursts of twice that); 0: no limit.
    #[arg(long, env = "IMC_RATE_PER_IP", default_value_t = 200)]
    pub rate_per_ip: u32,
    /// API requests per second with one token (bursts of twice that); 0: no limit.
    #[arg(long, env = "IMC_RATE_PER_TOKEN", default_value_t = 100)]
    pub rate_per_token: u32,
    /// Seconds a client has to send a request's headers (slow clients are
    /// dropped); also how long an idle keep-alive connection stays open.
    #[arg(long, env = "IMC_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Where archive exports started through the API write their packages
    /// (`POST /api/v1/archive/exports`): a folder outside the data dir, or
    /// `s3://bucket/prefix`.
    #[arg(long, env = "IMC_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
    #[command(flatten)]
    pub stores: Stores,
}

pub async fn run(args: Args, file: ServerFile) -> anyhow::Result<()> {
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
    let config = config(args, &file)?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
    // Printed on stdout so scripts (and tests binding port 0) learn the address.
    println!(
        "imc-server listening on {scheme}://{}",
        listener.local_addr()?
    );
    let shutdown = super::shutdown_on_signal();
    crate::serve(config, listener, async move { shutdown.cancelled().await }).await
}

/// The flags (or their environment variables) over the config file's keys.
fn config(args: Args, file: &ServerFile) -> anyhow::Result<ServerConfig> {
    let stores = args.stores.or_file(file);
    let mut config = ServerConfig::new(data_dir_of(args.data_dir, file)?);
    file.apply_limits(&mut config);
    file.apply_retention(&mut config)?;
    config.bootstrap_token = std::env::var("IMC_BOOTSTRAP_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    config.cover_font = args.cover_font.or(file.cover_font.clone());
    config.archive_dir = args.archive_dir.or(file.archive_dir.clone());
    config.metrics_token = args.metrics_token.or(file.metrics_token.clone());
    if let Some(limit) = args.max_page_bytes.or(file.max_page_bytes) {
        config.max_page_bytes = limit;
    }
    config.database = stores.database;
    config.blobs = stores.blobs;
    if let Some(secs) = args.uplink_idle_secs.or(file.uplink_idle_secs) {
        config.uplink_idle_timeout = Duration::from_secs(secs.max(1));
    }
    config.tls = args
        .tls_cert
        .zip(args.tls_key)
        .map(|(cert, key)| TlsFiles { cert, key });
    config.client_ca = args
        .client_ca_cert
        .zip(args.client_ca_key)
        .map(|(cert, key)| TlsFiles { cert, key });
    if let Some(secs) = args.header_timeout_secs.or(file.header_timeout_secs) {
        anyhow::ensure!(secs > 0, "the header timeout must be at least 1 second");
        config.connection_limits.headers = Duration::from_secs(secs);
    }
    config.rate_limits = crate::ratelimit::RateLimits {
        per_ip: std::num::NonZeroU32::new(args.rate_per_ip),
        per_token: std::num::NonZeroU32::new(args.rate_per_token),
    };
    Ok(config)
}
