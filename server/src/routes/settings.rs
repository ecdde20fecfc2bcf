//! Global settings, readable and changeable by admins only.

use super::extract::ApiJson;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use imc_shared::api::{Settings, SettingsPatch};

pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Settings>> {
    caller.require_admin()?;
    Ok(Json(state.store.settings().await?))
}

/// A partial update: fields left out keep their value; the merged result is
/// validated as a whole and stored in one transaction, with an audit row.
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> ApiResult<Json<Settings>> {
    caller.require_admin()?;
    Ok(Json(
        state.store.update_settings(patch, &caller.actor()).await?,
    ))
}
