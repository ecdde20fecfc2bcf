//! What a clerk can do from the console. Local actions go through the
//! queue; finding a document and reprinting its cover ask the server with
//! the agent's own credentials, and fall back to the desk's cached copy of
//! its documents when the server is away.

use super::Console;
use crate::queue::CachedDocument;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// A JSON error the page shows as it is: `{"error": {"message"}}`.
pub fn failure(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": { "message": message } })),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
}

/// Closes every inbox's open packet now: the next page starts a new one.
pub async fn close_packet(State(console): State<Console>) -> Response {
    let inner = Arc::clone(&console.inner);
    let closed = tokio::task::spawn_blocking(move || {
        let mut closed = 0u32;
        for dir in &inner.config.watch {
            if inner.queue.seal_open_packet(dir)? {
                closed += 1;
            }
        }
        Ok::<_, crate::queue::QueueError>(closed)
    })
    .await;
    match closed {
        Ok(Ok(closed)) => {
            console.inner.work.notify_one();
            tracing::info!(closed, "packet closed from the console");
            Json(serde_json::json!({ "closed": closed })).into_response()
        }
        Ok(Err(e)) => internal(format!("closing the packet: {e}")),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct Retry {
    id: i64,
}

/// Puts a quarantined file back into its inbox, to be read again.
pub async fn retry_file(State(console): State<Console>, Json(retry): Json<Retry>) -> Response {
    let queue = Arc::clone(&console.inner.queue);
    let done = tokio::task::spawn_blocking(move || {
        queue.retry_quarantined(retry.id, |kept, inbox_path| {
            let inbox = inbox_path.parent().unwrap_or(inbox_path);
            crate::fsutil::move_into(kept, inbox)
        })
    })
    .await;
    match done {
        Ok(Ok(Some(path))) => {
            tracing::info!(path = %path.display(), "quarantined file retried from the console");
            Json(serde_json::json!({ "path": path.display().to_string() })).into_response()
        }
        Ok(Ok(None)) => failure(
            StatusCode::NOT_FOUND,
            &format!("no quarantined file {}", retry.id),
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct Rescan {
    /// The rejected document; `null` takes the choice back.
    id: Option<i64>,
    #[serde(default)]
    doc_no: String,
}

/// Binds the next packet without a cover to a rejected document; its
/// pages replace that document's once the server checks it is this site's.
pub async fn rescan(State(console): State<Console>, Json(rescan): Json<Rescan>) -> Response {
    let inner = Arc::clone(&console.inner);
    let chose = tokio::task::spawn_blocking(move || match rescan.id {
        Some(id) => inner
            .queue
            .choose_rescan(&inner.config.watch, id, rescan.doc_no.trim()),
        None => inner.queue.delete_meta(crate::queue::RESCAN_NEXT_KEY),
    })
    .await;
    match chose {
        Ok(Ok(())) => {
            console.inner.work.notify_one();
            Json(serde_json::json!({ "ok": true })).into_response()
        }
        Ok(Err(e)) => internal(format!("choosing the rescan: {e}")),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct Find {
    q: String,
}

/// Documents by number: the server's answer, or the desk's copy when it is away.
pub async fn find_documents(State(console): State<Console>, Query(find): Query<Find>) -> Response {
    let q = find.q.trim().to_owned();
    if q.is_empty() || q.len() > 200 {
        return failure(StatusCode::BAD_REQUEST, "type a document number");
    }
    let inner = &console.inner;
    let path = format!("/agent/documents?q={}", urlencode(&q));
    let asked = crate::desk_cache::get(&inner.client, &inner.config, &path).await;
    let from_server = match asked {
        Ok(response) => response
            .json::<imc_shared::api::DeskDocuments>()
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match from_server {
        Ok(list) => Json(serde_json::json!({ "documents": list.documents, "offline": false }))
            .into_response(),
        Err(e) => {
            tracing::debug!(error = %format!("{e:#}"), "document search answered from the desk's copy");
            let queue = Arc::clone(&inner.queue);
            let cached = tokio::task::spawn_blocking(move || queue.desk_documents()).await;
            match cached {
                Ok(Ok(all)) => {
                    let hits: Vec<CachedDocument> = all
                        .into_iter()
                        .filter(|d| d.doc_no == q || d.cover_code == q)
                        .collect();
                    Json(serde_json::json!({ "documents": hits, "offline": true })).into_response()
                }
                Ok(Err(e)) => internal(e),
                Err(e) => internal(e),
            }
        }
    }
}

/// The document's cover sheet as the server makes it, to print again.
pub async fn cover_pdf(State(console): State<Console>, Path(id): Path<i64>) -> Response {
    let inner = &console.inner;
    let path = format!("/agent/documents/{id}/cover.pdf");
    let response = match crate::desk_cache::get(&inner.client, &inner.config, &path).await {
        Ok(response) => response,
        Err(e) => {
            return match e.downcast_ref::<crate::desk_cache::ServerAnswered>() {
                Some(refused) => failure(
                    StatusCode::from_u16(refused.status).unwrap_or(StatusCode::BAD_GATEWAY),
                    &refused.message,
                ),
                None => failure(StatusCode::BAD_GATEWAY, &format!("{e:#}")),
            };
        }
    };
    match response.bytes().await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"cover-{id}.pdf\""),
                ),
            ],
            Body::from(bytes),
        )
            .into_response(),
        Err(e) => failure(
            StatusCode::BAD_GATEWAY,
            &format!("reading the cover of document {id} from the server: {e}"),
        ),
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
