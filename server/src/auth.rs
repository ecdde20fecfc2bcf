//! Who is calling, and what each kind of caller may do.
//!
//! Tokens are 256-bit random values shown once; only their SHA-256 is stored,
//! so a copy of the database does not hand out credentials.
//!
//! Authentication happens once per request: [`authenticate`] (bearer tokens,
//! on `/api/v1`) or the desk's session guard (`web::session`, cookies, on
//! `/ui`). Authorisation happens once per route, from the [`Access`] rule the
//! route was registered with (`policy::PolicyRoutes`), by one function for
//! both surfaces ([`Principal::may`]). Handlers only add the checks that
//! depend on the data: a token's source systems, a clerk's site.

use crate::domain::{Role, User};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Actor, Agent, ApiToken};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imc_shared::api::TokenScope;

pub use crate::domain::credentials::{bearer_token, hash_secret, new_secret};

/// Who may call a route. Every route names exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (the API description, agent enrolment).
    Public,
    /// An enrolled agent (the uplink).
    Agent,
    /// An API token holding this scope; `admin` tokens hold every scope.
    Scope(TokenScope),
    /// A desk user (session cookie) with this role or a higher one:
    /// clerk < sign-off staff < admin.
    Desk(Role),
}

/// Which surface a route belongs to: it decides how a refusal looks (a JSON
/// error for the API, a login redirect or an error page for the desk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Api,
    Desk,
}

/// The kinds of caller, for authorisation. The exhaustive match in
/// [`Principal::may`] makes every rule decide about every kind.
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    Agent(Agent),
    Token(ApiToken),
    /// A logged-in desk user: clerk, sign-off staff or admin.
    Staff(User),
}

impl Principal {
    /// The one authorisation rule.
    pub fn may(&self, access: Access) -> bool {
        match (self, access) {
            (_, Access::Public) => true,
            (Principal::Agent(_), Access::Agent) => true,
            (Principal::Token(token), Access::Scope(scope)) => {
                token.scopes.contains(&scope)
                    || token.scopes.contains(&TokenScope::Admin)
                    // Reading a document includes reading its status.
                    || (scope == TokenScope::Status && token.scopes.contains(&TokenScope::Read))
            }
            (Principal::Staff(user), Access::Desk(needed)) => user.role.includes(needed),
            (Principal::Anonymous, _)
            | (Principal::Agent(_), _)
            | (Principal::Token(_), _)
            | (Principal::Staff(_), _) => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::Agent(agent) => format!("agent:{}", agent.id),
            Principal::Token(token) => format!("token:{}:{}", token.id, token.name),
            Principal::Staff(user) => format!("user:{}:{}", user.name, user.role.as_str()),
        }
    }
}

/// An authenticated caller of a route that needs credentials.
#[derive(Debug, Clone)]
pub enum Caller {
    Token(ApiToken),
    Agent(Agent),
}

impl Caller {
    pub fn actor(&self) -> Actor {
        match self {
            // `admin:NAME` / `api:NAME`, as audit rows have always named tokens.
            Caller::Token(token) => {
                let kind = if token.scopes.contains(&TokenScope::Admin) {
                    "admin"
                } else {
                    "api"
                };
                Actor(format!("{kind}:{}", token.name))
            }
            Caller::Agent(agent) => Actor(format!("agent:{}", agent.id)),
        }
    }

    /// A token limited to some source systems may touch only their documents.
    pub fn require_source(&self, source_system: &str) -> Result<(), ApiError> {
        match self {
            Caller::Token(ApiToken {
                source_systems: Some(allowed),
                ..
            }) if !allowed.iter().any(|s| s == source_system) => Err(ApiError::Forbidden(format!(
                "this token may not use source system {source_system:?}"
            ))),
            Caller::Token(_) => Ok(()),
            Caller::Agent(_) => Err(ApiError::Forbidden("agents may only use the uplink".into())),
        }
    }

    /// Whether the caller may see documents of `source_system`.
    pub fn sees_source(&self, source_system: &str) -> bool {
        self.require_source(source_system).is_ok()
    }
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_token(
        parts
            .headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?,
    )
}

fn peer(request: &Request) -> String {
    crate::net::peer_ip(request).map_or_else(|| "unknown".into(), |ip| ip.to_string())
}

/// Records an auth failure; the answer to the caller does not wait on it failing.
async fn audit_failure(state: &AppState, actor: &str, what: String) {
    if let Err(e) = state
        .store
        .audit_event(&Actor(actor.to_owned()), "auth.failure", &what)
        .await
    {
        tracing::error!(error = %e, "could not audit an auth failure");
    }
    tracing::warn!(actor, what, "auth failure");
}

/// A failure by a caller nobody identified: its own audit row once a
/// minute per address and cause, counted otherwise (`failure_tally`), so a
/// flood cannot grow the audit trail without bound.
pub async fn audit_anonymous_failure(
    state: &AppState,
    address: Option<std::net::IpAddr>,
    cause: &'static str,
    what: String,
) {
    let noted = state
        .failure_tally
        .note(address, cause, crate::failure_tally::current_minute());
    if let Some(summary) = noted.summary {
        audit_failure(state, &summary.actor(), summary.what()).await;
    }
    let actor = address.map_or_else(|| "ip:unknown".to_owned(), |ip| format!("ip:{ip}"));
    if noted.itemise {
        audit_failure(state, &actor, what).await;
    } else {
        tracing::debug!(actor, what, "auth failure (counted)");
    }
}

/// Writes the counts of anonymous failures of minutes that are over; once a
/// minute while the server runs, and once more as it stops.
pub async fn write_failure_counts(state: &AppState, before_minute: u64) {
    for summary in state.failure_tally.due(before_minute) {
        audit_failure(state, &summary.actor(), summary.what()).await;
    }
}

/// Audits the refusal [`authorize`] left on `response`, if any. Called by
/// each surface's authentication middleware, which has the store.
pub async fn audit_refusal(state: &AppState, response: &mut Response) {
    if let Some(refusal) = response.extensions_mut().remove::<Refusal>() {
        match refusal.anonymous {
            Some(address) => {
                audit_anonymous_failure(state, address, ANONYMOUS_REFUSED, refusal.what).await;
            }
            None => audit_failure(state, &refusal.actor, refusal.what).await,
        }
    }
}

const ANONYMOUS_REFUSED: &str = "a route that needs credentials, called without any";
const UNKNOWN_TOKEN: &str = "an unknown, revoked or expired token";

/// Resolves the bearer token (if any) into a [`Principal`] for the route's
/// [`authorize`] check. A token that matches nothing is refused here.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = {
        let (parts, body) = request.into_parts();
        let token = bearer(&parts).map(hash_secret);
        request = Request::from_parts(parts, body);
        match token {
            None => Principal::Anonymous,
            Some(hash) => match lookup(&state, &hash).await {
                Ok(Some(Principal::Agent(agent))) if state.client_ca.is_some() => {
                    if let Err(refused) = require_agent_certificate(&agent, &request) {
                        let actor = format!("agent:{} ip:{}", agent.id, peer(&request));
                        let what = format!(
                            "{} {} refused: {refused}",
                            request.method(),
                            request.uri().path()
                        );
                        audit_failure(&state, &actor, what).await;
                        return ApiError::Forbidden(refused).into_response();
                    }
                    Principal::Agent(agent)
                }
                Ok(Some(principal)) => principal,
                Ok(None) => {
                    let what = format!(
                        "unknown, revoked or expired token on {} {}",
                        request.method(),
                        request.uri().path()
                    );
                    let address = crate::net::peer_ip(&request);
                    audit_anonymous_failure(&state, address, UNKNOWN_TOKEN, what).await;
                    return ApiError::Unauthorized.into_response();
                }
                Err(e) => return e.into_response(),
            },
        }
    };
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    audit_refusal(&state, &mut response).await;
    response
}

/// Under mutual TLS an agent's token works only on a connection that
/// presented that agent's certificate (verified against the client CA by
/// the TLS layer): a stolen token alone is not enough.
fn require_agent_certificate(agent: &Agent, request: &Request) -> Result<(), String> {
    use crate::net::client_certs::{PeerCertificate, agent_of};
    match request
        .extensions()
        .get::<PeerCertificate>()
        .map(|c| agent_of(&c.0))
    {
        Some(Some(named)) if named == agent.id => Ok(()),
        Some(_) => Err("the client certificate belongs to another agent".into()),
        None => Err(
            "this server requires the agent's client certificate (mutual TLS); \
                     enrol the desk again to get one"
                .into(),
        ),
    }
}

async fn lookup(state: &AppState, hash: &str) -> Result<Option<Principal>, ApiError> {
    if let Some(token) = state.store.api_token_by_hash(hash).await? {
        return Ok(Some(Principal::Token(token)));
    }
    Ok(state
        .store
        .agent_by_token_hash(hash)
        .await?
        .map(Principal::Agent))
}

/// A refusal by [`authorize`], audited by [`authenticate`] (which has the store).
#[derive(Debug, Clone)]
struct Refusal {
    actor: String,
    what: String,
    /// The caller had no credentials: counted per address (`Some(None)`
    /// when the address is unknown).
    anonymous: Option<Option<std::net::IpAddr>>,
}

/// How a surface answers a refusal, given whether the caller was anonymous
/// and what the route needs. The desk's is `web::error::desk_refusal`.
pub type Refuse = fn(anonymous: bool, needed: &str) -> Response;

/// The API's refusals: JSON errors.
pub fn api_refusal(anonymous: bool, needed: &str) -> Response {
    if anonymous {
        ApiError::Unauthorized.into_response()
    } else {
        ApiError::Forbidden(format!("this call needs {needed}")).into_response()
    }
}

/// Lets the request through when its principal may use `access`; otherwise
/// answers with `refuse` and leaves a [`Refusal`] to audit.
pub async fn authorize(refuse: Refuse, access: Access, request: Request, next: Next) -> Response {
    let principal = request
        .extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or(Principal::Anonymous);
    if principal.may(access) {
        return next.run(request).await;
    }
    let needed = match access {
        Access::Public => "nothing".to_owned(),
        Access::Agent => "an agent token".to_owned(),
        Access::Scope(scope) => format!("a token with scope {}", scope.as_str()),
        Access::Desk(role) => format!("a desk user with role {} or higher", role.as_str()),
    };
    let anonymous = matches!(principal, Principal::Anonymous);
    let refusal = Refusal {
        actor: format!("{} ip:{}", principal.describe(), peer(&request)),
        what: format!(
            "{} {} refused: needs {needed}",
            request.method(),
            request.uri().path()
        ),
        anonymous: anonymous.then(|| crate::net::peer_ip(&request)),
    };
    let mut response = refuse(anonymous, &needed);
    response.extensions_mut().insert(refusal);
    response
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(Principal::Token(token)) => Ok(Caller::Token(token.clone())),
            Some(Principal::Agent(agent)) => Ok(Caller::Agent(agent.clone())),
            Some(Principal::Anonymous | Principal::Staff(_)) | None => Err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod bearer_tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        assert_eq!(bearer_token("Bearer imc_abc"), Some("imc_abc"));
        assert_eq!(bearer_token("bearer imc_abc"), Some("imc_abc"));
        assert_eq!(bearer_token("BEARER  imc_abc "), Some("imc_abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerimc_abc"), None);
    }
}
