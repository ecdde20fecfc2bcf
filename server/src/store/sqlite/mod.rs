//! The embedded store: one SQLite file in WAL mode.
//!
//! One writer connection behind a mutex (SQLite allows one writer at a time
//! anyway) and a few reader connections, so status queries never wait behind a
//! write. All calls run on tokio's blocking pool: rusqlite is synchronous.
//! `synchronous = FULL`: a commit is on disk before the call returns, which is
//! what lets the uplink acknowledge a page right after it.

mod agents;
pub mod audit;
pub mod changes;
mod documents;
mod invoices;
mod ops;
mod packets;
mod retention;
mod rows;
mod settings;
mod web;
mod webhooks;

use super::*;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const READERS: usize = 4;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    /// Turns at the connections, taken before a blocking thread is asked
    /// for: callers beyond the connections wait as tasks, not as parked
    /// threads (a hundred desks once meant a hundred pool threads).
    write_turn: Arc<Semaphore>,
    read_turns: Arc<Semaphore>,
    changes: changes::Changes,
}

const STATEMENT_CACHE: usize = 64;

impl SqliteStore {
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let mut writer = Connection::open(path)?;
        // First: another process on the same file (a CLI next to a running
        // server) waits for its lock instead of failing on the pragmas.
        writer.busy_timeout(std::time::Duration::from_secs(10))?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.pragma_update(None, "foreign_keys", "ON")?;
        writer.execute_batch(include_str!("schema.sql"))?;
        audit::migrate(&writer)?;
        packets::migrate(&writer)?;
        documents::migrate(&writer)?;
        retention::migrate(&writer)?;
        let changes = changes::Changes::new();
        changes.install(&mut writer)?;
        agents::migrate_tokens(&writer)?;
        // The hot paths (uplink pages, status queries) keep their statements
        // prepared; more distinct ones run than rusqlite's default 16 holds.
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let readers = (0..READERS)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(Mutex::new(conn))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers,
                write_turn: Arc::new(Semaphore::new(1)),
                read_turns: Arc::new(Semaphore::new(READERS)),
                changes,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Announcements of committed changes to documents, packets and agents.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<changes::Change> {
        self.inner.changes.subscribe()
    }

    /// Runs `f` in one write transaction, committed when it returns Ok.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let turn = turn(&inner.write_turn).await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let mut conn = inner
                .writer
                .lock()
                .map_err(|_| StoreError::Task("writer lock poisoned".into()))?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = match f(&tx).and_then(|value| Ok(tx.commit().map(|()| value)?)) {
                Ok(value) => value,
                Err(e) => {
                    inner.changes.rolled_back();
                    return Err(e);
                }
            };
            inner.changes.committed();
            Ok(value)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let turn = turn(&inner.read_turns).await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            // With a turn a reader is free; waiting on one is only a fallback.
            let guard = inner
                .readers
                .iter()
                .find_map(|r| r.try_lock().ok())
                .map(Ok)
                .unwrap_or_else(|| inner.readers[0].lock())
                .map_err(|_| StoreError::Task("reader lock poisoned".into()))?;
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// A turn at one of a set of connections; held by the blocking work itself,
/// so it outlives a caller that stops waiting.
async fn turn(turns: &Arc<Semaphore>) -> StoreResult<OwnedSemaphorePermit> {
    Arc::clone(turns)
        .acquire_owned()
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_api_token(&self, token: NewApiToken, actor: &Actor) -> StoreResult<ApiToken> {
        let actor = actor.clone();
        self.write(move |tx| agents::add_api_token(tx, &token, &actor))
            .await
    }

    async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        self.read(agents::api_tokens).await
    }

    async fn rotate_api_token(
        &self,
        id: i64,
        new_hash: &str,
        old_expires_at: &str,
        actor: &Actor,
    ) -> StoreResult<ApiToken> {
        let (new_hash, old_expires_at, actor) = (
            new_hash.to_owned(),
            old_expires_at.to_owned(),
            actor.clone(),
        );
        self.write(move |tx| agents::rotate_api_token(tx, id, &new_hash, &old_expires_at, &actor))
            .await
    }

    async fn revoke_api_token(&self, id: i64, actor: &Actor) -> StoreResult<ApiToken> {
        let actor = actor.clone();
        self.write(move |tx| agents::revoke_api_token(tx, id, &actor))
            .await
    }

    async fn audit_event(&self, actor: &Actor, action: &str, what: &str) -> StoreResult<()> {
        let (actor, action, what) = (actor.clone(), action.to_owned(), what.to_owned());
        self.write(move |tx| agents::audit_event(tx, &actor, &action, &what))
            .await
    }

    async fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| agents::api_token_by_hash(c, &token_hash))
            .await
    }

    async fn add_enrollment_code(
        &self,
        site: &str,
        code_hash: &str,
        expires_at: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        let (site, code_hash, expires_at, actor) = (
            site.to_owned(),
            code_hash.to_owned(),
            expires_at.to_owned(),
            actor.clone(),
        );
        self.write(move |tx| {
            agents::add_enrollment_code(tx, &site, &code_hash, &expires_at, &actor)
        })
        .await
    }

    async fn enroll_agent(
        &self,
        code_hash: &str,
        agent_id: &str,
        name: &str,
        token_hash: &str,
        version: Option<&str>,
    ) -> StoreResult<Agent> {
        let args = (
            code_hash.to_owned(),
            agent_id.to_owned(),
            name.to_owned(),
            token_hash.to_owned(),
            version.map(str::to_owned),
        );
        self.write(move |tx| {
            agents::enroll(tx, &args.0, &args.1, &args.2, &args.3, args.4.as_deref())
        })
        .await
    }

    async fn agent_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Agent>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| agents::agent_by_token_hash(c, &token_hash))
            .await
    }

    async fn agent_seen(
        &self,
        agent_id: &str,
        report: Option<imc_shared::protocol::AgentReport>,
    ) -> StoreResult<()> {
        let agent_id = agent_id.to_owned();
        self.write(move |tx| agents::seen(tx, &agent_id, report.as_ref()))
            .await
    }

    async fn agents(&self) -> StoreResult<Vec<AgentRecord>> {
        self.read(agents::list).await
    }

    async fn revoke_agent(&self, agent_id: &str, actor: &Actor) -> StoreResult<AgentRecord> {
        let (agent_id, actor) = (agent_id.to_owned(), actor.clone());
        self.write(move |tx| {
            let record = agents::revoke(tx, &agent_id)?;
            documents::audit(
                tx,
                &actor,
                None,
                "agent.revoke",
                None,
                None,
                Some(&format!(
                    "agent {} ({}) at {}",
                    record.id, record.name, record.site
                )),
            )?;
            Ok(record)
        })
        .await
    }

    async fn agent_active(&self, agent_id: &str) -> StoreResult<bool> {
        let agent_id = agent_id.to_owned();
        self.read(move |c| agents::active(c, &agent_id)).await
    }

    async fn cover_patterns(&self) -> StoreResult<Vec<String>> {
        self.read(settings::cover_patterns).await
    }

    async fn settings(&self) -> StoreResult<Settings> {
        self.read(settings::load).await
    }

    async fn update_settings(&self, patch: SettingsPatch, actor: &Actor) -> StoreResult<Settings> {
        let actor = actor.clone();
        self.write(move |tx| settings::update(tx, patch, &actor))
            .await
    }

    async fn setting_text(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_owned();
        self.read(move |c| settings::text(c, &key)).await
    }

    async fn replace_setting_text(
        &self,
        key: &str,
        expected: Option<String>,
        value: String,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write(move |tx| settings::replace_text(tx, &key, expected.as_deref(), &value))
            .await
    }

    async fn put_scheme(&self, scheme: Scheme, actor: &Actor) -> StoreResult<Scheme> {
        let actor = actor.clone();
        self.write(move |tx| documents::put_scheme(tx, scheme, &actor))
            .await
    }

    async fn schemes(&self) -> StoreResult<Vec<Scheme>> {
        self.read(web::schemes).await
    }

    async fn delete_scheme(&self, name: &str, actor: &Actor) -> StoreResult<bool> {
        let (name, actor) = (name.to_owned(), actor.clone());
        self.write(move |tx| documents::delete_scheme(tx, &name, &actor))
            .await
    }

    async fn create_document(&self, doc: NewDocument, actor: &Actor) -> StoreResult<Created> {
        let actor = actor.clone();
        self.write(move |tx| match documents::create(tx, doc, &actor)? {
            // Late binding: paper that arrived before its document attaches now.
            Created::New(new) => {
                packets::attach_waiting_packets(tx, new.id, &new.cover_code)?;
                Ok(Created::New(documents::require(tx, new.id)?))
            }
            existing => Ok(existing),
        })
        .await
    }

    async fn document(&self, id: i64) -> StoreResult<Option<Document>> {
        self.read(move |c| documents::by_id(c, id)).await
    }

    async fn documents_by_doc_no(&self, doc_no: &str) -> StoreResult<Vec<Document>> {
        let doc_no = doc_no.to_owned();
        self.read(move |c| documents::by_doc_nos(c, std::slice::from_ref(&doc_no)))
            .await
    }

    async fn documents_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Document>> {
        let ids = ids.to_vec();
        self.read(move |c| documents::by_ids(c, &ids)).await
    }

    async fn documents_by_doc_nos(&self, doc_nos: &[String]) -> StoreResult<Vec<Document>> {
        let doc_nos = doc_nos.to_vec();
        self.read(move |c| documents::by_doc_nos(c, &doc_nos)).await
    }

    async fn documents_by_cover_codes(&self, codes: &[String]) -> StoreResult<Vec<Document>> {
        let codes = codes.to_vec();
        self.read(move |c| documents::by_cover_codes(c, &codes))
            .await
    }

    async fn desk_documents(&self, site: &str, limit: u32) -> StoreResult<Vec<Document>> {
        let site = site.to_owned();
        self.read(move |c| documents::for_desk(c, &site, limit))
            .await
    }

    async fn images(&self, document_id: i64) -> StoreResult<Vec<Image>> {
        self.read(move |c| documents::images(c, document_id)).await
    }

    async fn attachment_check(&self, doc: &Document) -> StoreResult<Option<AttachmentCheck>> {
        let doc = doc.clone();
        self.read(move |c| documents::attachment_check(c, &doc))
            .await
    }

    async fn image(&self, image_id: i64) -> StoreResult<Option<Image>> {
        self.read(move |c| documents::image(c, image_id)).await
    }

    async fn add_image(
        &self,
        document_id: i64,
        image: NewImage,
        actor: &Actor,
    ) -> StoreResult<Image> {
        let actor = actor.clone();
        self.write(move |tx| documents::add_uploaded_image(tx, document_id, image, &actor))
            .await
    }

    async fn decide(
        &self,
        document_id: i64,
        decision: Decision,
        actor: &Actor,
    ) -> StoreResult<Document> {
        let actor = actor.clone();
        self.write(move |tx| documents::decide(tx, document_id, &decision, &actor))
            .await
    }

    async fn record_page(&self, agent: &Agent, page: StoredPage) -> StoreResult<PacketResolution> {
        let agent = agent.clone();
        self.write(move |tx| packets::record_page(tx, &agent, &page))
            .await
    }

    async fn record_pages(
        &self,
        pages: Vec<(Agent, StoredPage)>,
    ) -> StoreResult<Vec<StoreResult<PacketResolution>>> {
        self.write(move |tx| {
            let mut results = Vec::with_capacity(pages.len());
            for (agent, page) in &pages {
                // A savepoint per page: one page's conflict leaves the others in.
                tx.prepare_cached("SAVEPOINT page")?.execute([])?;
                match packets::record_page(tx, agent, page) {
                    Ok(resolution) => {
                        tx.prepare_cached("RELEASE page")?.execute([])?;
                        results.push(Ok(resolution));
                    }
                    Err(e) => {
                        tx.execute_batch("ROLLBACK TO page; RELEASE page")?;
                        results.push(Err(e));
                    }
                }
            }
            Ok(results)
        })
        .await
    }

    async fn page_stored(&self, capture_id: Uuid, agent_id: &str) -> StoreResult<bool> {
        let agent_id = agent_id.to_owned();
        self.read(move |c| packets::page_stored_by(c, capture_id, &agent_id))
            .await
    }

    async fn packet_has_pages(&self, packet_id: Uuid, agent_id: &str) -> StoreResult<bool> {
        let agent_id = agent_id.to_owned();
        self.read(move |c| packets::packet_has_pages(c, packet_id, &agent_id))
            .await
    }

    async fn site_holds_blob(&self, site: &str, sha256: &str) -> StoreResult<bool> {
        let (site, sha256) = (site.to_owned(), sha256.to_owned());
        self.read(move |c| packets::site_holds_blob(c, &site, &sha256))
            .await
    }

    async fn seal_packet(
        &self,
        agent: &Agent,
        seal: imc_shared::protocol::PacketSeal,
    ) -> StoreResult<PacketResolution> {
        let agent = agent.clone();
        self.write(move |tx| packets::seal(tx, &agent, &seal)).await
    }

    async fn packets(&self, state: Option<PacketState>, limit: u32) -> StoreResult<Vec<Packet>> {
        self.read(move |c| packets::list(c, state, limit)).await
    }

    async fn match_packet(
        &self,
        packet_id: Uuid,
        document_id: i64,
        mode: Option<AttachMode>,
        actor: &Actor,
    ) -> StoreResult<Document> {
        let actor = actor.clone();
        self.write(move |tx| packets::match_by_hand(tx, packet_id, document_id, mode, &actor))
            .await
    }

    async fn packets_of_document(&self, document_id: i64) -> StoreResult<Vec<(Uuid, String)>> {
        self.read(move |c| packets::of_document(c, document_id))
            .await
    }

    async fn packet_page_blob(
        &self,
        packet_id: Uuid,
        page_index: u32,
    ) -> StoreResult<Option<PageBlob>> {
        self.read(move |c| packets::page_blob(c, packet_id, page_index))
            .await
    }

    async fn put_webhook(
        &self,
        source_system: &str,
        url: &str,
        secret: &str,
        actor: &Actor,
    ) -> StoreResult<WebhookTarget> {
        let (source_system, url, secret, actor) = (
            source_system.to_owned(),
            url.to_owned(),
            secret.to_owned(),
            actor.clone(),
        );
        self.write(move |tx| {
            let target = webhooks::put(tx, &source_system, &url, &secret)?;
            documents::audit(
                tx,
                &actor,
                None,
                "webhook.put",
                None,
                None,
                Some(&format!("{source_system} -> {url}")),
            )?;
            Ok(target)
        })
        .await
    }

    async fn due_webhooks(&self, now: &str, limit: u32) -> StoreResult<Vec<OutboxItem>> {
        let now = now.to_owned();
        self.read(move |c| webhooks::due(c, &now, limit)).await
    }

    async fn record_delivery(&self, outbox_id: i64, outcome: DeliveryOutcome) -> StoreResult<()> {
        self.write(move |tx| webhooks::record(tx, outbox_id, &outcome))
            .await
    }

    async fn webhook_deliveries(&self, document_id: i64) -> StoreResult<Vec<Delivery>> {
        self.read(move |c| webhooks::deliveries(c, document_id))
            .await
    }

    async fn webhook_secrets(&self) -> StoreResult<Vec<(String, String)>> {
        self.read(webhooks::secrets).await
    }

    async fn replace_webhook_secrets(&self, changes: Vec<SecretChange>) -> StoreResult<u64> {
        self.write(move |tx| webhooks::replace_secrets(tx, &changes))
            .await
    }

    async fn document_audit(&self, document_id: i64) -> StoreResult<Vec<AuditRow>> {
        self.read(move |c| audit::for_document(c, document_id))
            .await
    }

    async fn audit_head(&self) -> StoreResult<Option<(i64, String)>> {
        self.read(audit::head).await
    }

    async fn documents_to_archive(
        &self,
        filter: &ArchiveFilter,
        after_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<Document>> {
        let filter = filter.clone();
        self.read(move |c| documents::to_archive(c, &filter, after_id, limit))
            .await
    }

    async fn document_conflicts(&self, document_id: i64) -> StoreResult<Vec<InvoiceConflict>> {
        self.read(move |c| invoices::conflicts(c, document_id))
            .await
    }

    async fn ops_snapshot(&self) -> StoreResult<OpsSnapshot> {
        self.read(ops::snapshot).await
    }

    async fn purge_images(
        &self,
        final_before: &str,
        reason: &str,
        limit: u32,
    ) -> StoreResult<Vec<PurgedDocument>> {
        let (final_before, reason) = (final_before.to_owned(), reason.to_owned());
        self.write(move |tx| {
            retention::purge(tx, &final_before, &reason, limit, &retention_actor())
        })
        .await
    }

    async fn reserve_blobs(&self, sha256s: &[String]) -> StoreResult<()> {
        let keys = sha256s.to_vec();
        let read_keys = keys.clone();
        // Nearly always nothing is pending: a read then spares the write (and its sync).
        if !self
            .read(move |c| retention::any_pending(c, &read_keys))
            .await?
        {
            return Ok(());
        }
        self.write(move |tx| retention::cancel_deletions(tx, &keys))
            .await
    }

    async fn sweep_blobs(
        &self,
        marked_before: &str,
        limit: u32,
        blobs: Arc<dyn crate::blobs::BlobStore>,
    ) -> StoreResult<Sweep> {
        let marked_before = marked_before.to_owned();
        let runtime = tokio::runtime::Handle::current();
        // The blob store is async; this runs on the blocking pool holding the
        // writer, so it waits for each deletion right there.
        self.write(move |tx| {
            let delete = |sha: &str| runtime.block_on(blobs.delete(sha));
            retention::sweep(tx, &marked_before, limit, &delete)
        })
        .await
    }
}
