//! `imc-server archive verify`: the four checks of docs/ARCHIVE.md
//! (integrity, authenticity, usability, security) on one bag or a folder of
//! bags, with nothing but the bags and, optionally, trusted public keys.
//!
//! A bag is hostile input: nothing in it is followed (a link is a failure),
//! nothing is read past a cap, decoders run behind `catch_unwind`, and every
//! failure found is reported, not only the first.

use super::bag::{
    self, AUDIT_JSONL, BAG_INFO_FILE, BAGIT_FILE, DOCUMENT_JSON, DOCUMENT_XML, MANIFEST_FILE,
    SIGNATURE_FILE, TAG_FILES, TAG_MANIFEST_FILE,
};
use super::record::{ArchivedDocument, AuditLine, AuditSummary, FORMAT};
use crate::domain::receipt::{RECEIVE_ACTION, parse_receipt};
use crate::store::audit_chain::{ChainFields, chain_hash};
use Check::{Authenticity, Integrity, Security, Usability};
use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Tag files, `document.json` and `audit.jsonl` are text IMC writes small;
/// one larger than this is hostile and is not read.
const TEXT_CAP: u64 = 64 * 1024 * 1024;
/// A base64 Ed25519 signature is 88 characters.
const SIGNATURE_CAP: u64 = 4096;
const KEY_FILE_CAP: u64 = 1024 * 1024;
/// A PDF's `%%EOF` must lie within this many bytes of its end.
const PDF_EOF_WINDOW: usize = 1024;
/// As for uploads: PDF streams are small; a huge one is a bomb.
const MAX_PDF_STREAM: usize = 64 * 1024 * 1024;

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
const CHAIN_HEAD: &str = "IMC-Audit-Chain-Head";

/// First bytes of programs and scripts; a bag carries none.
const EXECUTABLE_SIGNATURES: [(&[u8], &str); 6] = [
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "an ELF program"),
    (b"#!", "a script"),
    (b"\xfe\xed\xfa", "a Mach-O program"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O program"),
    (b"\xce\xfa\xed\xfe", "a Mach-O program"),
];

/// The formats an archive accepts, by their first bytes.
const ARCHIVE_FORMATS: [(&[u8], &str); 5] = [
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"II*\0", "image/tiff"),
    (b"MM\0*", "image/tiff"),
    (b"%PDF-", "application/pdf"),
];

/// The four properties DA/T 94-2022 asks of an archive package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Integrity,
    Authenticity,
    Usability,
    Security,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Integrity => "integrity",
            Authenticity => "authenticity",
            Usability => "usability",
            Security => "security",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The bag's folder name.
    pub bag: String,
    /// Relative to the bag; `None` when the failure is the bag's as a whole.
    pub file: Option<String>,
    pub check: Check,
    pub message: String,
}

impl std::fmt::Display for Failure {
    /// `<bag>/<file>: <check>: <message>`, with control and bidi characters
    /// escaped: names come from the bag and must not drive the terminal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", printable(&self.bag))?;
        if let Some(file) = &self.file {
            write!(f, "/{}", printable(file))?;
        }
        write!(f, ": {}: {}", self.check, printable(&self.message))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub bags: usize,
    /// Page files checked (pages whose bytes were purged have none).
    pub images: usize,
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Checks `path`: one bag (it holds `bagit.txt`, or at least another tag
/// file or `data/`) or a folder of bags (every subfolder whose name does not
/// start with `.`, so `.partial-*` folders are skipped). `trusted_keys` are raw 32-byte Ed25519 public keys; `None` uses
/// each bag's own `IMC-Signing-Key`, whose fingerprint must match. An error
/// only when `path` cannot be read or is neither a bag nor a folder of bags.
pub fn verify(path: &Path, trusted_keys: Option<&[Vec<u8>]>) -> anyhow::Result<Report> {
    let reading = || format!("reading {}", path.display());
    let meta = fs::metadata(path).with_context(reading)?;
    ensure!(
        meta.is_dir(),
        "{} is not a folder of bags or a bag",
        path.display()
    );
    let mut report = Report::default();
    // A bag that lost its bagit.txt is still one bag, not a folder of bags.
    let bag_marks = [
        BAGIT_FILE,
        BAG_INFO_FILE,
        MANIFEST_FILE,
        TAG_MANIFEST_FILE,
        "data",
    ];
    if bag_marks
        .iter()
        .any(|mark| fs::symlink_metadata(path.join(mark)).is_ok())
    {
        check_bag(path, &folder_name(path), trusted_keys, &mut report);
        return Ok(report);
    }
    let mut bags: Vec<(String, PathBuf, bool)> = Vec::new();
    let mut marked = false;
    for entry in fs::read_dir(path).with_context(reading)? {
        let entry = entry.with_context(reading)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().with_context(reading)?;
        marked |= name == bag::DESTINATION_MARKER;
        // `.partial-*` bags are unfinished by design; other dot names are not bags.
        if !name.starts_with('.') && (kind.is_dir() || kind.is_symlink()) {
            bags.push((name, entry.path(), kind.is_symlink()));
        }
    }
    if bags.is_empty() && !marked {
        bail!(
            "{} is neither a bag (no {BAGIT_FILE}) nor a folder of bags",
            path.display()
        );
    }
    bags.sort();
    for (name, bag_path, is_link) in bags {
        if is_link {
            report.bags += 1;
            report.failures.push(Failure {
                bag: name,
                file: None,
                check: Security,
                message: "is a link, not a folder; links are not followed".into(),
            });
        } else {
            check_bag(&bag_path, &name, trusted_keys, &mut report);
        }
    }
    Ok(report)
}

/// Reads a file of trusted public keys: base64 of the raw 32 bytes, one a
/// line; blank lines and lines starting with `#` are ignored, as is anything
/// after the key and white space (a comment).
pub fn read_key_file(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = read_capped(path, KEY_FILE_CAP).map_err(|e| anyhow!("{} {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{} is not UTF-8", path.display()))?;
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let Some(encoded) = line
            .split_whitespace()
            .next()
            .filter(|t| !t.starts_with('#'))
        else {
            continue;
        };
        let at = format!("{} line {}", path.display(), index + 1);
        let key = BASE64
            .decode(encoded)
            .map_err(|e| anyhow!("{at}: not a base64 key: {e}"))?;
        ensure!(
            key.len() == 32,
            "{at}: {} bytes, an Ed25519 key is 32",
            key.len()
        );
        keys.push(key);
    }
    ensure!(!keys.is_empty(), "{} holds no keys", path.display());
    Ok(keys)
}

fn check_bag(dir: &Path, name: &str, trusted_keys: Option<&[Vec<u8>]>, report: &mut Report) {
    let mut bag = Bag {
        dir,
        name,
        files: BTreeMap::new(),
        irregular: BTreeSet::new(),
        info: None,
        failures: Vec::new(),
    };
    bag.walk();
    bag.check_bagit_txt();
    bag.read_bag_info();
    let payload = bag.check_payload_manifest();
    bag.check_payload_oxum();
    if let Some(signed) = bag.check_tag_manifest() {
        bag.check_signature(&signed, trusted_keys);
    }
    let document = bag.read_document();
    if !bag.files.contains_key(DOCUMENT_XML) {
        bag.fail(DOCUMENT_XML, Usability, bag.missing(DOCUMENT_XML));
    }
    let receipts = bag.check_audit(document.as_ref()).unwrap_or_default();
    if let Some(document) = &document {
        report.images += bag.check_images(document, &payload, &receipts);
    }
    report.bags += 1;
    report.failures.extend(bag.failures);
}

/// One bag being checked: what its folder holds and what was found wrong.
struct Bag<'a> {
    dir: &'a Path,
    name: &'a str,
    /// Regular files, `/`-separated relative paths, and their sizes.
    files: BTreeMap<String, u64>,
    /// Links and special files: present, but never opened.
    irregular: BTreeSet<String>,
    /// `bag-info.txt`, once read.
    info: Option<Vec<(String, String)>>,
    failures: Vec<Failure>,
}

impl Bag<'_> {
    /// A failure of `file` (relative to the bag; `""` is the bag itself).
    fn fail(&mut self, file: &str, check: Check, message: impl Into<String>) {
        self.failures.push(Failure {
            bag: self.name.to_owned(),
            file: (!file.is_empty()).then(|| file.to_owned()),
            check,
            message: message.into(),
        });
    }

    fn missing(&self, rel: &str) -> &'static str {
        if self.irregular.contains(rel) {
            "is not a regular file"
        } else {
            "is missing"
        }
    }

    /// Walks the bag without following anything; security failures on the way.
    fn walk(&mut self) {
        // A stack, not recursion: a hostile bag may nest folders deeply.
        let mut folders = vec![String::new()];
        while let Some(folder) = folders.pop() {
            let entries = match fs::read_dir(self.dir.join(&folder)) {
                Ok(entries) => entries,
                Err(e) => {
                    self.fail(&folder, Integrity, format!("cannot be read: {e}"));
                    continue;
                }
            };
            for entry in entries {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        self.fail(&folder, Integrity, format!("cannot be listed: {e}"));
                        continue;
                    }
                };
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    let name = entry.file_name();
                    self.fail(
                        &folder,
                        Security,
                        format!("holds a non-UTF-8 name {name:?}"),
                    );
                    continue;
                };
                let rel = if folder.is_empty() {
                    name
                } else {
                    format!("{folder}/{name}")
                };
                self.visit(rel, &entry.path(), &mut folders);
            }
        }
    }

    fn visit(&mut self, rel: String, path: &Path, folders: &mut Vec<String>) {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) => return self.fail(&rel, Integrity, format!("cannot be read: {e}")),
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            return folders.push(rel);
        } else if kind.is_file() {
            self.check_not_executable(&rel, path, &meta);
            self.files.insert(rel, meta.len());
            return;
        } else if kind.is_symlink() {
            self.fail(&rel, Security, "is a link; a bag holds no links");
        } else {
            self.fail(
                &rel,
                Security,
                "is not a file or folder (a device, pipe or socket)",
            );
        }
        self.irregular.insert(rel);
    }

    fn check_not_executable(&mut self, rel: &str, path: &Path, meta: &fs::Metadata) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o111 != 0 {
                let mode = mode & 0o7777;
                self.fail(
                    rel,
                    Security,
                    format!("has execute permission (mode {mode:o})"),
                );
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let mut head = Vec::with_capacity(4);
        let read = fs::File::open(path).and_then(|file| file.take(4).read_to_end(&mut head));
        if let Err(e) = read {
            return self.fail(rel, Integrity, format!("cannot be read: {e}"));
        }
        let mut signatures = EXECUTABLE_SIGNATURES.iter();
        if let Some((_, what)) = signatures.find(|(magic, _)| head.starts_with(magic)) {
            self.fail(rel, Security, format!("starts like {what}"));
        }
    }

    /// A file found by the walk (so never a link), at most `cap` bytes.
    fn read(&mut self, rel: &str, cap: u64, check: Check) -> Option<Vec<u8>> {
        if !self.files.contains_key(rel) {
            self.fail(rel, check, self.missing(rel));
            return None;
        }
        read_capped(&self.dir.join(rel), cap)
            .map_err(|e| self.fail(rel, check, e))
            .ok()
    }

    fn read_text(&mut self, rel: &str, cap: u64, check: Check) -> Option<String> {
        let bytes = self.read(rel, cap, check)?;
        String::from_utf8(bytes)
            .map_err(|_| self.fail(rel, check, "is not UTF-8 text"))
            .ok()
    }

    /// A non-empty `bag-info.txt` value.
    fn info(&self, label: &str) -> Option<String> {
        let value = bag::info_value(self.info.as_deref()?, label)?;
        (!value.is_empty()).then(|| value.to_owned())
    }

    fn payload(&self) -> Vec<(String, u64)> {
        let payload = self
            .files
            .iter()
            .filter(|(rel, _)| rel.starts_with("data/"));
        payload.map(|(rel, size)| (rel.clone(), *size)).collect()
    }

    fn check_bagit_txt(&mut self) -> Option<()> {
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

    fn read_bag_info(&mut self) -> Option<()> {
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
    fn check_payload_manifest(&mut self) -> HashMap<String, String> {
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

    fn check_payload_oxum(&mut self) -> Option<()> {
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
    fn check_tag_manifest(&mut self) -> Option<Vec<u8>> {
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

    fn check_signature(&mut self, signed: &[u8], trusted_keys: Option<&[Vec<u8>]>) -> Option<()> {
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

    fn read_document(&mut self) -> Option<ArchivedDocument> {
        let text = self.read_text(DOCUMENT_JSON, TEXT_CAP, Usability)?;
        let document: ArchivedDocument = serde_json::from_str(&text)
            .map_err(|e| self.fail(DOCUMENT_JSON, Usability, format!("does not parse: {e}")))
            .ok()?;
        if document.format != FORMAT {
            let message = format!("has format {:?}, not {FORMAT}", document.format);
            self.fail(DOCUMENT_JSON, Usability, message);
        }
        let (doc_no, id) = (&document.doc_no, document.id);
        if let Some(identifier) = self.info("External-Identifier")
            && identifier != *doc_no
        {
            let message = format!("External-Identifier is {identifier:?}, doc_no is {doc_no:?}");
            self.fail(BAG_INFO_FILE, Usability, message);
        }
        if let Some(declared) = self.info("IMC-Document-Id")
            && declared != id.to_string()
        {
            let message = format!("IMC-Document-Id is {declared:?}, {DOCUMENT_JSON} has id {id}");
            self.fail(BAG_INFO_FILE, Usability, message);
        }
        Some(document)
    }

    /// Checks `audit.jsonl`; returns the SHA-256 each page's latest receipt
    /// records.
    fn check_audit(&mut self, document: Option<&ArchivedDocument>) -> Option<HashMap<u32, String>> {
        let text = self.read_text(AUDIT_JSONL, TEXT_CAP, Authenticity)?;
        let mut receipts = HashMap::new();
        let mut previous: Option<AuditLine> = None;
        let mut summary = AuditSummary {
            events: 0,
            first_id: None,
            last_id: None,
        };
        let mut all_parsed = true;
        for (index, raw) in text
            .lines()
            .enumerate()
            .filter(|(_, raw)| !raw.trim().is_empty())
        {
            let line: AuditLine = match serde_json::from_str(raw) {
                Ok(line) => line,
                Err(e) => {
                    let message = format!("line {} does not parse: {e}", index + 1);
                    self.fail(AUDIT_JSONL, Authenticity, message);
                    all_parsed = false;
                    continue;
                }
            };
            let at = format!("line {} (row {})", index + 1, line.id);
            self.check_audit_line(&at, &line, previous.as_ref(), document.map(|d| d.id));
            if line.action == RECEIVE_ACTION {
                match line.reason.as_deref().and_then(parse_receipt) {
                    Some(pages) => {
                        receipts.extend(pages.into_iter().map(|p| (p.page_no, p.sha256)))
                    }
                    None => {
                        let message = format!("{at}: an {RECEIVE_ACTION} row that is no receipt");
                        self.fail(AUDIT_JSONL, Authenticity, message);
                    }
                }
            }
            summary.events += 1;
            summary.first_id.get_or_insert(line.id);
            summary.last_id = Some(line.id);
            previous = Some(line);
        }
        if let Some(document) = document.filter(|d| all_parsed && d.audit != summary) {
            let message = format!(
                "its audit summary {:?} does not match {AUDIT_JSONL}: {summary:?}",
                document.audit
            );
            self.fail(DOCUMENT_JSON, Authenticity, message);
        }
        self.check_chain_head(previous.as_ref());
        Some(receipts)
    }

    fn check_audit_line(
        &mut self,
        at: &str,
        line: &AuditLine,
        previous: Option<&AuditLine>,
        document_id: Option<i64>,
    ) {
        let fields = ChainFields {
            id: line.id,
            at: &line.at,
            actor: &line.actor,
            document_id: line.document_id,
            action: &line.action,
            from: line.from_status.as_deref(),
            to: line.to_status.as_deref(),
            reason: line.reason.as_deref(),
        };
        let mut problems = Vec::new();
        if chain_hash(&line.prev_hash, &fields) != line.hash {
            problems.push("its fields do not give its hash; it was edited".to_owned());
        }
        // Rows of other documents lie between; only adjacent ids must link.
        match previous {
            Some(previous) if line.id <= previous.id => {
                problems.push(format!("follows row {}; ids must ascend", previous.id));
            }
            Some(previous)
                if previous.id.checked_add(1) == Some(line.id)
                    && line.prev_hash != previous.hash =>
            {
                problems.push(format!("its prev_hash is not row {}'s hash", previous.id));
            }
            _ => {}
        }
        if let Some(document_id) = document_id.filter(|id| line.document_id != Some(*id)) {
            problems.push(format!(
                "is about document {:?}, not {document_id}",
                line.document_id
            ));
        }
        for problem in problems {
            self.fail(AUDIT_JSONL, Authenticity, format!("{at}: {problem}"));
        }
    }

    /// The chain head the bag names must be at or after the excerpt's end.
    fn check_chain_head(&mut self, last: Option<&AuditLine>) -> Option<()> {
        self.info.as_ref()?;
        let Some(head) = self.info(CHAIN_HEAD) else {
            self.fail(BAG_INFO_FILE, Authenticity, format!("has no {CHAIN_HEAD}"));
            return None;
        };
        let parsed = head
            .split_once(' ')
            .and_then(|(id, hash)| Some((id.parse::<i64>().ok()?, hash)));
        let message = match (parsed, last) {
            (None, _) => format!("{CHAIN_HEAD} is {head:?}, not `<id> <hash>`"),
            (Some((id, _)), Some(last)) if id < last.id => {
                format!(
                    "{CHAIN_HEAD} names row {id}, before row {} of {AUDIT_JSONL}",
                    last.id
                )
            }
            (Some((id, hash)), Some(last))
                if id == last.id && !hash.eq_ignore_ascii_case(&last.hash) =>
            {
                format!("{CHAIN_HEAD} gives row {id} another hash than {AUDIT_JSONL} does")
            }
            _ => return Some(()),
        };
        self.fail(BAG_INFO_FILE, Authenticity, message);
        Some(())
    }

    /// Checks each page file; returns how many were checked.
    fn check_images(
        &mut self,
        document: &ArchivedDocument,
        actual: &HashMap<String, String>,
        receipts: &HashMap<u32, String>,
    ) -> usize {
        let mut checked = 0;
        for image in &document.images {
            let (Some(file), page) = (image.file.as_deref(), image.page_no) else {
                continue;
            };
            let outside = (!file.starts_with("data/")).then_some("lies outside data/");
            if let Some(why) = unsafe_path(file).or(outside) {
                let message = format!("names {file:?} for page {page}, which {why}");
                self.fail(DOCUMENT_JSON, Security, message);
                continue;
            }
            checked += 1;
            let Some(sha256) = actual.get(file) else {
                // Present but unreadable is already reported.
                if !self.files.contains_key(file) {
                    let message = format!("page {page}'s file {}", self.missing(file));
                    self.fail(file, Integrity, message);
                }
                continue;
            };
            if !image.sha256.eq_ignore_ascii_case(sha256) {
                let recorded = &image.sha256;
                let message =
                    format!("its SHA-256 is {sha256}, {DOCUMENT_JSON} records {recorded:?}");
                self.fail(file, Authenticity, message);
            }
            let receipt_problem = match receipts.get(&page) {
                None => Some(format!("no receipt in the audit excerpt for page {page}")),
                Some(received) if !received.eq_ignore_ascii_case(sha256) => Some(format!(
                    "its SHA-256 is {sha256}, page {page}'s latest receipt records {received}"
                )),
                Some(_) => None,
            };
            if let Some(message) = receipt_problem {
                self.fail(file, Authenticity, message);
            }
            if let Some(&size) = self.files.get(file).filter(|size| **size != image.size) {
                let message = format!("is {size} bytes, {DOCUMENT_JSON} records {}", image.size);
                self.fail(file, Integrity, message);
            }
            self.check_format(file, &image.content_type);
        }
        checked
    }

    fn check_format(&mut self, file: &str, content_type: &str) -> Option<()> {
        let bytes = self.read(file, imc_pages::MAX_FILE_BYTES, Usability)?;
        let mut formats = ARCHIVE_FORMATS.iter();
        let Some((_, sniffed)) = formats.find(|(magic, _)| bytes.starts_with(magic)) else {
            self.fail(
                file,
                Usability,
                "is not JPEG, PNG, TIFF or PDF by its bytes",
            );
            return None;
        };
        if *sniffed != content_type {
            let message =
                format!("is {sniffed} by its bytes, {DOCUMENT_JSON} says {content_type:?}");
            self.fail(file, Usability, message);
        }
        if let Err(why) = decodes(bytes, sniffed) {
            self.fail(file, Usability, why);
        }
        Some(())
    }
}

/// Why a manifest path may not be followed, if it may not.
fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.starts_with('/') || path.as_bytes().get(1) == Some(&b':') {
        Some("is absolute")
    } else if path.contains('\\') {
        Some("contains a backslash")
    } else if path.split('/').any(|part| part == "..") {
        Some("contains `..`")
    } else {
        None
    }
}

/// Whether a page file is whole and readable: images decode (every page of
/// a TIFF, CCITT included) within the desk's limits; a PDF ends and loads.
fn decodes(bytes: Vec<u8>, content_type: &str) -> Result<(), String> {
    if content_type != "application/pdf" {
        let decoded = imc_pages::extract_each(bytes, |_| {});
        return decoded
            .map(|_| ())
            .map_err(|e| format!("does not decode: {e}"));
    }
    let tail = &bytes[bytes.len().saturating_sub(PDF_EOF_WINDOW)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err("is a PDF with no %%EOF at its end (cut off?)".into());
    }
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(MAX_PDF_STREAM),
        ..Default::default()
    };
    let load = || lopdf::Document::load_mem_with_options(&bytes, options);
    let loaded = imc_pages::guard::guarded(load).ok_or("the PDF reader failed on it")?;
    let loaded = loaded.map_err(|e| format!("is a damaged PDF: {e}"))?;
    if loaded.get_pages().is_empty() {
        return Err("is a PDF with no pages".into());
    }
    Ok(())
}

fn signed_by(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let key = UnparsedPublicKey::new(&ED25519, key);
    key.verify(message, signature).is_ok()
}

/// The file's bytes, or why not; more than `cap` bytes is refused.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(cap.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!(
            "is larger than {} MiB; not read",
            cap / (1024 * 1024)
        ));
    }
    Ok(bytes)
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The bag's name when `path` is the bag itself (`.` included).
fn folder_name(path: &Path) -> String {
    let canonical = fs::canonicalize(path).ok();
    let name = path
        .file_name()
        .or_else(|| canonical.as_deref().and_then(Path::file_name));
    name.map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `text` with control characters and bidi overrides as `\u{…}` escapes.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
