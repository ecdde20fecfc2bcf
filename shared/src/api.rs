//! JSON bodies of the HTTP API under `/api/v1` (see DESIGN.md).
//!
//! New optional fields get `#[serde(default)]` so that older clients keep
//! working; requests reject unknown fields so that a typo is an error, not a
//! silently ignored value.

use crate::status::{DocStatus, ImageMode};
use serde::{Deserialize, Serialize};

/// Every error the API answers: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a refused transition: the status the document is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_status: Option<DocStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDocument {
    pub source_system: String,
    pub doc_no: String,
    pub doc_type: String,
    pub org: String,
    #[serde(default)]
    pub cover_code: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub amount: Option<Amount>,
    #[serde(default)]
    pub submitter: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// A money amount as the ERP sent it: a JSON number or a decimal string.
/// Kept as text so no floating point ever touches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Number(serde_json::Number),
    Text(String),
}

impl Amount {
    pub fn to_text(&self) -> String {
        match self {
            Amount::Number(n) => n.to_string(),
            Amount::Text(t) => t.trim().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentCreated {
    pub id: i64,
    pub doc_no: String,
    pub cover_code: String,
    pub mode: ImageMode,
    pub status: DocStatus,
    pub cover_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentView {
    pub id: i64,
    pub source_system: String,
    pub doc_no: String,
    pub doc_type: String,
    pub org: String,
    pub cover_code: String,
    pub title: Option<String>,
    pub amount: Option<String>,
    pub submitter: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub mode: ImageMode,
    pub status: DocStatus,
    pub ready: bool,
    #[serde(default)]
    pub reject_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub cover_url: String,
    pub images: Vec<ImageView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    pub id: i64,
    pub sha256: String,
    pub page_no: u32,
    pub content_type: String,
    pub size: u64,
    pub url: String,
    #[serde(default)]
    pub blank: bool,
    #[serde(default)]
    pub barcodes: Vec<crate::protocol::BarcodeInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageList {
    pub document_id: i64,
    pub images: Vec<ImageView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub id: i64,
    pub doc_no: String,
    pub status: DocStatus,
    pub ready: bool,
    pub image_count: u32,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    #[serde(default)]
    pub ids: Option<Vec<i64>>,
    #[serde(default)]
    pub doc_nos: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusQueryResult {
    pub results: Vec<StatusView>,
    /// The asked-for ids or doc_nos that name no document.
    pub not_found: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutScheme {
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub doc_type: Option<String>,
    pub mode: ImageMode,
    #[serde(default)]
    pub rules: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemeView {
    pub name: String,
    pub org: Option<String>,
    pub doc_type: Option<String>,
    pub mode: ImageMode,
    pub rules: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentCode {
    pub code: String,
    pub site: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub agent_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub site: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketView {
    pub id: String,
    pub state: PacketState,
    pub cover_code: Option<String>,
    pub agent_id: String,
    pub site: String,
    pub page_count: u32,
    pub document_id: Option<i64>,
    pub reason: Option<String>,
    pub created_at: String,
    pub pages: Vec<PacketPageView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketPageView {
    pub page_index: u32,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub source_name: String,
    pub blank: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacketState {
    /// Pages still arriving, or the seal not yet received.
    Open,
    /// Complete, but its cover names no document (or it has no cover).
    Unmatched,
    /// Attached to a document.
    Matched,
}

impl PacketState {
    pub fn as_str(self) -> &'static str {
        match self {
            PacketState::Open => "open",
            PacketState::Unmatched => "unmatched",
            PacketState::Matched => "matched",
        }
    }
}

impl std::str::FromStr for PacketState {
    type Err = crate::status::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(PacketState::Open),
            "unmatched" => Ok(PacketState::Unmatched),
            "matched" => Ok(PacketState::Matched),
            other => Err(crate::status::UnknownValue(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketList {
    pub packets: Vec<PacketView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchPacket {
    pub document_id: i64,
}
