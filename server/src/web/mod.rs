//! The sign-off desk: the web UI staff use, served under `/ui`.
//!
//! Server-rendered HTML (maud) with htmx and one small script (`static/`,
//! compiled into the binary), so `imc-server` needs nothing else to show it.
//!
//! Layout:
//! - `session`: login, logout, the `Staff` extractor, and the guard every
//!   `/ui` request passes (CSRF token on state changes, same origin);
//!   `passwords`: Argon2id; `users`: creating staff (`imc-server user add`).
//! - `queue`, `document`, `packets`, `agents`, `admin`: one page each.
//! - `media`: page images, renditions (cached thumbnails), ranges.
//! - `events`: server-sent events from the store's change announcements.
//! - `i18n`: one catalogue per language; `layout`: the page shell;
//!   `store`: the desk's own queries (the `WebStore` trait).
//!
//! Invariant: the desk decides nothing itself. Decisions and matching call
//! the same functions as the JSON API, and the buttons shown are the ones
//! `workflow` allows.

mod admin;
mod agents;
mod document;
mod error;
mod events;
pub mod i18n;
mod layout;
mod media;
mod packets;
pub mod passwords;
mod queue;
pub mod session;
pub mod store;
mod throttle;
pub mod users;

use crate::state::AppState;
use crate::store::Change;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What the desk adds to the server's shared state.
#[derive(Clone)]
pub struct WebState {
    pub store: Arc<dyn store::WebStore>,
    /// A new listener for the store's change announcements.
    pub subscribe: Arc<dyn Fn() -> broadcast::Receiver<Change> + Send + Sync>,
    pub renditions: Arc<media::Renditions>,
    /// Cookies only over TLS; set when the server serves HTTPS.
    pub secure_cookies: bool,
    /// Cancelled at shutdown, so open event streams end and the server can stop.
    pub stop: CancellationToken,
    logins: Arc<throttle::LoginThrottle>,
}

pub fn router(state: AppState) -> Router<AppState> {
    let tls = state.web.secure_cookies;
    let pages = Router::new()
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/lang/{code}", get(session::set_language))
        .route("/ui/queue", get(queue::page))
        .route("/ui/queue/rows", get(queue::rows))
        .route("/ui/documents/{id}", get(document::show))
        .route("/ui/documents/{id}/sign-off", post(document::sign_off))
        .route("/ui/documents/{id}/reject", post(document::reject))
        .route("/ui/documents/{id}/unsign", post(document::unsign))
        .route("/ui/images/{id}/{kind}", get(media::image))
        .route("/ui/packets", get(packets::list))
        .route("/ui/packets/rows", get(packets::list_rows))
        .route("/ui/packets/{id}", get(packets::show))
        .route("/ui/packets/{id}/search", get(packets::search_fragment))
        .route("/ui/packets/{id}/attach", post(packets::attach))
        .route(
            "/ui/packets/{id}/pages/{index}/{kind}",
            get(media::packet_page),
        )
        .route("/ui/agents", get(agents::page))
        .route("/ui/agents/codes", post(agents::new_code))
        .route("/ui/agents/{id}/revoke", post(agents::revoke))
        .route("/ui/admin", get(admin::page))
        .route("/ui/admin/schemes", post(admin::put_scheme))
        .route("/ui/admin/settings", post(admin::put_settings))
        .route("/ui/admin/users", post(admin::add_user))
        .route("/ui/events", get(events::stream))
        .route_layer(middleware::from_fn_with_state(state, session::guard));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/queue") }))
        .route("/ui", get(|| async { Redirect::to("/ui/queue") }))
        .route("/ui/static/{file}", get(static_file))
        .merge(pages)
        .layer(middleware::from_fn_with_state(tls, security_headers))
}

/// Headers on every desk response: no framing, no sniffing, scripts and
/// styles only from this server; over TLS, browsers keep to HTTPS.
async fn security_headers(State(tls): State<bool>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show live data and a CSRF token: never from a cache.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

const STATIC_FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/htmx.min.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/ui.js"),
    ),
    (
        "ui.css",
        "text/css; charset=utf-8",
        include_bytes!("static/ui.css"),
    ),
];

/// The scripts and styles compiled into the binary, cached by content hash.
async fn static_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, content_type, bytes)) = STATIC_FILES.iter().find(|(name, _, _)| *name == file)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!(
        "\"{}\"",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    );
    let cache = [
        (header::ETAG, etag.clone()),
        // Revalidate: a new binary may bring a new script under the same name.
        (header::CACHE_CONTROL, "no-cache".to_owned()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, (*content_type).to_owned())],
        *bytes,
    )
        .into_response()
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
            renditions: media::Renditions::new(renditions_dir),
            secure_cookies: false,
            stop: CancellationToken::new(),
            logins: Arc::default(),
        }
    }
}
