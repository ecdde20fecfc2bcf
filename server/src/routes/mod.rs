//! The HTTP surface: `/api/v1/...`, health checks and the agent uplink.
//!
//! Every `/api/v1` route is registered through [`ApiRoutes`], which records
//! the method and path it serves; a test compares that record with the
//! OpenAPI document (`openapi.rs`), so a route added without its
//! `#[utoipa::path]` documentation fails the build's tests.

pub(crate) mod admin;
pub(crate) mod documents;
mod extract;
mod health;
mod metrics;
mod openapi;
mod packets;
mod settings;
mod views;
mod webhooks;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get};

/// The `/api/v1` router under construction, and the (method, path) pairs it serves.
struct ApiRoutes {
    router: Router<AppState>,
    served: Vec<(&'static str, &'static str)>,
}

impl ApiRoutes {
    fn new() -> ApiRoutes {
        ApiRoutes {
            router: Router::new(),
            served: Vec::new(),
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        route: MethodRouter<AppState>,
    ) -> ApiRoutes {
        // Two methods on one path merge into one method router.
        self.router = self.router.route(path, route);
        self.served.push((method, path));
        self
    }

    fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> ApiRoutes {
        self.add("GET", path, axum::routing::get(h))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> ApiRoutes {
        self.add("POST", path, axum::routing::post(h))
    }

    fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> ApiRoutes {
        self.add("PUT", path, axum::routing::put(h))
    }
}

/// Every route under `/api/v1`, relative to it.
fn api() -> ApiRoutes {
    ApiRoutes::new()
        .get("/openapi.json", openapi::serve)
        .post("/documents", documents::create)
        .get("/documents", documents::find)
        .post("/documents/status:query", documents::status_query)
        .get("/documents/{id}", documents::get_one)
        .get("/documents/{id}/status", documents::status)
        .get("/documents/{id}/cover.png", documents::cover_png)
        .get("/documents/{id}/cover.pdf", documents::cover_pdf)
        .get("/documents/{id}/images", documents::images)
        .post("/documents/{id}/images", documents::upload_image)
        .post("/documents/{id}/sign-off", documents::sign_off)
        .post("/documents/{id}/reject", documents::reject)
        .post("/documents/{id}/unsign", documents::unsign)
        .post("/documents/{id}/cancel", documents::cancel)
        .get("/documents/{id}/audit", documents::audit)
        .get("/documents/{id}/webhook-deliveries", webhooks::deliveries)
        .get("/settings", settings::get_settings)
        .put("/settings", settings::put_settings)
        .put("/webhooks/{source_system}", webhooks::put_webhook)
        .get("/images/{id}", documents::image_bytes)
        .get("/packets", packets::list)
        .post("/packets/{id}/match", packets::match_packet)
        .get("/packets/{id}/pages/{index}", packets::page_bytes)
        .put("/schemes/{name}", admin::put_scheme)
        .post("/sites/{site}/enrollment-codes", admin::enrollment_code)
        .post("/agents/enroll", admin::enroll)
        .get("/agents", admin::agents)
        .post("/agents/{id}/revoke", admin::revoke_agent)
        .get("/agent/uplink", crate::uplink::upgrade)
}

pub fn router(state: AppState) -> Router {
    let api = api().router.fallback(health::api_not_found);
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::web::router(state.clone()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
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
            .map(|(method, path)| (method.to_owned(), format!("/api/v1{path}")))
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
                let public = path == "/api/v1/openapi.json" || path == "/api/v1/agents/enroll";
                let security = op["security"].as_array().expect("security");
                assert_eq!(
                    security.iter().any(|s| s.get("bearerAuth").is_some()),
                    !public,
                    "{method} {path} security"
                );
            }
        }
    }
}
