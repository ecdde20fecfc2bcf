//! Versioned, forward-only schema migrations, embedded in the binary.
//!
//! Each migration runs in its own transaction together with its row in
//! `schema_migrations`, under a transaction-scoped advisory lock, so replicas
//! that start (or `imc-server migrate` runs) at the same time apply each
//! version exactly once. A database newer than this binary is refused.

use super::db;
use crate::store::{StoreError, StoreResult, now};
use deadpool_postgres::{GenericClient, Object};

/// (version, name, SQL). Append only; never edit a released one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (
        2,
        "desk and scoped tokens",
        include_str!("migrations/0002_desk_and_scoped_tokens.sql"),
    ),
    (
        3,
        "upload partials",
        include_str!("migrations/0003_upload_partials.sql"),
    ),
    (
        4,
        "image retention",
        include_str!("migrations/0004_image_retention.sql"),
    ),
    (
        5,
        "desk sequence",
        include_str!("migrations/0005_desk_sequence.sql"),
    ),
    (
        6,
        "attachment count",
        include_str!("migrations/0006_attachment_count.sql"),
    ),
    (
        7,
        "cover problem",
        include_str!("migrations/0007_cover_problem.sql"),
    ),
];

/// Any constant both the migrator and the check agree on.
const LOCK_KEY: i64 = 0x494d_435f_4d49_4752; // "IMC_MIGR"

pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

async fn ensure_table(db: &impl GenericClient) -> StoreResult<()> {
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )",
    )
    .await?;
    Ok(())
}

/// The newest version applied, or 0 on an empty database.
pub async fn current(db: &impl GenericClient) -> StoreResult<i32> {
    let exists: bool = db::query_one(
        db,
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = 'schema_migrations')",
        &[],
    )
    .await?
    .get(0);
    if !exists {
        return Ok(0);
    }
    let version: Option<i32> = db::query_one(db, "SELECT MAX(version) FROM schema_migrations", &[])
        .await?
        .get(0);
    Ok(version.unwrap_or(0))
}

/// Applies every migration the database lacks; returns the versions applied.
pub async fn run(conn: &mut Object) -> StoreResult<Vec<i32>> {
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let tx = conn.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        ensure_table(&tx).await?;
        let have = current(&tx).await?;
        if have > latest() {
            return Err(newer(have));
        }
        if have >= *version {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| {
            // The server's own words, not the driver's bare "db error".
            let detail = e
                .as_db_error()
                .map_or(e.to_string(), |d| d.message().to_owned());
            StoreError::Corrupt(format!("migration {version} ({name}) failed: {detail}"))
        })?;
        db::execute(
            &tx,
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &now()],
        )
        .await?;
        tx.commit().await?;
        applied.push(*version);
    }
    Ok(applied)
}

fn newer(have: i32) -> StoreError {
    StoreError::Corrupt(format!(
        "the database schema is version {have}, newer than this imc-server knows ({}); \
         upgrade imc-server",
        latest()
    ))
}

/// Refuses a database whose schema is not exactly this binary's.
pub async fn check(db: &impl GenericClient) -> StoreResult<()> {
    let have = current(db).await?;
    match have.cmp(&latest()) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(newer(have)),
        std::cmp::Ordering::Less => Err(StoreError::Conflict(format!(
            "the database schema is version {have}, this imc-server needs {}; \
             run `imc-server migrate --database ...` first",
            latest()
        ))),
    }
}
