//! What the desk adds to the server's shared state: its store, the feed of
//! changes for the live pages, the page renditions and the login throttle.

use super::{store, throttle};
use crate::store::Change;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What the desk adds to the server's shared state.
#[derive(Clone)]
pub struct WebState {
    pub store: Arc<dyn store::WebStore>,
    /// A new listener for the store's change announcements.
    pub subscribe: Arc<dyn Fn() -> broadcast::Receiver<Change> + Send + Sync>,
    pub renditions: Arc<Renditions>,
    /// Cookies only over TLS; set when the server serves HTTPS.
    pub secure_cookies: bool,
    /// Cancelled at shutdown, so open event streams end and the server can stop.
    pub stop: CancellationToken,
    pub(super) logins: Arc<throttle::LoginThrottle>,
}

impl WebState {
    pub fn new(
        store: Arc<dyn store::WebStore>,
        subscribe: Arc<dyn Fn() -> broadcast::Receiver<Change> + Send + Sync>,
        renditions_dir: std::path::PathBuf,
    ) -> WebState {
        WebState {
            store,
            subscribe,
            renditions: Renditions::new(renditions_dir),
            secure_cookies: false,
            stop: CancellationToken::new(),
            logins: Arc::default(),
        }
    }
}

/// Where renditions are kept, and how many may be made at once.
pub struct Renditions {
    pub(super) dir: PathBuf,
    pub(super) permits: Semaphore,
}

impl Renditions {
    pub fn new(dir: PathBuf) -> Arc<Renditions> {
        Arc::new(Renditions {
            dir,
            permits: Semaphore::new(2),
        })
    }
}
