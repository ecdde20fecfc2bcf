//! IMC server: documents from ERPs, packets from scan desks, matching and sign-off.
//!
//! Layout:
//! - [`serve`] runs the HTTP API and the agent uplink on a given listener until
//!   a shutdown future resolves; the binary (`main.rs`) only parses arguments.
//! - `routes/`: the HTTP handlers, one file per area; `uplink`: the agent WebSocket;
//!   `commit`: the group commit that makes uplink pages durable in batches.
//! - `store/`: metadata behind the [`store::Store`] trait (SQLite embedded or
//!   PostgreSQL); `blobs`: image bytes, content-addressed (folder or object store).
//! - `workflow`: the document lifecycle rules; `settings`: their validation;
//!   `webhooks`: the outbox delivery task; `cover/`: cover sheet drawing.
//! - `demo`: the one-command demonstration.

pub mod auth;
pub mod backup;
pub mod blobs;
pub mod commit;
pub mod config;
pub mod cover;
pub mod demo;
mod error;
pub mod metrics;
pub mod partials;
mod routes;
pub mod settings;
mod state;
pub mod store;
#[cfg(test)]
mod test_services;
pub mod uplink;
pub mod webhooks;
pub mod workflow;

use anyhow::Context;
use blobs::FolderBlobs;
use config::ServerConfig;
use state::AppState;
use std::future::Future;
use std::sync::Arc;
use store::{PgStore, SqliteStore, Store, TokenRole};
use tokio::net::TcpListener;

/// Opens (or creates) the data dir and everything the server keeps in it.
pub async fn open(config: ServerConfig) -> anyhow::Result<AppState> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let (store, fresh) = open_store(&config).await?;
    if fresh && let Some(token) = &config.bootstrap_token {
        let hash = auth::hash_secret(token);
        // Replicas starting together may race to store it; one copy is enough.
        if store.api_token_by_hash(&hash).await?.is_none()
            && let Err(e) = store
                .add_api_token("bootstrap", TokenRole::Admin, &hash)
                .await
            && store.api_token_by_hash(&hash).await?.is_none()
        {
            return Err(anyhow::Error::new(e).context("storing the bootstrap token"));
        }
        tracing::info!("IMC_BOOTSTRAP_TOKEN stored as an admin API token");
    }
    let blobs: Arc<dyn blobs::BlobStore> = match &config.blobs {
        Some(location) => blobs::open(location)?,
        None => Arc::new(FolderBlobs::open(&config.blobs_dir())?),
    };
    // Before the first request, so no measurement is lost.
    if metrics::handle().is_none() {
        tracing::warn!("another metrics recorder is installed; /metrics shows store totals only");
    }
    let covers = match &config.cover_font {
        Some(path) => cover::CoverRenderer::with_font_file(path)
            .with_context(|| format!("loading cover font {}", path.display()))?,
        None => cover::CoverRenderer::from_system_fonts(),
    };
    Ok(AppState {
        committer: commit::Committer::start(Arc::clone(&store), Arc::clone(&blobs)),
        store,
        blobs,
        covers: Arc::new(covers),
        desks: uplink::Desks::new(config.max_agents),
        config: Arc::new(config),
    })
}

/// The metadata store the config names, and whether it is fresh (no
/// credentials yet), which is when a bootstrap token is stored.
async fn open_store(config: &ServerConfig) -> anyhow::Result<(Arc<dyn Store>, bool)> {
    match &config.database {
        Some(url) => {
            let shown = config::redact_password(url);
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                anyhow::bail!(
                    "--database {shown}: give a postgres:// URL; without --database the \
                     embedded SQLite database in the data dir is used"
                );
            }
            let store = PgStore::open(url)
                .await
                .with_context(|| format!("opening database {shown}"))?;
            let fresh = store.is_fresh().await?;
            Ok((Arc::new(store), fresh))
        }
        None => {
            let db_path = config.database_path();
            let fresh = !db_path.exists();
            let store = SqliteStore::open(&db_path)
                .with_context(|| format!("opening database {}", db_path.display()))?;
            Ok((Arc::new(store), fresh))
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = open(config).await?;
    serve_state(state, listener, shutdown).await
}

pub async fn serve_state(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Background work is owned here: cancelled with the server and awaited.
    let stop = tokio_util::sync::CancellationToken::new();
    let outbox = tokio::spawn(webhooks::run(Arc::clone(&state.store), stop.clone()));
    let sweeper = tokio::spawn(partials::run(
        state.config.partials_dir(),
        state.config.partial_ttl,
        stop.clone(),
    ));
    let app = routes::router(state);
    let http_stop = stop.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {}
                _ = http_stop.cancelled() => {}
            }
        })
        .await
        .context("serving HTTP");
    stop.cancel();
    if let Err(e) = outbox.await {
        tracing::error!(error = %e, "webhook delivery task failed");
    }
    if let Err(e) = sweeper.await {
        tracing::error!(error = %e, "partial upload sweeper failed");
    }
    served
}

pub use state::AppState as ServerState;
