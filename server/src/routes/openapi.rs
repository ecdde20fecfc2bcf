//! The API's OpenAPI 3 description, generated from the handlers'
//! `#[utoipa::path]` attributes and the wire types of `imc_shared::api`.
//!
//! Served without authentication at `GET /api/v1/openapi.json`. Operations
//! marked `security(())` are public; every other one gets the `bearerAuth`
//! requirement and its 401/403 answers from [`BearerAuth`], so the handlers
//! list only the statuses particular to them.

use super::views::Binary;
use super::{
    admin, archive, covers, decisions, documents, images, packets, scan_desk, settings, tokens,
    webhooks,
};
use axum::Json;
use imc_shared::api::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "IMC API",
        description = "Image Matching Center: documents from ERPs, cover sheets, captured \
                       images, status (single and bulk), sign-off decisions, the exception \
                       queue, webhooks and the audit trail. See docs/API.md for a walkthrough.",
    ),
    paths(
        serve,
        documents::create,
        documents::find,
        documents::status_query,
        documents::get_one,
        documents::status,
        covers::cover_png,
        covers::cover_pdf,
        images::images,
        images::upload_image,
        decisions::sign_off,
        decisions::reject,
        decisions::unsign,
        decisions::cancel,
        documents::audit,
        webhooks::deliveries,
        webhooks::put_webhook,
        settings::get_settings,
        settings::put_settings,
        images::image_bytes,
        packets::list,
        packets::match_packet,
        packets::page_bytes,
        admin::schemes,
        admin::get_scheme,
        admin::put_scheme,
        admin::delete_scheme,
        admin::enrollment_code,
        admin::enroll,
        admin::agents,
        admin::revoke_agent,
        crate::uplink::upgrade,
        scan_desk::documents,
        scan_desk::cover_pdf,
        tokens::list,
        tokens::create,
        tokens::rotate,
        tokens::revoke,
        archive::start,
        archive::get_one,
    ),
    components(schemas(ErrorBody, Binary)),
    modifiers(&BearerAuth),
    tags(
        (name = "documents", description = "Create documents, read them and their status"),
        (name = "images", description = "Cover sheets, the capture API and image bytes"),
        (name = "sign-off", description = "Sign-off decisions and withdrawal"),
        (name = "packets", description = "The exception queue and matching by hand"),
        (name = "admin", description = "Schemes, settings, webhooks, enrolment, API tokens (admin scope)"),
        (name = "agents", description = "Scan-desk agents"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearerAuth` scheme, and to every operation not marked public its
/// requirement and the 401/403 answers.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (IMC_BOOTSTRAP_TOKEN on a fresh data dir is an admin \
                         token); the uplink takes the agent token from enrolment.",
                    ))
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                // Rate limits apply to every API call, public ones included.
                operation
                    .responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| {
                        error_response(
                            "Too many calls from this address or with this token; see Retry-After",
                        )
                    });
                if operation.security.is_some() {
                    continue;
                }
                operation.security = Some(vec![SecurityRequirement::new(
                    "bearerAuth",
                    Vec::<String>::new(),
                )]);
                let answers = &mut operation.responses.responses;
                answers
                    .entry("401".to_owned())
                    .or_insert_with(|| error_response("Missing or unknown bearer token"));
                answers.entry("403".to_owned()).or_insert_with(|| {
                    error_response(
                        "The token lacks the scope this call needs, or it is an agent token",
                    )
                });
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")),
)]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
