//! Webhook registration per source system, and the delivery log.

use super::extract::{ApiJson, ApiPath};
use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use imc_shared::api::{ErrorBody, PutWebhook, WebhookDeliveryList, WebhookView};

const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;
const MAX_URL: usize = 2048;

#[utoipa::path(
    put, path = "/api/v1/webhooks/{source_system}", tag = "admin",
    params(("source_system" = String, Path, description = "The ERP's source_system, as on its documents")),
    request_body = PutWebhook,
    responses(
        (status = 200, description = "Registered (or replaced); the secret is not shown again", body = WebhookView),
        (status = 400, description = "Bad url or a secret outside 16-256 bytes", body = ErrorBody),
    ),
)]
pub async fn put_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(source_system): ApiPath<String>,
    ApiJson(body): ApiJson<PutWebhook>,
) -> ApiResult<Json<WebhookView>> {
    let source_system = source_system.trim().to_owned();
    caller.require_source(&source_system)?;
    if source_system.is_empty() || source_system.chars().count() > 128 {
        return Err(ApiError::field(
            "source_system",
            "source_system must be 1-128 characters",
        ));
    }
    let url = body.url.trim();
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ApiError::field("url", format!("url {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || url.len() > MAX_URL {
        return Err(ApiError::field(
            "url",
            format!("url must be an http or https URL of at most {MAX_URL} characters"),
        ));
    }
    if !(MIN_SECRET..=MAX_SECRET).contains(&body.secret.len()) {
        return Err(ApiError::field(
            "secret",
            format!("secret must be {MIN_SECRET}-{MAX_SECRET} bytes"),
        ));
    }
    let sealed = state.secrets.seal(&body.secret)?;
    let target = state
        .store
        .put_webhook(&source_system, url, &sealed, &caller.actor())
        .await?;
    Ok(Json(WebhookView {
        source_system: target.source_system,
        url: target.url,
        updated_at: target.updated_at,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/documents/{id}/webhook-deliveries", tag = "documents",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "Every delivery attempt of the document's events", body = WebhookDeliveryList),
        (status = 404, description = "No such document", body = ErrorBody),
    ),
)]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<WebhookDeliveryList>> {
    state
        .store
        .document(id)
        .await?
        .filter(|doc| caller.sees_source(&doc.source_system))
        .ok_or_else(|| ApiError::NotFound(format!("document {id}")))?;
    let deliveries = state.store.webhook_deliveries(id).await?;
    Ok(Json(WebhookDeliveryList {
        document_id: id,
        deliveries: deliveries.into_iter().map(views::delivery).collect(),
    }))
}
