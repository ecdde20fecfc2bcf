//! Per-IP and per-token request rate limits on `/api/v1`, answered with 429
//! and a JSON error (plus `Retry-After`), before authentication so that
//! guessing tokens is throttled too.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use imc_shared::api::{ErrorBody, ErrorDetail};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

/// Requests per second and bursts; `None` switches a limit off.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub per_ip: Option<NonZeroU32>,
    pub per_token: Option<NonZeroU32>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_ip: NonZeroU32::new(200),
            per_token: NonZeroU32::new(100),
        }
    }
}

/// Keys kept before idle ones are dropped (memory stays bounded).
const MAX_KEYS: usize = 100_000;

#[derive(Clone)]
pub struct Limiter {
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    per_token: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

/// A burst of twice the rate lets a client catch up after a pause.
fn quota(per_second: NonZeroU32) -> Quota {
    Quota::per_second(per_second)
        .allow_burst(per_second.saturating_mul(NonZeroU32::MIN.saturating_add(1)))
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            per_ip: limits
                .per_ip
                .map(|n| Arc::new(DefaultKeyedRateLimiter::keyed(quota(n)))),
            per_token: limits
                .per_token
                .map(|n| Arc::new(DefaultKeyedRateLimiter::keyed(quota(n)))),
        }
    }

    /// How long to wait, if this request is over a limit.
    fn check(&self, ip: Option<IpAddr>, token: Option<&str>) -> Option<std::time::Duration> {
        let clock = DefaultClock::default();
        if let (Some(limiter), Some(ip)) = (&self.per_ip, ip) {
            if limiter.len() > MAX_KEYS {
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&ip) {
                return Some(not_until.wait_time_from(clock.now()));
            }
        }
        if let (Some(limiter), Some(token)) = (&self.per_token, token) {
            if limiter.len() > MAX_KEYS {
                limiter.retain_recent();
            }
            // Keyed by the token's hash: the limiter holds no secrets.
            if let Err(not_until) =
                limiter.check_key(&crate::domain::credentials::hash_secret(token))
            {
                return Some(not_until.wait_time_from(clock.now()));
            }
        }
        None
    }
}

pub async fn limit(State(limiter): State<Limiter>, request: Request, next: Next) -> Response {
    let ip = crate::net::peer_ip(&request);
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::domain::credentials::bearer_token);
    let Some(wait) = limiter.check(ip, token) else {
        return next.run(request).await;
    };
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    tracing::warn!(ip = ?ip, path = %request.uri().path(), "rate limited");
    let body = ErrorBody {
        error: ErrorDetail {
            code: "rate_limited".into(),
            message: format!("too many requests; retry in {seconds} s"),
            field: None,
            current_status: None,
            purged: None,
        },
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_over_its_rate_waits_and_others_do_not() {
        let limiter = Limiter::new(RateLimits {
            per_ip: None,
            per_token: NonZeroU32::new(1),
        });
        assert!(limiter.check(None, Some("a")).is_none());
        assert!(limiter.check(None, Some("a")).is_none(), "burst of two");
        let wait = limiter.check(None, Some("a")).expect("third call limited");
        assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
        assert!(limiter.check(None, Some("b")).is_none(), "another token");
    }
}
