//! Staff sessions: login, logout, the [`Staff`] extractor, and the guard that
//! every state-changing desk request passes (CSRF token, same origin).
//!
//! The session cookie holds 256 random bits; the database keeps only their
//! SHA-256 (like API tokens). Each session has its own CSRF token, put in
//! every form (`_csrf`) and in a meta tag that htmx and `ui.js` send back as
//! `X-CSRF-Token`. Logging in always starts a new session (rotation), so a
//! cookie planted before login is worth nothing after it.

pub use super::cookies::cookie;
use super::error::UiError;
use super::i18n::Lang;
pub use super::staff::{CSRF_FIELD, Staff};
use super::store::SessionRow;
use super::{WebState, passwords};
use crate::auth::{Principal, hash_secret, new_secret};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

pub const SESSION_COOKIE: &str = "imc_session";
/// Double-submit token for the login form, which has no session yet.
const LOGIN_CSRF_COOKIE: &str = "imc_login_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSION_HOURS: i64 = 12;
/// Forms on the desk are small; a bigger body is refused before parsing.
const MAX_FORM_BYTES: usize = 64 * 1024;

fn set_cookie(web: &WebState, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if web.secure_cookies { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    // Names and values are ours (hex and fixed words), always valid header text.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Constant-time comparison, so a token cannot be guessed byte by byte.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn load(state: &AppState, headers: &HeaderMap) -> Result<Option<SessionRow>, UiError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .web
        .store
        .session(&hash_secret(token), &crate::store::now())
        .await?)
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Staff, UiError> {
        // The guard has looked the session up already for this request.
        if let Some(staff) = parts.extensions.get::<Staff>() {
            return Ok(staff.clone());
        }
        let lang = Lang::from_headers(&parts.headers);
        match load(state, &parts.headers).await? {
            Some(row) => Ok(Staff {
                user: row.user,
                csrf: row.csrf_token,
                lang,
            }),
            None => Err(UiError::LoginRequired),
        }
    }
}

/// Runs on every `/ui` request: finds the session, and refuses a
/// state-changing request without the session's CSRF token or from another
/// origin. The login form is checked against its own double-submit cookie.
/// It also names the caller (`auth::Principal`) for the route's rule, and
/// audits the rule's refusals.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let session = match load(&state, request.headers()).await {
        Ok(session) => session,
        Err(e) => return e.into_response(),
    };
    // Nobody logged in: the request is under the anonymous budget, its body
    // read whole within a deadline before anything looks at it.
    let (request, _admitted) = match session {
        Some(_) => (request, None),
        None => match crate::preauth::admit(request).await {
            Ok(admitted) => admitted,
            Err(refusal) => return refusal,
        },
    };
    match check(session, request).await {
        Ok(request) => {
            let mut response = next.run(request).await;
            crate::auth::audit_refusal(&state, &mut response).await;
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn check(session: Option<SessionRow>, request: Request) -> Result<Request, UiError> {
    let (mut parts, body) = request.into_parts();
    let lang = Lang::from_headers(&parts.headers);
    match &session {
        Some(row) => {
            parts.extensions.insert(Staff {
                user: row.user.clone(),
                csrf: row.csrf_token.clone(),
                lang,
            });
            parts.extensions.insert(Principal::Staff(row.user.clone()));
        }
        None => {
            parts.extensions.insert(Principal::Anonymous);
        }
    }
    if matches!(parts.method, Method::GET | Method::HEAD) {
        return Ok(Request::from_parts(parts, body));
    }
    if !same_origin(&parts.headers) {
        return Err(UiError::Forbidden("cross-origin request refused".into()));
    }
    // Nobody's form but the login form is read without a session.
    if session.is_none() && parts.uri.path() != "/ui/login" {
        return Err(UiError::LoginRequired);
    }
    let body = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| UiError::BadRequest("form too large".into()))?;
    let sent = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| form_csrf(&body));
    let expected = if parts.uri.path() == "/ui/login" {
        cookie(&parts.headers, LOGIN_CSRF_COOKIE).map(str::to_owned)
    } else {
        match &session {
            Some(row) => Some(row.csrf_token.clone()),
            None => return Err(UiError::LoginRequired),
        }
    };
    match (sent, expected) {
        (Some(sent), Some(expected)) if same_token(&sent, &expected) => {
            Ok(Request::from_parts(parts, Body::from(body)))
        }
        _ => Err(UiError::Csrf),
    }
}

fn form_csrf(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v)
}

/// A browser names the page's origin on POSTs; it must be this server.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Old browsers and non-browser clients send none; the CSRF token still applies.
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    logged_out: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    let bye = query
        .logged_out
        .map(|_| Lang::from_headers(&headers).text().logged_out);
    login_form(&state.web, &headers, None, bye, StatusCode::OK)
}

fn login_form(
    web: &WebState,
    headers: &HeaderMap,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let lang = Lang::from_headers(headers);
    let t = lang.text();
    let token = cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|v| v.len() == 68)
        .map(str::to_owned)
        .unwrap_or_else(|| new_secret("lcs"));
    let body: Markup = html! {
        main.login {
            h1 { (t.product) }
            form method="post" action="/ui/login" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                @if let Some(error) = error { p.flash.error role="alert" { (error) } }
                @if let Some(notice) = notice { p.flash role="status" { (notice) } }
                label { (t.username) input name="name" autocomplete="username" required autofocus; }
                label { (t.password) input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { (t.login_button) }
            }
            p { a href={ "/ui/lang/" (lang.other().code()) } { (lang.other().text().language_name) } }
        }
    };
    let page = super::layout::bare(lang, t.login_title, body);
    let mut response = (status, page).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(web, LOGIN_CSRF_COOKIE, &token, 3600),
    );
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Result<Response, UiError> {
    let name = form.name.trim();
    let t = Lang::from_headers(&headers).text();
    // Unknown only when called without the listener (tests): one shared key.
    let address = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0.0.ip());
    if let Some(wait) = state
        .web
        .logins
        .wait(address, name, std::time::Instant::now())
    {
        tracing::warn!(name = ?name, %address, "desk login refused: too many failed attempts");
        let mut response = login_form(
            &state.web,
            &headers,
            Some(t.login_locked),
            None,
            StatusCode::TOO_MANY_REQUESTS,
        );
        retry_after(&mut response, wait);
        return Ok(response);
    }
    let user = state.web.store.user_by_name(name).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    // Verify even for an unknown name, so timing does not tell which names exist.
    let Ok(ok) = passwords::verify(form.password, hash).await else {
        tracing::warn!(%address, "desk login refused: password checks are busy");
        let mut response = login_form(
            &state.web,
            &headers,
            Some(t.login_busy),
            None,
            StatusCode::TOO_MANY_REQUESTS,
        );
        retry_after(&mut response, std::time::Duration::from_secs(2));
        return Ok(response);
    };
    let Some(user) = user.filter(|_| ok) else {
        tracing::warn!(name = ?name, %address, "failed desk login");
        state
            .web
            .logins
            .failed(address, name, std::time::Instant::now());
        return Ok(login_form(
            &state.web,
            &headers,
            Some(t.login_failed),
            None,
            StatusCode::UNAUTHORIZED,
        ));
    };
    state.web.logins.succeeded(address, name);
    // Rotation: whatever session the browser had ends here.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        state.web.store.delete_session(&hash_secret(old)).await?;
    }
    let token = new_secret("ses");
    let csrf = new_secret("csrf");
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(SESSION_HOURS))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    state
        .web
        .store
        .create_session(&hash_secret(&token), user.id, &csrf, &expires_at)
        .await?;
    tracing::info!(user = %user.name, role = user.role.as_str(), "desk login");
    let mut response = Redirect::to("/ui/queue").into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&state.web, SESSION_COOKIE, &token, SESSION_HOURS * 3600),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&state.web, LOGIN_CSRF_COOKIE, "", 0),
    );
    Ok(response)
}

fn retry_after(response: &mut Response, wait: std::time::Duration) {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.web.store.delete_session(&hash_secret(token)).await?;
    }
    // Not plain `/ui/login`, which is where refusals send the anonymous.
    let mut response = Redirect::to("/ui/login?logged_out=1").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state.web, SESSION_COOKIE, "", 0),
    );
    Ok(response)
}

/// The language toggle: a preference cookie, then back to where the user was.
pub async fn set_language(
    State(state): State<AppState>,
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_code(&code).unwrap_or(Lang::En);
    // Only a path of ours, never another site, is a place to go back to.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("/ui/").map(|(_, path)| format!("/ui/{path}")))
        .filter(|p| !p.starts_with("/ui/lang/") && !p.contains("//"))
        .unwrap_or_else(|| "/ui/queue".to_owned());
    let mut response = Redirect::to(&back).into_response();
    let mut value = set_cookie(
        &state.web,
        super::i18n::LANG_COOKIE,
        lang.code(),
        31_536_000,
    );
    if let Ok(text) = value.to_str() {
        // The language is no secret: scripts may read it.
        if let Ok(v) = HeaderValue::from_str(&text.replace("; HttpOnly", "")) {
            value = v;
        }
    }
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_origin() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; imc_session=ses_x; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("ses_x"));
        assert_eq!(cookie(&h, "c"), None);
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert_eq!(
            form_csrf(b"reason=x&_csrf=tok%2B1").as_deref(),
            Some("tok+1")
        );
    }
}
