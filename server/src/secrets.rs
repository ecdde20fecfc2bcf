//! Secrets at rest: webhook HMAC secrets and the private cover signing keys
//! are stored sealed, never in plain.
//!
//! A stored value reads `v1:<key id>:<base64 of nonce || ciphertext+tag>`,
//! sealed with CHACHA20-POLY1305 under a 32-byte key and a random nonce per
//! value. The key id (the first 8 hex digits of the key's SHA-256) says which
//! key of the ring opens it, so values sealed before a rotation stay readable.
//! The store only keeps and returns the text; sealing and opening happen here.
//!
//! The keys come from `IMC_SECRETS_KEY` (current) and
//! `IMC_SECRETS_KEY_PREVIOUS` (older ones, comma separated), hex or base64,
//! or else from `<data dir>/secrets.key`: one key per line, current first,
//! created on first start. Every replica of a PostgreSQL installation must
//! hold the same keys.

use crate::store::{SecretChange, Store};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const KEY_ENV: &str = "IMC_SECRETS_KEY";
pub const PREVIOUS_ENV: &str = "IMC_SECRETS_KEY_PREVIOUS";
pub const KEY_FILE: &str = "secrets.key";
const PREFIX: &str = "v1:";
const KEY_LEN: usize = 32;

/// The key file of a data dir.
pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

struct Key {
    id: String,
    bytes: [u8; KEY_LEN],
}

impl Key {
    fn new(bytes: [u8; KEY_LEN]) -> Key {
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        Key { id, bytes }
    }

    fn aead(&self) -> anyhow::Result<LessSafeKey> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &self.bytes)
            .map_err(|_| anyhow::anyhow!("secrets key {} is not a CHACHA20 key", self.id))?;
        Ok(LessSafeKey::new(unbound))
    }
}

/// The current key and the older ones still accepted for opening.
pub struct Keyring {
    keys: Vec<Key>,
    /// Where the keys came from, for error messages.
    source: String,
}

// Shows ids only: the key bytes never reach a log.
impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids())
            .field("source", &self.source)
            .finish()
    }
}

impl Keyring {
    /// Keys from the environment, or else from the data dir's key file
    /// (created with a fresh key when missing).
    pub fn load(data_dir: &Path) -> anyhow::Result<Keyring> {
        Self::load_from(
            std::env::var(KEY_ENV).ok(),
            std::env::var(PREVIOUS_ENV).ok(),
            &key_file(data_dir),
        )
    }

    fn load_from(
        current: Option<String>,
        previous: Option<String>,
        file: &Path,
    ) -> anyhow::Result<Keyring> {
        if let Some(current) = current.filter(|c| !c.trim().is_empty()) {
            let mut keys = vec![parse_key(&current).context(KEY_ENV)?];
            for (i, old) in previous
                .iter()
                .flat_map(|p| p.split([',', ' ', '\n']))
                .filter(|k| !k.trim().is_empty())
                .enumerate()
            {
                keys.push(
                    parse_key(old).with_context(|| format!("{PREVIOUS_ENV}, key {}", i + 1))?,
                );
            }
            return Ok(Keyring {
                keys,
                source: KEY_ENV.into(),
            });
        }
        if !file.exists() {
            write_key_file(file, &[random_key()?], true)?;
            tracing::info!(file = %file.display(), "created a secrets key; back it up apart from the data");
        }
        Self::read_file(file)
    }

    /// The keys an administration command works with: the environment's,
    /// else the key file given, else the data dir's. Never makes a key.
    pub fn load_existing(data_dir: Option<&Path>, given: Option<&Path>) -> anyhow::Result<Keyring> {
        let from_env = std::env::var(KEY_ENV).is_ok_and(|k| !k.trim().is_empty());
        let file = given
            .map(Path::to_path_buf)
            .or_else(|| data_dir.map(key_file));
        match (from_env, file) {
            (true, _) => Self::load_from(
                std::env::var(KEY_ENV).ok(),
                std::env::var(PREVIOUS_ENV).ok(),
                Path::new(""),
            ),
            (false, Some(file)) => Self::read_file(&file),
            (false, None) => {
                anyhow::bail!("no secrets key: set {KEY_ENV}, or give --data-dir or --key-file")
            }
        }
    }

    /// The keys of a key file, current first.
    pub fn read_file(file: &Path) -> anyhow::Result<Keyring> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading secrets key file {}", file.display()))?;
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .enumerate()
            .map(|(i, l)| {
                parse_key(l).with_context(|| format!("{}, key {}", file.display(), i + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if keys.is_empty() {
            anyhow::bail!("secrets key file {} holds no key", file.display());
        }
        Ok(Keyring {
            keys,
            source: file.display().to_string(),
        })
    }

    #[cfg(test)]
    pub(crate) fn of(keys: &[[u8; KEY_LEN]]) -> Keyring {
        Keyring {
            keys: keys.iter().map(|k| Key::new(*k)).collect(),
            source: "test".into(),
        }
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    fn current(&self) -> anyhow::Result<&Key> {
        self.keys.first().context("no secrets key")
    }

    /// Seals `plain` with the current key.
    pub fn seal(&self, plain: &str) -> anyhow::Result<String> {
        let key = self.current()?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut sealed = plain.as_bytes().to_vec();
        key.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| anyhow::anyhow!("sealing a secret failed"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", key.id, B64.encode(blob)))
    }

    /// The plain secret of a stored value; a value without the `v1:` prefix
    /// is a legacy plain secret (stored before sealing) and is its own text.
    pub fn open(&self, stored: &str) -> anyhow::Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, body) = rest
            .split_once(':')
            .context("sealed secret without a key id")?;
        let key = self.keys.iter().find(|k| k.id == id).with_context(|| {
            format!(
                "a secret is sealed with key {id}, which is not among the keys of {} ({})",
                self.source,
                self.ids().join(", ")
            )
        })?;
        let mut blob = B64.decode(body).context("sealed secret is not base64")?;
        if blob.len() < NONCE_LEN {
            anyhow::bail!("sealed secret is too short");
        }
        let mut sealed = blob.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&blob)
            .map_err(|_| anyhow::anyhow!("sealed secret has a bad nonce"))?;
        let plain = key
            .aead()?
            .open_in_place(nonce, Aad::from(id.as_bytes()), &mut sealed)
            .map_err(|_| anyhow::anyhow!("a secret sealed with key {id} does not open: tampered or a different key with the same id"))?;
        String::from_utf8(plain.to_vec()).context("opened secret is not UTF-8")
    }

    /// Whether `stored` is sealed with the current key already.
    fn is_current(&self, stored: &str) -> bool {
        self.keys.first().is_some_and(|k| {
            stored
                .strip_prefix(PREFIX)
                .and_then(|r| r.split_once(':'))
                .is_some_and(|(id, _)| id == k.id)
        })
    }
}

fn random_key() -> anyhow::Result<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("no randomness for a secrets key"))?;
    Ok(key)
}

/// 64 hex digits or the base64 of 32 bytes.
fn parse_key(text: &str) -> anyhow::Result<Key> {
    let text = text.trim();
    let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).context("not hex")?
    } else {
        B64.decode(text)
            .context("a secrets key is 64 hex digits or base64 of 32 bytes")?
    };
    let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
        anyhow::anyhow!("a secrets key is 32 bytes, this one is {}", b.len())
    })?;
    Ok(Key::new(bytes))
}

/// Writes keys (current first) to `file`, readable by its owner only;
/// through a temporary file and a rename, so a crash leaves the old file.
fn write_key_file(file: &Path, keys: &[[u8; KEY_LEN]], create_new: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = file.with_extension("key.new");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let text: String = keys
        .iter()
        .map(|k| format!("{}\n", hex::encode(k)))
        .collect();
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    if create_new {
        // A link never replaces: if another process made the file meanwhile,
        // theirs is the key.
        let linked = std::fs::hard_link(&tmp, file);
        let _ = std::fs::remove_file(&tmp);
        return match linked {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(e).with_context(|| format!("creating {}", file.display()))
            }
            _ => Ok(()),
        };
    }
    std::fs::rename(&tmp, file)
        .with_context(|| format!("renaming {} to {}", tmp.display(), file.display()))
}

/// At start: seals legacy plain secrets in place, and checks that every
/// sealed one opens, so a missing or wrong key stops the server at once
/// instead of failing every delivery. Returns how many were sealed.
pub async fn upgrade(store: &dyn Store, keys: &Keyring) -> anyhow::Result<u64> {
    let mut changes = Vec::new();
    for (source_system, stored) in store.webhook_secrets().await? {
        if stored.starts_with(PREFIX) {
            keys.open(&stored).with_context(|| {
                format!(
                    "the webhook secret of {source_system:?} cannot be opened: start with the \
                     secrets key it was sealed with ({KEY_ENV} or {KEY_FILE}, see docs/SECURITY.md)"
                )
            })?;
        } else {
            changes.push(SecretChange {
                new: keys.seal(&stored)?,
                source_system,
                old: stored,
            });
        }
    }
    if changes.is_empty() {
        return Ok(0);
    }
    let sealed = store
        .replace_webhook_secrets(changes)
        .await
        .context("sealing legacy webhook secrets")?;
    tracing::info!(sealed, "sealed legacy plain webhook secrets");
    Ok(sealed)
}

/// Re-seals every stored secret not sealed with the current key, in one
/// transaction. Returns how many were re-sealed.
pub async fn reseal(store: &dyn Store, keys: &Keyring) -> anyhow::Result<u64> {
    let mut changes = Vec::new();
    for (source_system, stored) in store.webhook_secrets().await? {
        if keys.is_current(&stored) {
            continue;
        }
        let plain = keys
            .open(&stored)
            .with_context(|| format!("opening the webhook secret of {source_system:?}"))?;
        changes.push(SecretChange {
            new: keys.seal(&plain)?,
            source_system,
            old: stored,
        });
    }
    if changes.is_empty() {
        return Ok(0);
    }
    store
        .replace_webhook_secrets(changes)
        .await
        .context("re-sealing webhook secrets")
}

/// `imc-server secrets rotate`: with a key file, a new key becomes current
/// and the old ones stay behind it; with `IMC_SECRETS_KEY` the operator has
/// set the new key there and the old in `IMC_SECRETS_KEY_PREVIOUS`. Either
/// way every stored secret is then re-sealed with the current key.
pub async fn rotate(store: &dyn Store, key_file: Option<&Path>) -> anyhow::Result<String> {
    let from_env = std::env::var(KEY_ENV).is_ok_and(|k| !k.trim().is_empty());
    let keys = match (from_env, key_file) {
        (true, _) => Keyring::load_from(
            std::env::var(KEY_ENV).ok(),
            std::env::var(PREVIOUS_ENV).ok(),
            Path::new(""),
        )?,
        (false, Some(file)) => rotate_file(file)?,
        (false, None) => anyhow::bail!(
            "no keys: set {KEY_ENV} (and {PREVIOUS_ENV}), or give --data-dir or --key-file"
        ),
    };
    let resealed = reseal(store, &keys).await?;
    let cover_keys = crate::cover_keys::reseal(store, &keys).await?;
    Ok(format!(
        "current secrets key {}; {resealed} webhook secret(s) and {cover_keys} cover signing key(s) \
         re-sealed; restart the server(s)",
        keys.ids().first().copied().unwrap_or("?")
    ))
}

/// Puts a fresh key in front of the key file's keys.
fn rotate_file(file: &Path) -> anyhow::Result<Keyring> {
    let old = Keyring::read_file(file)?;
    let mut keys = vec![random_key()?];
    keys.extend(old.keys.iter().map(|k| k.bytes));
    write_key_file(file, &keys, false)?;
    Keyring::read_file(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];

    #[test]
    fn a_sealed_secret_opens_with_its_key_only() {
        let ring = Keyring::of(&[A]);
        let sealed = ring.seal("whsec-0123456789abcdef").unwrap();
        assert!(
            sealed.starts_with(&format!("v1:{}:", ring.ids()[0])),
            "{sealed}"
        );
        assert!(!sealed.contains("0123456789abcdef"));
        assert_eq!(ring.open(&sealed).unwrap(), "whsec-0123456789abcdef");
        // A fresh nonce every time.
        assert_ne!(ring.seal("whsec-0123456789abcdef").unwrap(), sealed);

        let other = Keyring::of(&[B]);
        let e = other.open(&sealed).unwrap_err();
        assert!(format!("{e:#}").contains("not among the keys"), "{e:#}");
        // Same id claimed, different key: the tag does not verify.
        let forged = sealed.replace(ring.ids()[0], other.ids()[0]);
        assert!(other.open(&forged).is_err());
    }

    #[test]
    fn a_tampered_secret_does_not_open() {
        let ring = Keyring::of(&[A]);
        let sealed = ring.seal("whsec-0123456789abcdef").unwrap();
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut blob = B64.decode(body).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let tampered = format!("{head}:{}", B64.encode(&blob));
        assert!(ring.open(&tampered).is_err());
        blob[last] ^= 1;
        blob[NONCE_LEN] ^= 1;
        assert!(ring.open(&format!("{head}:{}", B64.encode(&blob))).is_err());
        assert!(ring.open("v1:garbage").is_err());
    }

    #[test]
    fn old_values_open_after_a_rotation_and_new_ones_use_the_new_key() {
        let before = Keyring::of(&[A]);
        let old = before.seal("old-secret-0123456789").unwrap();
        let after = Keyring::of(&[B, A]);
        assert_eq!(after.open(&old).unwrap(), "old-secret-0123456789");
        assert!(!after.is_current(&old));
        let new = after.seal("new-secret-0123456789").unwrap();
        assert!(after.is_current(&new));
        assert!(before.open(&new).is_err());
    }

    #[test]
    fn a_legacy_plain_value_is_its_own_secret() {
        assert_eq!(
            Keyring::of(&[A]).open("plain-secret-0123").unwrap(),
            "plain-secret-0123"
        );
    }

    #[test]
    fn keys_come_from_the_environment_or_a_key_file_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(KEY_FILE);
        let env = Keyring::load_from(
            Some(hex::encode(A)),
            Some(format!("{},{}", B64.encode(B), hex::encode([3u8; 32]))),
            &file,
        )
        .unwrap();
        assert_eq!(env.keys.len(), 3);
        assert!(!file.exists(), "the environment wins; no file is made");
        assert!(Keyring::load_from(Some("00ff".into()), None, &file).is_err());

        let made = Keyring::load_from(None, None, &file).unwrap();
        let again = Keyring::load_from(None, None, &file).unwrap();
        assert_eq!(made.ids(), again.ids());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file readable by others: {mode:o}");
        }

        let sealed = made.seal("before-rotation-0123").unwrap();
        let rotated = rotate_file(&file).unwrap();
        assert_eq!(rotated.keys.len(), 2);
        assert_eq!(rotated.ids()[1], made.ids()[0]);
        assert_eq!(rotated.open(&sealed).unwrap(), "before-rotation-0123");
    }
}
