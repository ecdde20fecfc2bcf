//! Liveness, readiness and the JSON 404 for unknown API paths.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers a read.
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, (StatusCode, String)> {
    match state.store.cover_patterns().await {
        Ok(_) => Ok("ready"),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}"))),
    }
}

pub async fn api_not_found() -> ApiError {
    ApiError::NotFound("API route".into())
}
