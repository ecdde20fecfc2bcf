//! The exception queue: packets that matched no document, and matching by hand.

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::images::blob_response;
use super::views;
use super::views::Binary;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use imc_shared::api::{DocumentView, ErrorBody, MatchPacket, PacketList, PacketState};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only packets in this state, e.g. `unmatched` for the exception queue.
    #[serde(default)]
    #[param(value_type = Option<PacketState>)]
    state: Option<String>,
    /// At most this many (1-1000, default 100).
    #[serde(default)]
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/packets", tag = "packets",
    params(ListQuery),
    responses(
        (status = 200, description = "Packets, newest first", body = PacketList),
        (status = 400, description = "Unknown state", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<PacketList>> {
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

#[utoipa::path(
    post, path = "/api/v1/packets/{id}/match", tag = "packets",
    params(("id" = String, Path, description = "Packet id (UUID)")),
    request_body = MatchPacket,
    responses(
        (status = 200, description = "The packet's pages are attached; the document is matched", body = DocumentView),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 404, description = "No such packet or document", body = ErrorBody),
        (status = 409, description = "The packet is already matched, or the document cannot take pages in its status", body = ErrorBody),
    ),
)]
pub async fn match_packet(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MatchPacket>,
) -> ApiResult<Json<DocumentView>> {
    // A token limited to some source systems matches paper to their documents only.
    state
        .store
        .document(body.document_id)
        .await?
        .filter(|doc| caller.sees_source(&doc.source_system))
        .ok_or_else(|| ApiError::NotFound(format!("document {}", body.document_id)))?;
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

#[utoipa::path(
    get, path = "/api/v1/packets/{id}/pages/{index}", tag = "packets",
    params(
        ("id" = String, Path, description = "Packet id (UUID)"),
        ("index" = u32, Path, description = "Page index within the packet, from 0"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a cached copy"),
    ),
    responses(
        (status = 200, description = "The page's bytes, in their content type", body = Binary, content_type = "application/octet-stream"),
        (status = 304, description = "Not modified"),
        (status = 404, description = "No such packet or page", body = ErrorBody),
        (status = 410, description = "Retention purged the bytes: `error.purged` says when and why", body = ErrorBody),
    ),
)]
pub async fn page_bytes(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath((id, index)): ApiPath<(String, u32)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let page = state
        .store
        .packet_page_blob(packet_id(&id)?, index)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("page {index} of packet {id}")))?;
    if let Some(purged) = page.purged {
        return Err(ApiError::Gone {
            what: format!("page {index} of packet {id}"),
            purged,
        });
    }
    blob_response(&state, &page.sha256, &page.content_type, &headers).await
}
