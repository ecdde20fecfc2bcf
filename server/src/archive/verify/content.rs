//! What the bag says about its document: `document.json` against
//! `bag-info.txt`, the audit excerpt's chain and receipts, and each page
//! file against its record, its receipt and its format.

use super::Bag;
use super::Check::{Authenticity, Integrity, Security, Usability};
use super::bag::{AUDIT_JSONL, BAG_INFO_FILE, DOCUMENT_JSON};
use super::{TEXT_CAP, unsafe_path};
use crate::archive::record::{ArchivedDocument, AuditLine, AuditSummary, FORMAT};
use crate::domain::receipt::{RECEIVE_ACTION, parse_receipt};
use crate::store::audit_chain::{ChainFields, chain_hash};
use std::collections::HashMap;

/// A PDF's `%%EOF` must lie within this many bytes of its end.
const PDF_EOF_WINDOW: usize = 1024;
/// As for uploads: PDF streams are small; a huge one is a bomb.
const MAX_PDF_STREAM: usize = 64 * 1024 * 1024;
const CHAIN_HEAD: &str = "IMC-Audit-Chain-Head";

/// The formats an archive accepts, by their first bytes.
const ARCHIVE_FORMATS: [(&[u8], &str); 5] = [
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"II*\0", "image/tiff"),
    (b"MM\0*", "image/tiff"),
    (b"%PDF-", "application/pdf"),
];

impl Bag<'_> {
    pub(super) fn read_document(&mut self) -> Option<ArchivedDocument> {
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
    pub(super) fn check_audit(
        &mut self,
        document: Option<&ArchivedDocument>,
    ) -> Option<HashMap<u32, String>> {
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
    pub(super) fn check_images(
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

/// Whether a page file is whole and readable: images decode (every page of
/// a TIFF, CCITT included) within the desk's limits; a PDF ends and loads.
pub(super) fn decodes(bytes: Vec<u8>, content_type: &str) -> Result<(), String> {
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
