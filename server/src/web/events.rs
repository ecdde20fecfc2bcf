//! Live updates: server-sent events telling open desk pages what changed.
//!
//! Each committed write that touches documents, packets or agents is
//! announced by the store (`store::Change`); this endpoint forwards it as a
//! `change` event naming the document ids, and pages refetch what they show.
//! Only the desk's own pages may listen (session cookie, same origin), and
//! every stream ends when the server shuts down. A clerk's stream names only
//! their site's documents; the packet and agent flags carry no data, only
//! "refetch", and what a page refetches is scoped (`scope`).

use super::error::{UiError, UiResult};
use super::session::{Staff, same_origin};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub async fn stream(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    if !same_origin(&headers) {
        return Err(UiError::Forbidden(
            "event stream requested from another origin".into(),
        ));
    }
    let receiver = (state.web.subscribe)();
    let stop = state.web.stop.clone();
    let within = staff.scope().site();
    let events = futures_util::stream::unfold(
        (receiver, stop, state, within),
        |(mut receiver, stop, state, within)| async move {
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => return None,
                    received = receiver.recv() => match received {
                        Ok(change) => {
                            let documents = match visible(&state, &within, change.documents).await {
                                Ok(documents) => documents,
                                Err(e) => {
                                    tracing::error!(error = %e, "scoping a desk event; ending the stream");
                                    return None;
                                }
                            };
                            if documents.is_empty() && !change.many && !change.packets && !change.agents {
                                // Only other sites' documents changed: nothing to tell.
                                continue;
                            }
                            Event::default().event("change").data(
                                serde_json::json!({
                                    "documents": documents,
                                    "many": change.many,
                                    "packets": change.packets,
                                    "agents": change.agents,
                                })
                                .to_string(),
                            )
                        }
                        // Missed some: the page reloads what it shows.
                        Err(RecvError::Lagged(_)) => Event::default().event("change").data(r#"{"many":true,"packets":true,"agents":true,"documents":[]}"#),
                        Err(RecvError::Closed) => return None,
                    },
                };
                return Some((Ok(event), (receiver, stop, state, within)));
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The changed documents the listener may hear about.
async fn visible(
    state: &AppState,
    within: &Option<String>,
    documents: Vec<i64>,
) -> Result<Vec<i64>, crate::store::StoreError> {
    match within {
        None => Ok(documents),
        Some(_) if documents.is_empty() => Ok(documents),
        Some(site) => {
            state
                .web
                .store
                .documents_at_site(documents, site.clone())
                .await
        }
    }
}
