//! What a package says about its document: `data/document.json` and the
//! lines of `data/audit.jsonl`. Written by the export, read by `verify`;
//! the XML rendering is in [`super::xml`].

use imc_shared::api::{AttachmentCheck, Purged};
use imc_shared::protocol::BarcodeInfo;
use imc_shared::vat::VatInvoice;
use imc_shared::{DocStatus, ImageMode};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "imc-archive-document/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedDocument {
    pub format: String,
    pub id: i64,
    pub source_system: String,
    pub doc_no: String,
    pub doc_type: String,
    pub org: String,
    pub cover_code: String,
    pub title: Option<String>,
    /// Exact decimal text, as the ERP sent it.
    pub amount: Option<String>,
    pub submitter: Option<String>,
    pub attachment_count: Option<u32>,
    pub attachment_check: Option<AttachmentCheck>,
    pub metadata: Option<serde_json::Value>,
    pub mode: ImageMode,
    pub status: DocStatus,
    pub reject_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The last sign-off, reject, unsign or cancel.
    pub decision: Option<ArchivedDecision>,
    pub images: Vec<ArchivedImage>,
    pub conflicts: Vec<ArchivedConflict>,
    pub audit: AuditSummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedDecision {
    pub action: String,
    pub by: String,
    pub at: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedImage {
    pub page_no: u32,
    /// Relative to the bag (`data/pages/0001.png`); absent when retention
    /// purged the bytes before the export.
    pub file: Option<String>,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    /// `cover`, `invoice`, `attachment` or `blank`, from the page's barcodes.
    pub kind: String,
    pub blank: bool,
    pub barcodes: Vec<BarcodeInfo>,
    /// The VAT invoice's fields as read from its QR code.
    pub invoice: Option<VatInvoice>,
    pub purged: Option<Purged>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedConflict {
    pub kind: String,
    pub invoice_code: String,
    pub invoice_number: String,
    pub other_document_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSummary {
    pub events: usize,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
}

/// One line of `data/audit.jsonl`: an audit row with its chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub document_id: Option<i64>,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}
