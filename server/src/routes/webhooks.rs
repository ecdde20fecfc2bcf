//! Webhook registration per source system, and the delivery log.

use super::extract::{ApiJson, ApiPath};
use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use imc_shared::api::{ErrorBody, PutWebhook, WebhookDeliveryList, WebhookView};
use imc_shared::text::check_identifier;

const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;
const MAX_URL: usize = 2048;
const MAX_SOURCE_SYSTEM: usize = 128;

/// A webhook target: an absolute http or https URL with a host, without
/// control characters. The URL parser silently drops tabs and line breaks,
/// so they are refused before it sees the text: what is stored is what was
/// checked, and nothing can split a request line when the URL is used.
fn webhook_url(given: &str) -> ApiResult<&str> {
    let url = given.trim();
    if url.is_empty() || url.len() > MAX_URL {
        return Err(ApiError::field(
            "url",
            format!("url must be 1-{MAX_URL} characters"),
        ));
    }
    check_identifier("url", url)?;
    let parsed = url::Url::parse(url)
        .map_err(|e| ApiError::field("url", format!("url {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::field(
            "url",
            format!("url must use http or https, not {:?}", parsed.scheme()),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::field("url", "url must name a host"));
    }
    Ok(url)
}

#[utoipa::path(
    put, path = "/api/v1/webhooks/{source_system}", tag = "admin",
    params(("source_system" = String, Path, description = "The ERP's source_system, as on its documents")),
    request_body = PutWebhook,
    responses(
        (status = 200, description = "Registered (or replaced); the secret is not shown again", body = WebhookView),
        (status = 400, description = "A url that is not an http(s) URL or holds control characters, a bad source_system, or a secret outside 16-256 bytes", body = ErrorBody),
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
    check_identifier("source_system", &source_system)?;
    if source_system.is_empty() || source_system.chars().count() > MAX_SOURCE_SYSTEM {
        return Err(ApiError::field(
            "source_system",
            format!("source_system must be 1-{MAX_SOURCE_SYSTEM} characters"),
        ));
    }
    let url = webhook_url(&body.url)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_field(given: &str) -> Option<String> {
        match webhook_url(given) {
            Err(ApiError::BadRequest { field, .. }) => field,
            _ => None,
        }
    }

    #[test]
    fn webhook_urls_are_absolute_http_without_controls() {
        for ok in [
            "https://erp.example.com/imc/hook",
            "http://10.0.0.7:8080/hook?x=1",
            "  https://erp.example.com/ ",
        ] {
            assert_eq!(webhook_url(ok).ok(), Some(ok.trim()), "{ok:?}");
        }
        for bad in [
            "",
            "erp.example.com/hook",
            "/hook",
            "ftp://erp.example.com/hook",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://erp.exa\nmple.com/hook",
            "https://erp.example.com/ho\r\nX-Injected: 1",
            "https://erp.example.com/h\tok",
            "https://erp.example.com/\u{0}",
            "https://erp.example.com/\u{202e}kooh",
            "http://",
            "https://[::1",
        ] {
            assert_eq!(refused_field(bad).as_deref(), Some("url"), "{bad:?}");
        }
        let long = format!("https://erp.example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(refused_field(&long).as_deref(), Some("url"));
    }
}
