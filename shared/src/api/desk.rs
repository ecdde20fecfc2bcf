//! What a scan desk's agent asks the server for its console
//! (`/agent/documents`): the documents its clerk may be scanning.

use crate::status::DocStatus;
use serde::{Deserialize, Serialize};

/// A document as the desk's console names it when its cover is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeskDocument {
    pub id: i64,
    pub doc_no: String,
    pub cover_code: String,
    pub doc_type: String,
    pub org: String,
    #[serde(default)]
    pub title: Option<String>,
    /// Exact decimal text, as the ERP sent it.
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub submitter: Option<String>,
    /// The attachment count the cover declares.
    #[serde(default)]
    pub attachment_count: Option<u32>,
    /// `awaiting_images` (paper not here yet) or `rejected` (to be rescanned).
    pub status: DocStatus,
    /// Why sign-off staff rejected it, for a rescan.
    #[serde(default)]
    pub reject_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeskDocuments {
    pub documents: Vec<DeskDocument>,
    /// More documents wait than were sent (the list is cut at its limit).
    pub truncated: bool,
}
