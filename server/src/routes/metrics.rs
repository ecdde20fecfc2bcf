//! `GET /metrics`: the Prometheus exposition, optionally behind a bearer token.

use crate::auth::hash_secret;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub async fn serve(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer_token);
        // Compared as hashes, so the time taken says nothing about the token.
        if given.map(|t| hash_secret(t.trim())) != Some(hash_secret(expected)) {
            return (StatusCode::UNAUTHORIZED, "metrics token required\n").into_response();
        }
    }
    match crate::metrics::render(state.store.as_ref()).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metrics unavailable: {e:#}\n"),
        )
            .into_response(),
    }
}
