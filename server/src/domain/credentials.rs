//! Secrets handed to callers (API tokens, agent tokens, enrolment codes,
//! sessions): how one is made, how it is kept (its SHA-256 only), and how a
//! bearer token is read from a header value.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random secret, `prefix_` and 64 hex digits.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The token of an `Authorization: Bearer ...` value. The scheme is matched
/// case-insensitively (RFC 9110 section 11.1).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
