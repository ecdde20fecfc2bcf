//! Archive exports through the API (admin scope): start one to the
//! server's configured destination, and follow its progress.

use super::extract::{ApiJson, ApiPath};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use imc_shared::api::{ErrorBody, ExportJob, ExportRequest};

#[utoipa::path(
    post, path = "/api/v1/archive/exports", tag = "admin",
    request_body = ExportRequest,
    responses(
        (status = 202, description = "Started in the background; follow it at /archive/exports/{id}", body = ExportJob),
        (status = 400, description = "A status, from or to that does not parse (names the field)", body = ErrorBody),
        (status = 409, description = "No archive_dir configured, the destination is not usable, or an export is still running", body = ErrorBody),
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ExportRequest>,
) -> ApiResult<(StatusCode, Json<ExportJob>)> {
    let job = crate::app::archive::start_export(&state, &caller.actor(), body).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[utoipa::path(
    get, path = "/api/v1/archive/exports/{id}", tag = "admin",
    params(("id" = u64, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The export: running, done or failed, with its counts", body = ExportJob),
        (status = 404, description = "No such export on this server (a replica knows only its own)", body = ErrorBody),
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<u64>,
) -> ApiResult<Json<ExportJob>> {
    state
        .archive_jobs
        .get(id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("export {id}")))
}
