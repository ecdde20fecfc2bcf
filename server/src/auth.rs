//! Who is calling: bearer tokens for ERP clients, admins and agents.
//!
//! Tokens are 256-bit random values shown once; only their SHA-256 is stored,
//! so a copy of the database does not hand out credentials.

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Actor, Agent, TokenRole};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An authenticated caller of the HTTP API.
#[derive(Debug, Clone)]
pub enum Caller {
    Token {
        id: i64,
        name: String,
        role: TokenRole,
    },
    Agent(Agent),
}

impl Caller {
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Token { name, role, .. } => Actor(format!("{}:{name}", role.as_str())),
            Caller::Agent(agent) => Actor(format!("agent:{}", agent.id)),
        }
    }

    /// ERP clients and admins may work with documents.
    pub fn require_api(&self) -> Result<(), ApiError> {
        match self {
            Caller::Token { .. } => Ok(()),
            Caller::Agent(_) => Err(ApiError::Forbidden("agents may only use the uplink".into())),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Token {
                role: TokenRole::Admin,
                ..
            } => Ok(()),
            _ => Err(ApiError::Forbidden("this call needs an admin token".into())),
        }
    }
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let hash = hash_secret(token);
        if let Some(t) = state.store.api_token_by_hash(&hash).await? {
            return Ok(Caller::Token {
                id: t.id,
                name: t.name,
                role: t.role,
            });
        }
        if let Some(agent) = state.store.agent_by_token_hash(&hash).await? {
            return Ok(Caller::Agent(agent));
        }
        Err(ApiError::Unauthorized)
    }
}
