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
//!   `webhooks`: the outbox delivery task; `secrets`: webhook secrets sealed at rest; `retention`: purging image bytes;
//!   `cover/`: cover sheet drawing.
//! - `web/`: the sign-off desk, the staff's web UI under `/ui`.
//! - `demo`: the one-command demonstration.

pub mod app;
pub mod archive;
pub mod attachments;
pub mod auth;
pub mod backup;
pub mod blobs;
pub mod commands;
pub mod commit;
pub mod config;
pub mod cover;
pub mod cover_keys;
pub mod demo;
pub mod desk_bus;
pub mod domain;
mod early;
mod error;
pub mod failure_tally;
mod http;
pub mod matching;
pub mod metrics;
pub mod migrate_store;
pub mod net;
pub mod partials;
mod policy;
#[cfg(test)]
mod policy_tests;
pub mod preauth;
pub mod ratelimit;
pub mod retention;
mod routes;
pub mod secrets;
pub mod settings;
mod state;
pub mod store;
#[cfg(test)]
mod test_services;
pub mod tokens;
pub mod untrusted;
pub mod uplink;
pub mod web;
pub mod webhooks;
pub mod workflow;

use anyhow::Context;
use blobs::FolderBlobs;
use config::ServerConfig;
use state::AppState;
use std::future::Future;
use std::sync::Arc;
use store::{Actor, NewApiToken, PgStore, SqliteStore, Store};
use tokio::net::TcpListener;

/// Opens (or creates) the data dir and everything the server keeps in it.
pub async fn open(config: ServerConfig) -> anyhow::Result<AppState> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let OpenedStore {
        store,
        web_store,
        changes,
        desk_bus,
        shared_partials,
        fresh,
    } = open_store(&config).await?;
    if fresh && let Some(token) = &config.bootstrap_token {
        let hash = auth::hash_secret(token);
        // Replicas starting together may race to store it; one copy is enough.
        if store.api_token_by_hash(&hash).await?.is_none()
            && let Err(e) = store
                .add_api_token(
                    NewApiToken {
                        name: "bootstrap".into(),
                        scopes: vec![imc_shared::api::TokenScope::Admin],
                        source_systems: None,
                        token_hash: hash.clone(),
                    },
                    &Actor("server:bootstrap".into()),
                )
                .await
            && store.api_token_by_hash(&hash).await?.is_none()
        {
            return Err(anyhow::Error::new(e).context("storing the bootstrap token"));
        }
        tracing::info!("IMC_BOOTSTRAP_TOKEN stored as an admin API token");
    }
    // Loaded once; a key that cannot open the stored secrets stops the start.
    let secrets = Arc::new(secrets::Keyring::load(&config.data_dir)?);
    secrets::upgrade(&*store, &secrets)
        .await
        .context("webhook secrets")?;
    let cover_keys = Arc::new(cover_keys::CoverSigner::new(Arc::clone(&secrets)));
    cover_keys
        .ensure(&*store)
        .await
        .context("cover signing keys")?;
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
    let mut web = web::WebState::new(web_store, changes, config.data_dir.join("thumbs"));
    // Cookies marked Secure and HSTS only when the browser comes over HTTPS.
    web.secure_cookies = config.tls.is_some();
    let client_ca = match (&config.client_ca, &config.tls) {
        (None, _) => None,
        (Some(_), None) => {
            anyhow::bail!("mutual TLS (a client CA) needs TLS: give --tls-cert and --tls-key")
        }
        (Some(files), Some(_)) => Some(Arc::new(net::client_certs::ClientCa::load(
            &files.cert,
            &files.key,
        )?)),
    };
    Ok(AppState {
        failure_tally: Arc::default(),
        archive_jobs: Arc::default(),
        client_ca,
        secrets,
        cover_keys,
        committer: commit::Committer::start(Arc::clone(&store), Arc::clone(&blobs)),
        web,
        shared_partials,
        store,
        blobs,
        covers: Arc::new(covers),
        desks: uplink::Desks::new(config.max_agents, desk_bus),
        config: Arc::new(config),
    })
}

/// The metadata store the config names, seen as the API's and the desk's
/// store, with its change announcements.
struct OpenedStore {
    store: Arc<dyn Store>,
    web_store: Arc<dyn web::store::WebStore>,
    changes: Arc<dyn Fn() -> tokio::sync::broadcast::Receiver<store::Change> + Send + Sync>,
    /// How the uplink reaches agent sessions on other replicas.
    desk_bus: Arc<dyn desk_bus::DeskBus>,
    shared_partials: Option<Arc<dyn partials::SharedPartials>>,
    /// No credentials yet: the time to store a bootstrap token.
    fresh: bool,
}

async fn open_store(config: &ServerConfig) -> anyhow::Result<OpenedStore> {
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
            let announcer = store.clone();
            // Listening from the start, so the first desk page to subscribe
            // misses nothing committed after it was served.
            drop(announcer.changes());
            Ok(OpenedStore {
                store: Arc::new(store.clone()),
                web_store: Arc::new(store),
                desk_bus: announcer.desk_bus(),
                shared_partials: Some(Arc::new(announcer.clone())),
                changes: Arc::new(move || announcer.changes()),
                fresh,
            })
        }
        None => {
            let db_path = config.database_path();
            let fresh = !db_path.exists();
            let store = SqliteStore::open(&db_path)
                .with_context(|| format!("opening database {}", db_path.display()))?;
            let announcer = store.clone();
            Ok(OpenedStore {
                store: Arc::new(store.clone()),
                web_store: Arc::new(store),
                changes: Arc::new(move || announcer.changes()),
                desk_bus: Arc::new(desk_bus::LocalBus::new()),
                shared_partials: None,
                fresh,
            })
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
    net::open_files::raise_for(state.config.max_agents);
    // Background work is owned here: cancelled with the server and awaited.
    let stop = tokio_util::sync::CancellationToken::new();
    let outbox = tokio::spawn(webhooks::run(
        Arc::clone(&state.store),
        Arc::clone(&state.secrets),
        stop.clone(),
    ));
    let desk_events = tokio::spawn(state.desks.clone().follow(stop.clone()));
    let sweeper = tokio::spawn(partials::run(
        state.config.partials_dir(),
        state.config.partial_ttl,
        stop.clone(),
    ));
    let shared_sweeper = state.shared_partials.clone().map(|shared| {
        tokio::spawn(partials::run_shared(
            shared,
            state.config.partial_ttl,
            stop.clone(),
        ))
    });
    let retention = tokio::spawn(retention::run(
        Arc::clone(&state.store),
        Arc::clone(&state.blobs),
        state.config.retention,
        state.config.data_dir.join("thumbs"),
        stop.clone(),
    ));
    let tls = match &state.config.tls {
        Some(files) => Some(net::tls::server_config(
            &files.cert,
            &files.key,
            state.client_ca.as_ref().map(|ca| &ca.cert_der),
        )?),
        None => None,
    };
    let failure_counts = tokio::spawn(write_failure_counts(state.clone(), stop.clone()));
    let limits = state.config.connection_limits;
    let desk_streams = state.web.stop.clone();
    let app = http::router(state);
    let http_stop = stop.clone();
    net::serve(listener, app, tls, limits, async move {
        tokio::select! {
            _ = shutdown => {}
            _ = http_stop.cancelled() => {}
        }
        // Open event streams never end by themselves: end them, or
        // graceful shutdown would wait for them forever.
        desk_streams.cancel();
    })
    .await;
    stop.cancel();
    if let Err(e) = outbox.await {
        tracing::error!(error = %e, "webhook delivery task failed");
    }
    if let Err(e) = desk_events.await {
        tracing::error!(error = %e, "desk bus follower failed");
    }
    if let Some(task) = shared_sweeper
        && let Err(e) = task.await
    {
        tracing::error!(error = %e, "shared partial upload sweeper failed");
    }
    if let Err(e) = sweeper.await {
        tracing::error!(error = %e, "partial upload sweeper failed");
    }
    if let Err(e) = retention.await {
        tracing::error!(error = %e, "retention task failed");
    }
    if let Err(e) = failure_counts.await {
        tracing::error!(error = %e, "auth failure counting task failed");
    }
    Ok(())
}

/// Writes the counts of anonymous auth failures of each minute once it is
/// over, and whatever is counted when the server stops.
async fn write_failure_counts(state: AppState, stop: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(15)) => {
                auth::write_failure_counts(&state, failure_tally::current_minute()).await;
            }
            () = stop.cancelled() => break,
        }
    }
    auth::write_failure_counts(&state, u64::MAX).await;
}

pub use state::AppState as ServerState;
