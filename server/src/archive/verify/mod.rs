//! `imc-server archive verify`: the four checks of docs/ARCHIVE.md
//! (integrity, authenticity, usability, security) on one bag or a folder of
//! bags, with nothing but the bags and, optionally, trusted public keys.
//!
//! A bag is hostile input: nothing in it is followed (a link is a failure),
//! nothing is read past a cap, decoders run behind `catch_unwind`, and every
//! failure found is reported, not only the first.

mod content;
mod tags;
#[cfg(test)]
mod tests;

use super::bag::{self, BAG_INFO_FILE, BAGIT_FILE, DOCUMENT_XML, MANIFEST_FILE, TAG_MANIFEST_FILE};
use Check::{Authenticity, Integrity, Security, Usability};
use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Tag files, `document.json` and `audit.jsonl` are text IMC writes small;
/// one larger than this is hostile and is not read.
const TEXT_CAP: u64 = 64 * 1024 * 1024;
const KEY_FILE_CAP: u64 = 1024 * 1024;

/// First bytes of programs and scripts; a bag carries none.
const EXECUTABLE_SIGNATURES: [(&[u8], &str); 6] = [
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "an ELF program"),
    (b"#!", "a script"),
    (b"\xfe\xed\xfa", "a Mach-O program"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O program"),
    (b"\xce\xfa\xed\xfe", "a Mach-O program"),
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
/// start with `.`, so `.partial-*` folders are skipped). `trusted_keys` are
/// raw 32-byte Ed25519 public keys; `None` uses each bag's own
/// `IMC-Signing-Key`, whose fingerprint must match. An error only when
/// `path` cannot be read or is neither a bag nor a folder of bags.
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
