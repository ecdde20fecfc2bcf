//! The HTTP surface: `/api/v1/...`, health checks and the agent uplink.

mod admin;
mod documents;
mod extract;
mod health;
mod packets;
mod settings;
mod views;
mod webhooks;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/documents", post(documents::create).get(documents::find))
        .route("/documents/status:query", post(documents::status_query))
        .route("/documents/{id}", get(documents::get_one))
        .route("/documents/{id}/status", get(documents::status))
        .route("/documents/{id}/cover.png", get(documents::cover_png))
        .route("/documents/{id}/cover.pdf", get(documents::cover_pdf))
        .route(
            "/documents/{id}/images",
            get(documents::images).post(documents::upload_image),
        )
        .route("/documents/{id}/sign-off", post(documents::sign_off))
        .route("/documents/{id}/reject", post(documents::reject))
        .route("/documents/{id}/unsign", post(documents::unsign))
        .route("/documents/{id}/cancel", post(documents::cancel))
        .route("/documents/{id}/audit", get(documents::audit))
        .route(
            "/documents/{id}/webhook-deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/settings",
            get(settings::get_settings).put(settings::put_settings),
        )
        .route("/webhooks/{source_system}", put(webhooks::put_webhook))
        .route("/images/{id}", get(documents::image_bytes))
        .route("/packets", get(packets::list))
        .route("/packets/{id}/match", post(packets::match_packet))
        .route("/packets/{id}/pages/{index}", get(packets::page_bytes))
        .route("/schemes/{name}", put(admin::put_scheme))
        .route(
            "/sites/{site}/enrollment-codes",
            post(admin::enrollment_code),
        )
        .route("/agents/enroll", post(admin::enroll))
        .route("/agent/uplink", get(crate::uplink::upgrade))
        .fallback(health::api_not_found);
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
