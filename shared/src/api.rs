//! JSON bodies of the HTTP API under `/api/v1` (see docs/API.md).
//!
//! New optional fields get `#[serde(default)]` so that older clients keep
//! working; requests reject unknown fields so that a typo is an error, not a
//! silently ignored value.

use crate::status::{DocStatus, ImageMode};
use serde::{Deserialize, Serialize};

mod admin;
mod archive;
mod desk;
pub use admin::*;
pub use archive::*;
pub use desk::*;

/// Every error the API answers: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a refused transition: the status the document is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_status: Option<DocStatus>,
    /// For purged image bytes (410): when and why they were purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged: Option<Purged>,
}

/// Image bytes removed by retention; the image's metadata and SHA-256 stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Purged {
    pub at: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// A decimal amount as a JSON number or string, kept exactly as written:
    /// optional '-', at most 15 digits, optionally '.' and 1 to 6 digits; no
    /// exponent, '+' or separators (`money::parse_amount`).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, example = "1280.50", pattern = r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")
    )]
    pub amount: Option<Amount>,
    #[serde(default)]
    pub submitter: Option<String>,
    /// Sheets the submitter declares attached (附件张数): 0 to 10000
    /// (`cover_qr::MAX_ATTACHMENT_COUNT`); null or absent when none is declared.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10000))]
    pub attachment_count: Option<u32>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// A money amount as the ERP sent it: a JSON number or a decimal string,
/// kept as the text of the JSON literal (`1280.50` stays `1280.50`, never
/// `1280.5`) so no floating point ever touches it. Checked with
/// [`crate::money::parse_amount`] by the server.
///
/// Only readable from JSON text (`serde_json::from_str`/`from_slice`): it
/// reads the raw literal, which a `serde_json::Value` no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// The literal text of a JSON number, e.g. `1280.50` or `1e2`.
    Number(String),
    /// A JSON string's content.
    Text(String),
}

impl Amount {
    /// The amount's text, trimmed; not yet checked as a decimal.
    pub fn to_text(&self) -> String {
        match self {
            Amount::Number(n) => n.trim().to_owned(),
            Amount::Text(t) => t.trim().to_owned(),
        }
    }
}

impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Written back as the same literal, so a client's own bytes round-trip.
            Amount::Number(n) => serde_json::value::RawValue::from_string(n.trim().to_owned())
                .map_err(|e| serde::ser::Error::custom(format!("amount {n:?}: {e}")))?
                .serialize(serializer),
            Amount::Text(t) => serializer.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Unexpected};
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let literal = raw.get().trim();
        if literal.starts_with('"') {
            let text: String = serde_json::from_str(literal).map_err(D::Error::custom)?;
            Ok(Amount::Text(text))
        } else if literal.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Ok(Amount::Number(literal.to_owned()))
        } else {
            Err(D::Error::invalid_type(
                Unexpected::Other(literal.get(..1).unwrap_or("?")),
                &"a decimal number or a string holding one",
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentCreated {
    pub id: i64,
    pub doc_no: String,
    pub cover_code: String,
    pub mode: ImageMode,
    pub status: DocStatus,
    pub cover_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The declared attachment count (附件张数); null when none was declared.
    #[serde(default)]
    pub attachment_count: Option<u32>,
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
    /// Problems sign-off staff must see, e.g. an invoice already on another document.
    #[serde(default)]
    pub conflicts: Vec<DocumentConflict>,
    /// The declared count against the scanned pages; null when no count was
    /// declared or no scanned packet is attached.
    #[serde(default)]
    pub attachment_check: Option<AttachmentCheck>,
}

/// A declared attachment count checked against the scanned paper: the
/// non-blank pages after the cover of the packets the document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachmentCheck {
    pub declared: u32,
    pub scanned: u32,
    pub verdict: AttachmentVerdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttachmentVerdict {
    /// As many pages as declared.
    Ok,
    /// Fewer pages than declared.
    Missing,
    /// More pages than declared.
    Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub barcodes: Vec<crate::protocol::BarcodeInfo>,
    /// Set once retention purged the bytes: `url` then answers 410 Gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged: Option<Purged>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageList {
    pub document_id: i64,
    pub images: Vec<ImageView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusView {
    pub id: i64,
    pub doc_no: String,
    pub status: DocStatus,
    pub ready: bool,
    pub image_count: u32,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    #[serde(default)]
    pub ids: Option<Vec<i64>>,
    #[serde(default)]
    pub doc_nos: Option<Vec<String>>,
    /// Cover codes (影像编码), the key Kingdee-style integrations keep.
    #[serde(default)]
    pub cover_codes: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusQueryResult {
    pub results: Vec<StatusView>,
    /// The asked-for ids, doc_nos or cover codes that name no document.
    pub not_found: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemeView {
    pub name: String,
    pub org: Option<String>,
    pub doc_type: Option<String>,
    pub mode: ImageMode,
    pub rules: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentCode {
    pub code: String,
    pub site: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub agent_version: Option<String>,
    /// A PEM certificate signing request for a key the desk made itself;
    /// required when the server runs mutual TLS, ignored otherwise.
    #[serde(default)]
    pub csr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    pub agent_id: String,
    pub site: String,
    pub token: String,
    /// Under mutual TLS: the desk's client certificate (PEM), signed by the
    /// server's client CA, to present on the uplink with its own key.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// The public keys cover QRs are signed with; the desk checks covers
    /// offline with them.
    #[serde(default)]
    pub cover_keys: Vec<crate::cover_keys::CoverKey>,
}

/// An enrolled scan-desk agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentView {
    pub id: String,
    pub site: String,
    pub name: String,
    pub version: Option<String>,
    pub enrolled_at: String,
    pub last_seen_at: Option<String>,
    /// Set once the agent is revoked: its token is refused from then on.
    pub revoked_at: Option<String>,
    /// Whether the agent's uplink is open right now.
    pub connected: bool,
    /// The desk's queue as last reported.
    pub queue_pages: Option<u64>,
    pub queue_bytes: Option<u64>,
    pub quarantined: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PacketPageView {
    pub page_index: u32,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub source_name: String,
    pub blank: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PacketState {
    /// Pages still arriving, or the seal not yet received.
    Open,
    /// Complete, but its cover names no document (or it has no cover).
    Unmatched,
    /// Attached to a document.
    Matched,
    /// Complete, but nothing after its cover sheet (two covers in a row, or a
    /// seal with no pages): kept and shown, never attached, not an error.
    Empty,
}

impl PacketState {
    pub fn as_str(self) -> &'static str {
        match self {
            PacketState::Open => "open",
            PacketState::Unmatched => "unmatched",
            PacketState::Matched => "matched",
            PacketState::Empty => "empty",
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
            "empty" => Ok(PacketState::Empty),
            other => Err(crate::status::UnknownValue(other.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PacketList {
    pub packets: Vec<PacketView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MatchPacket {
    pub document_id: i64,
    /// For a rejected (or matched) document: replace its pages or add to them.
    /// Default: a rejected document is rescanned, any other is supplemented.
    #[serde(default)]
    pub mode: Option<AttachMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttachMode {
    /// 重扫: the packet's pages replace the document's current ones.
    Rescan,
    /// 补扫: the packet's pages are added after the current ones.
    Supplement,
}

/// Something sign-off staff must look at before signing off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentConflict {
    /// `duplicate_invoice`: the same VAT invoice is on another live document.
    pub kind: String,
    pub invoice_code: String,
    pub invoice_number: String,
    pub other_document_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount_of(json_amount: &str) -> Result<Option<Amount>, serde_json::Error> {
        let body = format!(
            r#"{{"source_system":"ERP","doc_no":"A1","doc_type":"x","org":"HQ","amount":{json_amount}}}"#
        );
        serde_json::from_str::<CreateDocument>(&body).map(|doc| doc.amount)
    }

    #[test]
    fn a_json_number_keeps_its_literal_text() {
        for (literal, text) in [
            ("123456789012345.67", "123456789012345.67"),
            ("1280.50", "1280.50"),
            ("1e2", "1e2"),
            ("-0.10", "-0.10"),
            ("99999999999999999999999", "99999999999999999999999"),
        ] {
            let amount = amount_of(literal).ok().flatten();
            assert_eq!(amount, Some(Amount::Number(text.into())), "{literal}");
            assert_eq!(amount.map(|a| a.to_text()).as_deref(), Some(text));
        }
    }

    #[test]
    fn a_json_string_is_taken_trimmed_and_null_is_none() {
        let amount = amount_of(r#"" 1280.50 ""#).ok().flatten();
        assert_eq!(amount, Some(Amount::Text(" 1280.50 ".into())));
        assert_eq!(amount.map(|a| a.to_text()).as_deref(), Some("1280.50"));
        assert_eq!(
            amount_of(r#""\u0031\u0032""#)
                .ok()
                .flatten()
                .map(|a| a.to_text())
                .as_deref(),
            Some("12")
        );
        assert!(matches!(amount_of("null"), Ok(None)));
    }

    #[test]
    fn other_json_is_not_an_amount() {
        for bad in ["true", "[1]", r#"{"v":1}"#] {
            let error = amount_of(bad).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.contains("a decimal number")),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn an_amount_serialises_back_to_the_same_literal() {
        for (amount, json) in [
            (Amount::Number("1280.50".into()), "1280.50"),
            (Amount::Text("1280.50".into()), r#""1280.50""#),
        ] {
            assert_eq!(serde_json::to_string(&amount).ok().as_deref(), Some(json));
            let back: Option<Amount> = serde_json::from_str(json).ok();
            assert_eq!(back, Some(amount));
        }
    }
}
