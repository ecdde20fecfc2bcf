//! The administration bodies of the API: settings, webhooks and their
//! events, the audit trail, API tokens.

use super::AttachmentCheck;
use crate::status::DocStatus;
use serde::{Deserialize, Serialize};

/// Global settings (`GET/PUT /api/v1/settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settings {
    /// Regular expressions an ERP-assigned cover code must match (whole).
    pub cover_code_patterns: Vec<String>,
    /// Content types the capture API accepts (sniffed from the bytes).
    pub accepted_content_types: Vec<String>,
    /// Largest image the capture API accepts.
    pub max_image_bytes: u64,
    pub webhook_retry: WebhookRetry,
    /// How long documents are kept after they are final.
    pub retention_days: u32,
    /// Image bytes of a final (`ready` or `cancelled`) document are purged
    /// this many days after it became final; 0 (the default) keeps them.
    #[serde(default)]
    pub image_retention_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookRetry {
    /// Attempts per event before it is given up.
    pub max_attempts: u32,
    /// The delay before the second attempt; it doubles after each failure.
    pub base_delay_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cover_code_patterns: vec![crate::cover_code::DEFAULT_PATTERN.to_owned()],
            accepted_content_types: [
                "image/jpeg",
                "image/png",
                "image/tiff",
                "image/bmp",
                "image/webp",
                "application/pdf",
            ]
            .map(str::to_owned)
            .to_vec(),
            max_image_bytes: 64 * 1024 * 1024,
            webhook_retry: WebhookRetry {
                max_attempts: 10,
                base_delay_secs: 5,
            },
            retention_days: 3650,
            image_retention_days: 0,
        }
    }
}

/// A partial update of [`Settings`]: absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default)]
    pub cover_code_patterns: Option<Vec<String>>,
    #[serde(default)]
    pub accepted_content_types: Option<Vec<String>>,
    #[serde(default)]
    pub max_image_bytes: Option<u64>,
    #[serde(default)]
    pub webhook_retry: Option<WebhookRetryPatch>,
    #[serde(default)]
    pub retention_days: Option<u32>,
    #[serde(default)]
    pub image_retention_days: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookRetryPatch {
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub base_delay_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutWebhook {
    /// Where status changes are POSTed (http or https).
    pub url: String,
    /// Key of the `X-IMC-Signature` HMAC; never shown again.
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub source_system: String,
    pub url: String,
    pub updated_at: String,
}

/// The body POSTed to a source system's webhook on every status change.
/// Delivery is at least once: receivers de-duplicate on `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookEvent {
    pub event_id: String,
    pub document_id: i64,
    pub doc_no: String,
    pub source_system: String,
    pub old_status: DocStatus,
    pub new_status: DocStatus,
    pub at: String,
    /// The document's attachment check as of this change (see
    /// [`DocumentView::attachment_check`]).
    #[serde(default)]
    pub attachment_check: Option<AttachmentCheck>,
}

/// One attempt to deliver one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    pub event_id: String,
    pub attempt: u32,
    pub at: String,
    pub url: String,
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    /// True when the receiver answered 2xx.
    pub delivered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDeliveryList {
    pub document_id: i64,
    pub deliveries: Vec<WebhookDelivery>,
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    #[serde(default)]
    pub from_status: Option<DocStatus>,
    #[serde(default)]
    pub to_status: Option<DocStatus>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditList {
    pub document_id: i64,
    pub entries: Vec<AuditEntry>,
}

/// What an API token may do. `admin` holds every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Document status only (`GET .../status`, `status:query`): a reporting system.
    Status,
    /// Read documents, their images, covers, audit and webhook deliveries.
    Read,
    /// Create documents, upload images, cancel.
    Write,
    /// Sign off, reject, unsign.
    Decide,
    /// Unmatched packets: list, match, page bytes.
    Packets,
    /// Set the webhook of a source system.
    Webhooks,
    /// Settings, schemes, enrolment codes, tokens.
    Admin,
}

impl TokenScope {
    pub const ALL: [TokenScope; 7] = [
        TokenScope::Status,
        TokenScope::Read,
        TokenScope::Write,
        TokenScope::Decide,
        TokenScope::Packets,
        TokenScope::Webhooks,
        TokenScope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Status => "status",
            TokenScope::Read => "read",
            TokenScope::Write => "write",
            TokenScope::Decide => "decide",
            TokenScope::Packets => "packets",
            TokenScope::Webhooks => "webhooks",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<TokenScope> {
        TokenScope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Who uses it, e.g. `erp-finance` or `reporting`.
    pub name: String,
    pub scopes: Vec<TokenScope>,
    /// The source systems whose documents it may touch; absent means all.
    #[serde(default)]
    pub source_systems: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    /// How long the old secret keeps working, so clients can switch over. Default 24 h.
    #[serde(default)]
    pub overlap_secs: Option<u64>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<TokenScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_systems: Option<Vec<String>>,
    pub created_at: String,
    /// Set while a rotated-out secret is still in its overlap window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A new token's secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenSecret {
    #[serde(flatten)]
    pub token: TokenView,
    pub secret: String,
}
