//! The HTTP surface: `/api/v1/...`, health checks and the agent uplink.
//!
//! Every `/api/v1` route, and every desk route under `/ui` (`web::router`),
//! is registered through [`PolicyRoutes`] together with who may call it (an
//! [`Access`] rule, enforced by `auth::authorize` before the handler runs).
//! The record of (method, path, access) is the policy table: a test compares
//! the API's part with the OpenAPI document (`openapi.rs`), and another
//! (`policy_tests.rs`) walks all of it against every kind of caller.

pub(crate) mod admin;
pub(crate) mod documents;
mod extract;
mod health;
mod metrics;
mod openapi;
mod packets;
#[cfg(test)]
mod policy_tests;
mod settings;
mod tokens;
mod views;
mod webhooks;

use crate::auth::{self, Access, Surface};
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get};

/// A router under construction (the API's or the desk's), and its part of
/// the policy table: the (method, path, access) of every route it serves.
pub(crate) struct PolicyRoutes {
    pub(crate) router: Router<AppState>,
    pub(crate) served: Vec<(&'static str, &'static str, Access)>,
    surface: Surface,
}

impl PolicyRoutes {
    pub(crate) fn new(surface: Surface) -> PolicyRoutes {
        PolicyRoutes {
            router: Router::new(),
            served: Vec::new(),
            surface,
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        access: Access,
        route: MethodRouter<AppState>,
    ) -> PolicyRoutes {
        let surface = self.surface;
        let mut route = route.route_layer(axum::middleware::from_fn(move |request, next| {
            auth::authorize(surface, access, request, next)
        }));
        // What anyone can reach before logging in is under a budget (the
        // desk's session guard admits its anonymous requests itself).
        if access == Access::Public && surface == Surface::Api {
            route = route.route_layer(axum::middleware::from_fn(crate::preauth::guard));
        }
        // Two methods on one path merge into one method router.
        self.router = self.router.route(path, route);
        self.served.push((method, path, access));
        self
    }

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> PolicyRoutes {
        self.add("GET", path, access, axum::routing::get(h))
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> PolicyRoutes {
        self.add("POST", path, access, axum::routing::post(h))
    }

    fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> PolicyRoutes {
        self.add("PUT", path, access, axum::routing::put(h))
    }
}

/// Every route under `/api/v1`, relative to it, and who may call it.
fn api() -> PolicyRoutes {
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
        .get(
            "/documents/{id}/cover.png",
            scope(Read),
            documents::cover_png,
        )
        .get(
            "/documents/{id}/cover.pdf",
            scope(Read),
            documents::cover_pdf,
        )
        .get("/documents/{id}/images", scope(Read), documents::images)
        .post(
            "/documents/{id}/images",
            scope(Write),
            documents::upload_image,
        )
        .post(
            "/documents/{id}/sign-off",
            scope(Decide),
            documents::sign_off,
        )
        .post("/documents/{id}/reject", scope(Decide), documents::reject)
        .post("/documents/{id}/unsign", scope(Decide), documents::unsign)
        .post("/documents/{id}/cancel", scope(Write), documents::cancel)
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
        .get("/images/{id}", scope(Read), documents::image_bytes)
        .get("/packets", scope(Packets), packets::list)
        .post("/packets/{id}/match", scope(Packets), packets::match_packet)
        .get(
            "/packets/{id}/pages/{index}",
            scope(Packets),
            packets::page_bytes,
        )
        .put("/schemes/{name}", scope(Admin), admin::put_scheme)
        .post(
            "/sites/{site}/enrollment-codes",
            scope(Admin),
            admin::enrollment_code,
        )
        .post("/agents/enroll", Access::Public, admin::enroll)
        .get("/agents", scope(Admin), admin::agents)
        .post("/agents/{id}/revoke", scope(Admin), admin::revoke_agent)
        .get("/agent/uplink", Access::Agent, crate::uplink::upgrade)
        .get("/tokens", scope(Admin), tokens::list)
        .post("/tokens", scope(Admin), tokens::create)
        .post("/tokens/{id}/rotate", scope(Admin), tokens::rotate)
        .post("/tokens/{id}/revoke", scope(Admin), tokens::revoke)
}

pub fn router(state: AppState) -> Router {
    let api = api()
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
        ));
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::web::router(state.clone()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve))
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
