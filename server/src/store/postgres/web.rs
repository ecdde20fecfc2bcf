//! The sign-off desk's tables (users, sessions) and its list queries, on
//! PostgreSQL: the same queries as the SQLite store's, in this dialect.

use super::rows::{self, DOCUMENT_COLUMNS};
use super::{PgStore, db, documents, packets};
use crate::store::{Actor, Document, Packet, Scheme, StoreError, StoreResult, now};
use crate::web::store::*;
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use imc_shared::api::PacketState;
use tokio_postgres::Row;
use uuid::Uuid;

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.site, u.password_hash, u.created_at";

fn user(r: &Row) -> StoreResult<User> {
    let id: i64 = r.get(0);
    let role: String = r.get(2);
    Ok(User {
        id,
        name: r.get(1),
        role: role
            .parse::<Role>()
            .map_err(|e| StoreError::Corrupt(format!("user {id}: {e}")))?,
        site: r.get(3),
        password_hash: r.get(4),
        created_at: r.get(5),
    })
}

/// The WHERE clause of the queue: matched, then the optional filters as
/// $1..$3 and the user's site scope as $4.
const QUEUE_WHERE: &str = "d.status = 'matched' \
     AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM packets p WHERE p.document_id = d.id AND p.site = $1)) \
     AND ($2::text IS NULL OR d.org = $2) AND ($3::text IS NULL OR d.doc_type = $3) \
     AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM packets p WHERE p.document_id = d.id AND p.site = $4))";

/// Matched documents within the site scope $1: what the queue's counts count.
const SCOPED_MATCHED: &str = "d.status = 'matched' \
     AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM packets w WHERE w.document_id = d.id AND w.site = $1))";

const SITE_OF: &str =
    "(SELECT p.site FROM packets p WHERE p.document_id = d.id ORDER BY p.created_at DESC LIMIT 1)";

async fn counts(
    c: &impl GenericClient,
    sql: &str,
    within: &Option<String>,
) -> StoreResult<Vec<(String, u64)>> {
    db::query(c, sql, &[within])
        .await?
        .iter()
        .map(|r| Ok((r.get(0), db::u64_of(r.get(1), "count")?)))
        .collect()
}

async fn count(c: &impl GenericClient, sql: &str, params: db::Params<'_>) -> StoreResult<u64> {
    db::u64_of(db::query_one(c, sql, params).await?.get(0), "count")
}

async fn queue(
    c: &impl GenericClient,
    f: &QueueFilter,
    offset: u32,
    limit: u32,
) -> StoreResult<QueuePage> {
    let found = db::query(
        c,
        &format!(
            "SELECT {DOCUMENT_COLUMNS}, {SITE_OF} FROM documents d WHERE {QUEUE_WHERE} \
             ORDER BY d.updated_at, d.id LIMIT $5 OFFSET $6"
        ),
        &[
            &f.site,
            &f.org,
            &f.doc_type,
            &f.within,
            &i64::from(limit),
            &i64::from(offset),
        ],
    )
    .await?;
    let rows = found
        .iter()
        .map(|r| {
            Ok(QueueRow {
                document: rows::document(r)?,
                site: r.get(rows::DOCUMENT_WIDTH),
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(QueuePage {
        rows,
        filtered: count(
            c,
            &format!("SELECT COUNT(*) FROM documents d WHERE {QUEUE_WHERE}"),
            &[&f.site, &f.org, &f.doc_type, &f.within],
        )
        .await?,
        total: count(
            c,
            &format!("SELECT COUNT(*) FROM documents d WHERE {SCOPED_MATCHED}"),
            &[&f.within],
        )
        .await?,
        by_site: counts(
            c,
            "SELECT p.site, COUNT(DISTINCT d.id) FROM documents d JOIN packets p ON p.document_id = d.id \
             WHERE d.status = 'matched' AND ($1::text IS NULL OR p.site = $1) \
             GROUP BY p.site ORDER BY p.site",
            &f.within,
        )
        .await?,
        by_org: counts(
            c,
            &format!(
                "SELECT d.org, COUNT(*) FROM documents d WHERE {SCOPED_MATCHED} \
                 GROUP BY d.org ORDER BY d.org"
            ),
            &f.within,
        )
        .await?,
        by_doc_type: counts(
            c,
            &format!(
                "SELECT d.doc_type, COUNT(*) FROM documents d WHERE {SCOPED_MATCHED} \
                 GROUP BY d.doc_type ORDER BY d.doc_type"
            ),
            &f.within,
        )
        .await?,
    })
}

async fn next_in_queue(
    c: &impl GenericClient,
    f: &QueueFilter,
    after: i64,
) -> StoreResult<Option<i64>> {
    let position = db::query_opt(
        c,
        "SELECT updated_at, id FROM documents WHERE id = $1 AND status = 'matched'",
        &[&after],
    )
    .await?;
    if let Some(position) = position {
        let (updated_at, id): (String, i64) = (position.get(0), position.get(1));
        let next = db::query_opt(
            c,
            &format!(
                "SELECT d.id FROM documents d WHERE {QUEUE_WHERE} \
                 AND (d.updated_at, d.id) > ($5, $6) ORDER BY d.updated_at, d.id LIMIT 1"
            ),
            &[&f.site, &f.org, &f.doc_type, &f.within, &updated_at, &id],
        )
        .await?;
        if let Some(next) = next {
            return Ok(Some(next.get(0)));
        }
    }
    // Past the end, or the document left the queue: start from the oldest.
    Ok(db::query_opt(
        c,
        &format!(
            "SELECT d.id FROM documents d WHERE {QUEUE_WHERE} AND d.id != $5 \
             ORDER BY d.updated_at, d.id LIMIT 1"
        ),
        &[&f.site, &f.org, &f.doc_type, &f.within, &after],
    )
    .await?
    .map(|r| r.get(0)))
}

async fn search(
    c: &impl GenericClient,
    text: &str,
    limit: u32,
    within: Option<String>,
) -> StoreResult<Vec<Document>> {
    // Prefix match with LIKE's wildcards escaped, so `%` in a doc_no is literal.
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    db::query(
        c,
        &format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents d \
             WHERE (d.doc_no LIKE $1 ESCAPE '\\' OR d.cover_code LIKE $1 ESCAPE '\\') \
             AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM packets p WHERE p.document_id = d.id AND p.site = $4)) \
             ORDER BY (d.doc_no = $2 OR d.cover_code = $2) DESC, d.updated_at DESC LIMIT $3"
        ),
        &[&format!("{escaped}%"), &text, &i64::from(limit), &within],
    )
    .await?
    .iter()
    .map(rows::document)
    .collect()
}

pub(super) async fn schemes(c: &impl GenericClient) -> StoreResult<Vec<Scheme>> {
    db::query(
        c,
        "SELECT name, org, doc_type, mode, rules FROM schemes ORDER BY name",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        let name: String = r.get(0);
        let mode: String = r.get(3);
        let rules: Option<String> = r.get(4);
        Ok(Scheme {
            mode: mode
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("scheme {name} mode: {e}")))?,
            rules: rules
                .map(|r| serde_json::from_str(&r))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("scheme {name} rules: {e}")))?,
            org: r.get(1),
            doc_type: r.get(2),
            name,
        })
    })
    .collect()
}

async fn add_user(tx: &impl GenericClient, new: NewUser, actor: &Actor) -> StoreResult<User> {
    let at = now();
    // The unique name decides between replicas adding the same user at once.
    let inserted = db::query_opt(
        tx,
        "INSERT INTO users (name, role, site, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO NOTHING RETURNING id",
        &[
            &new.name,
            &new.role.as_str(),
            &new.site,
            &new.password_hash,
            &at,
        ],
    )
    .await?;
    let Some(inserted) = inserted else {
        return Err(StoreError::Conflict(format!(
            "a user named {} exists",
            new.name
        )));
    };
    documents::audit(
        tx,
        actor,
        None,
        "user.add",
        None,
        None,
        Some(&format!("{} ({})", new.name, new.role.as_str())),
    )
    .await?;
    Ok(User {
        id: inserted.get(0),
        name: new.name,
        role: new.role,
        site: new.site,
        password_hash: new.password_hash,
        created_at: at,
    })
}

impl PgStore {
    /// Enabled or disabled users, by name.
    async fn users_by_state(&self, disabled: bool) -> StoreResult<Vec<User>> {
        db::query(
            &self.conn().await?,
            &format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE (u.disabled_at IS NOT NULL) = $1 ORDER BY u.name"
            ),
            &[&disabled],
        )
        .await?
        .iter()
        .map(user)
        .collect()
    }
}

#[async_trait]
impl WebStore for PgStore {
    async fn add_user(&self, new: NewUser, actor: &Actor) -> StoreResult<User> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let user = add_user(&tx, new, actor).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        db::query_opt(
            &self.conn().await?,
            &format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1 AND u.disabled_at IS NULL"
            ),
            &[&name],
        )
        .await?
        .map(|r| user(&r))
        .transpose()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        self.users_by_state(false).await
    }

    async fn disabled_users(&self) -> StoreResult<Vec<User>> {
        self.users_by_state(true).await
    }

    async fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // The enabled administrators are locked first, so two replicas
        // disabling the last two at once cannot both see another one left.
        let admins: Vec<i64> = db::query(
            &tx,
            "SELECT id FROM users WHERE role = $1 AND disabled_at IS NULL ORDER BY id FOR UPDATE",
            &[&Role::Admin.as_str()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let found = db::query_opt(
            &tx,
            "SELECT id, role, disabled_at IS NOT NULL FROM users WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await?;
        let Some(found) = found else {
            return Err(StoreError::NotFound(format!("user {name}")));
        };
        let (id, role, was_disabled): (i64, String, bool) =
            (found.get(0), found.get(1), found.get(2));
        if was_disabled == disabled {
            return Ok(());
        }
        if disabled && role == Role::Admin.as_str() && admins.iter().all(|a| *a == id) {
            return Err(StoreError::Conflict(format!(
                "{name} is the last enabled administrator"
            )));
        }
        let at = disabled.then(now);
        db::execute(
            &tx,
            "UPDATE users SET disabled_at = $1 WHERE id = $2",
            &[&at, &id],
        )
        .await?;
        db::execute(&tx, "DELETE FROM sessions WHERE user_id = $1", &[&id]).await?;
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        documents::audit(&tx, actor, None, action, None, None, Some(name)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let found = db::query_opt(
            &tx,
            "UPDATE users SET password_hash = $1 WHERE name = $2 AND disabled_at IS NULL RETURNING id",
            &[&password_hash, &name],
        )
        .await?;
        let Some(found) = found else {
            return Err(StoreError::NotFound(format!("enabled user {name}")));
        };
        let id: i64 = found.get(0);
        db::execute(&tx, "DELETE FROM sessions WHERE user_id = $1", &[&id]).await?;
        documents::audit(&tx, actor, None, "user.password", None, None, Some(name)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf_token: &str,
        expires_at: &str,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let at = now();
        // Expired sessions go when a new one comes: the table stays small.
        db::execute(&tx, "DELETE FROM sessions WHERE expires_at <= $1", &[&at]).await?;
        db::execute(
            &tx,
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&token_hash, &user_id, &csrf_token, &at, &expires_at],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, at: &str) -> StoreResult<Option<SessionRow>> {
        db::query_opt(
            &self.conn().await?,
            &format!(
                "SELECT {USER_COLUMNS}, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL"
            ),
            &[&token_hash, &at],
        )
        .await?
        .map(|r| {
            Ok(SessionRow {
                user: user(&r)?,
                csrf_token: r.get(6),
            })
        })
        .transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        db::execute(
            &self.conn().await?,
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
        Ok(())
    }

    async fn queue(&self, filter: QueueFilter, offset: u32, limit: u32) -> StoreResult<QueuePage> {
        // One snapshot, so the counts agree with the rows.
        let mut conn = self.conn().await?;
        let tx = conn
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let page = queue(&tx, &filter, offset, limit).await?;
        tx.commit().await?;
        Ok(page)
    }

    async fn next_in_queue(&self, filter: QueueFilter, after: i64) -> StoreResult<Option<i64>> {
        next_in_queue(&self.conn().await?, &filter, after).await
    }

    async fn search_documents(
        &self,
        text: &str,
        limit: u32,
        within: Option<String>,
    ) -> StoreResult<Vec<Document>> {
        search(&self.conn().await?, text, limit, within).await
    }

    async fn documents_at_site(&self, ids: Vec<i64>, site: String) -> StoreResult<Vec<i64>> {
        let mut visible: Vec<i64> = db::query(
            &self.conn().await?,
            "SELECT DISTINCT document_id FROM packets WHERE document_id = ANY($1) AND site = $2",
            &[&ids, &site],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        // In the order asked, like the SQLite store.
        visible.sort_by_key(|id| ids.iter().position(|i| i == id));
        Ok(visible)
    }

    async fn packets_at(
        &self,
        state: PacketState,
        within: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Packet>> {
        packets::list_at(&self.conn().await?, state, within.as_deref(), limit).await
    }

    async fn packet(&self, id: Uuid) -> StoreResult<Option<Packet>> {
        packets::one(&self.conn().await?, id).await
    }
}
