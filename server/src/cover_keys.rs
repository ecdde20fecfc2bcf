//! The server's cover signing keys: every cover QR IMC prints is signed, so a
//! desk can tell, offline, a cover that was forged or whose count was altered
//! (see [`imc_shared::cover_qr`]).
//!
//! The keys live in the store's settings row [`SETTING`] as JSON, each with
//! its private half sealed by the secrets keyring ([`crate::secrets`]), so
//! every replica signs with the same key and a backup or `migrate-store`
//! carries them sealed. The first key is made at the first start. A rotation
//! adds a key that is published to the desks at once (on connect, and pushed
//! to connected ones) and signs only from `signs_from` on, so desks learn it
//! before any cover needs it; older keys stay published, so covers printed
//! with them stay valid.

use crate::secrets::Keyring;
use crate::store::Store;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use imc_shared::cover_keys::{CoverKey, key_id};
use imc_shared::cover_qr;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The settings row that holds the keys.
pub const SETTING: &str = "cover_signing_keys";
/// How long a replica trusts what it read of the keys; a rotation reaches its
/// covers and its connected desks within this.
pub const REFRESH: Duration = Duration::from_secs(5);
/// How long after a rotation the new key starts signing, by default: desks
/// that connect within it learn the key before any cover carries it.
pub const DEFAULT_LEAD: Duration = Duration::from_secs(24 * 3600);

/// One key as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredKey {
    pub id: String,
    /// Base64 of the 32-byte public key.
    pub public_key: String,
    /// The PKCS#8 document of the key pair, base64, sealed by the secrets keyring.
    pub private_key: String,
    pub created_at: DateTime<Utc>,
    /// The key signs from this moment on, if it is the newest that may.
    pub signs_from: DateTime<Utc>,
}

impl StoredKey {
    fn generate(secrets: &Keyring, signs_from: DateTime<Utc>) -> anyhow::Result<StoredKey> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("no randomness for a cover signing key"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| anyhow::anyhow!("a fresh cover signing key does not load: {e}"))?;
        let public = CoverKey::new(pair.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        Ok(StoredKey {
            id: public.id,
            public_key: public.public_key,
            private_key: secrets.seal(&b64)?,
            created_at: Utc::now(),
            signs_from,
        })
    }

    fn open(&self, secrets: &Keyring) -> anyhow::Result<Ed25519KeyPair> {
        let b64 = secrets.open(&self.private_key).with_context(|| {
            format!(
                "cover signing key {} cannot be opened with the secrets key",
                self.id
            )
        })?;
        let pkcs8 = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .with_context(|| format!("cover signing key {} is not base64", self.id))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| anyhow::anyhow!("cover signing key {} does not load: {e}", self.id))?;
        if key_id(pair.public_key().as_ref()) != self.id {
            anyhow::bail!(
                "cover signing key {} does not match its public key",
                self.id
            );
        }
        Ok(pair)
    }
}

fn parse(raw: &str) -> anyhow::Result<Vec<StoredKey>> {
    serde_json::from_str(raw).with_context(|| format!("the {SETTING} setting is not readable"))
}

/// The keys as a replica holds them: the published list and the opened pairs.
pub struct Loaded {
    pub published: Vec<CoverKey>,
    /// The keys this replica can sign with, newest first.
    signing: Vec<(DateTime<Utc>, String, Ed25519KeyPair)>,
    /// Keys whose private half this replica's secrets key cannot open (a data
    /// dir restored without its `secrets.key`): still published, since a desk
    /// needs only the public half to accept the covers printed with them.
    pub unopened: Vec<String>,
}

impl Loaded {
    fn open(keys: &[StoredKey], secrets: &Keyring) -> Loaded {
        let mut signing = Vec::with_capacity(keys.len());
        let mut unopened = Vec::new();
        for key in keys {
            match key.open(secrets) {
                Ok(pair) => signing.push((key.signs_from, key.id.clone(), pair)),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "a cover key cannot sign here");
                    unopened.push(key.id.clone());
                }
            }
        }
        signing.sort_by_key(|s| std::cmp::Reverse(s.0));
        Loaded {
            unopened,
            published: keys
                .iter()
                .map(|k| CoverKey {
                    id: k.id.clone(),
                    public_key: k.public_key.clone(),
                })
                .collect(),
            signing,
        }
    }

    /// A detached Ed25519 signature of `message` with the newest key that
    /// may sign now (archive packages): (public key, signature), raw bytes.
    pub fn sign_detached(&self, message: &[u8], now: DateTime<Utc>) -> Option<(Vec<u8>, Vec<u8>)> {
        let (_, _, pair) = self
            .signing
            .iter()
            .find(|(from, _, _)| *from <= now)
            .or(self.signing.last())?;
        Some((
            pair.public_key().as_ref().to_vec(),
            pair.sign(message).as_ref().to_vec(),
        ))
    }

    /// The QR text of a cover, signed with the newest key that may sign now.
    pub fn qr_text(&self, code: &str, declared: Option<u32>, now: DateTime<Utc>) -> String {
        let Some((_, id, pair)) = self
            .signing
            .iter()
            .find(|(from, _, _)| *from <= now)
            .or(self.signing.last())
        else {
            return cover_qr::encode(code, declared);
        };
        let message = cover_qr::signed_message(code, declared);
        let signature = URL_SAFE_NO_PAD.encode(pair.sign(message.as_bytes()));
        cover_qr::encode_signed(code, declared, id, &signature)
    }
}

/// A replica's view of the keys, read again from the store every [`REFRESH`].
pub struct CoverSigner {
    secrets: Arc<Keyring>,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    read_at: Instant,
    raw: String,
    loaded: Arc<Loaded>,
}

impl CoverSigner {
    pub fn new(secrets: Arc<Keyring>) -> CoverSigner {
        CoverSigner {
            secrets,
            cached: Mutex::new(None),
        }
    }

    /// At start: makes the first key if there is none (one replica wins when
    /// several start at once). When no key opens with this server's secrets
    /// key (restored without `secrets.key`), adds one that does, signing at
    /// once: the old ones stay published, so the covers printed with them
    /// still match.
    pub async fn ensure(&self, store: &dyn Store) -> anyhow::Result<Arc<Loaded>> {
        if store.setting_text(SETTING).await?.is_none() {
            let first = StoredKey::generate(&self.secrets, Utc::now())?;
            let text = serde_json::to_string(&[first])?;
            if store.replace_setting_text(SETTING, None, text).await? {
                tracing::info!("made the first cover signing key");
            }
        }
        let loaded = self.current(store).await?;
        if !loaded.signing.is_empty() {
            return Ok(loaded);
        }
        tracing::warn!(
            unopened = ?loaded.unopened,
            "no cover signing key opens with this server's secrets key (was the data restored \
             without secrets.key?): adding one that does; covers printed before stay valid"
        );
        rotate(store, &self.secrets, Duration::ZERO).await?;
        self.forget();
        self.current(store).await
    }

    fn forget(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }

    /// The keys, at most [`REFRESH`] old.
    pub async fn current(&self, store: &dyn Store) -> anyhow::Result<Arc<Loaded>> {
        if let Some(cached) = self.cached()?.as_ref()
            && cached.read_at.elapsed() < REFRESH
        {
            return Ok(Arc::clone(&cached.loaded));
        }
        let raw = store.setting_text(SETTING).await?.unwrap_or_default();
        let mut cached = self.cached()?;
        if let Some(held) = cached.as_mut()
            && held.raw == raw
        {
            held.read_at = Instant::now();
            return Ok(Arc::clone(&held.loaded));
        }
        let keys = if raw.is_empty() {
            Vec::new()
        } else {
            parse(&raw)?
        };
        let loaded = Arc::new(Loaded::open(&keys, &self.secrets));
        *cached = Some(Cached {
            read_at: Instant::now(),
            raw,
            loaded: Arc::clone(&loaded),
        });
        Ok(loaded)
    }

    fn cached(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Option<Cached>>> {
        self.cached
            .lock()
            .map_err(|_| anyhow::anyhow!("cover key cache lock poisoned"))
    }
}

/// Adds a key that signs `lead` from now; returns the keys as stored after.
pub async fn rotate(
    store: &dyn Store,
    secrets: &Keyring,
    lead: Duration,
) -> anyhow::Result<Vec<StoredKey>> {
    let signs_from = Utc::now() + chrono::Duration::from_std(lead).context("lead too long")?;
    // Compare and swap: a rotation racing another one retries on top of it.
    for _ in 0..5 {
        let raw = store.setting_text(SETTING).await?;
        let mut keys = match &raw {
            Some(raw) => parse(raw)?,
            None => Vec::new(),
        };
        keys.push(StoredKey::generate(secrets, signs_from)?);
        let text = serde_json::to_string(&keys)?;
        if store.replace_setting_text(SETTING, raw, text).await? {
            return Ok(keys);
        }
    }
    anyhow::bail!("the cover keys kept changing while rotating them; try again")
}

/// The keys as stored, for `imc-server cover-keys list`.
pub async fn list(store: &dyn Store) -> anyhow::Result<Vec<StoredKey>> {
    match store.setting_text(SETTING).await? {
        Some(raw) => parse(&raw),
        None => Ok(Vec::new()),
    }
}

/// Seals every private key with the keyring's current key: part of a secrets
/// key rotation, so the old secrets key can be dropped afterwards. Returns
/// how many were sealed again.
pub async fn reseal(store: &dyn Store, secrets: &Keyring) -> anyhow::Result<usize> {
    let Some(raw) = store.setting_text(SETTING).await? else {
        return Ok(0);
    };
    let mut keys = parse(&raw)?;
    for key in &mut keys {
        let plain = secrets.open(&key.private_key).with_context(|| {
            format!(
                "cover signing key {} cannot be opened with the secrets key",
                key.id
            )
        })?;
        key.private_key = secrets.seal(&plain)?;
    }
    let text = serde_json::to_string(&keys)?;
    if !store.replace_setting_text(SETTING, Some(raw), text).await? {
        anyhow::bail!("the cover keys changed while sealing them again; run the rotation again");
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imc_shared::cover_keys::CoverKeys;
    use imc_shared::cover_qr::Judged;

    fn judge(loaded: &Loaded, text: &str) -> Judged {
        let keys = CoverKeys::new(&loaded.published).0;
        cover_qr::parse(text).unwrap().judge(&keys)
    }

    #[test]
    fn the_newest_key_that_may_sign_signs_and_older_covers_stay_valid() {
        let secrets = Keyring::of(&[[7; 32]]);
        let now = Utc::now();
        let old = StoredKey::generate(&secrets, now - chrono::Duration::days(30)).unwrap();
        let next = StoredKey::generate(&secrets, now + chrono::Duration::days(1)).unwrap();
        let loaded = Loaded::open(&[old.clone(), next.clone()], &secrets);

        let today = loaded.qr_text("IMC0123456789A", Some(2), now);
        let signed_by = cover_qr::parse(&today).unwrap().signature.unwrap().key_id;
        assert_eq!(signed_by, old.id, "the new key waits for its time");
        let later = loaded.qr_text("IMC0123456789A", Some(2), now + chrono::Duration::days(2));
        let signed_by = cover_qr::parse(&later).unwrap().signature.unwrap().key_id;
        assert_eq!(signed_by, next.id);
        for text in [today, later] {
            assert!(matches!(
                judge(&loaded, &text),
                Judged::Cover {
                    declared: Some(2),
                    ..
                }
            ));
        }
    }

    #[test]
    fn a_key_sealed_under_another_secrets_key_is_published_but_does_not_sign() {
        let (mine, other) = (Keyring::of(&[[7; 32]]), Keyring::of(&[[8; 32]]));
        let now = Utc::now();
        let theirs = StoredKey::generate(&other, now).unwrap();
        let own = StoredKey::generate(&mine, now - chrono::Duration::days(1)).unwrap();
        let loaded = Loaded::open(&[own.clone(), theirs.clone()], &mine);
        assert_eq!(loaded.unopened, vec![theirs.id.clone()]);
        assert_eq!(loaded.published.len(), 2);
        let qr = loaded.qr_text("IMC0123456789A", None, now);
        assert_eq!(
            cover_qr::parse(&qr).unwrap().signature.unwrap().key_id,
            own.id
        );
    }
}
