//! The budget of everything a caller can reach before logging in (the login
//! form, agent enrolment, the public pages): a small body that must arrive
//! whole within a deadline (not per byte, so trickling does not extend it),
//! a few requests at once and a modest rate per address, and a share of the
//! server that a flood on these routes cannot exceed. Past any of these the
//! caller is answered at once, with the connection closed, so a flood of
//! slow clients frees its connections instead of holding them.
//!
//! Authenticated callers keep their own budgets (`ratelimit`, per token and
//! per agent); a flood here leaves them and the health checks their room.

use crate::error::error_response;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy)]
pub struct PreAuthLimits {
    /// Largest body: a login form or an enrolment request is well under it.
    pub body_bytes: usize,
    /// The whole body must have arrived within this.
    pub body_deadline: Duration,
    /// Anonymous requests in progress at once, over all addresses.
    pub in_flight: usize,
    /// Anonymous requests in progress at once from one address.
    pub per_address: usize,
    /// Anonymous requests per second from one address (bursts of four times).
    pub per_second: NonZeroU32,
}

impl Default for PreAuthLimits {
    fn default() -> Self {
        PreAuthLimits {
            body_bytes: 16 * 1024,
            body_deadline: Duration::from_secs(10),
            in_flight: 64,
            per_address: 8,
            per_second: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Addresses tracked before idle ones are dropped from the rate limiter.
const MAX_ADDRESSES: usize = 100_000;

#[derive(Clone)]
pub struct PreAuth {
    limits: PreAuthLimits,
    in_flight: Arc<Semaphore>,
    by_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    rate: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl PreAuth {
    pub fn new(limits: PreAuthLimits) -> PreAuth {
        let quota = Quota::per_second(limits.per_second).allow_burst(
            limits
                .per_second
                .saturating_mul(NonZeroU32::MIN.saturating_add(3)),
        );
        PreAuth {
            limits,
            in_flight: Arc::new(Semaphore::new(limits.in_flight)),
            by_address: Arc::default(),
            rate: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
        }
    }

    /// A place for one more request from `address`, if it has one left.
    fn enter(&self, address: IpAddr) -> Option<AddressSlot> {
        let mut counts = self.by_address.lock().ok()?;
        let count = counts.entry(address).or_insert(0);
        if *count >= self.limits.per_address {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            address,
            counts: Arc::clone(&self.by_address),
        })
    }

    /// A place for a request from `address` within the rate, its address's
    /// share and the server's; or the refusal to send.
    fn hold(&self, address: IpAddr) -> Result<Admitted, Box<Response>> {
        if let Some(wait) = self.over_rate(address) {
            return Err(Box::new(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this address; try again shortly",
                Some(wait),
            )));
        }
        let Some(address_slot) = self.enter(address) else {
            return Err(Box::new(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests at once from this address",
                Some(Duration::from_secs(1)),
            )));
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Err(Box::new(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the server is busy with other sign-ins; try again shortly",
                Some(Duration::from_secs(2)),
            )));
        };
        Ok(Admitted {
            _address: address_slot,
            _permit: permit,
        })
    }

    fn over_rate(&self, address: IpAddr) -> Option<Duration> {
        if self.rate.len() > MAX_ADDRESSES {
            self.rate.retain_recent();
        }
        self.rate
            .check_key(&address)
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Gives the address's place back when the request ends, however it ends.
struct AddressSlot {
    address: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock()
            && let Some(count) = counts.get_mut(&self.address)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// A refusal that also ends the connection, so a slow client cannot keep it.
fn refuse(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> Response {
    let mut response = error_response(status, code, message);
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(wait) = retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
            headers.insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// What an admitted anonymous request holds until its answer is made.
pub struct Admitted {
    _address: AddressSlot,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Admits an anonymous request under the budget carried by its extensions
/// (set by the outermost router, so that layers deep in the tree need no
/// state), with its whole body read within the deadline; or the refusal to
/// send instead. Without a budget (never in the server) it admits as is.
pub async fn admit(request: Request) -> Result<(Request, Option<Admitted>), Response> {
    let Some(budget) = request.extensions().get::<PreAuth>().cloned() else {
        return Ok((request, None));
    };
    let limits = budget.limits;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body_bytes as u64) {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("this request may carry at most {} bytes", limits.body_bytes),
            None,
        ));
    }
    // In-process callers (tests) have no address to count against.
    let held = match crate::net::peer_ip(&request) {
        Some(address) => Some(budget.hold(address).map_err(|refusal| *refusal)?),
        None => None,
    };
    // The whole body, within one deadline, before anything else looks at it.
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, limits.body_bytes);
    let bytes = match tokio::time::timeout(limits.body_deadline, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("this request may carry at most {} bytes", limits.body_bytes),
                None,
            ));
        }
        Err(_) => {
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                &format!(
                    "the request body did not arrive within {} s",
                    limits.body_deadline.as_secs()
                ),
                None,
            ));
        }
    };
    Ok((Request::from_parts(parts, Body::from(bytes)), held))
}

/// The middleware on the API's public routes (the desk's anonymous requests
/// are admitted by its session guard, which sees who is logged in).
pub async fn guard(request: Request, next: Next) -> Response {
    match admit(request).await {
        Ok((request, _admitted)) => next.run(request).await,
        Err(refusal) => refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_places_back_when_requests_end() {
        let budget = PreAuth::new(PreAuthLimits {
            per_address: 2,
            ..PreAuthLimits::default()
        });
        let a = IpAddr::from([127, 0, 0, 2]);
        let b = IpAddr::from([127, 0, 0, 3]);
        let first = budget.enter(a).unwrap();
        let _second = budget.enter(a).unwrap();
        assert!(budget.enter(a).is_none(), "a third at once is refused");
        assert!(budget.enter(b).is_some(), "another address is not");
        drop(first);
        assert!(budget.enter(a).is_some());
    }
}
