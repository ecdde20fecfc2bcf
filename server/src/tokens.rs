//! API tokens: the rules shared by `imc-server token ...` and the admin API.

use crate::auth;
use crate::store::{Actor, ApiToken, NewApiToken, Store, StoreError};
use imc_shared::api::{CreateToken, TokenScope, TokenView};
use imc_shared::text;
use std::time::Duration;

/// How long a rotated-out secret keeps working unless told otherwise.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Longer overlaps would make rotation meaningless.
pub const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Letters and digits only, so control and bidirectional formatting
/// characters (neither is alphanumeric) never pass.
fn name_ok(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Stored space-separated, so a source system may not contain spaces.
fn source_ok(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && !value
            .chars()
            .any(|c| c.is_whitespace() || text::is_refused(c))
}

/// Checks `request` and stores a new token; returns it and its secret (shown once).
pub async fn create(
    store: &dyn Store,
    request: CreateToken,
    actor: &Actor,
) -> Result<(ApiToken, String), TokenError> {
    let name = request.name.trim().to_owned();
    if !name_ok(&name) {
        return Err(TokenError::Invalid {
            field: "name",
            message: "name must be 1-64 letters, digits, '-', '_' or '.'".into(),
        });
    }
    let mut scopes = request.scopes;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(TokenError::Invalid {
            field: "scopes",
            message: "give at least one scope".into(),
        });
    }
    if let Some(sources) = &request.source_systems {
        if sources.is_empty() {
            return Err(TokenError::Invalid {
                field: "source_systems",
                message: "leave source_systems out for all; an empty list allows none".into(),
            });
        }
        if let Some(bad) = sources.iter().find(|s| !source_ok(s)) {
            return Err(TokenError::Invalid {
                field: "source_systems",
                message: format!(
                    "source system {bad:?} must be 1-128 characters without spaces, \
                     control or bidirectional formatting characters"
                ),
            });
        }
    }
    let secret = auth::new_secret("imc");
    let token = store
        .add_api_token(
            NewApiToken {
                name,
                scopes,
                source_systems: request.source_systems,
                token_hash: auth::hash_secret(&secret),
            },
            actor,
        )
        .await?;
    Ok((token, secret))
}

/// A new secret for token `id`; the old one works for `overlap` more.
pub async fn rotate(
    store: &dyn Store,
    id: i64,
    overlap: Duration,
    actor: &Actor,
) -> Result<(ApiToken, String), StoreError> {
    let overlap = chrono::Duration::from_std(overlap.min(MAX_OVERLAP))
        .map_err(|e| StoreError::Task(format!("overlap: {e}")))?;
    let until = (chrono::Utc::now() + overlap).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let secret = auth::new_secret("imc");
    let token = store
        .rotate_api_token(id, &auth::hash_secret(&secret), &until, actor)
        .await?;
    Ok((token, secret))
}

pub fn view(token: ApiToken) -> TokenView {
    TokenView {
        id: token.id,
        name: token.name,
        scopes: token.scopes,
        source_systems: token.source_systems,
        created_at: token.created_at,
        expires_at: token.expires_at,
        revoked_at: token.revoked_at,
    }
}

/// `status,read` → scopes, for the command line.
pub fn parse_scopes(text: &str) -> Result<Vec<TokenScope>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            TokenScope::parse(s).ok_or_else(|| {
                let known: Vec<&str> = TokenScope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope {s:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_and_source_systems_refuse_controls_and_bidi() {
        assert!(name_ok("erp-sync_1.0"));
        assert!(source_ok("SAP-FI"));
        for bad in [
            "a\u{0}",
            "a\u{7}",
            "a\u{85}",
            "a\u{202e}b",
            "a\u{2066}",
            "a\u{200f}",
            "a\u{61c}",
            "",
        ] {
            assert!(!name_ok(bad), "{bad:?}");
            assert!(!source_ok(bad), "{bad:?}");
        }
    }
}
