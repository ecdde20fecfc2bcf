//! What every handler shares.

use crate::blobs::BlobStore;
use crate::commit::Committer;
use crate::config::ServerConfig;
use crate::cover::CoverRenderer;
use crate::store::Store;
use crate::uplink::desks::Desks;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub covers: Arc<CoverRenderer>,
    pub config: Arc<ServerConfig>,
    pub desks: Desks,
    /// The group commit every uplink session hands its whole pages to.
    pub committer: Committer,
    /// Partial uploads every replica can resume (PostgreSQL); `None` for the
    /// embedded server, whose local `partials/` folder is all it needs.
    pub shared_partials: Option<Arc<dyn crate::partials::SharedPartials>>,
    /// The sign-off desk's own state (`web/`).
    pub web: crate::web::state::WebState,
    /// Mutual TLS for agents, when configured: signs desks' certificates at
    /// enrolment, and the uplink requires one.
    pub client_ca: Option<Arc<crate::net::client_certs::ClientCa>>,
    /// Seals webhook secrets before they are stored (`crate::secrets`).
    pub secrets: Arc<crate::secrets::Keyring>,
    /// Signs the QR of every cover printed; publishes the public keys to desks.
    pub cover_keys: Arc<crate::cover_keys::CoverSigner>,
    /// Anonymous auth failures counted per address and minute.
    pub failure_tally: Arc<crate::failure_tally::FailureTally>,
    /// The archive exports this replica runs for the API.
    pub archive_jobs: Arc<crate::archive::jobs::Jobs>,
}
