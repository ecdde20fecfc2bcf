//! The sign-off desk's tables (users, sessions) and its list queries.

use super::documents::audit;
use super::rows::{self, DOCUMENT_COLUMNS};
use super::{SqliteStore, now, packets};
use crate::store::{Actor, Document, Packet, Scheme, StoreError, StoreResult};
use crate::web::store::*;
use async_trait::async_trait;
use imc_shared::api::PacketState;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.site, u.password_hash, u.created_at";

fn user(r: &Row<'_>) -> rusqlite::Result<StoreResult<User>> {
    let id: i64 = r.get(0)?;
    let role: String = r.get(2)?;
    Ok(match role.parse::<Role>() {
        Ok(role) => Ok(User {
            id,
            name: r.get(1)?,
            role,
            site: r.get(3)?,
            password_hash: r.get(4)?,
            created_at: r.get(5)?,
        }),
        Err(e) => Err(StoreError::Corrupt(format!("user {id}: {e}"))),
    })
}

/// The WHERE clause of the queue: matched, then the optional filters as
/// ?1..?3 and the user's site scope as ?4.
const QUEUE_WHERE: &str = "d.status = 'matched' \
     AND (?1 IS NULL OR EXISTS (SELECT 1 FROM packets p WHERE p.document_id = d.id AND p.site = ?1)) \
     AND (?2 IS NULL OR d.org = ?2) AND (?3 IS NULL OR d.doc_type = ?3) \
     AND (?4 IS NULL OR EXISTS (SELECT 1 FROM packets p WHERE p.document_id = d.id AND p.site = ?4))";

/// Matched documents within the site scope ?1: what the queue's counts count.
const SCOPED_MATCHED: &str = "d.status = 'matched' \
     AND (?1 IS NULL OR EXISTS (SELECT 1 FROM packets w WHERE w.document_id = d.id AND w.site = ?1))";

const SITE_OF: &str =
    "(SELECT p.site FROM packets p WHERE p.document_id = d.id ORDER BY p.created_at DESC LIMIT 1)";

fn counts(
    conn: &Connection,
    sql: &str,
    within: &Option<String>,
) -> StoreResult<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([within], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn queue(conn: &Connection, f: &QueueFilter, offset: u32, limit: u32) -> StoreResult<QueuePage> {
    let args = params![f.site, f.org, f.doc_type, f.within];
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DOCUMENT_COLUMNS}, {SITE_OF} FROM documents d WHERE {QUEUE_WHERE} \
         ORDER BY d.updated_at, d.id LIMIT ?5 OFFSET ?6"
    ))?;
    let rows = stmt.query_map(
        params![f.site, f.org, f.doc_type, f.within, limit, offset],
        |r| -> rusqlite::Result<StoreResult<QueueRow>> {
            let site: Option<String> = r.get(rows::DOCUMENT_WIDTH)?;
            Ok(rows::document(r)?.map(|document| QueueRow { document, site }))
        },
    )?;
    let rows = rows::collect(rows)?;
    let filtered = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM documents d WHERE {QUEUE_WHERE}"
        ))?
        .query_row(args, |r| r.get(0))?;
    let total = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM documents d WHERE {SCOPED_MATCHED}"
        ))?
        .query_row([&f.within], |r| r.get(0))?;
    Ok(QueuePage {
        rows,
        filtered,
        total,
        by_site: counts(
            conn,
            "SELECT p.site, COUNT(DISTINCT d.id) FROM documents d JOIN packets p ON p.document_id = d.id \
             WHERE d.status = 'matched' AND (?1 IS NULL OR p.site = ?1) GROUP BY p.site ORDER BY p.site",
            &f.within,
        )?,
        by_org: counts(
            conn,
            &format!(
                "SELECT d.org, COUNT(*) FROM documents d WHERE {SCOPED_MATCHED} \
                 GROUP BY d.org ORDER BY d.org"
            ),
            &f.within,
        )?,
        by_doc_type: counts(
            conn,
            &format!(
                "SELECT d.doc_type, COUNT(*) FROM documents d WHERE {SCOPED_MATCHED} \
                 GROUP BY d.doc_type ORDER BY d.doc_type"
            ),
            &f.within,
        )?,
    })
}

fn next_in_queue(conn: &Connection, f: &QueueFilter, after: i64) -> StoreResult<Option<i64>> {
    let position: Option<(String, i64)> = conn
        .query_row(
            "SELECT updated_at, id FROM documents WHERE id = ?1 AND status = 'matched'",
            [after],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let first = format!(
        "SELECT d.id FROM documents d WHERE {QUEUE_WHERE} AND d.id != ?5 \
         ORDER BY d.updated_at, d.id LIMIT 1"
    );
    if let Some((updated_at, id)) = position {
        let next = conn
            .prepare_cached(&format!(
                "SELECT d.id FROM documents d WHERE {QUEUE_WHERE} \
                 AND (d.updated_at, d.id) > (?5, ?6) ORDER BY d.updated_at, d.id LIMIT 1"
            ))?
            .query_row(
                params![f.site, f.org, f.doc_type, f.within, updated_at, id],
                |r| r.get(0),
            )
            .optional()?;
        if next.is_some() {
            return Ok(next);
        }
    }
    // Past the end, or the document left the queue: start from the oldest.
    Ok(conn
        .prepare_cached(&first)?
        .query_row(params![f.site, f.org, f.doc_type, f.within, after], |r| {
            r.get(0)
        })
        .optional()?)
}

fn search(
    conn: &Connection,
    text: &str,
    limit: u32,
    within: Option<String>,
) -> StoreResult<Vec<Document>> {
    // Prefix match with LIKE's wildcards escaped, so `%` in a doc_no is literal.
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents d \
         WHERE (d.doc_no LIKE ?1 ESCAPE '\\' OR d.cover_code LIKE ?1 ESCAPE '\\') \
         AND (?4 IS NULL OR EXISTS (SELECT 1 FROM packets p WHERE p.document_id = d.id AND p.site = ?4)) \
         ORDER BY (d.doc_no = ?2 OR d.cover_code = ?2) DESC, d.updated_at DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![format!("{escaped}%"), text, limit, within],
        rows::document,
    )?;
    rows::collect(rows)
}

pub(super) fn schemes(conn: &Connection) -> StoreResult<Vec<Scheme>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, org, doc_type, mode, rules FROM schemes ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, org, doc_type, mode, rules) = row?;
        out.push(Scheme {
            mode: mode
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("scheme {name} mode: {e}")))?,
            rules: rules
                .map(|r| serde_json::from_str(&r))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("scheme {name} rules: {e}")))?,
            name,
            org,
            doc_type,
        });
    }
    Ok(out)
}

/// Enabled or disabled users, by name.
fn users_by_state(c: &Connection, disabled: bool) -> StoreResult<Vec<User>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE (u.disabled_at IS NOT NULL) = ?1 ORDER BY u.name"
    ))?;
    let rows = stmt.query_map([disabled], user)?;
    rows::collect(rows)
}

#[async_trait]
impl WebStore for SqliteStore {
    async fn add_user(&self, new: NewUser, actor: &Actor) -> StoreResult<User> {
        let actor = actor.clone();
        self.write(move |tx| {
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
                [&new.name],
                |r| r.get(0),
            )?;
            if taken {
                return Err(StoreError::Conflict(format!(
                    "a user named {} exists",
                    new.name
                )));
            }
            let at = now();
            tx.execute(
                "INSERT INTO users (name, role, site, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![new.name, new.role.as_str(), new.site, new.password_hash, at],
            )?;
            let id = tx.last_insert_rowid();
            audit(
                tx,
                &actor,
                None,
                "user.add",
                None,
                None,
                Some(&format!("{} ({})", new.name, new.role.as_str())),
            )?;
            Ok(User {
                id,
                name: new.name,
                role: new.role,
                site: new.site,
                password_hash: new.password_hash,
                created_at: at,
            })
        })
        .await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let name = name.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?1 AND u.disabled_at IS NULL"
            ))?
            .query_row([name], user)
            .optional()?
            .transpose()
        })
        .await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        self.read(|c| users_by_state(c, false)).await
    }

    async fn disabled_users(&self) -> StoreResult<Vec<User>> {
        self.read(|c| users_by_state(c, true)).await
    }

    async fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        actor: &Actor,
    ) -> StoreResult<()> {
        let (name, actor) = (name.to_owned(), actor.clone());
        self.write(move |tx| {
            let found: Option<(i64, String, bool)> = tx
                .query_row(
                    "SELECT id, role, disabled_at IS NOT NULL FROM users WHERE name = ?1",
                    [&name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((id, role, was_disabled)) = found else {
                return Err(StoreError::NotFound(format!("user {name}")));
            };
            if was_disabled == disabled {
                return Ok(());
            }
            if disabled && role == Role::Admin.as_str() {
                let others: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM users WHERE role = ?1 AND disabled_at IS NULL AND id <> ?2",
                    params![Role::Admin.as_str(), id],
                    |r| r.get(0),
                )?;
                if others == 0 {
                    return Err(StoreError::Conflict(format!(
                        "{name} is the last enabled administrator"
                    )));
                }
            }
            let at = disabled.then(now);
            tx.execute(
                "UPDATE users SET disabled_at = ?1 WHERE id = ?2",
                params![at, id],
            )?;
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            let action = if disabled { "user.disable" } else { "user.enable" };
            audit(tx, &actor, None, action, None, None, Some(&name))?;
            Ok(())
        })
        .await
    }

    async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        actor: &Actor,
    ) -> StoreResult<()> {
        let (name, hash, actor) = (name.to_owned(), password_hash.to_owned(), actor.clone());
        self.write(move |tx| {
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM users WHERE name = ?1 AND disabled_at IS NULL",
                    [&name],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Err(StoreError::NotFound(format!("enabled user {name}")));
            };
            tx.execute(
                "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                params![hash, id],
            )?;
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            audit(tx, &actor, None, "user.password", None, None, Some(&name))?;
            Ok(())
        })
        .await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf_token: &str,
        expires_at: &str,
    ) -> StoreResult<()> {
        let args = (
            token_hash.to_owned(),
            csrf_token.to_owned(),
            expires_at.to_owned(),
        );
        self.write(move |tx| {
            let at = now();
            // Expired sessions go when a new one comes: the table stays small.
            tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [&at])?;
            tx.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![args.0, user_id, args.1, at, args.2],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, token_hash: &str, at: &str) -> StoreResult<Option<SessionRow>> {
        let (token_hash, at) = (token_hash.to_owned(), at.to_owned());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.disabled_at IS NULL"
            ))?
            .query_row(params![token_hash, at], |r| {
                let csrf_token: String = r.get(6)?;
                Ok(user(r)?.map(|user| SessionRow { user, csrf_token }))
            })
            .optional()?
            .transpose()
        })
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        let token_hash = token_hash.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
            Ok(())
        })
        .await
    }

    async fn queue(&self, filter: QueueFilter, offset: u32, limit: u32) -> StoreResult<QueuePage> {
        self.read(move |c| queue(c, &filter, offset, limit)).await
    }

    async fn next_in_queue(&self, filter: QueueFilter, after: i64) -> StoreResult<Option<i64>> {
        self.read(move |c| next_in_queue(c, &filter, after)).await
    }

    async fn search_documents(
        &self,
        text: &str,
        limit: u32,
        within: Option<String>,
    ) -> StoreResult<Vec<Document>> {
        let text = text.to_owned();
        self.read(move |c| search(c, &text, limit, within)).await
    }

    async fn documents_at_site(&self, ids: Vec<i64>, site: String) -> StoreResult<Vec<i64>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM packets WHERE document_id = ?1 AND site = ?2)",
            )?;
            let mut visible = Vec::new();
            for id in ids {
                if stmt.query_row(params![id, site], |r| r.get::<_, bool>(0))? {
                    visible.push(id);
                }
            }
            Ok(visible)
        })
        .await
    }

    async fn packet(&self, id: Uuid) -> StoreResult<Option<Packet>> {
        self.read(move |c| packets::one(c, id)).await
    }

    async fn packets_at(
        &self,
        state: PacketState,
        within: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Packet>> {
        self.read(move |c| packets::list_at(c, state, within.as_deref(), limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn store_with_queue() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("imc.sqlite3")).unwrap();
        store
            .write(|tx| {
                for (id, org, status, site, at) in [
                    (1, "HQ", "matched", "bj", "2026-01-01T00:00:03.000Z"),
                    (2, "HQ", "matched", "sh", "2026-01-01T00:00:01.000Z"),
                    (3, "East", "matched", "sh", "2026-01-01T00:00:02.000Z"),
                    (4, "HQ", "ready", "bj", "2026-01-01T00:00:00.000Z"),
                ] {
                    tx.execute(
                        "INSERT INTO documents (id, source_system, doc_no, doc_type, org, cover_code, mode, \
                         status, created_at, updated_at) VALUES (?1, 'ERP', ?2, 'expense', ?3, ?4, 'match', ?5, ?6, ?6)",
                        params![id, format!("EXP_{id}%"), org, format!("IMC{id:010}"), status, at],
                    )?;
                    tx.execute(
                        "INSERT INTO packets (id, agent_id, site, state, document_id, created_at, updated_at) \
                         VALUES (?1, 'a', ?2, 'matched', ?3, ?4, ?4)",
                        params![Uuid::new_v4().to_string(), site, id, at],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        (dir, store)
    }

    /// A clerk's scope holds whatever the filters ask, counts included.
    #[tokio::test]
    async fn the_site_scope_bounds_rows_counts_and_next() {
        let (_dir, store) = store_with_queue().await;
        let bj = |site: Option<&str>| QueueFilter {
            site: site.map(str::to_owned),
            within: Some("bj".into()),
            ..QueueFilter::default()
        };
        for asked in [None, Some("sh"), Some("bj")] {
            let page = store.queue(bj(asked), 0, 10).await.unwrap();
            assert!(page.rows.iter().all(|r| r.document.id == 1), "{asked:?}");
            assert_eq!(page.total, 1);
            assert_eq!(page.by_site, [("bj".to_owned(), 1)]);
            assert_eq!(page.by_org, [("HQ".to_owned(), 1)]);
        }
        assert_eq!(store.next_in_queue(bj(None), 2).await.unwrap(), Some(1));
        assert_eq!(store.next_in_queue(bj(None), 1).await.unwrap(), None);
        assert_eq!(
            store
                .documents_at_site(vec![1, 2, 3, 4], "bj".into())
                .await
                .unwrap(),
            [1, 4]
        );
        let found = store
            .search_documents("IMC", 10, Some("sh".into()))
            .await
            .unwrap();
        let mut ids: Vec<i64> = found.iter().map(|d| d.id).collect();
        ids.sort();
        assert_eq!(ids, [2, 3]);
    }

    #[tokio::test]
    async fn committed_changes_are_announced_and_rollbacks_are_not() {
        let (_dir, store) = store_with_queue().await;
        let mut changes = store.changes();
        let failed: StoreResult<()> = store
            .write(|tx| {
                tx.execute("UPDATE documents SET org = 'X' WHERE id = 1", [])?;
                Err(StoreError::Conflict("no".into()))
            })
            .await;
        assert!(failed.is_err());
        store
            .decide(1, crate::store::Decision::SignOff, &Actor("t".into()))
            .await
            .unwrap();
        let change = changes.try_recv().unwrap();
        assert_eq!(change.documents, [1]);
        assert!(changes.try_recv().is_err(), "the rollback was announced");
    }
}
