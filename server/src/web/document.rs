//! One document: its fields, a page viewer, barcodes and VAT invoices per
//! page, the duplicate-invoice flag, the audit trail, and the decisions.
//!
//! Decisions call the same function as the API (`app::decisions::decide`),
//! and the buttons offered are the ones `workflow::after_decision` allows, so
//! the desk has no rules of its own. A decision that lost a race (someone
//! else decided first) comes back as the workflow's 409 and is shown as such.

use super::error::{UiError, UiResult};
use super::extract::DeskPath;
use super::i18n::Text;
use super::layout::{self, Nav, csrf_field};
use super::queue::{QueueQuery, filter_query};
use super::session::Staff;
use super::store::QueueFilter;
use crate::app::decisions::{self, reason as checked_reason};
use crate::domain::receipt::{RECEIVE_ACTION, parse_receipt};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{AuditRow, Decision, Document, Image};
use crate::workflow::after_decision;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use imc_shared::api::{AttachmentCheck, AttachmentVerdict, ReasonBody};
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct DocQuery {
    #[serde(flatten)]
    filter: QueueQuery,
    /// What the previous step did, shown once: signed_off, rejected, revoked, attached.
    #[serde(default)]
    flash: Option<String>,
    /// The document the flash is about.
    #[serde(default, rename = "ref")]
    about: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(id): DeskPath<i64>,
    Query(query): Query<DocQuery>,
) -> UiResult<Response> {
    let t = staff.lang.text();
    let flash = query.flash.as_deref().map(|kind| {
        let what = match kind {
            "signed_off" => t.signed_off_flash,
            "rejected" => t.rejected_flash,
            "revoked" => t.revoked_flash,
            "attached" => t.attached_flash,
            _ => "",
        };
        format!("{what} {}", query.about.as_deref().unwrap_or(""))
            .trim()
            .to_owned()
    });
    let filter = query.filter.filter(&staff);
    render(&state, &staff, id, &filter, flash, StatusCode::OK).await
}

async fn render(
    state: &AppState,
    staff: &Staff,
    id: i64,
    filter: &QueueFilter,
    flash: Option<String>,
    status: StatusCode,
) -> UiResult<Response> {
    let t = staff.lang.text();
    super::scope::require_document(state, staff, id).await?;
    let doc = state
        .store
        .document(id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("document {id}")))?;
    let images = state.store.images(id).await?;
    let conflicts = state.store.document_conflicts(id).await?;
    let check = state.store.attachment_check(&doc).await?;
    let audit = state.store.document_audit(id).await?;
    // The history names scan desks by name, not by id.
    let agent_names: std::collections::HashMap<String, String> =
        if audit.iter().any(|r| r.actor.starts_with("agent:")) {
            state
                .store
                .agents()
                .await?
                .into_iter()
                .map(|a| (a.id, a.name))
                .collect()
        } else {
            Default::default()
        };
    let next = state.web.store.next_in_queue(filter.clone(), id).await?;
    let q = filter_query(filter);
    let body = html! {
        main.document data-document-id=(doc.id) {
            div.doc-head {
                h1 { (doc.doc_no) " " (layout::status_badge(t, doc.status)) }
                div.doc-nav {
                    a #queue-link href={ "/ui/queue?" (q) } { (t.back_to_queue) " (q)" }
                    @if let Some(next) = next {
                        a #next-doc href={ "/ui/documents/" (next) "?" (q) } { (t.next_document) " (n)" }
                    }
                }
            }
            @if status == StatusCode::CONFLICT {
                p.flash.error #decision-conflict role="alert" { (flash.as_deref().unwrap_or("")) }
            } @else {
                (layout::flash(flash.as_deref()))
            }
            @if !conflicts.is_empty() {
                div.flash.warning #duplicate-invoice role="alert" {
                    strong { (t.duplicate_invoice) }
                    ul { @for c in &conflicts {
                        li { (t.vat_code) " " (c.invoice_code) " · " (t.vat_number) " " (c.invoice_number) " — "
                             (t.also_on) " " a href={ "/ui/documents/" (c.other_document_id) } { "#" (c.other_document_id) } }
                    } }
                }
            }
            div.doc-body {
                (viewer(staff, &doc.doc_no, &images))
                aside.doc-side {
                    (decisions(staff, &doc, filter))
                    (fields(staff, &doc, check.as_ref()))
                }
            }
            section.history {
                h2 { (t.history) }
                table.list #audit {
                    thead { tr { th { (t.when) } th { (t.who) } th { (t.action) } th { (t.change) } th { (t.reason) } } }
                    tbody { @for row in &audit {
                        tr {
                            td { (layout::when(&row.at)) }
                            td { (t.actor(&row.actor, |id| agent_names.get(id).cloned())) }
                            td { (t.action(&row.action)) }
                            td { @if let Some(from) = row.from_status { (t.status(from)) } " → " @if let Some(to) = row.to_status { (t.status(to)) } }
                            td { (history_reason(t, row)) }
                        }
                    } }
                }
            }
            p.hint.shortcuts { strong { (t.shortcuts) ": " } (t.shortcut_help) }
        }
    };
    let page = layout::page(staff, Nav::Queue, &doc.doc_no, true, body);
    Ok((status, page).into_response())
}

fn fields(staff: &Staff, doc: &Document, check: Option<&AttachmentCheck>) -> Markup {
    let t = staff.lang.text();
    let row = |label: &str, value: Option<&str>| {
        html! { @if let Some(v) = value { tr { th { (label) } td { (v) } } } }
    };
    html! {
        table.fields #fields {
            (row(t.status, Some(t.status(doc.status))))
            (row(t.title, doc.title.as_deref()))
            (row(t.amount, doc.amount.as_deref()))
            (row(t.submitter, doc.submitter.as_deref()))
            (row(t.org, Some(&doc.org)))
            (row(t.doc_type, Some(&doc.doc_type)))
            (row(t.source_system, Some(&doc.source_system)))
            (row(t.cover_code, Some(&doc.cover_code)))
            (row(t.mode, Some(t.mode(doc.mode.as_str()))))
            (row(t.pages, Some(&doc.image_count.to_string())))
            @if let Some(declared) = doc.attachment_count {
                tr { th { (t.attachments) } td { (attachment_line(t, declared, check)) } }
            }
            (row(t.reject_reason, doc.reject_reason.as_deref()))
            tr { th { (t.created_at) } td { (layout::when(&doc.created_at)) } }
            tr { th { (t.updated_at) } td { (layout::when(&doc.updated_at)) } }
        }
    }
}

/// The declared count and, once paper is attached, the check: coloured by
/// verdict and worded, so it reads without the colour too.
fn attachment_line(t: &Text, declared: u32, check: Option<&AttachmentCheck>) -> Markup {
    let class = match check.map(|c| c.verdict) {
        None => "attachments",
        Some(AttachmentVerdict::Ok) => "attachments ok",
        Some(AttachmentVerdict::Missing) => "attachments missing",
        Some(AttachmentVerdict::Extra) => "attachments extra",
    };
    html! { span #attachment-check class=(class) { (t.attachment_check(declared, check)) } }
}

fn decisions(staff: &Staff, doc: &Document, filter: &QueueFilter) -> Markup {
    let t = staff.lang.text();
    let allowed = |d: Decision| after_decision(doc.mode, doc.status, &d).is_some();
    let may = staff.user.role.may_decide();
    let can_sign = may && allowed(Decision::SignOff);
    let can_reject = may
        && allowed(Decision::Reject {
            reason: String::new(),
        });
    let can_unsign = may
        && allowed(Decision::Unsign {
            reason: String::new(),
        });
    let hidden_filter = html! {
        (csrf_field(staff))
        @if let Some(v) = &filter.site { input type="hidden" name="site" value=(v); }
        @if let Some(v) = &filter.org { input type="hidden" name="org" value=(v); }
        @if let Some(v) = &filter.doc_type { input type="hidden" name="doc_type" value=(v); }
    };
    let action = |what: &str| format!("/ui/documents/{}/{what}", doc.id);
    html! {
        section.decisions #decisions {
            h2 { (t.decisions) }
            @if !may {
                p.hint #read-only { (t.read_only_role) }
            } @else if !(can_sign || can_reject || can_unsign) {
                p.hint { (t.no_decision_possible) }
            }
            @if can_sign {
                form #sign-off-form method="post" action=(action("sign-off")) {
                    (hidden_filter)
                    button.primary #sign-off type="submit" { (t.sign_off) " (s)" }
                }
            }
            @if can_reject {
                form #reject-form method="post" action=(action("reject")) {
                    (hidden_filter)
                    label { (t.reason) textarea #reject-reason name="reason" required rows="2" maxlength="1024" {} }
                    button.danger #reject type="submit" { (t.reject) " (x)" }
                }
            }
            @if can_unsign {
                form #unsign-form method="post" action=(action("unsign")) {
                    (hidden_filter)
                    label { (t.reason) textarea #unsign-reason name="reason" required rows="2" maxlength="1024" {} }
                    button #unsign type="submit" { (t.revoke) " (u)" }
                }
            }
        }
    }
}

fn viewer(staff: &Staff, doc_no: &str, images: &[Image]) -> Markup {
    let t = staff.lang.text();
    let blank = images.iter().filter(|i| i.blank).count();
    html! {
        section.viewer #viewer data-count=(images.len()) {
            @if images.is_empty() {
                p.empty { (t.no_pages) }
            } @else {
                div.toolbar {
                    button #prev-page type="button" title=(t.previous_page) { "←" }
                    span #page-label data-page-word=(t.page) data-of-word=(t.of) {}
                    button #next-page type="button" title=(t.next_page) { "→" }
                    button #zoom-out type="button" title=(t.zoom_out) { "−" }
                    button #zoom-in type="button" title=(t.zoom_in) { "+" }
                    button #rotate type="button" title=(t.rotate) { "⟳" }
                    @if blank > 0 {
                        label.blank-toggle { input #show-blank type="checkbox"; (t.show_blank) " — " (t.blank_pages) ": " (blank) }
                    }
                    a #download href="#" download { (t.download) }
                }
                div.stage { img #page-image alt=(t.page); }
                div.page-details {
                    @for (index, image) in images.iter().enumerate() {
                        (page_detail(staff, index, image))
                    }
                }
            }
        }
        @if !images.is_empty() {
            nav.thumbs #thumbs {
                @for (index, image) in images.iter().enumerate() {
                    button.thumb type="button" data-index=(index)
                        data-view={ "/ui/images/" (image.id) "/view" }
                        data-file={ "/ui/images/" (image.id) "/file" }
                        data-download-name=(download_name(doc_no, image))
                        data-blank=[image.blank.then_some("1")] hidden[image.blank] {
                        img loading="lazy" src={ "/ui/images/" (image.id) "/thumb" } alt="";
                        span { (image.page_no) @if image.blank { " · " (t.blank_page) } }
                    }
                }
            }
        }
    }
}

fn page_detail(staff: &Staff, index: usize, image: &Image) -> Markup {
    let t = staff.lang.text();
    html! {
        div.page-detail data-index=(index) hidden {
            @if let Some(purged) = &image.purged {
                p.flash.purged role="status" { (t.image_purged) " " (purged.at) " — " (purged.reason) }
            }
            h3 { (t.barcodes) }
            @if image.barcodes.is_empty() {
                p.hint { (t.no_barcodes) }
            } @else {
                ul.barcodes { @for b in &image.barcodes {
                    li { code { (b.format) } " " (b.text) }
                } }
            }
            @for invoice in image.barcodes.iter().filter_map(|b| imc_shared::vat::parse(&b.text).ok()) {
                table.fields.vat {
                    caption { (t.vat_invoice) }
                    tr { th { (t.vat_code) } td { (invoice.invoice_code.as_deref().unwrap_or_default()) } }
                    tr { th { (t.vat_number) } td { (invoice.invoice_number) } }
                    tr { th { (t.vat_amount) } td { (invoice.amount.as_deref().unwrap_or_default()) } }
                    tr { th { (t.vat_date) } td { (invoice.date) } }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(flatten)]
    filter: QueueQuery,
    #[serde(default)]
    reason: Option<String>,
}

fn back_to(id: i64, filter: &QueueFilter, flash: &str, about: &str) -> Response {
    let q = filter_query(filter);
    let about = serde_urlencoded::to_string([("ref", about)]).unwrap_or_default();
    Redirect::to(&format!("/ui/documents/{id}?{q}&flash={flash}&{about}")).into_response()
}

/// Runs a decision; a lost race re-renders the document with a clear message.
async fn decide(
    state: &AppState,
    staff: &Staff,
    id: i64,
    form: DecisionForm,
    make: impl FnOnce(Option<String>) -> Result<Decision, ApiError>,
) -> UiResult<Result<Document, Response>> {
    let filter = form.filter.filter(staff);
    let decision = make(form.reason).map_err(UiError::from)?;
    match decisions::decide(state, &staff.user.actor(), id, decision).await {
        Ok(doc) => Ok(Ok(doc)),
        Err(ApiError::InvalidTransition { current, .. }) => {
            let t = staff.lang.text();
            let message = format!("{} {}.", t.already_decided, t.status(current));
            let page = render(
                state,
                staff,
                id,
                &filter,
                Some(message),
                StatusCode::CONFLICT,
            )
            .await?;
            Ok(Err(page))
        }
        Err(e) => Err(e.into()),
    }
}

fn required_reason(reason: Option<String>) -> Result<String, ApiError> {
    checked_reason(ReasonBody {
        reason: reason.unwrap_or_default(),
    })
}

pub async fn sign_off(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(id): DeskPath<i64>,
    axum::Form(form): axum::Form<DecisionForm>,
) -> UiResult<Response> {
    let filter = form.filter.filter(&staff);
    let doc = match decide(&state, &staff, id, form, |_| Ok(Decision::SignOff)).await? {
        Ok(doc) => doc,
        Err(conflict) => return Ok(conflict),
    };
    // One keystroke per clean packet: straight on to the next document.
    match state.web.store.next_in_queue(filter.clone(), id).await? {
        Some(next) => Ok(back_to(next, &filter, "signed_off", &doc.doc_no)),
        None => Ok(back_to(id, &filter, "signed_off", &doc.doc_no)),
    }
}

pub async fn reject(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(id): DeskPath<i64>,
    axum::Form(form): axum::Form<DecisionForm>,
) -> UiResult<Response> {
    with_reason(&state, &staff, id, form, "rejected", |reason| {
        Decision::Reject { reason }
    })
    .await
}

pub async fn unsign(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(id): DeskPath<i64>,
    axum::Form(form): axum::Form<DecisionForm>,
) -> UiResult<Response> {
    with_reason(&state, &staff, id, form, "revoked", |reason| {
        Decision::Unsign { reason }
    })
    .await
}

/// A decision that needs a reason; back to the document with `flash` when made.
async fn with_reason(
    state: &AppState,
    staff: &Staff,
    id: i64,
    form: DecisionForm,
    flash: &'static str,
    decision: fn(String) -> Decision,
) -> UiResult<Response> {
    let filter = form.filter.filter(staff);
    let made = decide(state, staff, id, form, |r| {
        Ok(decision(required_reason(r)?))
    })
    .await?;
    Ok(match made {
        Ok(doc) => back_to(id, &filter, flash, &doc.doc_no),
        Err(conflict) => conflict,
    })
}

/// A history row's reason; a receipt shows its page count, with the pages'
/// hashes on hover rather than 64 hex digits a page in the table.
fn history_reason(t: &Text, row: &AuditRow) -> Markup {
    let reason = row.reason.as_deref().unwrap_or("");
    if row.action == RECEIVE_ACTION
        && let Some(pages) = parse_receipt(reason)
    {
        return html! { span title=(reason) { (pages.len()) " " (t.pages_received) } };
    }
    html! { (reason) }
}

/// What a downloaded page is called: the document number and the page,
/// with the extension of its type (`AP-2026-0107-p02.jpg`), as a file name.
fn download_name(doc_no: &str, image: &Image) -> String {
    let doc_no: String = doc_no
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let extension = crate::archive::bag::extension(&image.content_type);
    format!("{doc_no}-p{:02}.{extension}", image.page_no)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n::Lang;

    fn check(declared: u32, scanned: u32, verdict: AttachmentVerdict) -> AttachmentCheck {
        AttachmentCheck {
            declared,
            scanned,
            verdict,
        }
    }

    #[test]
    fn the_attachment_line_says_the_verdict_in_both_languages() {
        let missing = check(3, 2, AttachmentVerdict::Missing);
        let zh = attachment_line(Lang::Zh.text(), 3, Some(&missing)).into_string();
        assert!(zh.contains("附件 3 张，扫描 2 张：缺 1 张"), "{zh}");
        assert!(zh.contains("attachments missing"), "{zh}");
        let en = attachment_line(Lang::En.text(), 3, Some(&missing)).into_string();
        assert!(en.contains("3 declared, 2 scanned: 1 missing"), "{en}");
        let extra = check(2, 4, AttachmentVerdict::Extra);
        let en = attachment_line(Lang::En.text(), 2, Some(&extra)).into_string();
        assert!(
            en.contains("2 extra") && en.contains("attachments extra"),
            "{en}"
        );
        let ok = check(2, 2, AttachmentVerdict::Ok);
        let zh = attachment_line(Lang::Zh.text(), 2, Some(&ok)).into_string();
        assert!(zh.contains("相符") && zh.contains("attachments ok"), "{zh}");
        let waiting = attachment_line(Lang::Zh.text(), 5, None).into_string();
        assert!(waiting.contains("附件 5 张"), "{waiting}");
    }
}
