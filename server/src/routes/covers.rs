//! Cover sheets of a document, as PNG or PDF (the desk reads them back).

use super::documents::require;
use super::extract::ApiPath;
use super::views::Binary;
use crate::auth::Caller;
use crate::cover::CoverFields;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Document;
use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use imc_shared::api::ErrorBody;

#[derive(Clone, Copy)]
pub(super) enum CoverFormat {
    Png,
    Pdf,
}

impl CoverFormat {
    fn content_type(self) -> &'static str {
        match self {
            CoverFormat::Png => "image/png",
            CoverFormat::Pdf => "application/pdf",
        }
    }
}

/// Draws a document's cover sheet off the async threads and answers with it.
async fn cover_response(
    state: &AppState,
    caller: &Caller,
    id: i64,
    format: CoverFormat,
) -> ApiResult<Response> {
    let doc = require(state, caller, id).await?;
    document_cover(state, doc, format).await
}

/// The cover sheet of `doc` as a response, for a caller already allowed to see it.
pub(super) async fn document_cover(
    state: &AppState,
    doc: Document,
    format: CoverFormat,
) -> ApiResult<Response> {
    let bytes = render_cover(state, doc, format).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], bytes).into_response())
}

async fn render_cover(state: &AppState, doc: Document, format: CoverFormat) -> ApiResult<Vec<u8>> {
    let id = doc.id;
    let covers = state.covers.clone();
    let qr_text = state
        .cover_keys
        .current(&*state.store)
        .await
        .with_context(|| format!("signing the cover of document {id}"))?
        .qr_text(&doc.cover_code, doc.attachment_count, chrono::Utc::now());
    tokio::task::spawn_blocking(move || {
        let fields = CoverFields {
            qr_text: &qr_text,
            cover_code: &doc.cover_code,
            source_system: &doc.source_system,
            doc_no: &doc.doc_no,
            doc_type: &doc.doc_type,
            org: &doc.org,
            title: doc.title.as_deref(),
            amount: doc.amount.as_deref(),
            submitter: doc.submitter.as_deref(),
            attachment_count: doc.attachment_count,
            created_at: &doc.created_at,
        };
        match format {
            CoverFormat::Png => covers.render_png(&fields),
            CoverFormat::Pdf => covers.render_pdf(&fields),
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("cover rendering task for document {id}: {e}"))?
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("cover sheet of document {id}: {e}")))
}

#[utoipa::path(
    get, path = "/api/v1/documents/{id}/cover.png", tag = "images",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "The cover sheet, A4 at 300 dpi", body = Binary, content_type = "image/png"),
        (status = 404, description = "No such document", body = ErrorBody),
    ),
)]
pub async fn cover_png(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    cover_response(&state, &caller, id, CoverFormat::Png).await
}

#[utoipa::path(
    get, path = "/api/v1/documents/{id}/cover.pdf", tag = "images",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "The cover sheet as a one-page A4 PDF", body = Binary, content_type = "application/pdf"),
        (status = 404, description = "No such document", body = ErrorBody),
    ),
)]
pub async fn cover_pdf(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    cover_response(&state, &caller, id, CoverFormat::Pdf).await
}
