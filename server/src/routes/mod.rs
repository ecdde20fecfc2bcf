//! The HTTP surface: `/api/v1/...`, health checks and the agent uplink.
//!
//! Every `/api/v1` route is registered through `policy::PolicyRoutes`
//! together with who may call it, as the desk's routes are (`web::routes`).
//! A test compares the API's part of the policy table with the OpenAPI
//! document (`openapi.rs`), and another (`policy_tests.rs`, beside `http.rs`) walks all of it,
//! the desk's too, against every kind of caller.

pub(crate) mod admin;
mod archive;
mod covers;
mod decisions;
pub(crate) mod documents;
mod extract;
mod health;
mod images;
mod metrics;
mod openapi;
mod packets;
mod scan_desk;
mod settings;
mod tokens;
mod views;
mod webhooks;

use crate::auth::{self, Access, Surface};
use crate::policy::PolicyRoutes;
use crate::state::AppState;
use axum::Router;
use axum::routing::get;

/// Every route under `/api/v1`, relative to it, and who may call it.
pub(crate) fn api() -> PolicyRoutes {
    use imc_shared::api::TokenScope::{Admin, Decide, Packets, Read, Status, Webhooks, Write};
    let scope = Access::Scope;
    PolicyRoutes::new(Surface::Api)
        .get("/openapi.json", Access::Public, openapi::serve)
        .post("/documents", scope(Write), documents::create)
        .get("/documents", scope(Read), documents::find)
        .post(
            "/documents/status:query",
            scope(Status),
            documents::status_query,
        )
        .get("/documents/{id}", scope(Read), documents::get_one)
        .get("/documents/{id}/status", scope(Status), documents::status)
        .get("/documents/{id}/cover.png", scope(Read), covers::cover_png)
        .get("/documents/{id}/cover.pdf", scope(Read), covers::cover_pdf)
        .get("/documents/{id}/images", scope(Read), images::images)
        .post("/documents/{id}/images", scope(Write), images::upload_image)
        .post(
            "/documents/{id}/sign-off",
            scope(Decide),
            decisions::sign_off,
        )
        .post("/documents/{id}/reject", scope(Decide), decisions::reject)
        .post("/documents/{id}/unsign", scope(Decide), decisions::unsign)
        .post("/documents/{id}/cancel", scope(Write), decisions::cancel)
        .get("/documents/{id}/audit", scope(Read), documents::audit)
        .get(
            "/documents/{id}/webhook-deliveries",
            scope(Read),
            webhooks::deliveries,
        )
        .get("/settings", scope(Admin), settings::get_settings)
        .put("/settings", scope(Admin), settings::put_settings)
        .put(
            "/webhooks/{source_system}",
            scope(Webhooks),
            webhooks::put_webhook,
        )
        .get("/images/{id}", scope(Read), images::image_bytes)
        .get("/packets", scope(Packets), packets::list)
        .post("/packets/{id}/match", scope(Packets), packets::match_packet)
        .get(
            "/packets/{id}/pages/{index}",
            scope(Packets),
            packets::page_bytes,
        )
        .get("/schemes", scope(Admin), admin::schemes)
        .get("/schemes/{name}", scope(Admin), admin::get_scheme)
        .put("/schemes/{name}", scope(Admin), admin::put_scheme)
        .delete("/schemes/{name}", scope(Admin), admin::delete_scheme)
        .post(
            "/sites/{site}/enrollment-codes",
            scope(Admin),
            admin::enrollment_code,
        )
        .post("/agents/enroll", Access::Public, admin::enroll)
        .get("/agents", scope(Admin), admin::agents)
        .post("/agents/{id}/revoke", scope(Admin), admin::revoke_agent)
        .get("/agent/uplink", Access::Agent, crate::uplink::upgrade)
        .get("/agent/documents", Access::Agent, scan_desk::documents)
        .get(
            "/agent/documents/{id}/cover.pdf",
            Access::Agent,
            scan_desk::cover_pdf,
        )
        .get("/tokens", scope(Admin), tokens::list)
        .post("/tokens", scope(Admin), tokens::create)
        .post("/tokens/{id}/rotate", scope(Admin), tokens::rotate)
        .post("/tokens/{id}/revoke", scope(Admin), tokens::revoke)
        .post("/archive/exports", scope(Admin), archive::start)
        .get("/archive/exports/{id}", scope(Admin), archive::get_one)
}

/// The API under `/api/v1` (relative to it): authenticated, rate-limited,
/// every route through the policy table.
pub fn api_router(state: &AppState) -> Router<AppState> {
    api()
        .router
        .fallback(health::api_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Outermost: over-limit callers are answered before any lookup.
        .layer(axum::middleware::from_fn_with_state(
            crate::ratelimit::Limiter::new(state.config.rate_limits),
            crate::ratelimit::limit,
        ))
}

/// The unauthenticated probes: health, readiness and metrics.
pub fn probes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use utoipa::OpenApi;

    /// Every route the router serves is in the OpenAPI document with the same
    /// method, and the document describes no route the router does not serve.
    #[test]
    fn openapi_documents_every_route() {
        let served: BTreeSet<(String, String)> = api()
            .served
            .into_iter()
            .map(|(method, path, _)| (method.to_owned(), format!("/api/v1{path}")))
            .collect();
        let doc = serde_json::to_value(openapi::ApiDoc::openapi()).expect("document as JSON");
        let paths = doc["paths"].as_object().expect("paths object");
        let mut documented = BTreeSet::new();
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes without #[utoipa::path] in openapi.rs: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented routes the router does not serve: {unserved:?}"
        );
    }

    /// Each operation names its responses, and every 4xx one carries the error body.
    #[test]
    fn operations_document_errors_and_security() {
        let doc = serde_json::to_value(openapi::ApiDoc::openapi()).expect("document as JSON");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|s| s.starts_with('2') || s == "101"),
                    "{method} {path} documents no success response"
                );
                for (status, response) in responses {
                    if status.starts_with('4') {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
                let public = api().served.iter().any(|(m, p, access)| {
                    m.eq_ignore_ascii_case(method)
                        && format!("/api/v1{p}") == *path
                        && *access == Access::Public
                });
                let security = op["security"].as_array().expect("security");
                assert_eq!(
                    security.iter().any(|s| s.get("bearerAuth").is_some()),
                    !public,
                    "{method} {path} security"
                );
            }
        }
    }

    /// The documented limit of `attachment_count` is the one the API enforces.
    #[test]
    fn the_attachment_count_limit_is_documented_as_enforced() {
        let doc = serde_json::to_value(openapi::ApiDoc::openapi()).expect("document as JSON");
        let field =
            &doc["components"]["schemas"]["CreateDocument"]["properties"]["attachment_count"];
        assert_eq!(
            field["maximum"],
            imc_shared::cover_qr::MAX_ATTACHMENT_COUNT,
            "{field}"
        );
        assert_eq!(
            doc["components"]["schemas"]["DocumentView"]["properties"]["attachment_check"]["oneOf"]
                [1]["$ref"],
            "#/components/schemas/AttachmentCheck"
        );
    }
}
