//! Sign-off decisions and cancel through the API; the rules and telling
//! the desks are `app::decisions`, shared with the sign-off desk.

use super::documents::clean_reason;
use super::documents::{full_view, require};
use super::extract::{ApiJson, ApiPath};
use crate::app::decisions;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Decision;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use imc_shared::api::{DocumentView, ErrorBody, ReasonBody};
use serde::Deserialize;

async fn decide(
    state: &AppState,
    caller: &Caller,
    id: i64,
    decision: Decision,
) -> ApiResult<Json<DocumentView>> {
    require(state, caller, id).await?;
    let doc = decisions::decide(state, &caller.actor(), id, decision).await?;
    Ok(Json(full_view(state, doc).await?))
}

#[utoipa::path(
    post, path = "/api/v1/documents/{id}/sign-off", tag = "sign-off",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "Signed off: matched → ready", body = DocumentView),
        (status = 404, description = "No such document", body = ErrorBody),
        (status = 409, description = "Not matched; error.current_status names the status", body = ErrorBody),
    ),
)]
pub async fn sign_off(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DocumentView>> {
    decide(&state, &caller, id, Decision::SignOff).await
}

#[utoipa::path(
    post, path = "/api/v1/documents/{id}/reject", tag = "sign-off",
    params(("id" = i64, Path, description = "Document id")),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "Rejected: matched → rejected", body = DocumentView),
        (status = 400, description = "The reason is missing or empty", body = ErrorBody),
        (status = 404, description = "No such document", body = ErrorBody),
        (status = 409, description = "Not matched; error.current_status names the status", body = ErrorBody),
    ),
)]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> ApiResult<Json<DocumentView>> {
    let reason = decisions::reason(body)?;
    decide(&state, &caller, id, Decision::Reject { reason }).await
}

/// Lets the desks that scanned a document's packets know what became of them.
#[utoipa::path(
    post, path = "/api/v1/documents/{id}/unsign", tag = "sign-off",
    params(("id" = i64, Path, description = "Document id")),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "Sign-off revoked: ready → matched (match mode)", body = DocumentView),
        (status = 400, description = "The reason is missing or empty", body = ErrorBody),
        (status = 404, description = "No such document", body = ErrorBody),
        (status = 409, description = "Not a signed-off match-mode document; error.current_status names the status", body = ErrorBody),
    ),
)]
pub async fn unsign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> ApiResult<Json<DocumentView>> {
    decide(
        &state,
        &caller,
        id,
        Decision::Unsign {
            reason: decisions::reason(body)?,
        },
    )
    .await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Kept in the audit trail.
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/documents/{id}/cancel", tag = "sign-off",
    params(("id" = i64, Path, description = "Document id")),
    request_body(content = Option<CancelBody>, description = "Optional; an empty body cancels without a reason"),
    responses(
        (status = 200, description = "Cancelled; no more images are accepted", body = DocumentView),
        (status = 400, description = "The body is not a valid cancel body", body = ErrorBody),
        (status = 404, description = "No such document", body = ErrorBody),
        (status = 409, description = "Already cancelled", body = ErrorBody),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<Json<DocumentView>> {
    // The body is optional here: an empty one cancels without a reason.
    let body: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("cancel body: {e}")))?
    };
    let reason = clean_reason(body.reason);
    decide(&state, &caller, id, Decision::Cancel { reason }).await
}
