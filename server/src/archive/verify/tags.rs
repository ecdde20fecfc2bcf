//! The tag files: `bagit.txt`, `bag-info.txt` and its Payload-Oxum, the
//! payload and tag manifests, and the signature over the tag manifest.

use super::Check::{Authenticity, Integrity, Security, Usability};
use super::bag::{
    self, BAG_INFO_FILE, BAGIT_FILE, MANIFEST_FILE, SIGNATURE_FILE, TAG_FILES, TAG_MANIFEST_FILE,
};
use super::{Bag, TEXT_CAP, unsafe_path};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{ED25519, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

/// A base64 Ed25519 signature is 88 characters.
const SIGNATURE_CAP: u64 = 4096;

const REQUIRED_INFO: [&str; 8] = [
    "Source-Organization",
    "Bagging-Date",
    "External-Identifier",
    "Payload-Oxum",
    "IMC-Version",
    "IMC-Document-Id",
    SIGNING_KEY,
    SIGNING_KEY_FINGERPRINT,
];
const SIGNING_KEY: &str = "IMC-Signing-Key";
const SIGNING_KEY_FINGERPRINT: &str = "IMC-Signing-Key-Fingerprint";

impl Bag<'_> {
    pub(super) fn check_bagit_txt(&mut self) -> Option<()> {
        let fields = bag::parse_bag_info(&self.read_text(BAGIT_FILE, TEXT_CAP, Integrity)?);
        let version = bag::info_value(&fields, "BagIt-Version");
        if version != Some("1.0") {
            self.fail(
                BAGIT_FILE,
                Integrity,
                format!("declares BagIt-Version {version:?}, not 1.0"),
            );
        }
        let encoding = bag::info_value(&fields, "Tag-File-Character-Encoding");
        if !encoding.is_some_and(|e| e.eq_ignore_ascii_case("UTF-8")) {
            let message = format!("declares Tag-File-Character-Encoding {encoding:?}, not UTF-8");
            self.fail(BAGIT_FILE, Integrity, message);
        }
        Some(())
    }

    pub(super) fn read_bag_info(&mut self) -> Option<()> {
        let text = self.read_text(BAG_INFO_FILE, TEXT_CAP, Usability)?;
        self.info = Some(bag::parse_bag_info(&text));
        let missing: Vec<&str> = REQUIRED_INFO
            .into_iter()
            .filter(|l| self.info(l).is_none())
            .collect();
        for label in missing {
            self.fail(BAG_INFO_FILE, Usability, format!("has no {label}"));
        }
        Some(())
    }

    fn read_manifest(&mut self, file: &str) -> Option<Vec<(String, String)>> {
        let text = self.read_text(file, TEXT_CAP, Integrity)?;
        bag::parse_manifest(&text)
            .map_err(|e| self.fail(file, Integrity, format!("does not parse: {e}")))
            .ok()
    }

    /// Checks `manifest-sha256.txt` against `data/`; returns the SHA-256 of
    /// every payload file, listed or not, for the image checks.
    pub(super) fn check_payload_manifest(&mut self) -> HashMap<String, String> {
        let payload = self.payload();
        let mut actual = HashMap::new();
        for (rel, _) in &payload {
            match hash_file(&self.dir.join(rel)) {
                Ok(sha256) => {
                    actual.insert(rel.clone(), sha256);
                }
                Err(e) => self.fail(rel, Integrity, format!("cannot be read: {e}")),
            }
        }
        let Some(entries) = self.read_manifest(MANIFEST_FILE) else {
            return actual;
        };
        let mut listed = BTreeSet::new();
        for (path, expected) in entries {
            let outside = (!path.starts_with("data/")).then_some("lies outside data/");
            if let Some(why) = unsafe_path(&path).or(outside) {
                self.fail(
                    MANIFEST_FILE,
                    Security,
                    format!("lists {path:?}, which {why}"),
                );
            } else if !listed.insert(path.clone()) {
                self.fail(MANIFEST_FILE, Integrity, format!("lists {path:?} twice"));
            } else {
                self.compare(&path, actual.get(&path).cloned(), &expected, MANIFEST_FILE);
            }
        }
        for (rel, _) in payload.iter().filter(|(rel, _)| !listed.contains(rel)) {
            self.fail(rel, Integrity, format!("is not listed in {MANIFEST_FILE}"));
        }
        actual
    }

    /// One manifest entry against the file's SHA-256 (`None`: not hashed).
    fn compare(&mut self, path: &str, actual: Option<String>, expected: &str, manifest: &str) {
        match actual {
            Some(actual) if actual == expected => {}
            Some(actual) => {
                let message = format!("its SHA-256 is {actual}, {manifest} records {expected}");
                self.fail(path, Integrity, message);
            }
            // A file that exists but could not be hashed is already reported.
            None if self.files.contains_key(path) => {}
            None => {
                let message = format!("is listed in {manifest} but {}", self.missing(path));
                self.fail(path, Integrity, message);
            }
        }
    }

    pub(super) fn check_payload_oxum(&mut self) -> Option<()> {
        // A missing Payload-Oxum is reported with the required fields.
        let declared = self.info("Payload-Oxum")?;
        let payload = self.payload();
        let actual = bag::payload_oxum(payload.iter().map(|(_, size)| size).sum(), payload.len());
        if declared != actual {
            let message = format!("Payload-Oxum is {declared:?}, the payload holds {actual}");
            self.fail(BAG_INFO_FILE, Integrity, message);
        }
        Some(())
    }

    /// Checks `tagmanifest-sha256.txt`; returns its exact bytes, which the
    /// signature covers, whenever it could be read.
    pub(super) fn check_tag_manifest(&mut self) -> Option<Vec<u8>> {
        let bytes = self.read(TAG_MANIFEST_FILE, TEXT_CAP, Integrity)?;
        let entries = std::str::from_utf8(&bytes)
            .map_err(|_| "is not UTF-8 text".to_owned())
            .and_then(|text| bag::parse_manifest(text).map_err(|e| format!("does not parse: {e}")))
            .map_err(|e| self.fail(TAG_MANIFEST_FILE, Integrity, e));
        let Ok(entries) = entries else {
            return Some(bytes);
        };
        let mut listed = BTreeSet::new();
        for (path, expected) in entries {
            if let Some(why) = unsafe_path(&path) {
                self.fail(
                    TAG_MANIFEST_FILE,
                    Security,
                    format!("lists {path:?}, which {why}"),
                );
                continue;
            }
            if path.starts_with("data/") || !listed.insert(path.clone()) {
                let message = format!("lists {path:?}, a payload file or listed twice");
                self.fail(TAG_MANIFEST_FILE, Integrity, message);
                continue;
            }
            let mut actual = None;
            if self.files.contains_key(&path) {
                actual = hash_file(&self.dir.join(&path))
                    .map_err(|e| self.fail(&path, Integrity, format!("cannot be read: {e}")))
                    .ok();
            }
            self.compare(&path, actual, &expected, TAG_MANIFEST_FILE);
        }
        // The three tag files, and anything else beside data/, which would
        // otherwise ride along unsigned.
        let unlisted: BTreeSet<String> = self
            .files
            .keys()
            .map(String::as_str)
            .chain(TAG_FILES)
            .filter(|rel| !rel.starts_with("data/") && !listed.contains(*rel))
            .filter(|rel| *rel != TAG_MANIFEST_FILE && *rel != SIGNATURE_FILE)
            .map(str::to_owned)
            .collect();
        for rel in unlisted {
            let message =
                format!("is not listed in {TAG_MANIFEST_FILE}, so no signature covers it");
            self.fail(&rel, Integrity, message);
        }
        Some(bytes)
    }

    pub(super) fn check_signature(
        &mut self,
        signed: &[u8],
        trusted_keys: Option<&[Vec<u8>]>,
    ) -> Option<()> {
        let signature = self.read_signature()?;
        let verified = match trusted_keys {
            Some(keys) => keys.iter().any(|key| signed_by(key, signed, &signature)),
            None => signed_by(&self.bag_key()?, signed, &signature),
        };
        if verified {
            return Some(());
        }
        let message = match trusted_keys {
            Some(keys) => {
                let named = self
                    .info(SIGNING_KEY_FINGERPRINT)
                    .unwrap_or_else(|| "none".into());
                format!(
                    "the signature verifies with none of the {} trusted keys (the bag names key {named})",
                    keys.len()
                )
            }
            None => format!(
                "the signature does not verify with the bag's {SIGNING_KEY}: \
                 {TAG_MANIFEST_FILE} changed after signing, or another key signed it"
            ),
        };
        self.fail(SIGNATURE_FILE, Authenticity, message);
        Some(())
    }

    fn read_signature(&mut self) -> Option<Vec<u8>> {
        let text = self.read_text(SIGNATURE_FILE, SIGNATURE_CAP, Authenticity)?;
        let message = match BASE64.decode(text.trim()) {
            Ok(signature) if signature.len() == 64 => return Some(signature),
            Ok(other) => format!("holds {} bytes, an Ed25519 signature is 64", other.len()),
            Err(e) => format!("is not base64: {e}"),
        };
        self.fail(SIGNATURE_FILE, Authenticity, message);
        None
    }

    /// The bag's own public key, checked against its fingerprint.
    fn bag_key(&mut self) -> Option<Vec<u8>> {
        let key = self
            .info(SIGNING_KEY)
            .and_then(|key| BASE64.decode(key).ok());
        let Some(key) = key.filter(|key| key.len() == 32) else {
            let message = format!("has no {SIGNING_KEY} (base64 of a 32-byte Ed25519 key)");
            self.fail(BAG_INFO_FILE, Authenticity, message);
            return None;
        };
        let fingerprint = bag::key_fingerprint(&key);
        let message = match self.info(SIGNING_KEY_FINGERPRINT) {
            Some(declared) if declared.eq_ignore_ascii_case(&fingerprint) => return Some(key),
            Some(declared) => format!(
                "{SIGNING_KEY_FINGERPRINT} is {declared:?}, the key's fingerprint is {fingerprint}"
            ),
            None => format!("has no {SIGNING_KEY_FINGERPRINT} to check the key against"),
        };
        self.fail(BAG_INFO_FILE, Authenticity, message);
        Some(key)
    }
}

fn signed_by(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let key = UnparsedPublicKey::new(&ED25519, key);
    key.verify(message, signature).is_ok()
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}
