//! What the sign-off desk reads and writes beyond the API's [`Store`]:
//! staff users, their sessions, and the list queries behind its pages.
//!
//! A separate trait so the API's store stays as it is; the SQLite store
//! implements both (`store/sqlite/web.rs`). Decisions never go through here:
//! they use the API's store calls, so the status rules have one home.
//!
//! [`Store`]: crate::store::Store

use crate::store::{Actor, Document, Packet, StoreResult};
use async_trait::async_trait;
use imc_shared::api::PacketState;
use uuid::Uuid;

pub use crate::domain::{Role, User};

#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub site: Option<String>,
    pub password_hash: String,
}

/// A live login: the user and the form token that proves a request came
/// from a page this session was shown.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user: User,
    pub csrf_token: String,
}

/// Which matched documents the queue shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub site: Option<String>,
    pub org: Option<String>,
    pub doc_type: Option<String>,
    /// The user's scope (`scope::SiteScope`): never anything outside this
    /// site, counts included, whatever the filters ask.
    pub within: Option<String>,
}

#[derive(Debug, Clone)]
pub struct QueueRow {
    pub document: Document,
    /// The site whose desk sent the newest packet.
    pub site: Option<String>,
}

/// One page of the sign-off queue, oldest first, with counts for the filters.
#[derive(Debug, Clone, Default)]
pub struct QueuePage {
    pub rows: Vec<QueueRow>,
    /// Matched documents passing the filter.
    pub filtered: u64,
    /// All matched documents.
    pub total: u64,
    pub by_site: Vec<(String, u64)>,
    pub by_org: Vec<(String, u64)>,
    pub by_doc_type: Vec<(String, u64)>,
}

#[async_trait]
pub trait WebStore: Send + Sync + 'static {
    /// Fails with `Conflict` when the name is taken.
    async fn add_user(&self, user: NewUser, actor: &Actor) -> StoreResult<User>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Disabled users by name, for the admin page to enable again.
    async fn disabled_users(&self) -> StoreResult<Vec<User>>;
    /// Disables (`true`) or re-enables a user; disabling ends their sessions
    /// at once. `NotFound` for an unknown name, `Conflict` for the last
    /// enabled administrator (nobody could administer the desk after it).
    async fn set_user_disabled(&self, name: &str, disabled: bool, actor: &Actor)
    -> StoreResult<()>;
    /// Replaces an enabled user's password hash and ends their sessions.
    async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        actor: &Actor,
    ) -> StoreResult<()>;

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf_token: &str,
        expires_at: &str,
    ) -> StoreResult<()>;
    /// The session if it exists and has not expired at `now`.
    async fn session(&self, token_hash: &str, now: &str) -> StoreResult<Option<SessionRow>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    async fn queue(&self, filter: QueueFilter, offset: u32, limit: u32) -> StoreResult<QueuePage>;
    /// The matched document after `after` in queue order (or the first one
    /// when `after` is not in the queue), never `after` itself.
    async fn next_in_queue(&self, filter: QueueFilter, after: i64) -> StoreResult<Option<i64>>;
    /// Documents whose doc_no or cover code is `text`, or starts with it;
    /// with `within`, only those with a packet from that site.
    async fn search_documents(
        &self,
        text: &str,
        limit: u32,
        within: Option<String>,
    ) -> StoreResult<Vec<Document>>;
    /// Those of `ids` that have a packet from `site`.
    async fn documents_at_site(&self, ids: Vec<i64>, site: String) -> StoreResult<Vec<i64>>;
    async fn packet(&self, id: Uuid) -> StoreResult<Option<Packet>>;
    /// Packets in `state`, oldest first; with `within`, only that site's.
    async fn packets_at(
        &self,
        state: PacketState,
        within: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Packet>>;
}
