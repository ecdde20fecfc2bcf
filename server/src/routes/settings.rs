//! Global settings, readable and changeable by admins only.

use super::extract::ApiJson;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use imc_shared::api::{ErrorBody, Settings, SettingsPatch};

#[utoipa::path(
    get, path = "/api/v1/settings", tag = "admin",
    responses((status = 200, description = "The global settings", body = Settings)),
)]
pub async fn get_settings(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Settings>> {
    Ok(Json(state.store.settings().await?))
}

/// A partial update: fields left out keep their value; the merged result is
/// validated as a whole and stored in one transaction, with an audit row.
#[utoipa::path(
    put, path = "/api/v1/settings", tag = "admin",
    request_body(content = SettingsPatch, description = "A partial update: absent fields keep their value"),
    responses(
        (status = 200, description = "The settings after the update", body = Settings),
        (status = 400, description = "A value is invalid (e.g. a pattern that is not a regular expression); nothing is changed", body = ErrorBody),
    ),
)]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> ApiResult<Json<Settings>> {
    Ok(Json(
        state.store.update_settings(patch, &caller.actor()).await?,
    ))
}
