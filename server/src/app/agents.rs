//! Enrolling and revoking scan desks, and the names of sites and schemes:
//! the API and the sign-off desk both come here.

use crate::auth;
use crate::domain::{Actor, CloseReason};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::AgentRecord;
use imc_shared::api::EnrollmentCode;

/// Scheme and site names. Letters and digits only, so control and
/// bidirectional formatting characters (neither is alphanumeric) never pass.
pub fn name_ok(field: &str, value: &str) -> ApiResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{field} must be 1-64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// A one-time code that enrols one agent to `site` (the API and the desk's sites page).
pub async fn issue_enrollment_code(
    state: &AppState,
    site: String,
    actor: &Actor,
) -> ApiResult<EnrollmentCode> {
    name_ok("site", &site)?;
    // Short enough to type at a desk, long enough not to be guessed in its lifetime.
    let code = auth::new_secret("enr")[..20].to_owned();
    let ttl = chrono::Duration::from_std(state.config.enrollment_code_ttl)
        .map_err(|e| anyhow::anyhow!("enrollment code ttl: {e}"))?;
    let expires_at =
        (chrono::Utc::now() + ttl).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    state
        .store
        .add_enrollment_code(&site, &auth::hash_secret(&code), &expires_at, actor)
        .await?;
    Ok(EnrollmentCode {
        code,
        site,
        expires_at,
    })
}

/// Revokes an agent and closes its live uplink: the API and the desk both
/// come here.
pub async fn revoke_agent(state: &AppState, id: &str, actor: &Actor) -> ApiResult<AgentRecord> {
    // The revocation is committed before the session is closed: a connection
    // that registers after this point finds the agent revoked.
    let record = state.store.revoke_agent(id, actor).await?;
    let was_connected = state.desks.disconnect(&record.id, CloseReason::Revoked);
    tracing::info!(agent = %record.id, site = %record.site, was_connected, "agent revoked");
    Ok(record)
}
