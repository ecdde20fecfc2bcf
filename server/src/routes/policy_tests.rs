//! The route × caller matrix: every route of the policy table, called by
//! every kind of caller through the real router and a real SQLite store.
//!
//! `EXPECTED` is written out separately from the table in `mod.rs` on
//! purpose: a route added without a rule here fails, and a rule changed in
//! one place only fails too.

use super::{api, router};
use crate::auth::{self, Access};
use crate::config::ServerConfig;
use crate::store::{Actor, NewApiToken};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use imc_shared::api::TokenScope;
use std::collections::BTreeSet;
use tower::ServiceExt;

/// (method, path, who may call it): `public`, `agent`, or a token scope.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/openapi.json", "public"),
    ("POST", "/agents/enroll", "public"),
    ("GET", "/agents", "admin"),
    ("POST", "/agents/{id}/revoke", "admin"),
    ("GET", "/agent/uplink", "agent"),
    ("POST", "/documents", "write"),
    ("GET", "/documents", "read"),
    ("POST", "/documents/status:query", "status"),
    ("GET", "/documents/{id}", "read"),
    ("GET", "/documents/{id}/status", "status"),
    ("GET", "/documents/{id}/cover.png", "read"),
    ("GET", "/documents/{id}/cover.pdf", "read"),
    ("GET", "/documents/{id}/images", "read"),
    ("POST", "/documents/{id}/images", "write"),
    ("POST", "/documents/{id}/sign-off", "decide"),
    ("POST", "/documents/{id}/reject", "decide"),
    ("POST", "/documents/{id}/unsign", "decide"),
    ("POST", "/documents/{id}/cancel", "write"),
    ("GET", "/documents/{id}/audit", "read"),
    ("GET", "/documents/{id}/webhook-deliveries", "read"),
    ("GET", "/images/{id}", "read"),
    ("GET", "/packets", "packets"),
    ("POST", "/packets/{id}/match", "packets"),
    ("GET", "/packets/{id}/pages/{index}", "packets"),
    ("PUT", "/webhooks/{source_system}", "webhooks"),
    ("GET", "/settings", "admin"),
    ("PUT", "/settings", "admin"),
    ("PUT", "/schemes/{name}", "admin"),
    ("POST", "/sites/{site}/enrollment-codes", "admin"),
    ("GET", "/tokens", "admin"),
    ("POST", "/tokens", "admin"),
    ("POST", "/tokens/{id}/rotate", "admin"),
    ("POST", "/tokens/{id}/revoke", "admin"),
];

fn rule_name(access: Access) -> &'static str {
    match access {
        Access::Public => "public",
        Access::Agent => "agent",
        Access::Scope(scope) => scope.as_str(),
    }
}

#[test]
fn every_route_has_the_expected_rule() {
    let table: BTreeSet<(&str, &str, &str)> = api()
        .served
        .iter()
        .map(|(m, p, a)| (*m, *p, rule_name(*a)))
        .collect();
    let expected: BTreeSet<(&str, &str, &str)> = EXPECTED.iter().copied().collect();
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

/// A kind of caller and the bearer token it sends.
struct CallerKind {
    label: String,
    bearer: Option<String>,
    /// May it call a route with this rule? The specification, written out.
    allowed: fn(&str, &str) -> bool,
    scope: &'static str,
}

fn anonymous_may(rule: &str, _: &str) -> bool {
    rule == "public"
}

fn agent_may(rule: &str, _: &str) -> bool {
    rule == "public" || rule == "agent"
}

fn token_may(rule: &str, scope: &str) -> bool {
    rule == "public"
        || rule == scope
        || scope == "admin" && rule != "agent"
        || scope == "read" && rule == "status"
}

fn bad_token_may(_: &str, _: &str) -> bool {
    false
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "999999")
        .replace("{index}", "0")
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
            allowed: anonymous_may,
            scope: "",
        },
        CallerKind {
            label: "unknown token".into(),
            bearer: Some("imc_unknown".into()),
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
            allowed: token_may,
            scope: scope.as_str(),
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
        allowed: agent_may,
        scope: "",
    });

    let app = router(state);
    let mut wrong = Vec::new();
    for (method, path, _) in api().served {
        // The rule as specified here, not as registered: enforcement is checked on its own.
        let Some(&(_, _, rule)) = EXPECTED.iter().find(|(m, p, _)| *m == method && *p == path)
        else {
            wrong.push(format!("{method} {path}: no rule in EXPECTED"));
            continue;
        };
        for caller in &callers {
            let mut request = Request::builder()
                .method(method)
                .uri(format!("/api/v1{}", concrete(path)))
                .header("content-type", "application/json");
            if let Some(token) = &caller.bearer {
                request = request.header("authorization", format!("Bearer {token}"));
            }
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
            let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            let allowed = (caller.allowed)(rule, caller.scope);
            if allowed == refused {
                wrong.push(format!(
                    "{method} {path} by {}: expected {}, got {status}",
                    caller.label,
                    if allowed { "allowed" } else { "refused" }
                ));
            }
            if refused {
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
