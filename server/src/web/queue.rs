//! The sign-off queue: matched documents, oldest first, filtered by site,
//! organisation and document type, with counts; refreshed live.

use super::error::UiResult;
use super::layout::{self, Nav};
use super::session::Staff;
use super::store::{QueueFilter, QueuePage, Role};
use crate::state::AppState;
use axum::extract::{Query, State};
use maud::{Markup, html};
use serde::Deserialize;

pub const PAGE_SIZE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub doc_type: Option<String>,
    /// Text, not a number: this struct is flattened into forms, where
    /// serde sees every value as a string.
    #[serde(default)]
    pub page: Option<String>,
}

fn some(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl QueueQuery {
    fn page_no(&self) -> u32 {
        self.page
            .as_deref()
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .clamp(1, 1_000_000)
    }

    /// A clerk's queue is their own site's, whatever the query asks
    /// (`within`, enforced by the store); others choose any site.
    pub fn filter(&self, staff: &Staff) -> QueueFilter {
        let within = staff.scope().site();
        let site = match (&self.site, staff.user.role) {
            (_, Role::Clerk) => within.clone(),
            (site, _) => some(site),
        };
        QueueFilter {
            site,
            org: some(&self.org),
            doc_type: some(&self.doc_type),
            within,
        }
    }
}

/// The filter as a query string, carried to documents and back.
pub fn filter_query(f: &QueueFilter) -> String {
    let pairs: Vec<(&str, &str)> = [
        ("site", f.site.as_deref()),
        ("org", f.org.as_deref()),
        ("doc_type", f.doc_type.as_deref()),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.unwrap_or("")))
    .collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<QueueQuery>,
) -> UiResult<Markup> {
    let t = staff.lang.text();
    let filter = query.filter(&staff);
    let page_no = query.page_no();
    let data = state
        .web
        .store
        .queue(filter.clone(), (page_no - 1) * PAGE_SIZE, PAGE_SIZE)
        .await?;
    let select = |name: &str, label: &str, current: &Option<String>, options: &[(String, u64)]| {
        html! {
            label { (label)
                select name=(name) {
                    option value="" { (t.all) }
                    @for (value, count) in options {
                        option value=(value) selected[current.as_deref() == Some(value.as_str())] { (value) " (" (count) ")" }
                    }
                }
            }
        }
    };
    let body = html! {
        main.queue {
            h1 { (t.queue_title) }
            form.filters method="get" action="/ui/queue" {
                (select("site", t.site, &filter.site, &data.by_site))
                (select("org", t.org, &filter.org, &data.by_org))
                (select("doc_type", t.doc_type, &filter.doc_type, &data.by_doc_type))
                button type="submit" { (t.filter) }
            }
            p.hint { (t.live_hint) }
            (rows_section(&staff, &filter, page_no, &data))
        }
    };
    Ok(layout::page(&staff, Nav::Queue, t.nav_queue, true, body))
}

/// The part that live updates replace.
pub async fn rows(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<QueueQuery>,
) -> UiResult<Markup> {
    let filter = query.filter(&staff);
    let page_no = query.page_no();
    let data = state
        .web
        .store
        .queue(filter.clone(), (page_no - 1) * PAGE_SIZE, PAGE_SIZE)
        .await?;
    Ok(rows_section(&staff, &filter, page_no, &data))
}

fn rows_section(staff: &Staff, filter: &QueueFilter, page_no: u32, data: &QueuePage) -> Markup {
    let t = staff.lang.text();
    let q = filter_query(filter);
    let pages = data.filtered.div_ceil(u64::from(PAGE_SIZE)).max(1);
    html! {
        section #queue hx-get={ "/ui/queue/rows?" (q) "&page=" (page_no) } hx-trigger="imc:queue from:body" hx-swap="outerHTML" {
            p.counts {
                strong #queue-count { (data.filtered) } " " (t.shown) " · "
                span #queue-total { (data.total) } " " (t.matched_total)
            }
            @if data.rows.is_empty() {
                p.empty { (t.queue_empty) }
            } @else {
                table.list {
                    thead { tr {
                        th { (t.doc_no) } th { (t.title) } th { (t.org) } th { (t.doc_type) }
                        th { (t.site) } th.num { (t.amount) } th.num { (t.pages) } th { (t.waiting_since) }
                    } }
                    tbody {
                        @for row in &data.rows {
                            @let d = &row.document;
                            tr data-document-id=(d.id) {
                                td { a.open-doc href={ "/ui/documents/" (d.id) "?" (q) } { (d.doc_no) } }
                                td { (d.title.as_deref().unwrap_or("")) }
                                td { (d.org) }
                                td { (d.doc_type) }
                                td { (row.site.as_deref().unwrap_or("")) }
                                td.num { (d.amount.as_deref().unwrap_or("")) }
                                td.num { (d.image_count) }
                                td { (layout::when(&d.updated_at)) }
                            }
                        }
                    }
                }
                @if pages > 1 {
                    nav.pager {
                        @if page_no > 1 { a href={ "/ui/queue?" (q) "&page=" (page_no - 1) } { (t.previous) } }
                        span { (page_no) " / " (pages) }
                        @if u64::from(page_no) < pages { a href={ "/ui/queue?" (q) "&page=" (page_no + 1) } { (t.next) } }
                    }
                }
            }
        }
    }
}
