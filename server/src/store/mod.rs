//! Metadata storage: documents, packets, pages, agents, tokens, audit.
//!
//! Handlers speak to a [`Store`] trait object so that a PostgreSQL backend can
//! join the embedded SQLite one without touching them. Rows here are internal
//! types, converted to the wire types of `imc_shared::api` at the edge.
//!
//! Architecture invariant: every state change that must happen together (a
//! packet completing and its document becoming `matched`, say) happens inside
//! one store call, so one transaction; handlers never compose two writes.

pub mod audit_chain;
pub mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

pub use crate::domain::{Actor, Decision};
pub use audit_chain::AuditCheck;
pub use postgres::PgStore;
pub use sqlite::audit::verify_audit_file;
pub use sqlite::changes::Change;
pub use sqlite::{SqliteStore, now};

pub use crate::attachments::ScannedPage;
use async_trait::async_trait;
pub use imc_shared::api::AttachmentCheck;
use imc_shared::api::{AttachMode, PacketState, Purged, Settings, SettingsPatch, TokenScope};
use imc_shared::protocol::BarcodeInfo;
use imc_shared::{DocStatus, ImageMode};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine failed (SQLite or PostgreSQL; the source says which).
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("document {id} is {current}; {action} is not allowed")]
    InvalidTransition {
        id: i64,
        current: DocStatus,
        action: &'static str,
    },
    #[error("storage task failed: {0}")]
    Task(String),
    /// A value the caller sent breaks a rule only the store can check (it
    /// depends on stored state, e.g. a partial settings update).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Database(Box::new(e))
    }
}

#[derive(Debug, Clone)]
pub struct NewDocument {
    pub source_system: String,
    pub doc_no: String,
    pub doc_type: String,
    pub org: String,
    /// Chosen by the ERP (validated by the caller) or issued by the server.
    pub cover_code: String,
    pub title: Option<String>,
    pub amount: Option<String>,
    pub submitter: Option<String>,
    /// Sheets declared attached (附件张数), already checked against the limit.
    pub attachment_count: Option<u32>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Document {
    pub id: i64,
    pub source_system: String,
    pub doc_no: String,
    pub doc_type: String,
    pub org: String,
    pub cover_code: String,
    pub title: Option<String>,
    pub amount: Option<String>,
    pub submitter: Option<String>,
    pub attachment_count: Option<u32>,
    pub metadata: Option<serde_json::Value>,
    pub mode: ImageMode,
    pub status: DocStatus,
    pub reject_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub image_count: u32,
}

/// What `create_document` did.
#[derive(Debug, Clone)]
pub enum Created {
    New(Document),
    /// The same (source_system, doc_no) existed: it is returned unchanged.
    Existing(Document),
}

#[derive(Debug, Clone)]
pub struct Image {
    pub id: i64,
    pub document_id: i64,
    pub page_no: u32,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub blank: bool,
    pub barcodes: Vec<BarcodeInfo>,
    /// Retention removed the bytes; the row and its SHA-256 stay.
    pub purged: Option<Purged>,
}

/// A purge as stored: both columns set, or neither.
pub(crate) fn purged(at: Option<String>, reason: Option<String>) -> Option<Purged> {
    at.map(|at| Purged {
        at,
        reason: reason.unwrap_or_default(),
    })
}

/// An image arriving through the capture API (basic and sync modes).
#[derive(Debug, Clone)]
pub struct NewImage {
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    /// The system that pushed it (sync mode), kept in the audit trail.
    pub source: Option<String>,
}

/// Where a source system wants its status changes sent.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub source_system: String,
    pub url: String,
    pub updated_at: String,
}

/// One stored webhook secret swapped for another (sealing, rotation).
#[derive(Debug, Clone)]
pub struct SecretChange {
    pub source_system: String,
    pub old: String,
    pub new: String,
}

/// An event in the outbox, due for (another) delivery attempt.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub event_id: String,
    pub document_id: i64,
    pub url: String,
    pub secret: String,
    /// The exact bytes to send and sign.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What one delivery attempt came to.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub url: String,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
    /// When to try again; `None` after a failure means the event is given up.
    pub retry_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_id: String,
    pub attempt: u32,
    pub at: String,
    pub url: String,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub document_id: Option<i64>,
    pub action: String,
    pub from_status: Option<DocStatus>,
    pub to_status: Option<DocStatus>,
    pub reason: Option<String>,
    /// The chain: the previous row's hash and this row's (`audit_chain`).
    pub prev_hash: String,
    pub hash: String,
}

/// Which documents an archive export takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFilter {
    pub status: DocStatus,
    pub source_system: Option<String>,
    /// Created at or after this timestamp text (`YYYY-MM-DD` compares as the day's start).
    pub created_from: Option<String>,
    /// Created before this timestamp text.
    pub created_before: Option<String>,
}

/// The same VAT invoice attached to two live documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceConflict {
    pub invoice_code: String,
    pub invoice_number: String,
    pub other_document_id: i64,
}

#[derive(Debug, Clone)]
pub struct Scheme {
    pub name: String,
    pub org: Option<String>,
    pub doc_type: Option<String>,
    pub mode: ImageMode,
    pub rules: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<TokenScope>,
    /// None: every source system.
    pub source_systems: Option<Vec<String>>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl ApiToken {
    /// How the audit trail names a token: id, name, scopes, source systems.
    pub fn describe(&self) -> String {
        let sources = self
            .source_systems
            .as_ref()
            .map_or("all".to_owned(), |s| s.join(" "));
        format!(
            "token {} {:?}: scopes {}; source systems {sources}",
            self.id,
            self.name,
            scopes_text(&self.scopes)
        )
    }
}

/// Scopes as both backends store them: space-separated names.
pub(crate) fn scopes_text(scopes: &[TokenScope]) -> String {
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    names.join(" ")
}

pub(crate) fn parse_scopes(token_id: i64, text: &str) -> StoreResult<Vec<TokenScope>> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| {
            TokenScope::parse(s).ok_or_else(|| {
                StoreError::Corrupt(format!("token {token_id} has unknown scope {s:?}"))
            })
        })
        .collect()
}

/// Source systems as stored (space-separated; NULL: every system).
pub(crate) fn parse_sources(text: Option<String>) -> Option<Vec<String>> {
    text.map(|s| {
        s.split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// The `role` column older builds read: admin tokens and the rest.
pub(crate) fn legacy_role(scopes: &[TokenScope]) -> &'static str {
    if scopes.contains(&TokenScope::Admin) {
        "admin"
    } else {
        "api"
    }
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub name: String,
    pub scopes: Vec<TokenScope>,
    pub source_systems: Option<Vec<String>>,
    pub token_hash: String,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub site: String,
    pub name: String,
}

/// An enrolled agent as administrators see it.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub id: String,
    pub site: String,
    pub name: String,
    pub version: Option<String>,
    pub enrolled_at: String,
    pub last_seen_at: Option<String>,
    pub revoked_at: Option<String>,
    pub queue_pages: Option<u64>,
    pub queue_bytes: Option<u64>,
    pub quarantined: Option<u64>,
}

/// A page that arrived whole over the uplink and whose bytes are durable.
#[derive(Debug, Clone)]
pub struct StoredPage {
    pub capture_id: Uuid,
    pub packet_id: Uuid,
    pub page_index: u32,
    pub cover_code: Option<String>,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub source_name: String,
    pub barcodes: Vec<BarcodeInfo>,
    pub blank: bool,
    /// The desk's packet sequence, when the agent sent one.
    pub packet_seq: Option<u64>,
}

/// A packet waiting for the document its cover code names, as late binding
/// reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingPacket {
    pub id: String,
    pub agent_id: String,
    /// The desk's packet sequence (`PacketSeal::packet_seq`), when it sent one.
    pub desk_seq: Option<i64>,
}

/// The order late binding attaches waiting packets in, given them in the
/// order they arrived (first page stored, then id). Arrival is the server's
/// view; the desk knows the order the paper was scanned in, so one agent's
/// packets that carry its sequence take the places its sequenced packets
/// hold, in sequence order. Packets without one (older agents) keep their
/// places, and so the order across agents stays that of arrival.
pub fn late_binding_order(waiting: Vec<WaitingPacket>) -> Vec<String> {
    let mut places: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (i, packet) in waiting.iter().enumerate() {
        if packet.desk_seq.is_some() {
            places.entry(&packet.agent_id).or_default().push(i);
        }
    }
    let mut order: Vec<usize> = (0..waiting.len()).collect();
    for held in places.values() {
        let mut by_seq = held.clone();
        by_seq.sort_by_key(|&i| (waiting[i].desk_seq, i));
        for (&place, from) in held.iter().zip(by_seq) {
            order[place] = from;
        }
    }
    let mut ids: Vec<Option<String>> = waiting.into_iter().map(|p| Some(p.id)).collect();
    order.into_iter().filter_map(|i| ids[i].take()).collect()
}

/// The desk's packet sequence as the database keeps it (a signed 64-bit
/// integer; the uplink refuses larger ones before they get here).
pub(crate) fn desk_seq(packet_seq: Option<u64>) -> StoreResult<Option<i64>> {
    packet_seq
        .map(|seq| {
            i64::try_from(seq).map_err(|_| StoreError::Invalid {
                field: "packet_seq".into(),
                message: format!("{seq} is too large"),
            })
        })
        .transpose()
}

/// What became of a packet once all its pages and its seal were in.
#[derive(Debug, Clone, PartialEq)]
pub enum PacketResolution {
    /// Still waiting for pages or the seal.
    Open,
    Matched {
        document_id: i64,
        doc_no: String,
    },
    /// Complete but not attached: its cover names no document, it has no
    /// cover, or it is empty (see [`PacketState::Empty`]).
    Unmatched {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Packet {
    pub id: Uuid,
    pub agent_id: String,
    pub site: String,
    pub cover_code: Option<String>,
    pub state: PacketState,
    pub sealed_page_count: Option<u32>,
    pub document_id: Option<i64>,
    pub reason: Option<String>,
    pub created_at: String,
    pub pages: Vec<PacketPage>,
}

/// The bytes behind one page of a packet.
#[derive(Debug, Clone, PartialEq)]
pub struct PageBlob {
    pub sha256: String,
    pub content_type: String,
    pub purged: Option<Purged>,
}

#[derive(Debug, Clone)]
pub struct PacketPage {
    pub page_index: u32,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub source_name: String,
    pub blank: bool,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Credentials.
    async fn add_api_token(&self, token: NewApiToken, actor: &Actor) -> StoreResult<ApiToken>;
    /// A token that works now (not revoked, not past its rotation overlap).
    async fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;
    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    async fn rotate_api_token(
        &self,
        id: i64,
        new_hash: &str,
        old_expires_at: &str,
        actor: &Actor,
    ) -> StoreResult<ApiToken>;
    async fn revoke_api_token(&self, id: i64, actor: &Actor) -> StoreResult<ApiToken>;
    /// Records a refused credential or a refused call in the audit trail.
    /// An audit row about no document: `action` (`auth.failure`,
    /// `archive.export`, …) and what happened.
    async fn audit_event(&self, actor: &Actor, action: &str, what: &str) -> StoreResult<()>;
    async fn add_enrollment_code(
        &self,
        site: &str,
        code_hash: &str,
        expires_at: &str,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Spends a code and enrols an agent in one step; a spent or expired code fails.
    async fn enroll_agent(
        &self,
        code_hash: &str,
        agent_id: &str,
        name: &str,
        token_hash: &str,
        version: Option<&str>,
    ) -> StoreResult<Agent>;
    async fn agent_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Agent>>;
    async fn agent_seen(
        &self,
        agent_id: &str,
        report: Option<imc_shared::protocol::AgentReport>,
    ) -> StoreResult<()>;

    async fn agents(&self) -> StoreResult<Vec<AgentRecord>>;
    /// Revokes an agent's token for good; revoking twice keeps the first time.
    async fn revoke_agent(&self, agent_id: &str, actor: &Actor) -> StoreResult<AgentRecord>;
    /// False once the agent is revoked (or unknown).
    async fn agent_active(&self, agent_id: &str) -> StoreResult<bool>;

    // Settings and schemes.
    async fn cover_patterns(&self) -> StoreResult<Vec<String>>;
    async fn settings(&self) -> StoreResult<Settings>;
    /// Applies a partial update, validated against the merged result, in one transaction.
    async fn update_settings(&self, patch: SettingsPatch, actor: &Actor) -> StoreResult<Settings>;
    /// A settings row as stored (JSON text), for values the settings API
    /// never shows (the cover signing keys).
    async fn setting_text(&self, key: &str) -> StoreResult<Option<String>>;
    /// Sets a settings row if it still holds `expected` (`None`: no row);
    /// `false` when another writer changed it first.
    async fn replace_setting_text(
        &self,
        key: &str,
        expected: Option<String>,
        value: String,
    ) -> StoreResult<bool>;
    async fn put_scheme(&self, scheme: Scheme, actor: &Actor) -> StoreResult<Scheme>;
    /// Every scheme, by name.
    async fn schemes(&self) -> StoreResult<Vec<Scheme>>;
    /// Deletes a scheme (documents keep the mode they were created with);
    /// false when there was none of that name.
    async fn delete_scheme(&self, name: &str, actor: &Actor) -> StoreResult<bool>;

    // Documents.
    async fn create_document(&self, doc: NewDocument, actor: &Actor) -> StoreResult<Created>;
    async fn document(&self, id: i64) -> StoreResult<Option<Document>>;
    async fn documents_by_doc_no(&self, doc_no: &str) -> StoreResult<Vec<Document>>;
    async fn documents_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Document>>;
    async fn documents_by_doc_nos(&self, doc_nos: &[String]) -> StoreResult<Vec<Document>>;
    /// The documents with these cover codes (影像编码); unknown ones left out.
    async fn documents_by_cover_codes(&self, codes: &[String]) -> StoreResult<Vec<Document>>;
    /// What a desk of `site` may be asked to scan: match-mode documents still
    /// awaiting their paper (any desk may receive it), and documents rejected
    /// after a packet from `site` (to be rescanned there); newest first.
    async fn desk_documents(&self, site: &str, limit: u32) -> StoreResult<Vec<Document>>;
    async fn images(&self, document_id: i64) -> StoreResult<Vec<Image>>;
    /// The declared attachment count against the scanned pages (see
    /// `crate::attachments::check`).
    async fn attachment_check(&self, doc: &Document) -> StoreResult<Option<AttachmentCheck>>;
    async fn image(&self, image_id: i64) -> StoreResult<Option<Image>>;
    async fn add_image(
        &self,
        document_id: i64,
        image: NewImage,
        actor: &Actor,
    ) -> StoreResult<Image>;
    async fn decide(
        &self,
        document_id: i64,
        decision: Decision,
        actor: &Actor,
    ) -> StoreResult<Document>;

    // Packets from agents.
    /// Records a durable page; idempotent on `capture_id`. Resolves the packet
    /// when this page completes a sealed one.
    async fn record_page(&self, agent: &Agent, page: StoredPage) -> StoreResult<PacketResolution>;
    /// Records durable pages, from any agents, in one transaction (group
    /// commit); each page succeeds or fails on its own, in order.
    async fn record_pages(
        &self,
        pages: Vec<(Agent, StoredPage)>,
    ) -> StoreResult<Vec<StoreResult<PacketResolution>>>;
    /// True when a packet of `agent_id` holds the page `capture_id`.
    async fn page_stored(&self, capture_id: Uuid, agent_id: &str) -> StoreResult<bool>;
    /// True when a packet of `agent_id` holds at least one stored page.
    async fn packet_has_pages(&self, packet_id: Uuid, agent_id: &str) -> StoreResult<bool>;
    /// True when a page a desk of `site` delivered has the bytes `sha256`:
    /// that site has shown it holds them.
    async fn site_holds_blob(&self, site: &str, sha256: &str) -> StoreResult<bool>;
    /// Records that the packet holds exactly `page_count` pages (`empty`: none
    /// of them after its cover); idempotent.
    async fn seal_packet(
        &self,
        agent: &Agent,
        seal: imc_shared::protocol::PacketSeal,
    ) -> StoreResult<PacketResolution>;
    async fn packets(&self, state: Option<PacketState>, limit: u32) -> StoreResult<Vec<Packet>>;
    async fn match_packet(
        &self,
        packet_id: Uuid,
        document_id: i64,
        mode: Option<AttachMode>,
        actor: &Actor,
    ) -> StoreResult<Document>;
    /// The packets whose pages a document holds, with the agent that sent each.
    async fn packets_of_document(&self, document_id: i64) -> StoreResult<Vec<(Uuid, String)>>;
    async fn packet_page_blob(
        &self,
        packet_id: Uuid,
        page_index: u32,
    ) -> StoreResult<Option<PageBlob>>;

    // Webhooks: the outbox is filled inside the transitions themselves.
    async fn put_webhook(
        &self,
        source_system: &str,
        url: &str,
        secret: &str,
        actor: &Actor,
    ) -> StoreResult<WebhookTarget>;
    /// Events whose next attempt is due at `now`, oldest first, at most one
    /// per document so that a document's events arrive in order.
    async fn due_webhooks(&self, now: &str, limit: u32) -> StoreResult<Vec<OutboxItem>>;
    async fn record_delivery(&self, outbox_id: i64, outcome: DeliveryOutcome) -> StoreResult<()>;
    async fn webhook_deliveries(&self, document_id: i64) -> StoreResult<Vec<Delivery>>;
    /// Every webhook's stored secret as `(source_system, stored text)`; the
    /// text is opaque here (sealed by `crate::secrets`, or a legacy plain one).
    async fn webhook_secrets(&self) -> StoreResult<Vec<(String, String)>>;
    /// Replaces stored secrets in one transaction, each only while it still
    /// holds `old` (a `PUT` in between wins); returns how many were replaced.
    async fn replace_webhook_secrets(&self, changes: Vec<SecretChange>) -> StoreResult<u64>;

    // Audit trail and checks sign-off staff see.
    async fn document_audit(&self, document_id: i64) -> StoreResult<Vec<AuditRow>>;
    /// The newest row of the whole audit chain (id, hash); `None` before the first.
    async fn audit_head(&self) -> StoreResult<Option<(i64, String)>>;
    /// Documents an archive export takes, by id after `after_id`, oldest first.
    async fn documents_to_archive(
        &self,
        filter: &ArchiveFilter,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<Document>>;
    async fn document_conflicts(&self, document_id: i64) -> StoreResult<Vec<InvoiceConflict>>;

    // Operations: what `/metrics` reports.
    async fn ops_snapshot(&self) -> StoreResult<OpsSnapshot>;

    // Retention of image bytes (see `crate::retention`).
    /// Purges the images (and the packet pages) of up to `limit` documents
    /// in a final state whose last change was at or before `final_before`:
    /// the rows stay, marked purged with `reason`, one audit row each; every
    /// blob they named that nothing live names any more is marked for
    /// deletion. Documents another replica is purging are skipped.
    async fn purge_images(
        &self,
        final_before: &str,
        reason: &str,
        limit: u32,
    ) -> StoreResult<Vec<PurgedDocument>>;
    /// Cancels pending deletions of these blobs. Called before bytes are
    /// stored or reused for a new row; waits for a sweep deleting one of them.
    async fn reserve_blobs(&self, sha256s: &[String]) -> StoreResult<()>;
    /// Deletes up to `limit` blobs marked for deletion at or before
    /// `marked_before` that no live row names, holding the deletions' rows
    /// locked meanwhile (so `reserve_blobs` waits for it); blobs named again
    /// are kept and unmarked.
    async fn sweep_blobs(
        &self,
        marked_before: &str,
        limit: u32,
        blobs: std::sync::Arc<dyn crate::blobs::BlobStore>,
    ) -> StoreResult<Sweep>;
}

/// Who purges, in the audit trail.
pub fn retention_actor() -> Actor {
    Actor("server:retention".into())
}

/// What the audit trail calls a retention purge.
pub const PURGE_ACTION: &str = "images.purge";

pub(crate) fn purge_audit_reason(images: usize, pages: usize, reason: &str) -> String {
    format!("{images} image(s) and {pages} scanned page(s) purged: {reason}")
}

/// One document whose image bytes were purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedDocument {
    pub document_id: i64,
    pub images: u64,
    pub pages: u64,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Blobs deleted from the blob store.
    pub deleted: Vec<String>,
    /// Blobs named again since they were marked: kept.
    pub kept: u64,
    /// The blob store failed; the rest waits for the next sweep.
    pub error: Option<String>,
}

/// Totals for operators, read in one go at scrape time.
#[derive(Debug, Clone, Default)]
pub struct OpsSnapshot {
    pub pages: u64,
    pub page_bytes: u64,
    pub documents_by_status: Vec<(String, u64)>,
    pub packets_by_state: Vec<(String, u64)>,
    pub webhooks_pending: u64,
    /// Age of the oldest undelivered webhook event.
    pub webhook_oldest_pending_secs: f64,
    pub agents: Vec<AgentOps>,
    /// Images whose bytes retention purged.
    pub images_purged: u64,
    /// Blobs marked for deletion, not yet swept.
    pub blob_deletions_pending: u64,
}

#[derive(Debug, Clone)]
pub struct AgentOps {
    pub id: String,
    pub site: String,
    pub name: String,
    /// Unix seconds.
    pub last_seen: Option<f64>,
    pub queue_pages: Option<u64>,
    pub queue_bytes: Option<u64>,
    pub quarantined: Option<u64>,
}
