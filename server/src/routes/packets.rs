//! The exception queue: packets that matched no document, and matching by hand.

use super::documents::blob_response;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use imc_shared::api::{DocumentView, MatchPacket, PacketList, PacketState};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<PacketList>> {
    caller.require_api()?;
    let packet_state = query
        .state
        .map(|s| s.parse::<PacketState>())
        .transpose()
        .map_err(|e| {
            ApiError::field(
                "state",
                format!("state: {e}; use open, unmatched or matched"),
            )
        })?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let packets = state.store.packets(packet_state, limit).await?;
    Ok(Json(PacketList {
        packets: packets.into_iter().map(views::packet).collect(),
    }))
}

fn packet_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::NotFound(format!("packet {text}")))
}

pub async fn match_packet(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MatchPacket>,
) -> ApiResult<Json<DocumentView>> {
    caller.require_api()?;
    let doc = state
        .store
        .match_packet(
            packet_id(&id)?,
            body.document_id,
            body.mode,
            &caller.actor(),
        )
        .await?;
    Ok(Json(super::documents::full_view(&state, doc).await?))
}

pub async fn page_bytes(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, index)): ApiPath<(String, u32)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require_api()?;
    let (sha256, content_type) = state
        .store
        .packet_page_blob(packet_id(&id)?, index)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("page {index} of packet {id}")))?;
    blob_response(&state, &sha256, &content_type, &headers).await
}
