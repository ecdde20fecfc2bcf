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
mod cookies;
mod document;
pub(crate) mod error;
mod events;
mod extract;
pub mod i18n;
mod layout;
mod media;
mod packets;
pub mod passwords;
mod queue;
pub mod scope;
pub mod session;
mod staff;
pub mod state;
pub mod store;
mod throttle;
pub mod users;

pub use state::WebState;

use crate::auth::{Access, Surface};
use crate::policy::PolicyRoutes;
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use error::UiError;
use store::Role;

/// Every desk route and who may use it: its part of the policy table
/// (`policy::PolicyRoutes`). Handlers add only what depends on the data: a
/// clerk sees their own site's ([`scope`]).
pub(crate) fn routes() -> PolicyRoutes {
    let public = Access::Public;
    let clerk = Access::Desk(Role::Clerk);
    let signoff = Access::Desk(Role::SignOff);
    let admin = Access::Desk(Role::Admin);
    PolicyRoutes::new(Surface::Desk)
        .get("/", public, || async { Redirect::to("/ui/queue") })
        .get("/ui", public, || async { Redirect::to("/ui/queue") })
        .get("/ui/", public, || async { Redirect::to("/ui/queue") })
        .get("/favicon.ico", public, favicon)
        .get("/ui/static/{file}", public, static_file)
        .get("/ui/login", public, session::login_page)
        .post("/ui/login", public, session::login)
        .post("/ui/logout", clerk, session::logout)
        .get("/ui/lang/{code}", public, session::set_language)
        .get("/ui/queue", clerk, queue::page)
        .get("/ui/queue/rows", clerk, queue::rows)
        .get("/ui/documents/{id}", clerk, document::show)
        .post("/ui/documents/{id}/sign-off", signoff, document::sign_off)
        .post("/ui/documents/{id}/reject", signoff, document::reject)
        .post("/ui/documents/{id}/unsign", signoff, document::unsign)
        .get("/ui/images/{id}/{kind}", clerk, media::image)
        .get("/ui/packets", clerk, packets::list)
        .get("/ui/packets/rows", clerk, packets::list_rows)
        .get("/ui/packets/{id}", clerk, packets::show)
        .get("/ui/packets/{id}/search", clerk, packets::search_fragment)
        .post("/ui/packets/{id}/attach", signoff, packets::attach)
        .get(
            "/ui/packets/{id}/pages/{index}/{kind}",
            clerk,
            media::packet_page,
        )
        .get("/ui/agents", clerk, agents::page)
        .post("/ui/agents/codes", admin, agents::new_code)
        .post("/ui/agents/{id}/revoke", admin, agents::revoke)
        .get("/ui/admin", admin, admin::page)
        .post("/ui/admin/schemes", admin, admin::put_scheme)
        .post("/ui/admin/settings", admin, admin::put_settings)
        .post("/ui/admin/users", admin, admin::add_user)
        .post("/ui/admin/users/{name}/disable", admin, admin::disable_user)
        .post("/ui/admin/users/{name}/enable", admin, admin::enable_user)
        .get("/ui/events", clerk, events::stream)
}

pub fn router(state: AppState) -> Router<AppState> {
    let tls = state.web.secure_cookies;
    routes()
        .router
        // Any other path outside the API is the desk's own "no such page".
        .fallback(not_found)
        // Outer to the routes' rules: the session (and so the principal) is known first.
        .route_layer(middleware::from_fn_with_state(state, session::guard))
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

async fn not_found(uri: axum::http::Uri) -> UiError {
    UiError::NotFound(format!("the page {}", uri.path()))
}

/// The desk's icon: a document with a tick, in the desk's blue.
async fn favicon() -> Response {
    const ICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>\
<rect x='2' y='1' width='12' height='14' rx='1.5' fill='#1d4ed8'/>\
<path d='M5 8.5l2 2 4-4.5' stroke='#fff' stroke-width='1.6' fill='none'/></svg>";
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
        .into_response()
}
