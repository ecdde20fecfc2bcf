//! Document calls: create (cover push), read, status, covers, images, decisions.

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::views;
use crate::auth::Caller;
use crate::domain::MAX_TEXT_LEN;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{Created, Document, NewDocument, StoreError};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use imc_shared::api::{
    AuditList, CreateDocument, DocumentCreated, DocumentView, ErrorBody, StatusQuery,
    StatusQueryResult, StatusView,
};
use imc_shared::cover_qr::MAX_ATTACHMENT_COUNT;
use imc_shared::money::parse_amount;
use imc_shared::text::{check_identifier, clean_free_text, clean_multiline_text};
use imc_shared::{CoverCode, CoverPatterns};
use serde::Deserialize;

/// Most ids or doc_nos one bulk status call may ask for.
pub const MAX_BULK_STATUS: usize = 1000;
const MAX_KEY_LEN: usize = 128;
/// The most `metadata` may take as compact JSON: it is the ERP's reference
/// data for the document, stored with it and sent in every view and webhook.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

fn required(field: &str, value: &str) -> ApiResult<String> {
    let value = value.trim();
    check_identifier(field, value)?;
    if value.is_empty() {
        return Err(ApiError::field(field, format!("{field} must not be empty")));
    }
    if value.chars().count() > MAX_KEY_LEN {
        return Err(ApiError::field(
            field,
            format!("{field} is longer than {MAX_KEY_LEN} characters"),
        ));
    }
    Ok(value.to_owned())
}

pub(super) fn optional(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > MAX_TEXT_LEN => Err(ApiError::field(
            field,
            format!("{field} is longer than {MAX_TEXT_LEN} characters"),
        )),
        other => Ok(other),
    }
}

/// An optional identifier (the submitter): refused if it holds a control or
/// bidirectional formatting character.
fn optional_identifier(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    let value = optional(field, value)?;
    if let Some(v) = &value {
        check_identifier(field, v)?;
    }
    Ok(value)
}

/// Optional free text (the title): NFC and without control or bidirectional
/// formatting characters, then trimmed and bounded.
fn optional_free_text(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    optional(field, value.map(|v| clean_free_text(&v)))
}

/// A reason for a decision: NFC, line breaks kept, controls and bidi
/// formatting dropped; blank is none.
pub(crate) fn clean_reason(reason: Option<String>) -> Option<String> {
    reason
        .map(|r| clean_multiline_text(&r).trim().to_owned())
        .filter(|r| !r.is_empty())
}

fn metadata_ok(metadata: Option<serde_json::Value>) -> ApiResult<Option<serde_json::Value>> {
    match &metadata {
        None => Ok(None),
        Some(serde_json::Value::Object(_)) => {
            let size = serde_json::to_vec(&metadata)
                .map_err(|e| anyhow::anyhow!("measuring metadata: {e}"))?
                .len();
            if size > MAX_METADATA_BYTES {
                return Err(ApiError::field(
                    "metadata",
                    format!("metadata is {size} bytes as JSON, over {MAX_METADATA_BYTES}"),
                ));
            }
            Ok(metadata)
        }
        Some(_) => Err(ApiError::field(
            "metadata",
            "metadata must be a JSON object",
        )),
    }
}

async fn new_document(state: &AppState, body: CreateDocument) -> ApiResult<NewDocument> {
    let cover_code = match body.cover_code.map(|c| c.trim().to_owned()) {
        Some(code) => {
            check_identifier("cover_code", &code)?;
            let patterns = state.store.cover_patterns().await?;
            let patterns = CoverPatterns::new(&patterns).map_err(anyhow::Error::from)?;
            if !patterns.is_cover(&code) {
                return Err(ApiError::field(
                    "cover_code",
                    format!(
                        "cover code {code:?} matches none of the configured cover code patterns"
                    ),
                ));
            }
            code
        }
        None => CoverCode::issue(rand::random()).to_string(),
    };
    let amount = match body.amount {
        Some(amount) => Some(
            parse_amount(&amount.to_text())
                .map_err(|e| ApiError::field("amount", e.to_string()))?
                .to_owned(),
        ),
        None => None,
    };
    Ok(NewDocument {
        source_system: required("source_system", &body.source_system)?,
        doc_no: required("doc_no", &body.doc_no)?,
        doc_type: required("doc_type", &body.doc_type)?,
        org: required("org", &body.org)?,
        cover_code,
        title: optional_free_text("title", body.title)?,
        amount,
        submitter: optional_identifier("submitter", body.submitter)?,
        attachment_count: match body.attachment_count {
            Some(n) if n > MAX_ATTACHMENT_COUNT => {
                return Err(ApiError::field(
                    "attachment_count",
                    format!("attachment_count {n} is over {MAX_ATTACHMENT_COUNT}"),
                ));
            }
            other => other,
        },
        metadata: metadata_ok(body.metadata)?,
    })
}

#[utoipa::path(
    post, path = "/api/v1/documents", tag = "documents",
    request_body = CreateDocument,
    responses(
        (status = 201, description = "Created; print the cover sheet at cover_url", body = DocumentCreated),
        (status = 200, description = "A document with this (source_system, doc_no) exists: the same document", body = DocumentCreated),
        (status = 400, description = "A field is missing, empty, too long or of the wrong type; an ERP cover_code matches no configured pattern", body = ErrorBody),
        (status = 409, description = "The cover_code is already used by another document", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateDocument>,
) -> ApiResult<(StatusCode, Json<DocumentCreated>)> {
    caller.require_source(body.source_system.trim())?;
    if body.attachment_count.is_none() {
        require_declared_count(&state, body.org.trim(), body.doc_type.trim()).await?;
    }
    let erp_code = body.cover_code.is_some();
    // An issued code may collide with an existing one (45 random bits): draw again.
    let mut attempts = 0;
    let created = loop {
        let doc = new_document(&state, body.clone()).await?;
        match state.store.create_document(doc, &caller.actor()).await {
            Err(StoreError::Conflict(_)) if !erp_code && attempts < 5 => attempts += 1,
            other => break other?,
        }
    };
    let (status, doc) = match created {
        Created::New(doc) => (StatusCode::CREATED, doc),
        Created::Existing(doc) => (StatusCode::OK, doc),
    };
    // Paper that waited for this document attached on creation: tell its desk.
    if status == StatusCode::CREATED && doc.image_count > 0 {
        let message = format!("matched to document {} when it was created", doc.doc_no);
        crate::app::decisions::tell_desks(&state, doc.id, &doc.doc_no, "matched", message).await;
    }
    Ok((
        status,
        Json(DocumentCreated {
            id: doc.id,
            cover_url: views::cover_url(doc.id),
            doc_no: doc.doc_no,
            cover_code: doc.cover_code,
            mode: doc.mode,
            status: doc.status,
        }),
    ))
}

/// A scheme with `require_attachment_count` refuses a cover push that does
/// not say how many pages follow the cover.
async fn require_declared_count(state: &AppState, org: &str, doc_type: &str) -> ApiResult<()> {
    use crate::domain::scheme_rules::{SchemeRules, applicable};
    let schemes = state.store.schemes().await?;
    let Some(scheme) = applicable(&schemes, org, doc_type, |s| {
        (s.name.as_str(), s.org.as_deref(), s.doc_type.as_deref())
    }) else {
        return Ok(());
    };
    // Stored rules were checked when saved; rules saved before that are ignored.
    let rules = SchemeRules::parse(scheme.rules.as_ref()).unwrap_or_default();
    if rules.require_attachment_count {
        return Err(ApiError::field(
            "attachment_count",
            format!(
                "scheme {} requires the attachment count: give the number of pages after the cover",
                scheme.name
            ),
        ));
    }
    Ok(())
}

/// The document, if it exists and the caller may see its source system (a
/// document of another source system is "not found", so ids reveal nothing).
pub(super) async fn require(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Document> {
    state
        .store
        .document(id)
        .await?
        .filter(|doc| caller.sees_source(&doc.source_system))
        .ok_or_else(|| ApiError::NotFound(format!("document {id}")))
}

pub async fn full_view(state: &AppState, doc: Document) -> ApiResult<DocumentView> {
    let images = state.store.images(doc.id).await?;
    let conflicts = state.store.document_conflicts(doc.id).await?;
    let check = state.store.attachment_check(&doc).await?;
    Ok(views::document(doc, images, conflicts, check))
}

#[utoipa::path(
    get, path = "/api/v1/documents/{id}", tag = "documents",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document with its images and conflicts", body = DocumentView),
        (status = 404, description = "No such document", body = ErrorBody),
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<DocumentView>> {
    let doc = require(&state, &caller, id).await?;
    Ok(Json(full_view(&state, doc).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindQuery {
    /// The ERP's document number.
    #[serde(default)]
    doc_no: Option<String>,
    /// Or the cover code (影像编码) printed on its cover sheet.
    #[serde(default)]
    cover_code: Option<String>,
    /// Only the document of this source system.
    #[serde(default)]
    source_system: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DocumentList {
    documents: Vec<DocumentView>,
}

#[utoipa::path(
    get, path = "/api/v1/documents", tag = "documents",
    params(FindQuery),
    responses(
        (status = 200, description = "Documents with this doc_no (one per source system), or the document with this cover code", body = DocumentList),
        (status = 400, description = "Neither or both of doc_no and cover_code", body = ErrorBody),
    ),
)]
pub async fn find(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<FindQuery>,
) -> ApiResult<Json<DocumentList>> {
    let found = match (&query.doc_no, &query.cover_code) {
        (Some(doc_no), None) => state.store.documents_by_doc_no(doc_no).await?,
        (None, Some(code)) => {
            state
                .store
                .documents_by_cover_codes(std::slice::from_ref(code))
                .await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of doc_no or cover_code",
            ));
        }
    };
    let mut documents = Vec::new();
    for doc in found {
        if caller.sees_source(&doc.source_system)
            && query
                .source_system
                .as_ref()
                .is_none_or(|s| *s == doc.source_system)
        {
            documents.push(full_view(&state, doc).await?);
        }
    }
    Ok(Json(DocumentList { documents }))
}

#[utoipa::path(
    get, path = "/api/v1/documents/{id}/status", tag = "documents",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document's status (3.06)", body = StatusView),
        (status = 404, description = "No such document", body = ErrorBody),
    ),
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<StatusView>> {
    Ok(Json(views::status(&require(&state, &caller, id).await?)))
}

#[utoipa::path(
    post, path = "/api/v1/documents/status:query", tag = "documents",
    request_body(content = StatusQuery, description = "Exactly one of ids, doc_nos or cover_codes, at most 1000"),
    responses(
        (status = 200, description = "The status of each document found; unknown keys in not_found", body = StatusQueryResult),
        (status = 400, description = "Not exactly one of ids, doc_nos and cover_codes, or more than 1000", body = ErrorBody),
    ),
)]
pub async fn status_query(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(query): ApiJson<StatusQuery>,
) -> ApiResult<Json<StatusQueryResult>> {
    let (docs, asked): (Vec<Document>, Vec<String>) =
        match (query.ids, query.doc_nos, query.cover_codes) {
            (Some(ids), None, None) => {
                check_bulk("ids", ids.len())?;
                let asked = ids.iter().map(i64::to_string).collect();
                (state.store.documents_by_ids(&ids).await?, asked)
            }
            (None, Some(doc_nos), None) => {
                check_bulk("doc_nos", doc_nos.len())?;
                (state.store.documents_by_doc_nos(&doc_nos).await?, doc_nos)
            }
            (None, None, Some(codes)) => {
                check_bulk("cover_codes", codes.len())?;
                (state.store.documents_by_cover_codes(&codes).await?, codes)
            }
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one of ids, doc_nos or cover_codes",
                ));
            }
        };
    let docs: Vec<Document> = docs
        .into_iter()
        .filter(|d| caller.sees_source(&d.source_system))
        .collect();
    let found: std::collections::HashSet<String> = docs
        .iter()
        .flat_map(|d| [d.id.to_string(), d.doc_no.clone(), d.cover_code.clone()])
        .collect();
    let not_found = asked.into_iter().filter(|k| !found.contains(k)).collect();
    Ok(Json(StatusQueryResult {
        results: docs.iter().map(views::status).collect(),
        not_found,
    }))
}

fn check_bulk(field: &str, len: usize) -> ApiResult<()> {
    if len > MAX_BULK_STATUS {
        return Err(ApiError::field(
            field,
            format!("at most {MAX_BULK_STATUS} per call, got {len}"),
        ));
    }
    Ok(())
}

/// The audit trail of one document, oldest first.
#[utoipa::path(
    get, path = "/api/v1/documents/{id}/audit", tag = "documents",
    params(("id" = i64, Path, description = "Document id")),
    responses(
        (status = 200, description = "The document's audit trail, oldest first", body = AuditList),
        (status = 404, description = "No such document", body = ErrorBody),
    ),
)]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AuditList>> {
    require(&state, &caller, id).await?;
    let rows = state.store.document_audit(id).await?;
    Ok(Json(AuditList {
        document_id: id,
        entries: rows.into_iter().map(views::audit).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::decisions;
    use imc_shared::api::ReasonBody;

    fn field_of(e: ApiError) -> Option<String> {
        match e {
            ApiError::BadRequest { field, .. } => field,
            _ => None,
        }
    }

    #[test]
    fn metadata_must_be_a_bounded_object() {
        assert!(matches!(metadata_ok(None), Ok(None)));
        let small = serde_json::json!({"cost_centre": "CC-7", "lines": [1, 2, 3]});
        assert_eq!(metadata_ok(Some(small.clone())).ok().flatten(), Some(small));
        for bad in [
            serde_json::json!([1, 2]),
            serde_json::json!("text"),
            serde_json::json!(12),
            serde_json::json!(null),
            serde_json::json!({"blob": "x".repeat(MAX_METADATA_BYTES)}),
        ] {
            let field = metadata_ok(Some(bad.clone())).err().and_then(field_of);
            assert_eq!(field.as_deref(), Some("metadata"), "{bad:.40}");
        }
        // Right at the limit is still taken.
        let pad = MAX_METADATA_BYTES - r#"{"p":""}"#.len();
        let edge = serde_json::json!({"p": "x".repeat(pad)});
        assert!(metadata_ok(Some(edge)).is_ok());
    }

    #[test]
    fn identifiers_with_controls_or_bidi_are_refused_naming_the_field() {
        for (field, value) in [
            ("doc_no", "INV\u{202e}1"),
            ("org", "HQ\u{0}"),
            ("doc_type", "a\u{85}b"),
        ] {
            assert_eq!(
                required(field, value).err().and_then(field_of).as_deref(),
                Some(field)
            );
        }
        let submitter = optional_identifier("submitter", Some("zhang\u{2066}san".into()));
        assert_eq!(
            submitter.err().and_then(field_of).as_deref(),
            Some("submitter")
        );
        assert_eq!(required("doc_no", " INV-1 ").ok().as_deref(), Some("INV-1"));
    }

    #[test]
    fn titles_and_reasons_are_cleaned_not_refused() {
        let title = optional_free_text("title", Some(" Caf\u{65}\u{301}\u{202e} trip\n ".into()));
        assert_eq!(title.ok().flatten().as_deref(), Some("Caf\u{e9} trip"));
        assert_eq!(
            optional_free_text("title", Some("\u{200f}\u{0}".into()))
                .ok()
                .flatten(),
            None
        );
        let reason = decisions::reason(ReasonBody {
            reason: "wrong\r\namount\u{202e}".into(),
        });
        assert_eq!(reason.ok().as_deref(), Some("wrong\namount"));
        let blank = reason_of(ReasonBody {
            reason: "\u{202e}\u{7} ".into(),
        });
        assert_eq!(blank.as_deref(), Some("reason"));
        assert_eq!(clean_reason(Some("\u{2069}".into())), None);
    }

    fn reason_of(body: ReasonBody) -> Option<String> {
        decisions::reason(body).err().and_then(field_of)
    }
}
