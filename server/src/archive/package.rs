//! What goes into one document's package, decided from what the store
//! holds: the `document.json` record, the audit excerpt, each page's kind,
//! and the digest that tells one version of a document from the next.
//! Plain functions: no I/O.

use super::record::{
    ArchivedConflict, ArchivedDecision, ArchivedDocument, ArchivedImage, AuditLine, AuditSummary,
    FORMAT,
};
use crate::domain::receipt::RECEIVE_ACTION;
use crate::store::{AuditRow, Document, Image, InvoiceConflict, PURGE_ACTION};
use imc_shared::api::AttachmentCheck;
use imc_shared::vat;
use sha2::{Digest, Sha256};

/// The audit actions that are decisions on a document.
const DECISIONS: [&str; 4] = ["sign-off", "reject", "unsign", "cancel"];

pub struct Facts {
    pub document: Document,
    pub images: Vec<Image>,
    pub audit: Vec<AuditRow>,
    pub conflicts: Vec<InvoiceConflict>,
    pub attachment_check: Option<AttachmentCheck>,
}

/// The `document.json` record of a document; page files are named as
/// [`super::bag::page_file`] names them.
pub fn record(facts: &Facts) -> ArchivedDocument {
    let doc = &facts.document;
    let decision = facts
        .audit
        .iter()
        .rev()
        .find(|row| DECISIONS.contains(&row.action.as_str()))
        .map(|row| ArchivedDecision {
            action: row.action.clone(),
            by: row.actor.clone(),
            at: row.at.clone(),
            reason: row.reason.clone(),
        });
    ArchivedDocument {
        format: FORMAT.to_owned(),
        id: doc.id,
        source_system: doc.source_system.clone(),
        doc_no: doc.doc_no.clone(),
        doc_type: doc.doc_type.clone(),
        org: doc.org.clone(),
        cover_code: doc.cover_code.clone(),
        title: doc.title.clone(),
        amount: doc.amount.clone(),
        submitter: doc.submitter.clone(),
        attachment_count: doc.attachment_count,
        attachment_check: facts.attachment_check,
        metadata: doc.metadata.clone(),
        mode: doc.mode,
        status: doc.status,
        reject_reason: doc.reject_reason.clone(),
        created_at: doc.created_at.clone(),
        updated_at: doc.updated_at.clone(),
        decision,
        images: facts.images.iter().map(|i| image(doc, i)).collect(),
        conflicts: facts
            .conflicts
            .iter()
            .map(|c| ArchivedConflict {
                kind: "duplicate_invoice".to_owned(),
                invoice_code: c.invoice_code.clone(),
                invoice_number: c.invoice_number.clone(),
                other_document_id: c.other_document_id,
            })
            .collect(),
        audit: AuditSummary {
            events: facts.audit.len(),
            first_id: facts.audit.first().map(|r| r.id),
            last_id: facts.audit.last().map(|r| r.id),
        },
    }
}

fn image(doc: &Document, image: &Image) -> ArchivedImage {
    let texts = || image.barcodes.iter().map(|b| b.text.as_str());
    let invoice = vat::first_on_page(texts());
    let is_cover = texts().any(|text| {
        text == doc.cover_code
            || imc_shared::cover_qr::parse(text).is_some_and(|qr| qr.code == doc.cover_code)
    });
    let kind = if image.blank {
        "blank"
    } else if is_cover {
        "cover"
    } else if invoice.is_some() {
        "invoice"
    } else {
        "attachment"
    };
    ArchivedImage {
        page_no: image.page_no,
        file: image
            .purged
            .is_none()
            .then(|| super::bag::page_file(image.page_no, &image.content_type)),
        sha256: image.sha256.clone(),
        size: image.size,
        content_type: image.content_type.clone(),
        kind: kind.to_owned(),
        blank: image.blank,
        barcodes: image.barcodes.clone(),
        invoice,
        purged: image.purged.clone(),
    }
}

pub fn audit_lines(audit: &[AuditRow]) -> Vec<AuditLine> {
    audit
        .iter()
        .map(|row| AuditLine {
            id: row.id,
            at: row.at.clone(),
            actor: row.actor.clone(),
            document_id: row.document_id,
            action: row.action.clone(),
            from_status: row.from_status.map(|s| s.as_str().to_owned()),
            to_status: row.to_status.map(|s| s.as_str().to_owned()),
            reason: row.reason.clone(),
            prev_hash: row.prev_hash.clone(),
            hash: row.hash.clone(),
        })
        .collect()
}

/// `data/audit.jsonl`: one line a row.
pub fn audit_jsonl(lines: &[AuditLine]) -> serde_json::Result<String> {
    let mut out = String::new();
    for line in lines {
        out.push_str(&serde_json::to_string(line)?);
        out.push('\n');
    }
    Ok(out)
}

/// What tells one version of a document from the next: its record and the
/// hashes of its audit rows. Export time and the chain's head are left out,
/// so a rerun over an unchanged document finds the version it wrote; so is
/// retention purging the bytes, which would otherwise make a new version
/// that has lost its pages.
pub fn version_digest(
    record: &ArchivedDocument,
    audit: &[AuditLine],
) -> serde_json::Result<String> {
    let mut unpurged = record.clone();
    for image in &mut unpurged.images {
        image.purged = None;
        image.file = Some(super::bag::page_file(image.page_no, &image.content_type));
    }
    let kept: Vec<&AuditLine> = audit
        .iter()
        .filter(|line| line.action != PURGE_ACTION)
        .collect();
    unpurged.audit.events = kept.len();
    unpurged.audit.last_id = kept.last().map(|line| line.id);
    let mut digest = Sha256::new();
    digest.update(serde_json::to_vec(&unpurged)?);
    for line in kept {
        digest.update(b"\n");
        digest.update(line.hash.as_bytes());
    }
    Ok(hex::encode(digest.finalize()))
}

/// Whether the receipts of the audit excerpt name these bytes for this
/// page (the latest receipt naming the page wins: a rescan renumbers).
pub fn received_sha256(audit: &[AuditLine], page_no: u32) -> Option<String> {
    audit
        .iter()
        .rev()
        .filter(|line| line.action == RECEIVE_ACTION)
        .filter_map(|line| line.reason.as_deref())
        .filter_map(crate::domain::receipt::parse_receipt)
        .find_map(|pages| {
            pages
                .into_iter()
                .find(|p| p.page_no == page_no)
                .map(|p| p.sha256)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imc_shared::protocol::BarcodeInfo;
    use imc_shared::{DocStatus, ImageMode};

    fn document() -> Document {
        Document {
            id: 7,
            source_system: "ERP".into(),
            doc_no: "AP-1".into(),
            doc_type: "expense".into(),
            org: "HQ".into(),
            cover_code: "IMC0000000001".into(),
            title: None,
            amount: Some("1280.50".into()),
            submitter: None,
            attachment_count: None,
            metadata: None,
            mode: ImageMode::Match,
            status: DocStatus::Ready,
            reject_reason: None,
            created_at: "2026-12-01T00:00:00Z".into(),
            updated_at: "2026-12-01T00:00:00Z".into(),
            image_count: 3,
        }
    }

    fn page(page_no: u32, text: Option<&str>, blank: bool) -> Image {
        Image {
            id: i64::from(page_no),
            document_id: 7,
            page_no,
            sha256: format!("{page_no:064}"),
            size: 10,
            content_type: "image/png".into(),
            blank,
            barcodes: text
                .map(|t| BarcodeInfo {
                    format: "QRCode".into(),
                    text: t.into(),
                    orientation: 0,
                })
                .into_iter()
                .collect(),
            purged: None,
        }
    }

    fn row(id: i64, action: &str, reason: Option<&str>) -> AuditRow {
        AuditRow {
            id,
            at: format!("2026-12-01T00:00:0{id}Z"),
            actor: "user:wang".into(),
            document_id: Some(7),
            action: action.into(),
            from_status: None,
            to_status: None,
            reason: reason.map(str::to_owned),
            prev_hash: "0".repeat(64),
            hash: format!("{id:064}"),
        }
    }

    #[test]
    fn pages_get_their_kind_and_the_last_decision_is_the_document_s() {
        let invoice = "01,04,3100201130,12345678,1000.00,20261130,12345678901234567890,";
        let facts = Facts {
            document: document(),
            images: vec![
                page(1, Some("IMC0000000001"), false),
                page(2, Some(invoice), false),
                page(3, None, false),
                page(4, None, true),
            ],
            audit: vec![
                row(1, "document.create", None),
                row(2, "reject", Some("page missing")),
                row(3, "sign-off", None),
            ],
            conflicts: vec![],
            attachment_check: None,
        };
        let record = record(&facts);
        let kinds: Vec<_> = record.images.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, ["cover", "invoice", "attachment", "blank"]);
        assert_eq!(
            record.images[1].invoice.as_ref().map(|i| i.amount.clone()),
            Some(Some("1000.00".to_owned()))
        );
        assert_eq!(
            record.images[0].file.as_deref(),
            Some("data/pages/0001.png")
        );
        let decision = record.decision.expect("a decision");
        assert_eq!(
            (decision.action.as_str(), decision.by.as_str()),
            ("sign-off", "user:wang")
        );
        assert_eq!(record.amount.as_deref(), Some("1280.50"));
        assert_eq!(
            (record.audit.first_id, record.audit.last_id),
            (Some(1), Some(3))
        );
    }

    #[test]
    fn the_latest_receipt_of_a_page_counts_and_the_digest_follows_the_audit() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let lines = audit_lines(&[
            row(1, RECEIVE_ACTION, Some(&format!("1 {a}"))),
            row(2, RECEIVE_ACTION, Some(&format!("1 {b}"))),
        ]);
        assert_eq!(received_sha256(&lines, 1), Some(b));
        assert_eq!(received_sha256(&lines, 2), None);
        let facts = Facts {
            document: document(),
            images: vec![page(1, None, false)],
            audit: vec![],
            conflicts: vec![],
            attachment_check: None,
        };
        let mut record = record(&facts);
        let one = version_digest(&record, &lines[..1]).unwrap();
        assert_ne!(one, version_digest(&record, &lines).unwrap());
        assert_eq!(one, version_digest(&record, &lines[..1]).unwrap());
        // Retention purging the bytes is not a new version.
        record.images[0].file = None;
        record.images[0].purged = Some(imc_shared::api::Purged {
            at: "2027-01-01T00:00:00Z".into(),
            reason: "retention".into(),
        });
        let mut purged = lines[..1].to_vec();
        purged.extend(audit_lines(&[row(3, PURGE_ACTION, Some("1 image"))]));
        assert_eq!(one, version_digest(&record, &purged).unwrap());
    }
}
