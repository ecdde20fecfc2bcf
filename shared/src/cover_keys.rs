//! The public halves of the server's cover signing keys, and checking a
//! cover QR's signature against them offline, at the desk.
//!
//! The server signs `IMC1|<code>|<count>` with an Ed25519 key (see
//! [`crate::cover_qr`]); a desk learns the public keys at enrolment and on
//! every connect and keeps them, so it can tell a forged or altered cover
//! while the server is out of reach. A key stays in the list after a
//! rotation: covers printed with it stay valid. Pure: no I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// The length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// The length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// One public cover key, as the server publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverKey {
    /// [`key_id`] of the key: what a cover QR names.
    pub id: String,
    /// The 32-byte Ed25519 public key, base64.
    pub public_key: String,
}

impl CoverKey {
    pub fn new(public_key: &[u8]) -> CoverKey {
        CoverKey {
            id: key_id(public_key),
            public_key: B64.encode(public_key),
        }
    }
}

/// A key's name in a QR: the first 4 bytes of its SHA-256, in hex.
pub fn key_id(public_key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keys a desk checks cover signatures with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverKeys {
    keys: Vec<(String, Vec<u8>)>,
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "signed by key {0}, which this desk does not know (connect it to the server to learn newer keys)"
    )]
    UnknownKey(String),
    #[error("the signature is not {SIGNATURE_LEN} bytes of base64")]
    Malformed,
    #[error("the signature does not match the code and count (forged or altered)")]
    Mismatch,
}

impl CoverKeys {
    /// Keeps the well-formed keys, and says which were not.
    pub fn new(published: &[CoverKey]) -> (CoverKeys, Vec<String>) {
        let mut keys = Vec::new();
        let mut bad = Vec::new();
        for key in published {
            match B64.decode(&key.public_key) {
                Ok(bytes) if bytes.len() == PUBLIC_KEY_LEN && key_id(&bytes) == key.id => {
                    keys.push((key.id.clone(), bytes))
                }
                _ => bad.push(format!(
                    "cover key {:?} is not a 32-byte key matching its id",
                    key.id
                )),
            }
        }
        (CoverKeys { keys }, bad)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Checks `signature` (base64url, no padding) over `message` by the key `key_id`.
    pub fn verify(
        &self,
        key_id: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        let Some((_, public)) = self.keys.iter().find(|(id, _)| id == key_id) else {
            let shown: String = key_id.chars().take(16).collect();
            return Err(SignatureError::UnknownKey(shown));
        };
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .filter(|s| s.len() == SIGNATURE_LEN)
            .ok_or(SignatureError::Malformed)?;
        UnparsedPublicKey::new(&ED25519, public)
            .verify(message, &signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn pair(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    fn sign(pair: &Ed25519KeyPair, message: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.sign(message))
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_and_message() {
        let (a, b) = (pair(1), pair(2));
        let (keys, bad) = CoverKeys::new(&[
            CoverKey::new(a.public_key().as_ref()),
            CoverKey::new(b.public_key().as_ref()),
        ]);
        assert!(bad.is_empty());
        let a_id = key_id(a.public_key().as_ref());
        let sig = sign(&a, b"IMC1|IMC0123456789A|3");
        assert_eq!(keys.verify(&a_id, b"IMC1|IMC0123456789A|3", &sig), Ok(()));
        assert_eq!(
            keys.verify(&a_id, b"IMC1|IMC0123456789A|4", &sig),
            Err(SignatureError::Mismatch)
        );
        let b_id = key_id(b.public_key().as_ref());
        assert_eq!(
            keys.verify(&b_id, b"IMC1|IMC0123456789A|3", &sig),
            Err(SignatureError::Mismatch),
            "another key's signature"
        );
        assert_eq!(
            keys.verify("00000000", b"x", &sig),
            Err(SignatureError::UnknownKey("00000000".into()))
        );
        assert_eq!(
            keys.verify(&a_id, b"x", "not base64!"),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn keys_that_do_not_match_their_id_are_refused() {
        let a = pair(1);
        let mut key = CoverKey::new(a.public_key().as_ref());
        key.id = "deadbeef".into();
        let short = CoverKey {
            id: "x".into(),
            public_key: B64.encode([0u8; 5]),
        };
        let (keys, bad) = CoverKeys::new(&[key, short]);
        assert!(keys.is_empty());
        assert_eq!(bad.len(), 2);
    }
}
