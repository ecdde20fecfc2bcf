//! Archive exports started through the API (`/archive/exports`).

use serde::{Deserialize, Serialize};

/// Which documents to export; every field may be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Documents in this status; default `ready` (signed off).
    #[serde(default)]
    pub status: Option<String>,
    /// Created on or after this day, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    pub from: Option<String>,
    /// Created on or before this day, `YYYY-MM-DD` (UTC).
    #[serde(default)]
    pub to: Option<String>,
    /// Only this ERP's documents.
    #[serde(default)]
    pub source_system: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    Running,
    Done,
    Failed,
}

/// An export job and how far it has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportJob {
    pub id: u64,
    pub state: ExportState,
    /// The destination folder (the server's `archive_dir`).
    pub out: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Documents the filter took so far.
    pub documents: u64,
    /// Bags written: new documents and new versions.
    pub bags: u64,
    /// Documents whose current version the destination already held.
    pub unchanged: u64,
    /// Documents that changed while being read, left for the next export.
    #[serde(default)]
    pub deferred: u64,
    pub bytes: u64,
    /// Why it failed, naming the document.
    pub error: Option<String>,
}
