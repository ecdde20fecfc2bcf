//! Administration: image schemes, enrollment codes, agent enrolment and revocation.

use super::extract::{ApiJson, ApiPath};
use crate::app::agents::{self, issue_enrollment_code, name_ok};
use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{AgentRecord, Scheme, StoreError};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use imc_shared::api::{
    AgentList, AgentView, EnrollRequest, EnrollResponse, EnrollmentCode, ErrorBody, PutScheme,
    SchemeView,
};
use imc_shared::text::check_identifier;

#[utoipa::path(
    put, path = "/api/v1/schemes/{name}", tag = "admin",
    params(("name" = String, Path, description = "Scheme name: 1-64 letters, digits, '-', '_' or '.'")),
    request_body = PutScheme,
    responses(
        (status = 200, description = "Created or replaced; applies to documents created from now on", body = SchemeView),
        (status = 400, description = "Bad name, an unknown mode, or a rule IMC does not know", body = ErrorBody),
    ),
)]
pub async fn put_scheme(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PutScheme>,
) -> ApiResult<Json<SchemeView>> {
    name_ok("name", &name)?;
    // A scheme applies to documents whose org and doc_type equal these.
    for (field, value) in [("org", &body.org), ("doc_type", &body.doc_type)] {
        if let Some(value) = value {
            check_identifier(field, value)?;
        }
    }
    // Rules IMC does not know would do nothing: refused rather than kept.
    crate::domain::scheme_rules::SchemeRules::parse(body.rules.as_ref())
        .map_err(|e| ApiError::field("rules", e.0))?;
    let scheme = Scheme {
        name,
        org: body.org.filter(|o| !o.trim().is_empty()),
        doc_type: body.doc_type.filter(|t| !t.trim().is_empty()),
        mode: body.mode,
        rules: body.rules,
    };
    let scheme = state.store.put_scheme(scheme, &caller.actor()).await?;
    Ok(Json(scheme_view(scheme)))
}

fn scheme_view(scheme: Scheme) -> SchemeView {
    SchemeView {
        name: scheme.name,
        org: scheme.org,
        doc_type: scheme.doc_type,
        mode: scheme.mode,
        rules: scheme.rules,
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SchemeList {
    schemes: Vec<SchemeView>,
}

#[utoipa::path(
    get, path = "/api/v1/schemes", tag = "admin",
    responses((status = 200, description = "Every image scheme, by name", body = SchemeList)),
)]
pub async fn schemes(State(state): State<AppState>) -> ApiResult<Json<SchemeList>> {
    let schemes = state.store.schemes().await?;
    Ok(Json(SchemeList {
        schemes: schemes.into_iter().map(scheme_view).collect(),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/schemes/{name}", tag = "admin",
    params(("name" = String, Path, description = "Scheme name")),
    responses(
        (status = 200, description = "The scheme", body = SchemeView),
        (status = 404, description = "No scheme of that name", body = ErrorBody),
    ),
)]
pub async fn get_scheme(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<SchemeView>> {
    let scheme = state
        .store
        .schemes()
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("scheme {name}")))?;
    Ok(Json(scheme_view(scheme)))
}

#[utoipa::path(
    delete, path = "/api/v1/schemes/{name}", tag = "admin",
    params(("name" = String, Path, description = "Scheme name")),
    responses(
        (status = 204, description = "Deleted; documents keep the mode they were created with"),
        (status = 404, description = "No scheme of that name", body = ErrorBody),
    ),
)]
pub async fn delete_scheme(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    match state.store.delete_scheme(&name, &caller.actor()).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound(format!("scheme {name}"))),
    }
}

#[utoipa::path(
    post, path = "/api/v1/sites/{site}/enrollment-codes", tag = "agents",
    params(("site" = String, Path, description = "Site name: 1-64 letters, digits, '-', '_' or '.'")),
    responses(
        (status = 201, description = "A one-time code for `imc-agent enroll`", body = EnrollmentCode),
        (status = 400, description = "Bad site name", body = ErrorBody),
    ),
)]
pub async fn enrollment_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<EnrollmentCode>)> {
    Ok((
        StatusCode::CREATED,
        Json(issue_enrollment_code(&state, site, &caller.actor()).await?),
    ))
}

const BAD_ENROLMENT_CODE: &str = "enrolment with an unknown, used or expired code";

/// The one call an agent makes without a token: the code is its credential.
#[utoipa::path(
    post, path = "/api/v1/agents/enroll", tag = "agents",
    security(()),
    request_body = EnrollRequest,
    responses(
        (status = 200, description = "The agent's id and its token for the uplink", body = EnrollResponse),
        (status = 400, description = "Bad name, or (mutual TLS) a missing or bad certificate request", body = ErrorBody),
        (status = 403, description = "The code is unknown, already used or expired", body = ErrorBody),
    ),
)]
pub async fn enroll(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> ApiResult<Json<EnrollResponse>> {
    let name = body.name.trim();
    check_identifier("name", name)?;
    // Shown on the desk's agents page next to the name.
    if let Some(version) = &body.agent_version {
        check_identifier("agent_version", version)?;
    }
    if name.is_empty() || name.chars().count() > 128 {
        return Err(ApiError::field("name", "name must be 1-128 characters"));
    }
    let agent_id = uuid::Uuid::new_v4().to_string();
    // Under mutual TLS the desk's certificate is signed before the code is
    // spent, so a bad request leaves the code usable.
    let client_cert = match (&state.client_ca, &body.csr) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(ApiError::field(
                "csr",
                "this server uses mutual TLS: the desk must send a certificate request \
                 (use an imc-agent that supports it)",
            ));
        }
        (Some(ca), Some(csr)) => Some(
            ca.sign_agent_csr(csr, &agent_id)
                .map_err(|e| ApiError::field("csr", format!("{e:#}")))?,
        ),
    };
    let token = auth::new_secret("agt");
    let agent = state
        .store
        .enroll_agent(
            &auth::hash_secret(body.code.trim()),
            &agent_id,
            name,
            &auth::hash_secret(&token),
            body.agent_version.as_deref(),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => {
                ApiError::Forbidden("enrollment code is unknown, already used or expired".into())
            }
            other => other.into(),
        });
    let agent = match agent {
        Ok(agent) => agent,
        Err(e) => {
            if matches!(e, ApiError::Forbidden(_)) {
                let address = peer.map(|p| p.0.0.ip());
                let what = format!("enrolment refused for {name:?}: code unknown, used or expired");
                auth::audit_anonymous_failure(&state, address, BAD_ENROLMENT_CODE, what).await;
            }
            return Err(e);
        }
    };
    tracing::info!(agent = %agent.id, site = %agent.site, name = %agent.name, "agent enrolled");
    let cover_keys = state.cover_keys.current(&*state.store).await?;
    Ok(Json(EnrollResponse {
        agent_id: agent.id,
        site: agent.site,
        token,
        client_cert,
        cover_keys: cover_keys.published.clone(),
    }))
}

fn agent_view(state: &AppState, a: AgentRecord) -> AgentView {
    AgentView {
        connected: state.desks.is_connected(&a.id),
        id: a.id,
        site: a.site,
        name: a.name,
        version: a.version,
        enrolled_at: a.enrolled_at,
        last_seen_at: a.last_seen_at,
        revoked_at: a.revoked_at,
        queue_pages: a.queue_pages,
        queue_bytes: a.queue_bytes,
        quarantined: a.quarantined,
    }
}

#[utoipa::path(
    get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, description = "Every enrolled agent, revoked ones included", body = AgentList)),
)]
pub async fn agents(State(state): State<AppState>) -> ApiResult<Json<AgentList>> {
    let agents = state.store.agents().await?;
    Ok(Json(AgentList {
        agents: agents.into_iter().map(|a| agent_view(&state, a)).collect(),
    }))
}

/// Revokes an agent: its token is refused from now on and its open uplink is
/// closed at once. Pages it already delivered stay.
#[utoipa::path(
    post, path = "/api/v1/agents/{id}/revoke", tag = "agents",
    params(("id" = String, Path, description = "The agent's id from enrolment")),
    responses(
        (status = 200, description = "Revoked (revoking again changes nothing)", body = AgentView),
        (status = 404, description = "No such agent", body = ErrorBody),
    ),
)]
pub async fn revoke_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AgentView>> {
    let record = agents::revoke_agent(&state, &id, &caller.actor()).await?;
    Ok(Json(agent_view(&state, record)))
}
