//! The composition of the HTTP side: the API, the sign-off desk and the
//! probes under one router, with the layers every request passes (body
//! limits and timeouts, early refusals, the anonymous budget, tracing).

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;

pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", crate::routes::api_router(&state))
        .merge(crate::web::router(state.clone()))
        .merge(crate::routes::probes())
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.config.body_idle_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.config.max_body_bytes,
            crate::early::refuse_early,
        ))
        .layer(axum::Extension(crate::preauth::PreAuth::new(
            state.config.preauth,
        )))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
