//! The page shell: head, navigation, language toggle; and small pieces that
//! several pages share.

use super::i18n::{Lang, Text};
use super::staff::{CSRF_FIELD, Staff};
use imc_shared::DocStatus;
use maud::{DOCTYPE, Markup, html};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Queue,
    Unmatched,
    Agents,
    Admin,
}

fn head(lang: Lang, title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · IMC" }
            // htmx must not inject styles or evaluate strings: the CSP forbids both.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
            @if let Some(csrf) = csrf { meta name="csrf-token" content=(csrf); }
            meta name="imc-lang" content=(lang.code());
            link rel="stylesheet" href="/ui/static/ui.css";
            script src="/ui/static/htmx.min.js" defer {}
            script src="/ui/static/ui.js" defer {}
        }
    }
}

/// A page without navigation (login, errors).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title, None))
            body { (body) }
        }
    }
}

/// A page for a logged-in staff member; `live` pages listen to server events.
pub fn page(staff: &Staff, nav: Nav, title: &str, live: bool, body: Markup) -> Markup {
    let t = staff.lang.text();
    let other = staff.lang.other();
    let link = |n: Nav, href: &str, label: &str| {
        html! { a href=(href) class=[(n == nav).then_some("active")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang=(staff.lang.code()) {
            (head(staff.lang, title, Some(&staff.csrf)))
            body data-live=[live.then_some("1")] {
                header.top {
                    span.brand { (t.product) }
                    nav {
                        (link(Nav::Queue, "/ui/queue", t.nav_queue))
                        (link(Nav::Unmatched, "/ui/packets", t.nav_unmatched))
                        (link(Nav::Agents, "/ui/agents", t.nav_agents))
                        @if staff.user.role.is_admin() { (link(Nav::Admin, "/ui/admin", t.nav_admin)) }
                    }
                    span.user {
                        a href={ "/ui/lang/" (other.code()) } { (other.text().language_name) }
                        " · " (t.signed_in_as) " " strong { (staff.user.name) } " (" (staff.user.role.as_str()) ")"
                        form.inline method="post" action="/ui/logout" {
                            (csrf_field(staff))
                            button.link type="submit" { (t.logout) }
                        }
                    }
                }
                div #live-banner hidden data-message=(t.changed_elsewhere) {}
                (body)
            }
        }
    }
}

pub fn csrf_field(staff: &Staff) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(staff.csrf); }
}

pub fn status_badge(t: &Text, status: DocStatus) -> Markup {
    html! { span class={ "badge status-" (status.as_str()) } data-status=(status.as_str()) { (t.status(status)) } }
}

/// Timestamps are stored as RFC 3339 UTC; staff read them to the second.
/// A stored time (RFC 3339, UTC) for people: `2026-12-07 03:28 UTC` as
/// sent, which the desk's script rewrites in the browser's own zone with
/// the zone named (`11:28 GMT+8`); the exact time stays in `datetime`.
pub fn when(at: &str) -> Markup {
    let shown = at.get(..16).unwrap_or(at).replace('T', " ");
    html! { time datetime=(at) { (shown) " UTC" } }
}

pub fn flash(message: Option<&str>) -> Markup {
    html! { @if let Some(m) = message { p.flash role="status" { (m) } } }
}
