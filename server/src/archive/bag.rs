//! The BagIt 1.0 format (RFC 8493) as IMC writes and reads it: the tag
//! files' text, the manifests, `Payload-Oxum`, and the names of bags and
//! pages. Plain functions over text and bytes; no file system.

use sha2::{Digest, Sha256};

pub const BAGIT_TXT: &str = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n";
pub const BAGIT_FILE: &str = "bagit.txt";
pub const BAG_INFO_FILE: &str = "bag-info.txt";
pub const MANIFEST_FILE: &str = "manifest-sha256.txt";
pub const TAG_MANIFEST_FILE: &str = "tagmanifest-sha256.txt";
/// The detached Ed25519 signature of the tag manifest, base64.
pub const SIGNATURE_FILE: &str = "tagmanifest-sha256.txt.sig";
/// Marks a folder as an IMC archive destination.
pub const DESTINATION_MARKER: &str = "imc-archive.txt";
/// A bag being written; never a name a complete bag has.
pub const PARTIAL_PREFIX: &str = ".partial-";
/// Payload files, relative to the bag.
pub const DOCUMENT_JSON: &str = "data/document.json";
pub const DOCUMENT_XML: &str = "data/document.xml";
pub const AUDIT_JSONL: &str = "data/audit.jsonl";

/// The tag files the tag manifest covers, in the order written.
pub const TAG_FILES: [&str; 3] = [BAGIT_FILE, BAG_INFO_FILE, MANIFEST_FILE];

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A manifest: `<sha256>  <path>` a line, in the order given. Paths are
/// `/`-separated and relative to the bag; IMC names hold no characters that
/// RFC 8493 asks to percent-encode (CR, LF, `%`).
pub fn manifest<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    entries
        .into_iter()
        .map(|(path, sha256)| format!("{sha256}  {path}\n"))
        .collect()
}

/// A manifest's lines as (path, sha256); an error names the bad line.
pub fn parse_manifest(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let (hash, path) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("line {}: not `checksum path`", n + 1))?;
            let path = path.trim_start();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("line {}: {hash:?} is not a SHA-256", n + 1));
            }
            if path.is_empty() {
                return Err(format!("line {}: no path", n + 1));
            }
            Ok((decode_path(path), hash.to_ascii_lowercase()))
        })
        .collect()
}

/// RFC 8493 §2.1.3: CR, LF and `%` in a manifest path are percent-encoded.
fn decode_path(path: &str) -> String {
    path.replace("%0D", "\r")
        .replace("%0d", "\r")
        .replace("%0A", "\n")
        .replace("%0a", "\n")
        .replace("%25", "%")
}

/// `Payload-Oxum`: the payload's total octets and its file count.
pub fn payload_oxum(total_bytes: u64, files: usize) -> String {
    format!("{total_bytes}.{files}")
}

/// `bag-info.txt`: `Label: value` lines, in the order given. Values are one
/// line: line breaks in a value become spaces.
pub fn bag_info<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    fields
        .into_iter()
        .map(|(label, value)| {
            let value: String = value
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("{label}: {value}\n")
        })
        .collect()
}

/// `bag-info.txt` read back: (label, value) pairs; continuation lines
/// (starting with white space) join the value before them.
pub fn parse_bag_info(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((label, value)) = line.split_once(':') {
            fields.push((label.trim().to_owned(), value.trim().to_owned()));
        }
    }
    fields
}

/// The first value of `label` in parsed bag-info fields.
pub fn info_value<'a>(fields: &'a [(String, String)], label: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(l, _)| l.eq_ignore_ascii_case(label))
        .map(|(_, v)| v.as_str())
}

/// A bag's folder name: `<doc_no as a file name>.<id>.v<version>`.
pub fn bag_name(doc_no: &str, document_id: i64, version: u32) -> String {
    format!("{}.{document_id}.v{version}", file_name_part(doc_no))
}

/// (document id, version) from a complete bag's folder name.
pub fn parse_bag_name(name: &str) -> Option<(i64, u32)> {
    if name.starts_with('.') {
        return None;
    }
    let (rest, version) = name.rsplit_once(".v")?;
    let (_, id) = rest.rsplit_once('.')?;
    Some((id.parse().ok()?, version.parse().ok()?))
}

/// A document number as part of a file name: letters and digits of any
/// script, `-` and `_` kept, anything else `_`, at most 100 bytes (cut on a
/// character), so that `.partial-`, the id and the version still fit the
/// 255 bytes a file name may have.
fn file_name_part(text: &str) -> String {
    let mut part = String::new();
    for c in text.chars() {
        let c = if c.is_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        };
        if part.len() + c.len_utf8() > 100 {
            break;
        }
        part.push(c);
    }
    if part.is_empty() { "_".into() } else { part }
}

/// A page's file, relative to the bag: `data/pages/0001.png`.
pub fn page_file(page_no: u32, content_type: &str) -> String {
    format!("data/pages/{page_no:04}.{}", extension(content_type))
}

pub fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/tiff" => "tif",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

/// A whole bag's files from its payload (paths under `data/`, in order)
/// and its `bag-info.txt` fields (`Payload-Oxum` is added here): the
/// payload, `bagit.txt`, `bag-info.txt`, both manifests, and the tag
/// manifest's detached signature made by `sign`, base64.
pub fn assemble<E>(
    payload: Vec<(String, Vec<u8>)>,
    info: &[(&str, String)],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<(String, Vec<u8>)>, E> {
    let hashes: Vec<(String, String)> = payload
        .iter()
        .map(|(path, bytes)| (path.clone(), sha256_hex(bytes)))
        .collect();
    let manifest = manifest(hashes.iter().map(|(p, h)| (p.as_str(), h.as_str())));
    let total: u64 = payload.iter().map(|(_, b)| b.len() as u64).sum();
    let oxum = payload_oxum(total, payload.len());
    let mut fields: Vec<(&str, &str)> = info.iter().map(|(l, v)| (*l, v.as_str())).collect();
    fields.push(("Payload-Oxum", &oxum));
    let info = bag_info(fields);
    let tags = [
        (BAGIT_FILE, BAGIT_TXT.as_bytes().to_vec()),
        (BAG_INFO_FILE, info.into_bytes()),
        (MANIFEST_FILE, manifest.into_bytes()),
    ];
    let tag_hashes: Vec<String> = tags.iter().map(|(_, bytes)| sha256_hex(bytes)).collect();
    let tag_manifest = self::manifest(
        tags.iter()
            .zip(&tag_hashes)
            .map(|((name, _), hash)| (*name, hash.as_str())),
    );
    let signature = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        sign(tag_manifest.as_bytes())?,
    );
    let mut files = payload;
    files.extend(tags.into_iter().map(|(n, b)| (n.to_owned(), b)));
    files.push((TAG_MANIFEST_FILE.to_owned(), tag_manifest.into_bytes()));
    files.push((
        SIGNATURE_FILE.to_owned(),
        format!("{signature}\n").into_bytes(),
    ));
    Ok(files)
}

/// The fingerprint of an Ed25519 public key: SHA-256 of its 32 bytes, hex.
pub fn key_fingerprint(public_key: &[u8]) -> String {
    sha256_hex(public_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_read_back_as_written() {
        let a = sha256_hex(b"a");
        let b = sha256_hex(b"b");
        let text = manifest([
            ("data/document.json", a.as_str()),
            ("data/pages/0001.png", &b),
        ]);
        assert_eq!(
            parse_manifest(&text).unwrap(),
            vec![
                ("data/document.json".to_owned(), a),
                ("data/pages/0001.png".to_owned(), b)
            ]
        );
        assert!(
            parse_manifest("abc  data/x")
                .unwrap_err()
                .contains("line 1")
        );
    }

    #[test]
    fn bag_info_keeps_order_and_folds_line_breaks() {
        let text = bag_info([
            ("External-Identifier", "AP-1"),
            ("External-Description", "two\nlines"),
        ]);
        assert_eq!(
            text,
            "External-Identifier: AP-1\nExternal-Description: two lines\n"
        );
        let fields = parse_bag_info(&format!("{text}Long: first\n  second\n"));
        assert_eq!(info_value(&fields, "external-identifier"), Some("AP-1"));
        assert_eq!(info_value(&fields, "Long"), Some("first second"));
    }

    #[test]
    fn an_assembled_bag_lists_its_payload_and_signs_its_tag_manifest() {
        let payload = vec![("data/a.txt".to_owned(), b"abc".to_vec())];
        let files = assemble(payload, &[("External-Identifier", "AP-1".into())], |tags| {
            Ok::<_, ()>(sha256_hex(tags).into_bytes())
        })
        .unwrap();
        let names: Vec<_> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "data/a.txt",
                BAGIT_FILE,
                BAG_INFO_FILE,
                MANIFEST_FILE,
                TAG_MANIFEST_FILE,
                SIGNATURE_FILE
            ]
        );
        let text = |name: &str| {
            String::from_utf8(files.iter().find(|(n, _)| n == name).unwrap().1.clone()).unwrap()
        };
        assert!(text(BAG_INFO_FILE).contains("Payload-Oxum: 3.1"));
        assert_eq!(
            parse_manifest(&text(MANIFEST_FILE)).unwrap(),
            vec![("data/a.txt".to_owned(), sha256_hex(b"abc"))]
        );
        let tag_manifest = parse_manifest(&text(TAG_MANIFEST_FILE)).unwrap();
        assert_eq!(tag_manifest.len(), 3);
        let signed = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            text(SIGNATURE_FILE).trim(),
        )
        .unwrap();
        assert_eq!(
            signed,
            sha256_hex(text(TAG_MANIFEST_FILE).as_bytes()).into_bytes()
        );
    }

    #[test]
    fn bag_names_are_file_names_and_read_back() {
        let name = bag_name("AP/2026\\..\u{202e}报销", 42, 3);
        assert_eq!(name, "AP_2026____报销.42.v3");
        assert_eq!(parse_bag_name(&name), Some((42, 3)));
        assert_eq!(parse_bag_name(".partial-AP.42.v3"), None);
        assert_eq!(parse_bag_name("imc-archive.txt"), None);
        assert_eq!(page_file(7, "image/png"), "data/pages/0007.png");
        let long = bag_name(&"报".repeat(200), i64::MAX, u32::MAX);
        assert!(
            format!("{PARTIAL_PREFIX}{long}").len() <= 255,
            "{}",
            long.len()
        );
        assert_eq!(parse_bag_name(&long), Some((i64::MAX, u32::MAX)));
    }
}
