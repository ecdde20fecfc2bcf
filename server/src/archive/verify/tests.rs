//! The checks on bags written by hand here, so that they test the format
//! of docs/ARCHIVE.md and not whatever the export happens to write.

use super::content::decodes;
use super::*;
use crate::archive::bag::{AUDIT_JSONL, DOCUMENT_JSON, SIGNATURE_FILE, TAG_FILES};
use crate::archive::record::{ArchivedDocument, ArchivedImage, AuditLine, AuditSummary, FORMAT};
use crate::domain::receipt::{RECEIVE_ACTION, Received, receipt_text};
use crate::store::audit_chain::{ChainFields, GENESIS, chain_hash};
use imc_shared::{DocStatus, ImageMode};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::io::Cursor;

const DOCUMENT_ID: i64 = 42;
const DOC_NO: &str = "AP-2026-0107";
const PAGE: &str = "data/pages/0001.png";

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn public(key: &Ed25519KeyPair) -> Vec<u8> {
    key.public_key().as_ref().to_vec()
}

fn png() -> Vec<u8> {
    let pixels =
        image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 16, y as u8 * 16, 99]));
    let mut out = Cursor::new(Vec::new());
    pixels.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn audit_line(
    prev: &str,
    id: i64,
    action: &str,
    (from, to): (Option<&str>, Option<&str>),
    reason: &str,
) -> AuditLine {
    let at = format!("2026-01-07T10:00:0{id}Z");
    let fields = ChainFields {
        id,
        at: &at,
        actor: "staff:alice",
        document_id: Some(DOCUMENT_ID),
        action,
        from,
        to,
        reason: Some(reason),
    };
    AuditLine {
        hash: chain_hash(prev, &fields),
        id,
        at,
        actor: "staff:alice".into(),
        document_id: Some(DOCUMENT_ID),
        action: action.into(),
        from_status: from.map(Into::into),
        to_status: to.map(Into::into),
        reason: Some(reason.into()),
        prev_hash: prev.into(),
    }
}

/// Three rows chained from genesis: created, the page received, signed off.
fn audit(page_sha256: &str) -> Vec<AuditLine> {
    let receipt = receipt_text(&[Received {
        page_no: 1,
        sha256: page_sha256.into(),
    }]);
    let created = audit_line(
        GENESIS,
        1,
        "documents.create",
        (None, Some("awaiting_images")),
        "from ERP",
    );
    let statuses = (Some("awaiting_images"), Some("matched"));
    let received = audit_line(&created.hash, 2, RECEIVE_ACTION, statuses, &receipt);
    let statuses = (Some("matched"), Some("ready"));
    let signed = audit_line(&received.hash, 3, "documents.sign_off", statuses, "checked");
    vec![created, received, signed]
}

fn document(page: &[u8], audit: &[AuditLine]) -> ArchivedDocument {
    ArchivedDocument {
        format: FORMAT.into(),
        id: DOCUMENT_ID,
        source_system: "ERP".into(),
        doc_no: DOC_NO.into(),
        doc_type: "expense".into(),
        org: "ACME".into(),
        cover_code: "C-42".into(),
        title: Some("Travel".into()),
        amount: Some("1234.50".into()),
        submitter: None,
        attachment_count: Some(1),
        attachment_check: None,
        metadata: None,
        mode: ImageMode::Match,
        status: DocStatus::Ready,
        reject_reason: None,
        created_at: "2026-01-07T10:00:01Z".into(),
        updated_at: "2026-01-07T10:00:03Z".into(),
        decision: None,
        images: vec![ArchivedImage {
            page_no: 1,
            file: Some(PAGE.into()),
            sha256: bag::sha256_hex(page),
            size: page.len() as u64,
            content_type: "image/png".into(),
            kind: "invoice".into(),
            blank: false,
            barcodes: Vec::new(),
            invoice: None,
            purged: None,
        }],
        conflicts: Vec::new(),
        audit: AuditSummary {
            events: audit.len(),
            first_id: audit.first().map(|l| l.id),
            last_id: audit.last().map(|l| l.id),
        },
    }
}

fn write(bag: &Path, rel: &str, bytes: &[u8]) {
    let path = bag.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn jsonl(lines: &[AuditLine]) -> String {
    let lines = lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n");
    lines.collect()
}

fn files_under(bag: &Path, folder: &str, found: &mut Vec<String>) {
    for entry in fs::read_dir(bag.join(folder)).unwrap() {
        let entry = entry.unwrap();
        let rel = format!("{folder}/{}", entry.file_name().to_str().unwrap());
        if entry.file_type().unwrap().is_dir() {
            files_under(bag, &rel, found);
        } else {
            found.push(rel);
        }
    }
}

/// Writes the tag files for what `data/` holds now, signed with `key`.
fn seal(bag: &Path, key: &Ed25519KeyPair) {
    let mut payload = Vec::new();
    files_under(bag, "data", &mut payload);
    payload.sort();
    let hashes: Vec<(String, String, u64)> = payload
        .into_iter()
        .map(|rel| {
            let bytes = fs::read(bag.join(&rel)).unwrap();
            (rel, bag::sha256_hex(&bytes), bytes.len() as u64)
        })
        .collect();
    let manifest = bag::manifest(
        hashes
            .iter()
            .map(|(rel, sha, _)| (rel.as_str(), sha.as_str())),
    );
    let total = hashes.iter().map(|(_, _, size)| size).sum();
    let oxum = bag::payload_oxum(total, hashes.len());
    let head = fs::read_to_string(bag.join(AUDIT_JSONL)).map_or("3 x".into(), |text| {
        let last: AuditLine = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        format!("{} {}", last.id, last.hash)
    });
    let public = public(key);
    let encoded = BASE64.encode(&public);
    let fingerprint = bag::key_fingerprint(&public);
    let id = DOCUMENT_ID.to_string();
    let info = bag::bag_info([
        ("Source-Organization", "ACME"),
        ("Bagging-Date", "2026-02-01"),
        ("External-Identifier", DOC_NO),
        ("External-Description", "expense AP-2026-0107"),
        ("Payload-Oxum", &oxum),
        ("Bag-Software-Agent", "imc-server 0.0.0"),
        ("IMC-Version", "0.0.0"),
        ("IMC-Document-Id", &id),
        ("IMC-Version-Digest", "abc"),
        ("IMC-Signing-Key", &encoded),
        ("IMC-Signing-Key-Fingerprint", &fingerprint),
        ("IMC-Audit-Chain-Head", &head),
    ]);
    write(bag, BAGIT_FILE, bag::BAGIT_TXT.as_bytes());
    write(bag, BAG_INFO_FILE, info.as_bytes());
    write(bag, MANIFEST_FILE, manifest.as_bytes());
    seal_tags_only(bag, key);
}

fn sign(bag: &Path, key: &Ed25519KeyPair) {
    let signed = fs::read(bag.join(TAG_MANIFEST_FILE)).unwrap();
    let signature = BASE64.encode(key.sign(&signed).as_ref());
    write(bag, SIGNATURE_FILE, format!("{signature}\n").as_bytes());
}

fn write_bag(parent: &Path, name: &str, key: &Ed25519KeyPair) -> PathBuf {
    let bag = parent.join(name);
    let page = png();
    let audit = audit(&bag::sha256_hex(&page));
    let document = serde_json::to_vec_pretty(&document(&page, &audit)).unwrap();
    write(&bag, PAGE, &page);
    write(&bag, DOCUMENT_JSON, &document);
    write(&bag, DOCUMENT_XML, b"<document id=\"42\"/>\n");
    write(&bag, AUDIT_JSONL, jsonl(&audit).as_bytes());
    seal(&bag, key);
    bag
}

fn one_bag() -> (tempfile::TempDir, PathBuf, Ed25519KeyPair) {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let bag = write_bag(dir.path(), "AP-2026-0107.42.v1", &key);
    (dir, bag, key)
}

/// Fails the test, listing the failures found, unless one is `check` on `file`.
fn assert_has(report: &Report, file: &str, check: Check) {
    let mut failures = report.failures.iter();
    let found = failures.any(|f| f.file.as_deref() == Some(file) && f.check == check);
    assert!(
        found,
        "no {check} failure on {file}: {:#?}",
        report.failures
    );
}

/// Verifies `bag` with its own key; fails the test unless each of `checks`
/// is among the failures on `file`.
fn assert_fails(bag: &Path, file: &str, checks: &[Check]) {
    let report = verify(bag, None).unwrap();
    for &check in checks {
        assert_has(&report, file, check);
    }
}

#[test]
fn a_valid_bag_passes_with_its_own_key_and_with_a_trusted_key() {
    let (_dir, bag, key) = one_bag();
    let report = verify(&bag, None).unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    assert_eq!((report.bags, report.images), (1, 1));
    let report = verify(&bag, Some(&[public(&key)])).unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
}

#[test]
fn a_flipped_byte_in_an_image_fails_integrity_naming_the_page() {
    let (_dir, bag, _key) = one_bag();
    let mut page = fs::read(bag.join(PAGE)).unwrap();
    let middle = page.len() / 2;
    page[middle] ^= 0x01;
    fs::write(bag.join(PAGE), page).unwrap();
    assert_fails(&bag, PAGE, &[Check::Integrity, Check::Authenticity]);
}

#[test]
fn a_deleted_audit_excerpt_fails_naming_it() {
    let (_dir, bag, _key) = one_bag();
    fs::remove_file(bag.join(AUDIT_JSONL)).unwrap();
    assert_fails(&bag, AUDIT_JSONL, &[Check::Integrity, Check::Authenticity]);
}

#[test]
fn a_signature_by_another_key_fails_authenticity() {
    let (_dir, bag, key) = one_bag();
    sign(&bag, &self::key());
    for trusted in [None, Some(vec![public(&key)])] {
        let report = verify(&bag, trusted.as_deref()).unwrap();
        assert_has(&report, SIGNATURE_FILE, Check::Authenticity);
        assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    }
    // Resigned by a stranger who also swaps the key in bag-info: only a
    // trusted key tells.
    let stranger = self::key();
    seal(&bag, &stranger);
    assert!(verify(&bag, None).unwrap().ok());
    let report = verify(&bag, Some(&[public(&key)])).unwrap();
    let failure = &report.failures[0];
    assert_eq!(failure.file.as_deref(), Some(SIGNATURE_FILE));
    assert!(
        failure.message.contains("none of the 1 trusted keys"),
        "{failure}"
    );
}

#[test]
fn an_edited_audit_row_fails_the_chain_even_when_resealed() {
    let (_dir, bag, key) = one_bag();
    let text = fs::read_to_string(bag.join(AUDIT_JSONL)).unwrap();
    let mut lines: Vec<AuditLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[2].reason = Some("nobody checked".into());
    fs::write(bag.join(AUDIT_JSONL), jsonl(&lines)).unwrap();
    seal(&bag, &key);
    let report = verify(&bag, None).unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    let failure = &report.failures[0];
    assert_eq!(
        (failure.file.as_deref(), failure.check),
        (Some(AUDIT_JSONL), Check::Authenticity)
    );
    assert!(failure.message.contains("line 3 (row 3)"), "{failure}");
}

#[test]
fn an_image_without_a_receipt_fails_authenticity() {
    let (_dir, bag, key) = one_bag();
    let text = fs::read_to_string(bag.join(AUDIT_JSONL)).unwrap();
    let lines: Vec<AuditLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let without: Vec<AuditLine> = lines
        .into_iter()
        .filter(|l| l.action != RECEIVE_ACTION)
        .collect();
    fs::write(bag.join(AUDIT_JSONL), jsonl(&without)).unwrap();
    seal(&bag, &key);
    let report = verify(&bag, None).unwrap();
    let messages: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    let expected = format!(
        "{}/{PAGE}: authenticity: no receipt in the audit excerpt for page 1",
        folder_name(&bag)
    );
    assert!(messages.contains(&expected), "{messages:#?}");
}

#[cfg(unix)]
#[test]
fn links_executables_and_escaping_paths_fail_security() {
    let (_dir, bag, key) = one_bag();
    std::os::unix::fs::symlink("/etc/passwd", bag.join("data/link")).unwrap();
    write(&bag, "data/tool.bin", b"\x7fELF\x02\x01");
    seal(&bag, &key);
    let report = verify(&bag, None).unwrap();
    assert_has(&report, "data/link", Check::Security);
    assert_has(&report, "data/tool.bin", Check::Security);

    let (_dir, bag, key) = one_bag();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(bag.join(PAGE), fs::Permissions::from_mode(0o755)).unwrap();
    let manifest = fs::read_to_string(bag.join(MANIFEST_FILE)).unwrap();
    let escaping = format!("{manifest}{}  data/../../etc/passwd\n", "0".repeat(64));
    write(&bag, MANIFEST_FILE, escaping.as_bytes());
    seal_tags_only(&bag, &key);
    let report = verify(&bag, None).unwrap();
    assert_has(&report, PAGE, Check::Security);
    assert_has(&report, MANIFEST_FILE, Check::Security);
    assert!(
        report.failures.iter().all(|f| f.check == Check::Security),
        "{:#?}",
        report.failures
    );
}

/// Re-signs the tag files as they are (after a hand-edited manifest).
fn seal_tags_only(bag: &Path, key: &Ed25519KeyPair) {
    let tag_hashes: Vec<(&str, String)> = TAG_FILES
        .iter()
        .map(|f| (*f, bag::sha256_hex(&fs::read(bag.join(f)).unwrap())))
        .collect();
    let tag_manifest = bag::manifest(tag_hashes.iter().map(|(f, sha)| (*f, sha.as_str())));
    write(bag, TAG_MANIFEST_FILE, tag_manifest.as_bytes());
    sign(bag, key);
}

#[test]
fn a_folder_of_bags_verifies_each_and_skips_partial_ones() {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    write_bag(dir.path(), "AP-1.1.v1", &key);
    write_bag(dir.path(), "AP-2.2.v1", &key);
    write(dir.path(), bag::DESTINATION_MARKER, b"imc archive\n");
    write(dir.path(), ".partial-AP-3.3.v1/bagit.txt", b"half");
    let report = verify(dir.path(), Some(&[public(&key)])).unwrap();
    assert!(report.ok(), "{:#?}", report.failures);
    assert_eq!((report.bags, report.images), (2, 2));

    fs::remove_file(dir.path().join("AP-2.2.v1").join(bag::BAGIT_FILE)).unwrap();
    let report = verify(dir.path(), None).unwrap();
    assert!(
        report.failures.iter().all(|f| f.bag == "AP-2.2.v1"),
        "{:#?}",
        report.failures
    );
    assert_has(&report, BAGIT_FILE, Check::Integrity);
}

#[test]
fn a_folder_that_is_no_archive_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(verify(dir.path(), None).is_err());
    assert!(verify(&dir.path().join("absent"), None).is_err());
    write(dir.path(), bag::DESTINATION_MARKER, b"imc archive\n");
    let report = verify(dir.path(), None).unwrap();
    assert_eq!((report.bags, report.ok()), (0, true));
}

#[test]
fn hostile_text_does_not_panic_and_fails() {
    let (_dir, bag, key) = one_bag();
    write(
        &bag,
        AUDIT_JSONL,
        b"{\"id\": 9223372036854775807}\n\xff\xfe\n",
    );
    write(&bag, DOCUMENT_JSON, b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    write(&bag, PAGE, b"\x89PNG\r\n\x1a\nnot really");
    seal(&bag, &key);
    write(&bag, SIGNATURE_FILE, b"!!!");
    let report = verify(&bag, None).unwrap();
    assert_has(&report, AUDIT_JSONL, Check::Authenticity);
    assert_has(&report, DOCUMENT_JSON, Check::Usability);
    assert_has(&report, SIGNATURE_FILE, Check::Authenticity);
}

#[test]
fn a_page_whose_bytes_are_not_its_type_fails_usability() {
    let (_dir, bag, key) = one_bag();
    let path = bag.join(DOCUMENT_JSON);
    let mut document: ArchivedDocument = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    document.images[0].content_type = "image/jpeg".into();
    fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
    seal(&bag, &key);
    let report = verify(&bag, None).unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    assert_has(&report, PAGE, Check::Usability);
}

#[test]
fn failures_print_one_escaped_line() {
    let failure = Failure {
        bag: "AP\u{1b}[31m.1.v1".into(),
        file: Some("data/x\u{202e}gnp".into()),
        check: Check::Security,
        message: "is a link".into(),
    };
    assert_eq!(
        failure.to_string(),
        "AP\\u{1b}[31m.1.v1/data/x\\u{202e}gnp: security: is a link"
    );
    let bagless = Failure {
        file: None,
        ..failure
    };
    assert!(
        bagless
            .to_string()
            .starts_with("AP\\u{1b}[31m.1.v1: security")
    );
    let json = serde_json::to_value(&bagless).unwrap();
    assert_eq!(json["check"], "security");
}

#[test]
fn key_files_skip_comments_and_name_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.pub");
    let (a, b) = (public(&key()), public(&key()));
    let text = format!(
        "# archive keys\n\n{}\n{}  # rotated 2026\n",
        BASE64.encode(&a),
        BASE64.encode(&b)
    );
    fs::write(&path, text).unwrap();
    assert_eq!(read_key_file(&path).unwrap(), vec![a.clone(), b]);

    fs::write(&path, format!("{}\nAAAA\n", BASE64.encode(&a))).unwrap();
    let error = read_key_file(&path).unwrap_err().to_string();
    assert!(error.contains("line 2"), "{error}");
    fs::write(&path, "# nothing\n").unwrap();
    assert!(read_key_file(&path).is_err());
}

#[test]
fn a_bag_without_bagit_txt_is_still_checked_as_one_bag() {
    let (_dir, bag, _key) = one_bag();
    fs::remove_file(bag.join(BAGIT_FILE)).unwrap();
    let report = verify(&bag, None).unwrap();
    assert_eq!(report.bags, 1);
    assert_has(&report, BAGIT_FILE, Check::Integrity);
}

fn one_page_pdf() -> Vec<u8> {
    use lopdf::{Object, dictionary};
    let mut pdf = lopdf::Document::with_version("1.5");
    let pages = pdf.new_object_id();
    let media_box: Vec<Object> = vec![0.into(), 0.into(), 595.into(), 842.into()];
    let page =
        pdf.add_object(dictionary! {"Type" => "Page", "Parent" => pages, "MediaBox" => media_box});
    let kids: Vec<Object> = vec![page.into()];
    pdf.objects.insert(
        pages,
        Object::Dictionary(dictionary! {"Type" => "Pages", "Kids" => kids, "Count" => 1}),
    );
    let catalog = pdf.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages});
    pdf.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    pdf.save_to(&mut bytes).unwrap();
    bytes
}

#[test]
fn pages_must_be_whole_files_of_their_format() {
    let pdf = one_page_pdf();
    assert_eq!(decodes(pdf.clone(), "application/pdf"), Ok(()));
    let cut = pdf[..pdf.len() - 10].to_vec();
    assert!(
        decodes(cut, "application/pdf")
            .unwrap_err()
            .contains("%%EOF")
    );
    assert_eq!(decodes(png(), "image/png"), Ok(()));
    let png = png();
    assert!(decodes(png[..png.len() / 2].to_vec(), "image/png").is_err());
}
