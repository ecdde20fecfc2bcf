//! Sites and agents: what each desk last reported, enrolment codes, revoking.

use super::error::UiResult;
use super::extract::DeskPath;
use super::layout::{self, Nav, csrf_field};
use super::session::Staff;
use crate::app::agents::issue_enrollment_code;
use crate::state::AppState;
use crate::store::AgentRecord;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use imc_shared::api::EnrollmentCode;
use maud::{Markup, html};
use serde::Deserialize;

pub async fn page(State(state): State<AppState>, staff: Staff) -> UiResult<Markup> {
    render(&state, &staff, None).await
}

async fn render(
    state: &AppState,
    staff: &Staff,
    issued: Option<EnrollmentCode>,
) -> UiResult<Markup> {
    let t = staff.lang.text();
    let mut agents = state.store.agents().await?;
    agents.sort_by(|a, b| (&a.site, &a.name, &a.id).cmp(&(&b.site, &b.name, &b.id)));
    // A clerk sees the desks of their own site.
    let scope = staff.scope();
    agents.retain(|a| scope.sees_site(&a.site));
    let admin = staff.user.role.is_admin();
    let body = html! {
        main.agents {
            h1 { (t.agents_title) }
            @if let Some(code) = &issued {
                div.flash #enrollment-code role="status" {
                    (t.code_issued) ": " code.big { (code.code) } " — " (t.site) " " (code.site) ", " (t.expires) " " (layout::when(&code.expires_at))
                }
            }
            @if admin {
                form.inline #new-code method="post" action="/ui/agents/codes" {
                    (csrf_field(staff))
                    label { (t.new_code_for_site) " " input name="site" required pattern="[A-Za-z0-9._\\-]{1,64}"; }
                    button type="submit" { (t.new_code) }
                }
            }
            @if agents.is_empty() {
                p.empty { (t.agents_empty) }
            } @else {
                table.list #agent-table {
                    thead { tr {
                        th { (t.site) } th { (t.name) } th { (t.agent) } th { (t.version) } th { (t.last_contact) }
                        th.num { (t.queue_depth) } th.num { (t.errors) } th { (t.status) } th {}
                    } }
                    tbody { @for a in &agents { (agent_row(staff, a, admin)) } }
                }
            }
        }
    };
    Ok(layout::page(staff, Nav::Agents, t.nav_agents, false, body))
}

fn agent_row(staff: &Staff, a: &AgentRecord, admin: bool) -> Markup {
    let t = staff.lang.text();
    html! {
        tr data-agent-id=(a.id) {
            td { (a.site) }
            td { (a.name) }
            td { code title=(a.id) { (a.id.get(..8).unwrap_or(&a.id)) } }
            td { (a.version.as_deref().unwrap_or("")) }
            td { @match a.last_seen_at.as_deref() { Some(at) => (layout::when(at)), None => (t.never) } }
            td.num { @if let Some(p) = a.queue_pages { (p) } @if let Some(b) = a.queue_bytes { " (" (b / 1024) " KiB)" } }
            td.num class=[a.quarantined.filter(|q| *q > 0).map(|_| "warn")] { (a.quarantined.unwrap_or(0)) }
            td { @if a.revoked_at.is_some() { span.badge.status-cancelled { (t.revoked) } } @else { span.badge.status-ready { (t.active) } } }
            td { @if admin && a.revoked_at.is_none() {
                form.inline method="post" action={ "/ui/agents/" (a.id) "/revoke" }
                    data-confirm={ (t.confirm_revoke_agent) " " (a.name) "?" } {
                    (csrf_field(staff))
                    button.danger type="submit" { (t.revoke_agent) }
                }
            } }
        }
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    site: String,
}

pub async fn new_code(
    State(state): State<AppState>,
    staff: Staff,
    axum::Form(form): axum::Form<CodeForm>,
) -> UiResult<Markup> {
    let code =
        issue_enrollment_code(&state, form.site.trim().to_owned(), &staff.user.actor()).await?;
    render(&state, &staff, Some(code)).await
}

pub async fn revoke(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(agent_id): DeskPath<String>,
) -> UiResult<Response> {
    crate::app::agents::revoke_agent(&state, &agent_id, &staff.user.actor()).await?;
    Ok(Redirect::to("/ui/agents").into_response())
}
