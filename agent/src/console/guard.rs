//! Who may use the console. A page on another site must not drive it through
//! the clerk's browser: the Host must be the console's own address (a
//! rebound DNS name is refused), an Origin, when sent, must match it, and
//! every action carries the page's CSRF token in a header, which another
//! origin cannot add without a preflight the console never grants. Bound
//! beyond loopback, the console also asks for the desk's PIN.

use super::Console;
use super::actions::failure;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The header every action carries, with [`Guard::csrf`].
pub const CSRF_HEADER: &str = "x-console-token";
const SESSION_COOKIE: &str = "imc_console";
/// Wrong PINs allowed per window before every attempt is refused.
pub const PIN_ATTEMPTS: usize = 5;
const PIN_WINDOW: Duration = Duration::from_secs(60);
const MAX_SESSIONS: usize = 64;

pub struct Guard {
    port: u16,
    /// Bound to loopback: only loopback names and addresses are its own.
    loopback: bool,
    pub csrf: String,
    pin: Option<String>,
    sessions: Mutex<HashSet<String>>,
    wrong_pins: Mutex<VecDeque<Instant>>,
}

impl Guard {
    pub fn new(bound: SocketAddr, pin: Option<String>) -> anyhow::Result<Guard> {
        let loopback = bound.ip().is_loopback();
        let pin = pin.filter(|p| !p.trim().is_empty());
        if !loopback && pin.is_none() {
            anyhow::bail!(
                "the console listens on {bound}, beyond this computer: set console_pin in the config"
            );
        }
        Ok(Guard {
            port: bound.port(),
            loopback,
            csrf: random_token(),
            pin,
            sessions: Mutex::new(HashSet::new()),
            wrong_pins: Mutex::new(VecDeque::new()),
        })
    }

    pub fn pin_required(&self) -> bool {
        self.pin.is_some()
    }

    /// Whether `host` (a Host header) names this console: its port, and an
    /// IP address (loopback ones when bound to loopback) or `localhost`.
    fn host_ok(&self, host: &str) -> bool {
        let Some((name, port)) = host.rsplit_once(':') else {
            return false;
        };
        if port.parse::<u16>().ok() != Some(self.port) {
            return false;
        }
        let name = name.trim_start_matches('[').trim_end_matches(']');
        match name.parse::<IpAddr>() {
            Ok(ip) => !self.loopback || ip.is_loopback(),
            Err(_) => name.eq_ignore_ascii_case("localhost"),
        }
    }

    fn signed_in(&self, headers: &HeaderMap) -> bool {
        if self.pin.is_none() {
            return true;
        }
        let Some(session) = cookie(headers, SESSION_COOKIE) else {
            return false;
        };
        self.sessions
            .lock()
            .map(|s| s.contains(session))
            .unwrap_or(false)
    }
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Constant-time comparison, so a PIN or token is not guessed by timing.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub async fn check(State(console): State<Console>, request: Request, next: Next) -> Response {
    let guard = &console.inner.guard;
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !guard.host_ok(host) {
        return failure(
            StatusCode::FORBIDDEN,
            &format!("this console answers only at its own address, not {host:?}"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.to_str().ok() != Some(&format!("http://{host}"))
    {
        return failure(
            StatusCode::FORBIDDEN,
            "a page of another site may not use this console",
        );
    }
    if request.method() != Method::GET {
        let token = headers
            .get(CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !same(token, &guard.csrf) {
            return failure(
                StatusCode::FORBIDDEN,
                "the console's token is missing or stale: reload the page",
            );
        }
    }
    let path = request.uri().path();
    if !super::page::PUBLIC.contains(&path) && !guard.signed_in(headers) {
        return failure(StatusCode::UNAUTHORIZED, "enter the desk's PIN");
    }
    next.run(request).await
}

#[derive(serde::Deserialize)]
pub struct Login {
    pin: String,
}

/// Checks the PIN and starts a session; wrong PINs are rate-limited.
pub async fn login(
    State(console): State<Console>,
    axum::Json(login): axum::Json<Login>,
) -> Response {
    let guard = &console.inner.guard;
    let Some(pin) = &guard.pin else {
        return StatusCode::NO_CONTENT.into_response();
    };
    {
        let Ok(mut wrong) = guard.wrong_pins.lock() else {
            return failure(StatusCode::INTERNAL_SERVER_ERROR, "console lock poisoned");
        };
        while wrong.front().is_some_and(|t| t.elapsed() > PIN_WINDOW) {
            wrong.pop_front();
        }
        if wrong.len() >= PIN_ATTEMPTS {
            return failure(
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong PINs: wait a minute and try again",
            );
        }
        if !same(login.pin.trim(), pin) {
            wrong.push_back(Instant::now());
            tracing::warn!("a wrong PIN was entered at the console");
            return failure(StatusCode::UNAUTHORIZED, "wrong PIN");
        }
    }
    let session = random_token();
    if let Ok(mut sessions) = guard.sessions.lock() {
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.insert(session.clone());
    }
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"),
        )],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_consoles_own_address_is_its_host() {
        let guard = Guard::new("127.0.0.1:8411".parse().unwrap(), None).unwrap();
        assert!(guard.host_ok("127.0.0.1:8411"));
        assert!(guard.host_ok("localhost:8411"));
        assert!(guard.host_ok("[::1]:8411"));
        assert!(!guard.host_ok("127.0.0.1:8412"));
        assert!(!guard.host_ok("evil.example:8411"), "a rebound name");
        assert!(!guard.host_ok("192.168.1.5:8411"), "not loopback");
        assert!(!guard.host_ok("127.0.0.1"));
    }

    #[test]
    fn beyond_loopback_a_pin_is_required_and_names_are_refused() {
        assert!(Guard::new("0.0.0.0:8411".parse().unwrap(), None).is_err());
        assert!(Guard::new("0.0.0.0:8411".parse().unwrap(), Some(" ".into())).is_err());
        let guard = Guard::new("0.0.0.0:8411".parse().unwrap(), Some("2468".into())).unwrap();
        assert!(guard.pin_required());
        assert!(guard.host_ok("192.168.1.5:8411"));
        assert!(!guard.host_ok("desk.example:8411"));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
