//! The route × caller matrix: every route of the policy table (the API's and
//! the desk's), called by every kind of caller (anonymous, an unknown token,
//! a token with each scope, an agent, a clerk, sign-off staff, an admin user)
//! through the real router and a real SQLite store. It sits at the
//! composition level: it needs both surfaces, which never import each other.
//!
//! `EXPECTED` is written out separately from the table (`routes::api`,
//! `web::routes`) on purpose: a route added without a rule here fails, and a rule changed in
//! one place only fails too.

use crate::auth::{self, Access};
use crate::config::ServerConfig;
use crate::domain::Role;
use crate::http::router;
use crate::routes::api;
use crate::store::{Actor, NewApiToken};
use crate::web::store::NewUser;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use imc_shared::api::TokenScope;
use std::collections::BTreeSet;
use tower::ServiceExt;

/// (method, path, who may call it): `public`, `agent`, a token scope, or
/// `desk:ROLE` (a desk user with that role or a higher one).
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/", "public"),
    ("GET", "/ui", "public"),
    ("GET", "/ui/", "public"),
    ("GET", "/favicon.ico", "public"),
    ("GET", "/ui/static/{file}", "public"),
    ("GET", "/ui/login", "public"),
    ("POST", "/ui/login", "public"),
    ("POST", "/ui/logout", "desk:clerk"),
    ("GET", "/ui/lang/{code}", "public"),
    ("GET", "/ui/queue", "desk:clerk"),
    ("GET", "/ui/queue/rows", "desk:clerk"),
    ("GET", "/ui/documents/{id}", "desk:clerk"),
    ("POST", "/ui/documents/{id}/sign-off", "desk:signoff"),
    ("POST", "/ui/documents/{id}/reject", "desk:signoff"),
    ("POST", "/ui/documents/{id}/unsign", "desk:signoff"),
    ("GET", "/ui/images/{id}/{kind}", "desk:clerk"),
    ("GET", "/ui/packets", "desk:clerk"),
    ("GET", "/ui/packets/rows", "desk:clerk"),
    ("GET", "/ui/packets/{id}", "desk:clerk"),
    ("GET", "/ui/packets/{id}/search", "desk:clerk"),
    ("POST", "/ui/packets/{id}/attach", "desk:signoff"),
    ("GET", "/ui/packets/{id}/pages/{index}/{kind}", "desk:clerk"),
    ("GET", "/ui/agents", "desk:clerk"),
    ("POST", "/ui/agents/codes", "desk:admin"),
    ("POST", "/ui/agents/{id}/revoke", "desk:admin"),
    ("GET", "/ui/admin", "desk:admin"),
    ("POST", "/ui/admin/schemes", "desk:admin"),
    ("POST", "/ui/admin/settings", "desk:admin"),
    ("POST", "/ui/admin/users", "desk:admin"),
    ("POST", "/ui/admin/users/{name}/disable", "desk:admin"),
    ("POST", "/ui/admin/users/{name}/enable", "desk:admin"),
    ("GET", "/ui/events", "desk:clerk"),
    ("GET", "/api/v1/openapi.json", "public"),
    ("POST", "/api/v1/agents/enroll", "public"),
    ("GET", "/api/v1/agents", "admin"),
    ("POST", "/api/v1/agents/{id}/revoke", "admin"),
    ("GET", "/api/v1/agent/uplink", "agent"),
    ("GET", "/api/v1/agent/documents", "agent"),
    ("GET", "/api/v1/agent/documents/{id}/cover.pdf", "agent"),
    ("POST", "/api/v1/documents", "write"),
    ("GET", "/api/v1/documents", "read"),
    ("POST", "/api/v1/documents/status:query", "status"),
    ("GET", "/api/v1/documents/{id}", "read"),
    ("GET", "/api/v1/documents/{id}/status", "status"),
    ("GET", "/api/v1/documents/{id}/cover.png", "read"),
    ("GET", "/api/v1/documents/{id}/cover.pdf", "read"),
    ("GET", "/api/v1/documents/{id}/images", "read"),
    ("POST", "/api/v1/documents/{id}/images", "write"),
    ("POST", "/api/v1/documents/{id}/sign-off", "decide"),
    ("POST", "/api/v1/documents/{id}/reject", "decide"),
    ("POST", "/api/v1/documents/{id}/unsign", "decide"),
    ("POST", "/api/v1/documents/{id}/cancel", "write"),
    ("GET", "/api/v1/documents/{id}/audit", "read"),
    ("GET", "/api/v1/documents/{id}/webhook-deliveries", "read"),
    ("GET", "/api/v1/images/{id}", "read"),
    ("GET", "/api/v1/packets", "packets"),
    ("POST", "/api/v1/packets/{id}/match", "packets"),
    ("GET", "/api/v1/packets/{id}/pages/{index}", "packets"),
    ("PUT", "/api/v1/webhooks/{source_system}", "webhooks"),
    ("GET", "/api/v1/settings", "admin"),
    ("PUT", "/api/v1/settings", "admin"),
    ("GET", "/api/v1/schemes", "admin"),
    ("GET", "/api/v1/schemes/{name}", "admin"),
    ("PUT", "/api/v1/schemes/{name}", "admin"),
    ("DELETE", "/api/v1/schemes/{name}", "admin"),
    ("POST", "/api/v1/sites/{site}/enrollment-codes", "admin"),
    ("GET", "/api/v1/tokens", "admin"),
    ("POST", "/api/v1/tokens", "admin"),
    ("POST", "/api/v1/tokens/{id}/rotate", "admin"),
    ("POST", "/api/v1/tokens/{id}/revoke", "admin"),
    ("POST", "/api/v1/archive/exports", "admin"),
    ("GET", "/api/v1/archive/exports/{id}", "admin"),
];

fn rule_name(access: Access) -> &'static str {
    match access {
        Access::Public => "public",
        Access::Agent => "agent",
        Access::Scope(scope) => scope.as_str(),
        Access::Desk(Role::Clerk) => "desk:clerk",
        Access::Desk(Role::SignOff) => "desk:signoff",
        Access::Desk(Role::Admin) => "desk:admin",
    }
}

/// The whole policy table, API and desk, with full paths.
fn table() -> Vec<(&'static str, String, Access)> {
    let api = api()
        .served
        .into_iter()
        .map(|(m, p, a)| (m, format!("/api/v1{p}"), a));
    let desk = crate::web::routes()
        .served
        .into_iter()
        .map(|(m, p, a)| (m, p.to_owned(), a));
    api.chain(desk).collect()
}

#[test]
fn every_route_has_the_expected_rule() {
    let table: BTreeSet<(&str, String, &str)> = table()
        .into_iter()
        .map(|(m, p, a)| (m, p, rule_name(a)))
        .collect();
    let expected: BTreeSet<(&str, String, &str)> = EXPECTED
        .iter()
        .map(|(m, p, r)| (*m, (*p).to_owned(), *r))
        .collect();
    let unexpected: Vec<_> = table.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&table).collect();
    assert!(
        unexpected.is_empty(),
        "routes whose rule is not in EXPECTED (add it there, deliberately): {unexpected:?}"
    );
    assert!(
        missing.is_empty(),
        "EXPECTED rules with no such route: {missing:?}"
    );
}

/// A kind of caller and the credential it sends.
struct CallerKind {
    label: String,
    bearer: Option<String>,
    /// A desk user: a fresh session is made for each request (one route logs out).
    user_id: Option<i64>,
    /// May it call a route with this rule (on the desk when `true`)? The
    /// specification, written out.
    allowed: fn(&str, &str, bool) -> bool,
    /// The token's scope or the desk user's role.
    scope: &'static str,
}

fn anonymous_may(rule: &str, _: &str, _: bool) -> bool {
    rule == "public"
}

fn agent_may(rule: &str, _: &str, _: bool) -> bool {
    rule == "public" || rule == "agent"
}

fn token_may(rule: &str, scope: &str, _: bool) -> bool {
    rule == "public"
        || rule == scope
        || scope == "admin" && rule != "agent" && !rule.starts_with("desk:")
        || scope == "read" && rule == "status"
}

/// Desk users: each role includes the ones below it; no API rule is theirs.
fn staff_may(rule: &str, role: &str, _: bool) -> bool {
    let rank = |r: &str| ["clerk", "signoff", "admin"].iter().position(|x| *x == r);
    rule == "public"
        || rule
            .strip_prefix("desk:")
            .is_some_and(|needed| rank(role) >= rank(needed))
}

/// The API refuses a token it does not know even on public routes; the desk
/// reads no bearer tokens, so there it is anonymous.
fn bad_token_may(rule: &str, _: &str, desk: bool) -> bool {
    desk && rule == "public"
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "999999")
        .replace(
            "/packets/999999",
            "/packets/00000000-0000-4000-8000-000000000000",
        )
        .replace("{index}", "0")
        .replace("{kind}", "thumb")
        .replace("{file}", "ui.css")
        .replace("{code}", "en")
        .replace("{source_system}", "ERP")
        .replace("{name}", "policy-test")
        .replace("{site}", "site-a")
}

#[tokio::test]
async fn route_by_caller_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let state = crate::open(ServerConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let mut callers = vec![
        CallerKind {
            label: "anonymous".into(),
            bearer: None,
            user_id: None,
            allowed: anonymous_may,
            scope: "",
        },
        CallerKind {
            label: "unknown token".into(),
            bearer: Some("imc_unknown".into()),
            user_id: None,
            allowed: bad_token_may,
            scope: "",
        },
    ];
    for scope in TokenScope::ALL {
        let secret = auth::new_secret("imc");
        state
            .store
            .add_api_token(
                NewApiToken {
                    name: format!("only-{}", scope.as_str()),
                    scopes: vec![scope],
                    source_systems: None,
                    token_hash: auth::hash_secret(&secret),
                },
                &Actor("test".into()),
            )
            .await
            .unwrap();
        callers.push(CallerKind {
            label: format!("token with scope {}", scope.as_str()),
            bearer: Some(secret),
            user_id: None,
            allowed: token_may,
            scope: scope.as_str(),
        });
    }
    for role in [Role::Clerk, Role::SignOff, Role::Admin] {
        let user = state
            .web
            .store
            .add_user(
                NewUser {
                    name: format!("user-{}", role.as_str()),
                    role,
                    site: (role == Role::Clerk).then(|| "site-a".to_owned()),
                    password_hash: "not a login".into(),
                },
                &Actor("test".into()),
            )
            .await
            .unwrap();
        callers.push(CallerKind {
            label: format!("desk user with role {}", role.as_str()),
            bearer: None,
            user_id: Some(user.id),
            allowed: staff_may,
            scope: role.as_str(),
        });
    }
    let code = "enr_policy_test";
    state
        .store
        .add_enrollment_code(
            "site-a",
            &auth::hash_secret(code),
            "2999-01-01T00:00:00.000Z",
            &Actor("test".into()),
        )
        .await
        .unwrap();
    let agent_secret = auth::new_secret("agt");
    state
        .store
        .enroll_agent(
            &auth::hash_secret(code),
            "agent-1",
            "desk",
            &auth::hash_secret(&agent_secret),
            None,
        )
        .await
        .unwrap();
    callers.push(CallerKind {
        label: "agent".into(),
        bearer: Some(agent_secret),
        user_id: None,
        allowed: agent_may,
        scope: "",
    });

    let app = router(state.clone());
    let mut wrong = Vec::new();
    for (method, path, _) in table() {
        // The rule as specified here, not as registered: enforcement is checked on its own.
        let Some(&(_, _, rule)) = EXPECTED.iter().find(|(m, p, _)| *m == method && *p == path)
        else {
            wrong.push(format!("{method} {path}: no rule in EXPECTED"));
            continue;
        };
        let desk = !path.starts_with("/api/");
        for caller in &callers {
            let mut request = Request::builder()
                .method(method)
                .uri(concrete(&path))
                .header("content-type", "application/json");
            if let Some(token) = &caller.bearer {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            // The CSRF token passes the desk's guard, so the rule alone decides;
            // the login form's double-submit cookie carries the same value.
            let (session, csrf) = match caller.user_id {
                Some(user_id) => {
                    let (secret, csrf) = (auth::new_secret("ses"), auth::new_secret("csrf"));
                    state
                        .web
                        .store
                        .create_session(
                            &auth::hash_secret(&secret),
                            user_id,
                            &csrf,
                            "2999-01-01T00:00:00.000Z",
                        )
                        .await
                        .unwrap();
                    (format!("imc_session={secret}; "), csrf)
                }
                None => (String::new(), "csrf_anonymous".to_owned()),
            };
            request = request
                .header("cookie", format!("{session}imc_login_csrf={csrf}"))
                .header("x-csrf-token", &csrf);
            let body = if method == "GET" {
                Body::empty()
            } else {
                Body::from("{}")
            };
            let response = app
                .clone()
                .oneshot(request.body(body).unwrap())
                .await
                .unwrap();
            let status = response.status();
            // The desk sends the anonymous to the login form; the API answers 401.
            let to_login = response
                .headers()
                .get("location")
                .is_some_and(|l| l == "/ui/login");
            let refused = status == StatusCode::UNAUTHORIZED
                || status == StatusCode::FORBIDDEN
                || (desk && status.is_redirection() && to_login);
            let allowed = (caller.allowed)(rule, caller.scope, desk);
            if allowed == refused {
                wrong.push(format!(
                    "{method} {path} by {}: expected {}, got {status}",
                    caller.label,
                    if allowed { "allowed" } else { "refused" }
                ));
            }
            if refused && !desk {
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
