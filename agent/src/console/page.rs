//! The console's one page, its script and its style. The page carries the
//! CSRF token and whether a PIN is asked; everything else arrives as JSON.

use super::Console;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const HTML: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Paths the page needs before a PIN is entered.
pub const PUBLIC: [&str; 4] = ["/", "/login", "/console.js", "/console.css"];

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; frame-src 'self'; \
                      frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

pub async fn index(State(console): State<Console>) -> Response {
    let guard = &console.inner.guard;
    let html = HTML
        .replace("{{csrf}}", &guard.csrf)
        .replace("{{pin}}", if guard.pin_required() { "1" } else { "0" });
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}

pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLE,
    )
        .into_response()
}
