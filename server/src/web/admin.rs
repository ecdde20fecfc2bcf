//! Administration: image schemes, global settings, staff users.

use super::error::{UiError, UiResult};
use super::extract::DeskPath;
use super::layout::{self, Nav, csrf_field};
use super::passwords;
use super::session::Staff;
use super::store::{NewUser, Role, User};
use crate::app::agents::name_ok;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Scheme;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use imc_shared::ImageMode;
use imc_shared::api::SettingsPatch;
use imc_shared::text::check_identifier;
use maud::{Markup, html};
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct AdminQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<AdminQuery>,
) -> UiResult<Markup> {
    let t = staff.lang.text();
    let schemes = state.store.schemes().await?;
    let settings = state.store.settings().await?;
    let settings_json = serde_json::to_string_pretty(&settings)
        .map_err(|e| anyhow::anyhow!("settings as JSON: {e}"))?;
    let users = state.web.store.users().await?;
    let disabled = state.web.store.disabled_users().await?;
    let modes = [ImageMode::Basic, ImageMode::Sync, ImageMode::Match];
    let roles = [Role::SignOff, Role::Clerk, Role::Admin];
    let body = html! {
        main.admin {
            h1 { (t.admin_title) }
            @if query.saved.is_some() { (layout::flash(Some(t.saved_flash))) }
            section #schemes {
                h2 { (t.schemes) }
                table.list {
                    thead { tr { th { (t.name) } th { (t.org) } th { (t.doc_type) } th { (t.mode) } } }
                    tbody { @for s in &schemes {
                        tr { td { (s.name) } td { (s.org.as_deref().unwrap_or("*")) } td { (s.doc_type.as_deref().unwrap_or("*")) } td { (t.mode(s.mode.as_str())) } }
                    } }
                }
                form.inline method="post" action="/ui/admin/schemes" {
                    (csrf_field(&staff))
                    input name="name" placeholder=(t.name) required;
                    input name="org" placeholder=(t.org);
                    input name="doc_type" placeholder=(t.doc_type);
                    select name="mode" { @for m in modes { option value=(m.as_str()) { (m.as_str()) } } }
                    button type="submit" { (t.save) }
                }
            }
            section #settings {
                h2 { (t.settings) }
                pre { (settings_json) }
                form method="post" action="/ui/admin/settings" {
                    (csrf_field(&staff))
                    label { (t.settings_hint) textarea name="patch" rows="4" required placeholder=r#"{"max_image_bytes": 67108864}"# {} }
                    button type="submit" { (t.save) }
                }
            }
            section #users {
                h2 { (t.users) }
                table.list {
                    thead { tr { th { (t.name) } th { (t.role) } th { (t.site) } th { (t.created_at) } th {} } }
                    tbody { @for u in &users {
                        tr {
                            (user_cells(u)) td { (layout::when(&u.created_at)) }
                            td { @if u.id != staff.user.id {
                                form.inline method="post" action={ "/ui/admin/users/" (path_segment(&u.name)) "/disable" }
                                    data-confirm={ (t.confirm_disable_user) " " (u.name) "?" } {
                                    (csrf_field(&staff))
                                    button.danger type="submit" { (t.disable_user) }
                                }
                            } }
                        }
                    } }
                }
                @if !disabled.is_empty() {
                    h3 { (t.disabled_users) }
                    table.list #disabled-users {
                        thead { tr { th { (t.name) } th { (t.role) } th { (t.site) } th {} } }
                        tbody { @for u in &disabled {
                            tr {
                                (user_cells(u))
                                td { form.inline method="post" action={ "/ui/admin/users/" (path_segment(&u.name)) "/enable" } {
                                    (csrf_field(&staff))
                                    button type="submit" { (t.enable_user) }
                                } }
                            }
                        } }
                    }
                }
                form.inline method="post" action="/ui/admin/users" {
                    (csrf_field(&staff))
                    input name="name" placeholder=(t.name) required autocomplete="off";
                    select name="role" { @for r in roles { option value=(r.as_str()) { (r.as_str()) } } }
                    input name="site" placeholder=(t.site);
                    input name="password" type="password" placeholder=(t.password) required minlength=(passwords::MIN_PASSWORD_CHARS) autocomplete="new-password";
                    button type="submit" { (t.add_user) }
                }
            }
        }
    };
    Ok(layout::page(&staff, Nav::Admin, t.nav_admin, false, body))
}

/// Name, role and site: the cells both user tables start with.
fn user_cells(u: &User) -> Markup {
    html! { td { (u.name) } td { (u.role.as_str()) } td { (u.site.as_deref().unwrap_or("")) } }
}

/// A user name as one URL path segment (names may hold `/`, `?` or CJK).
fn path_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn saved() -> Response {
    Redirect::to("/ui/admin?saved=1").into_response()
}

fn optional(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
pub struct SchemeForm {
    name: String,
    #[serde(default)]
    org: Option<String>,
    #[serde(default)]
    doc_type: Option<String>,
    mode: String,
}

pub async fn put_scheme(
    State(state): State<AppState>,
    staff: Staff,
    axum::Form(form): axum::Form<SchemeForm>,
) -> UiResult<Response> {
    let name = form.name.trim().to_owned();
    name_ok("name", &name)?;
    for (field, value) in [("org", &form.org), ("doc_type", &form.doc_type)] {
        if let Some(value) = value {
            check_identifier(field, value).map_err(ApiError::from)?;
        }
    }
    let mode: ImageMode = form
        .mode
        .parse()
        .map_err(|e| UiError::BadRequest(format!("mode: {e}")))?;
    let scheme = Scheme {
        name,
        org: optional(form.org),
        doc_type: optional(form.doc_type),
        mode,
        rules: None,
    };
    state.store.put_scheme(scheme, &staff.user.actor()).await?;
    Ok(saved())
}

#[derive(Deserialize)]
pub struct SettingsForm {
    patch: String,
}

pub async fn put_settings(
    State(state): State<AppState>,
    staff: Staff,
    axum::Form(form): axum::Form<SettingsForm>,
) -> UiResult<Response> {
    let patch: SettingsPatch = serde_json::from_str(&form.patch)
        .map_err(|e| UiError::BadRequest(format!("settings: {e}")))?;
    state
        .store
        .update_settings(patch, &staff.user.actor())
        .await?;
    Ok(saved())
}

#[derive(Deserialize)]
pub struct UserForm {
    name: String,
    role: String,
    #[serde(default)]
    site: Option<String>,
    password: String,
}

pub async fn add_user(
    State(state): State<AppState>,
    staff: Staff,
    axum::Form(form): axum::Form<UserForm>,
) -> UiResult<Response> {
    let new = super::users::validate(&form.name, &form.role, optional(form.site), &form.password)
        .map_err(|e| UiError::BadRequest(e.to_string()))?;
    let password_hash = passwords::hash(form.password).await?;
    state
        .web
        .store
        .add_user(
            NewUser {
                password_hash,
                ..new
            },
            &staff.user.actor(),
        )
        .await?;
    Ok(saved())
}

/// Disables another user; their sessions end at once. Disabling yourself is
/// refused here (the command line can, while another admin remains).
pub async fn disable_user(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(name): DeskPath<String>,
) -> UiResult<Response> {
    if name == staff.user.name {
        return Err(UiError::BadRequest(
            "you cannot disable your own account here".into(),
        ));
    }
    state
        .web
        .store
        .set_user_disabled(&name, true, &staff.user.actor())
        .await?;
    Ok(saved())
}

pub async fn enable_user(
    State(state): State<AppState>,
    staff: Staff,
    DeskPath(name): DeskPath<String>,
) -> UiResult<Response> {
    state
        .web
        .store
        .set_user_disabled(&name, false, &staff.user.actor())
        .await?;
    Ok(saved())
}
