//! The scale-out store: PostgreSQL, shared by any number of replicas.
//!
//! Same behaviour as the SQLite store (one conformance suite runs against
//! both), but every concurrency guarantee comes from the database, never from
//! a lock in this process: each store call is one transaction; unique keys
//! make recording idempotent; rows that a state change reads and then writes
//! are locked (`FOR UPDATE`: a packet while its pages arrive, a document while
//! it changes status, the audit chain's head row while a row is appended);
//! the webhook outbox is claimed with `FOR UPDATE SKIP LOCKED` and a lease.
//! Commits are durable before a call returns (`synchronous_commit` on, the
//! server default), which is what lets the uplink acknowledge a page.

mod agents;
mod audit;
mod changes;
mod db;
mod desk_bus;
mod documents;
mod invoices;
mod listen;
pub mod migrate;
mod ops;
mod packets;
mod partials;
mod retention;
mod rows;
mod settings;
mod web;
mod webhooks;

use super::*;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::str::FromStr;
use std::sync::Arc;

/// Connections per replica; PostgreSQL's default allows 100 in all.
const POOL_SIZE: usize = 16;

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// For the live-update listener's own connection.
    config: tokio_postgres::Config,
    announcer: Arc<listen::Feed<Change>>,
}

impl PgStore {
    /// A pool for `url` (`postgres://user:password@host:port/database`);
    /// no connection is made yet.
    pub fn pool(url: &str) -> StoreResult<PgStore> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Invalid {
            field: "database".into(),
            message: format!("not a PostgreSQL URL: {e}"),
        })?;
        Self::with_config(config)
    }

    pub fn with_config(config: tokio_postgres::Config) -> StoreResult<PgStore> {
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Task(format!("building the connection pool: {e}")))?;
        Ok(PgStore {
            pool,
            config,
            announcer: Arc::new(changes::feed()),
        })
    }

    /// Connects and checks that the schema is this binary's version.
    pub async fn open(url: &str) -> StoreResult<PgStore> {
        let store = Self::pool(url)?;
        store.check_schema().await?;
        Ok(store)
    }

    /// Refuses a database whose schema is not this binary's version.
    pub async fn check_schema(&self) -> StoreResult<()> {
        migrate::check(&self.conn().await?).await
    }

    /// Applies the migrations the database lacks; returns their versions.
    pub async fn migrate(&self) -> StoreResult<Vec<i32>> {
        migrate::run(&mut self.conn().await?).await
    }

    /// True when the database holds no API token yet (a fresh installation).
    pub async fn is_fresh(&self) -> StoreResult<bool> {
        let row = db::query_one(
            &self.conn().await?,
            "SELECT NOT EXISTS (SELECT 1 FROM api_tokens)",
            &[],
        )
        .await?;
        Ok(row.get(0))
    }

    /// Checks the audit hash chain (`imc-server audit verify --database`).
    pub async fn verify_audit(&self) -> StoreResult<AuditCheck> {
        audit::verify(&self.conn().await?).await
    }

    /// Announcements of committed changes to documents, packets and agents,
    /// made by any replica.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.announcer.subscribe(&self.config)
    }

    /// The desk bus between the replicas on this database (`imc_desks`).
    pub fn desk_bus(&self) -> Arc<dyn crate::desk_bus::DeskBus> {
        Arc::new(desk_bus::PgDeskBus::new(
            self.pool.clone(),
            self.config.clone(),
        ))
    }

    async fn conn(&self) -> StoreResult<Object> {
        Ok(self.pool.get().await?)
    }
}

/// Runs `$body` (an expression using `$tx`) in one transaction, committed when
/// it returns Ok and rolled back (on drop) otherwise.
macro_rules! in_tx {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut conn = $self.conn().await?;
        let $tx = conn.transaction().await?;
        let value = $body.await?;
        $tx.commit().await?;
        Ok(value)
    }};
}

/// Runs `$body` on a pooled connection outside any explicit transaction.
macro_rules! on_conn {
    ($self:ident, |$c:ident| $body:expr) => {{
        let conn = $self.conn().await?;
        let $c = &conn;
        $body.await
    }};
}

#[async_trait]
impl Store for PgStore {
    async fn add_api_token(&self, token: NewApiToken, actor: &Actor) -> StoreResult<ApiToken> {
        in_tx!(self, |tx| agents::add_api_token(&tx, &token, actor))
    }

    async fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        on_conn!(self, |c| agents::api_token_by_hash(c, token_hash))
    }

    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        on_conn!(self, |c| agents::api_tokens(c))
    }

    async fn rotate_api_token(
        &self,
        id: i64,
        new_hash: &str,
        old_expires_at: &str,
        actor: &Actor,
    ) -> StoreResult<ApiToken> {
        in_tx!(self, |tx| agents::rotate_api_token(
            &tx,
            id,
            new_hash,
            old_expires_at,
            actor
        ))
    }

    async fn revoke_api_token(&self, id: i64, actor: &Actor) -> StoreResult<ApiToken> {
        in_tx!(self, |tx| agents::revoke_api_token(&tx, id, actor))
    }

    async fn audit_event(&self, actor: &Actor, action: &str, what: &str) -> StoreResult<()> {
        in_tx!(self, |tx| agents::audit_event(&tx, actor, action, what))
    }

    async fn add_enrollment_code(
        &self,
        site: &str,
        code_hash: &str,
        expires_at: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        in_tx!(self, |tx| agents::add_enrollment_code(
            &tx, site, code_hash, expires_at, actor
        ))
    }

    async fn enroll_agent(
        &self,
        code_hash: &str,
        agent_id: &str,
        name: &str,
        token_hash: &str,
        version: Option<&str>,
    ) -> StoreResult<Agent> {
        in_tx!(self, |tx| agents::enroll(
            &tx, code_hash, agent_id, name, token_hash, version
        ))
    }

    async fn agent_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Agent>> {
        on_conn!(self, |c| agents::agent_by_token_hash(c, token_hash))
    }

    async fn agent_seen(
        &self,
        agent_id: &str,
        report: Option<imc_shared::protocol::AgentReport>,
    ) -> StoreResult<()> {
        on_conn!(self, |c| agents::seen(c, agent_id, report.as_ref()))
    }

    async fn agents(&self) -> StoreResult<Vec<AgentRecord>> {
        on_conn!(self, |c| agents::list(c))
    }

    async fn revoke_agent(&self, agent_id: &str, actor: &Actor) -> StoreResult<AgentRecord> {
        in_tx!(self, |tx| async {
            let record = agents::revoke(&tx, agent_id).await?;
            documents::audit(
                &tx,
                actor,
                None,
                "agent.revoke",
                None,
                None,
                Some(&format!(
                    "agent {} ({}) at {}",
                    record.id, record.name, record.site
                )),
            )
            .await?;
            StoreResult::Ok(record)
        })
    }

    async fn agent_active(&self, agent_id: &str) -> StoreResult<bool> {
        on_conn!(self, |c| agents::active(c, agent_id))
    }

    async fn cover_patterns(&self) -> StoreResult<Vec<String>> {
        on_conn!(self, |c| settings::cover_patterns(c))
    }

    async fn settings(&self) -> StoreResult<Settings> {
        on_conn!(self, |c| settings::load(c))
    }

    async fn update_settings(&self, patch: SettingsPatch, actor: &Actor) -> StoreResult<Settings> {
        in_tx!(self, |tx| settings::update(&tx, patch, actor))
    }

    async fn setting_text(&self, key: &str) -> StoreResult<Option<String>> {
        on_conn!(self, |c| settings::text(c, key))
    }

    async fn replace_setting_text(
        &self,
        key: &str,
        expected: Option<String>,
        value: String,
    ) -> StoreResult<bool> {
        on_conn!(self, |c| settings::replace_text(
            c,
            key,
            expected.as_deref(),
            &value
        ))
    }

    async fn put_scheme(&self, scheme: Scheme, actor: &Actor) -> StoreResult<Scheme> {
        in_tx!(self, |tx| documents::put_scheme(&tx, scheme, actor))
    }

    async fn schemes(&self) -> StoreResult<Vec<Scheme>> {
        on_conn!(self, |c| web::schemes(c))
    }

    async fn delete_scheme(&self, name: &str, actor: &Actor) -> StoreResult<bool> {
        in_tx!(self, |tx| documents::delete_scheme(&tx, name, actor))
    }

    async fn create_document(&self, doc: NewDocument, actor: &Actor) -> StoreResult<Created> {
        in_tx!(self, |tx| async {
            match documents::create(&tx, doc, actor).await? {
                // Late binding: paper that arrived before its document attaches now.
                Created::New(new) => {
                    packets::attach_waiting_packets(&tx, new.id, &new.cover_code).await?;
                    Ok::<_, StoreError>(Created::New(documents::require(&tx, new.id).await?))
                }
                existing => Ok(existing),
            }
        })
    }

    async fn document(&self, id: i64) -> StoreResult<Option<Document>> {
        on_conn!(self, |c| documents::by_id(c, id))
    }

    async fn documents_by_doc_no(&self, doc_no: &str) -> StoreResult<Vec<Document>> {
        on_conn!(self, |c| documents::by_doc_nos(c, &[doc_no.to_owned()]))
    }

    async fn documents_by_cover_codes(&self, codes: &[String]) -> StoreResult<Vec<Document>> {
        on_conn!(self, |c| documents::by_cover_codes(c, codes))
    }

    async fn desk_documents(&self, site: &str, limit: u32) -> StoreResult<Vec<Document>> {
        on_conn!(self, |c| documents::for_desk(c, site, limit))
    }

    async fn documents_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Document>> {
        on_conn!(self, |c| documents::by_ids(c, ids))
    }

    async fn documents_by_doc_nos(&self, doc_nos: &[String]) -> StoreResult<Vec<Document>> {
        on_conn!(self, |c| documents::by_doc_nos(c, doc_nos))
    }

    async fn images(&self, document_id: i64) -> StoreResult<Vec<Image>> {
        on_conn!(self, |c| documents::images(c, document_id))
    }

    async fn attachment_check(&self, doc: &Document) -> StoreResult<Option<AttachmentCheck>> {
        on_conn!(self, |c| documents::attachment_check(c, doc))
    }

    async fn image(&self, image_id: i64) -> StoreResult<Option<Image>> {
        on_conn!(self, |c| documents::image(c, image_id))
    }

    async fn add_image(
        &self,
        document_id: i64,
        image: NewImage,
        actor: &Actor,
    ) -> StoreResult<Image> {
        in_tx!(self, |tx| documents::add_uploaded_image(
            &tx,
            document_id,
            image,
            actor
        ))
    }

    async fn decide(
        &self,
        document_id: i64,
        decision: Decision,
        actor: &Actor,
    ) -> StoreResult<Document> {
        in_tx!(self, |tx| documents::decide(
            &tx,
            document_id,
            &decision,
            actor
        ))
    }

    async fn record_page(&self, agent: &Agent, page: StoredPage) -> StoreResult<PacketResolution> {
        in_tx!(self, |tx| packets::record_page(&tx, agent, &page))
    }

    async fn record_pages(
        &self,
        pages: Vec<(Agent, StoredPage)>,
    ) -> StoreResult<Vec<StoreResult<PacketResolution>>> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let results = packets::record_pages(&mut tx, &pages).await?;
        tx.commit().await?;
        Ok(results)
    }

    async fn page_stored(&self, capture_id: Uuid, agent_id: &str) -> StoreResult<bool> {
        on_conn!(self, |c| packets::page_stored_by(c, capture_id, agent_id))
    }

    async fn packet_has_pages(&self, packet_id: Uuid, agent_id: &str) -> StoreResult<bool> {
        on_conn!(self, |c| packets::packet_has_pages(c, packet_id, agent_id))
    }

    async fn site_holds_blob(&self, site: &str, sha256: &str) -> StoreResult<bool> {
        on_conn!(self, |c| packets::site_holds_blob(c, site, sha256))
    }

    async fn seal_packet(
        &self,
        agent: &Agent,
        seal: imc_shared::protocol::PacketSeal,
    ) -> StoreResult<PacketResolution> {
        in_tx!(self, |tx| packets::seal(&tx, agent, &seal))
    }

    async fn packets(&self, state: Option<PacketState>, limit: u32) -> StoreResult<Vec<Packet>> {
        on_conn!(self, |c| packets::list(c, state, limit))
    }

    async fn match_packet(
        &self,
        packet_id: Uuid,
        document_id: i64,
        mode: Option<AttachMode>,
        actor: &Actor,
    ) -> StoreResult<Document> {
        in_tx!(self, |tx| packets::match_by_hand(
            &tx,
            packet_id,
            document_id,
            mode,
            actor
        ))
    }

    async fn packets_of_document(&self, document_id: i64) -> StoreResult<Vec<(Uuid, String)>> {
        on_conn!(self, |c| packets::of_document(c, document_id))
    }

    async fn packet_page_blob(
        &self,
        packet_id: Uuid,
        page_index: u32,
    ) -> StoreResult<Option<PageBlob>> {
        on_conn!(self, |c| packets::page_blob(c, packet_id, page_index))
    }

    async fn put_webhook(
        &self,
        source_system: &str,
        url: &str,
        secret: &str,
        actor: &Actor,
    ) -> StoreResult<WebhookTarget> {
        in_tx!(self, |tx| webhooks::put(
            &tx,
            source_system,
            url,
            secret,
            actor
        ))
    }

    async fn due_webhooks(&self, now: &str, limit: u32) -> StoreResult<Vec<OutboxItem>> {
        in_tx!(self, |tx| webhooks::claim_due(&tx, now, limit))
    }

    async fn record_delivery(&self, outbox_id: i64, outcome: DeliveryOutcome) -> StoreResult<()> {
        in_tx!(self, |tx| webhooks::record(&tx, outbox_id, &outcome))
    }

    async fn webhook_deliveries(&self, document_id: i64) -> StoreResult<Vec<Delivery>> {
        on_conn!(self, |c| webhooks::deliveries(c, document_id))
    }

    async fn webhook_secrets(&self) -> StoreResult<Vec<(String, String)>> {
        on_conn!(self, |c| webhooks::secrets(c))
    }

    async fn replace_webhook_secrets(&self, changes: Vec<SecretChange>) -> StoreResult<u64> {
        in_tx!(self, |tx| webhooks::replace_secrets(&tx, &changes))
    }

    async fn document_audit(&self, document_id: i64) -> StoreResult<Vec<AuditRow>> {
        on_conn!(self, |c| audit::for_document(c, document_id))
    }

    async fn audit_head(&self) -> StoreResult<Option<(i64, String)>> {
        on_conn!(self, |c| audit::head(c))
    }

    async fn documents_to_archive(
        &self,
        filter: &ArchiveFilter,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<Document>> {
        on_conn!(self, |c| documents::to_archive(c, filter, after_id, limit))
    }

    async fn document_conflicts(&self, document_id: i64) -> StoreResult<Vec<InvoiceConflict>> {
        on_conn!(self, |c| invoices::conflicts(c, document_id))
    }

    async fn ops_snapshot(&self) -> StoreResult<OpsSnapshot> {
        // One read-only snapshot: totals taken at one instant agree.
        let mut conn = self.conn().await?;
        let tx = conn
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let snapshot = ops::snapshot(&tx).await?;
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn purge_images(
        &self,
        final_before: &str,
        reason: &str,
        limit: u32,
    ) -> StoreResult<Vec<PurgedDocument>> {
        let actor = retention_actor();
        in_tx!(self, |tx| retention::purge(
            &tx,
            final_before,
            reason,
            limit,
            &actor
        ))
    }

    async fn reserve_blobs(&self, sha256s: &[String]) -> StoreResult<()> {
        on_conn!(self, |c| retention::cancel_deletions(c, sha256s))
    }

    async fn sweep_blobs(
        &self,
        marked_before: &str,
        limit: u32,
        blobs: Arc<dyn crate::blobs::BlobStore>,
    ) -> StoreResult<Sweep> {
        in_tx!(self, |tx| retention::sweep(
            &tx,
            marked_before,
            limit,
            &*blobs
        ))
    }
}
