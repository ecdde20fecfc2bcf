//! The exception queue: packets whose cover named no document. Staff look at
//! the pages, find the document by doc_no or cover code, and attach by hand
//! through the same store call as `POST /api/v1/packets/{id}/match`.

use super::error::{UiError, UiResult};
use super::extract::DeskPath;
use super::layout::{self, Nav, csrf_field};
use super::session::Staff;
use crate::state::AppState;
use crate::store::{Document, Packet};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use imc_shared::api::PacketState;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

const LIST_LIMIT: u32 = 500;
const SEARCH_LIMIT: u32 = 20;

pub fn packet_id(text: &str) -> UiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| UiError::NotFound(format!("packet {text}")))
}

/// The unmatched packets the user may see (a clerk: their site's).
async fn unmatched(state: &AppState, staff: &Staff) -> UiResult<Vec<Packet>> {
    Ok(state
        .web
        .store
        .packets_at(PacketState::Unmatched, staff.scope().site(), LIST_LIMIT)
        .await?)
}

/// The packet, if the user may see it; "not found" otherwise.
async fn visible_packet(state: &AppState, staff: &Staff, id: &str) -> UiResult<Packet> {
    let packet = state
        .web
        .store
        .packet(packet_id(id)?)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("packet {id}")))?;
    super::scope::require_packet_site(staff, &packet.site, &format!("packet {id}"))?;
    Ok(packet)
}

pub async fn list(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let t = staff.lang.text();
    let packets = unmatched(&state, &staff).await?;
    let body = html! {
        main.packets {
            h1 { (t.unmatched_title) }
            (list_section(&staff, &packets))
        }
    };
    Ok(layout::page(
        &staff,
        Nav::Unmatched,
        t.nav_unmatched,
        true,
        body,
    ))
}

pub async fn list_rows(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    let packets = unmatched(&state, &staff).await?;
    Ok(list_section(&staff, &packets))
}

fn list_section(staff: &Staff, packets: &[Packet]) -> Markup {
    let t = staff.lang.text();
    html! {
        section #packets hx-get="/ui/packets/rows" hx-trigger="imc:packets from:body" hx-swap="outerHTML" {
            p.counts { strong #packet-count { (packets.len()) } " " (t.packets_waiting) }
            @if packets.is_empty() {
                p.empty { (t.unmatched_empty) }
            } @else {
                table.list {
                    thead { tr { th {} th { (t.cover_code) } th { (t.site) } th { (t.agent) } th.num { (t.pages) } th { (t.received) } th { (t.why_unmatched) } } }
                    tbody { @for p in packets {
                        tr data-packet-id=(p.id) {
                            td { @if let Some(first) = p.pages.first() {
                                img.mini loading="lazy" alt="" src={ "/ui/packets/" (p.id) "/pages/" (first.page_index) "/thumb" };
                            } }
                            td { a.open-packet href={ "/ui/packets/" (p.id) } { (p.cover_code.as_deref().unwrap_or(t.no_cover)) } }
                            td { (p.site) }
                            td { code { (p.agent_id.get(..8).unwrap_or(&p.agent_id)) } }
                            td.num { (p.pages.len()) }
                            td { (layout::when(&p.created_at)) }
                            td { (p.reason.as_deref().unwrap_or("")) }
                        }
                    } }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(id): DeskPath<String>,
    Query(query): Query<SearchQuery>,
) -> UiResult<Markup> {
    let t = staff.lang.text();
    let packet = visible_packet(&state, &staff, &id).await?;
    let q = query.q.unwrap_or_default();
    let found = search(&state, &staff, &q).await?;
    let body = html! {
        main.packet data-packet-id=(packet.id) {
            h1 { (t.packet) " " (packet.cover_code.as_deref().unwrap_or(t.no_cover)) }
            table.fields {
                tr { th { (t.site) } td { (packet.site) } }
                tr { th { (t.agent) } td { code { (packet.agent_id) } } }
                tr { th { (t.received) } td { (layout::when(&packet.created_at)) } }
                tr { th { (t.status) } td { (t.packet_state(packet.state.as_str())) } }
                @if let Some(document) = packet.document_id {
                    tr { th { (t.matched_to) } td { a #matched-document href={ "/ui/documents/" (document) } { "#" (document) } } }
                }
                @if let Some(reason) = &packet.reason { tr { th { (t.why_unmatched) } td { (reason) } } }
            }
            div.page-grid {
                @for page in &packet.pages {
                    a.page-card href={ "/ui/packets/" (packet.id) "/pages/" (page.page_index) "/view" } target="_blank" {
                        img loading="lazy" alt="" src={ "/ui/packets/" (packet.id) "/pages/" (page.page_index) "/thumb" };
                        span { (page.page_index + 1) @if page.blank { " · " (t.blank_page) } }
                    }
                }
            }
            @if packet.state == PacketState::Unmatched {
                section.attach {
                    h2 { (t.find_document) }
                    form #search-form method="get" action={ "/ui/packets/" (packet.id) }
                        hx-get={ "/ui/packets/" (packet.id) "/search" } hx-target="#search-results" hx-swap="outerHTML" hx-push-url="false" {
                        input #search-input name="q" value=(q) placeholder=(t.search_hint) autofocus;
                        button type="submit" { (t.search) }
                    }
                    (results(&staff, &packet, &q, &found))
                }
            }
        }
    };
    Ok(layout::page(&staff, Nav::Unmatched, t.packet, false, body))
}

pub async fn search_fragment(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(id): DeskPath<String>,
    Query(query): Query<SearchQuery>,
) -> UiResult<Markup> {
    let packet = visible_packet(&state, &staff, &id).await?;
    let q = query.q.unwrap_or_default();
    let found = search(&state, &staff, &q).await?;
    Ok(results(&staff, &packet, &q, &found))
}

async fn search(state: &AppState, staff: &Staff, q: &str) -> UiResult<Vec<Document>> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(Vec::new());
    }
    Ok(state
        .web
        .store
        .search_documents(q, SEARCH_LIMIT, staff.scope().site())
        .await?)
}

fn results(staff: &Staff, packet: &Packet, q: &str, found: &[Document]) -> Markup {
    let t = staff.lang.text();
    html! {
        div #search-results {
            @if !q.trim().is_empty() && found.is_empty() { p.empty { (t.no_results) } }
            @if !found.is_empty() {
                table.list {
                    thead { tr { th { (t.doc_no) } th { (t.cover_code) } th { (t.title) } th { (t.org) } th { (t.status) } th {} } }
                    tbody { @for d in found {
                        tr data-document-id=(d.id) {
                            td { a href={ "/ui/documents/" (d.id) } { (d.doc_no) } }
                            td { (d.cover_code) }
                            td { (d.title.as_deref().unwrap_or("")) }
                            td { (d.org) }
                            td { (layout::status_badge(t, d.status)) }
                            td { @if staff.user.role.may_decide() && takes_packet(d) {
                                form.inline method="post" action={ "/ui/packets/" (packet.id) "/attach" } {
                                    (csrf_field(staff))
                                    input type="hidden" name="document_id" value=(d.id);
                                    button.primary.attach type="submit" { (t.attach) }
                                }
                            } }
                        }
                    } }
                }
            }
        }
    }
}

/// Whether the workflow lets this document take a scanned packet now.
fn takes_packet(doc: &Document) -> bool {
    crate::workflow::on_images(doc.mode, doc.status, crate::workflow::Via::Packet(None)).is_some()
}

#[derive(Debug, Deserialize)]
pub struct AttachForm {
    document_id: i64,
}

pub async fn attach(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(id): DeskPath<String>,
    axum::Form(form): axum::Form<AttachForm>,
) -> UiResult<Response> {
    let doc = state
        .store
        .match_packet(packet_id(&id)?, form.document_id, None, &staff.user.actor())
        .await?;
    let about = serde_urlencoded::to_string([("ref", doc.doc_no.as_str())]).unwrap_or_default();
    Ok(Redirect::to(&format!("/ui/documents/{}?flash=attached&{about}", doc.id)).into_response())
}
