//! What an agent asks for its desk's console, with its own credentials:
//! the documents its clerk may be scanning, and their cover sheets to
//! reprint. An agent sees only what its site may see
//! ([`crate::app::desks::visible`]); anything else is "not found".

use super::covers::{CoverFormat, document_cover};
use super::extract::{ApiPath, ApiQuery};
use super::views::Binary;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{Agent, Document};
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use imc_shared::api::{DeskDocument, DeskDocuments, ErrorBody};
use serde::Deserialize;

/// Documents a desk caches for naming covers while the server is away.
const MAX_DESK_DOCUMENTS: u32 = 5000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeskQuery {
    /// Only the documents with this number (for a reprint).
    #[serde(default)]
    q: Option<String>,
}

fn agent_of(caller: &Caller) -> ApiResult<&Agent> {
    match caller {
        Caller::Agent(agent) => Ok(agent),
        Caller::Token(_) => Err(ApiError::Forbidden("only a desk's agent may ask".into())),
    }
}

async fn visible(state: &AppState, doc: &Document, site: &str) -> ApiResult<bool> {
    Ok(crate::app::desks::visible(state, doc, site).await?)
}

fn desk_view(doc: Document) -> DeskDocument {
    DeskDocument {
        id: doc.id,
        doc_no: doc.doc_no,
        cover_code: doc.cover_code,
        doc_type: doc.doc_type,
        org: doc.org,
        title: doc.title,
        amount: doc.amount,
        submitter: doc.submitter,
        attachment_count: doc.attachment_count,
        status: doc.status,
        reject_reason: doc.reject_reason,
    }
}

#[utoipa::path(
    get, path = "/api/v1/agent/documents", tag = "agents",
    params(DeskQuery),
    responses(
        (status = 200, description = "Documents awaiting paper, and those rejected after this site's scan \
                                      (newest first); with `q`, the documents of that number \
                                      this site may see", body = DeskDocuments),
    ),
)]
pub async fn documents(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DeskQuery>,
) -> ApiResult<Json<DeskDocuments>> {
    let agent = agent_of(&caller)?;
    let found = match query.q.as_deref().map(str::trim) {
        Some("") => return Err(ApiError::field("q", "give a document number")),
        Some(text) => {
            let hits = state.store.documents_by_doc_no(text).await?;
            let mut seen = Vec::new();
            for doc in hits {
                if visible(&state, &doc, &agent.site).await? {
                    seen.push(doc);
                }
            }
            seen
        }
        None => {
            state
                .store
                .desk_documents(&agent.site, MAX_DESK_DOCUMENTS + 1)
                .await?
        }
    };
    let truncated = found.len() > MAX_DESK_DOCUMENTS as usize;
    Ok(Json(DeskDocuments {
        documents: found
            .into_iter()
            .take(MAX_DESK_DOCUMENTS as usize)
            .map(desk_view)
            .collect(),
        truncated,
    }))
}

#[utoipa::path(
    get, path = "/api/v1/agent/documents/{id}/cover.pdf", tag = "agents",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document's cover sheet, the same PDF as `/documents/{id}/cover.pdf`",
         body = Binary, content_type = "application/pdf"),
        (status = 404, description = "No such document at this desk's site", body = ErrorBody),
    ),
)]
pub async fn cover_pdf(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let agent = agent_of(&caller)?;
    let not_found = || ApiError::NotFound(format!("document {id}"));
    let doc = state.store.document(id).await?.ok_or_else(not_found)?;
    if !visible(&state, &doc, &agent.site).await? {
        return Err(not_found());
    }
    document_cover(&state, doc, CoverFormat::Pdf).await
}
