//! The admin API for API tokens: create, list, rotate, revoke.
//!
//! A secret is shown once, in the answer that made it; only its SHA-256 is kept.

use super::extract::{ApiJson, ApiPath};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tokens;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use imc_shared::api::{CreateToken, ErrorBody, RotateToken, TokenSecret, TokenView};
use std::time::Duration;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenView>,
}

#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "admin",
    responses((status = 200, description = "Every API token, without secrets", body = TokenList)),
)]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<TokenList>> {
    let tokens = state.store.api_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(tokens::view).collect(),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "admin",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The new token; its secret is shown only here", body = TokenSecret),
        (status = 400, description = "Bad name, no scopes, or a bad source system", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenSecret>)> {
    let (token, secret) = tokens::create(state.store.as_ref(), body, &caller.actor())
        .await
        .map_err(|e| match e {
            tokens::TokenError::Invalid { field, message } => ApiError::field(field, message),
            tokens::TokenError::Store(e) => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(TokenSecret {
            token: tokens::view(token),
            secret,
        }),
    ))
}

#[utoipa::path(
    post, path = "/api/v1/tokens/{id}/rotate", tag = "admin",
    params(("id" = i64, Path, description = "Token id")),
    request_body(content = Option<RotateToken>, description = "Optional; the default overlap is 24 h"),
    responses(
        (status = 201, description = "The replacement token; the old secret works until the overlap ends", body = TokenSecret),
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "The token is revoked or expired", body = ErrorBody),
    ),
)]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<TokenSecret>)> {
    let body: RotateToken = if body.iter().all(u8::is_ascii_whitespace) {
        RotateToken { overlap_secs: None }
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("rotate body: {e}")))?
    };
    let overlap = body
        .overlap_secs
        .map_or(tokens::DEFAULT_OVERLAP, Duration::from_secs);
    if overlap > tokens::MAX_OVERLAP {
        return Err(ApiError::field(
            "overlap_secs",
            format!("at most {} seconds", tokens::MAX_OVERLAP.as_secs()),
        ));
    }
    let (token, secret) =
        tokens::rotate(state.store.as_ref(), id, overlap, &caller.actor()).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenSecret {
            token: tokens::view(token),
            secret,
        }),
    ))
}

#[utoipa::path(
    post, path = "/api/v1/tokens/{id}/revoke", tag = "admin",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked at once (revoking twice changes nothing)", body = TokenView),
        (status = 404, description = "No such token", body = ErrorBody),
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TokenView>> {
    let token = state.store.revoke_api_token(id, &caller.actor()).await?;
    Ok(Json(tokens::view(token)))
}
