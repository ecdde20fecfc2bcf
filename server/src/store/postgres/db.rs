//! Small helpers over a connection or transaction: every statement is
//! prepared once per connection (cached), and values cross into the store's
//! unsigned types with a check instead of a cast.

use crate::store::{StoreError, StoreResult};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub async fn query(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> StoreResult<Vec<Row>> {
    let stmt = db.prepare_cached(sql).await?;
    Ok(db.query(&stmt, params).await?)
}

pub async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> StoreResult<Option<Row>> {
    let stmt = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&stmt, params).await?)
}

pub async fn query_one(db: &impl GenericClient, sql: &str, params: Params<'_>) -> StoreResult<Row> {
    let stmt = db.prepare_cached(sql).await?;
    Ok(db.query_one(&stmt, params).await?)
}

pub async fn execute(db: &impl GenericClient, sql: &str, params: Params<'_>) -> StoreResult<u64> {
    let stmt = db.prepare_cached(sql).await?;
    Ok(db.execute(&stmt, params).await?)
}

/// An INTEGER column holding a count or index the store keeps unsigned.
pub fn u32_of(value: i32, what: &str) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is {value}")))
}

pub fn u64_of(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is {value}")))
}

/// An unsigned value going into an INTEGER or BIGINT column.
pub fn i32_of(value: u32, what: &str) -> StoreResult<i32> {
    i32::try_from(value).map_err(|_| StoreError::Invalid {
        field: what.to_owned(),
        message: format!("{value} is too large"),
    })
}

pub fn i64_of(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Invalid {
        field: what.to_owned(),
        message: format!("{value} is too large"),
    })
}

/// True when `e` is PostgreSQL refusing a duplicate key.
pub fn is_unique_violation(e: &StoreError) -> bool {
    match e {
        StoreError::Database(source) => source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code())
            .is_some_and(|c| *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        _ => false,
    }
}

/// Serialises everything that binds paper to one cover code.
pub async fn lock_cover(tx: &impl GenericClient, cover_code: &str) -> StoreResult<()> {
    execute(
        tx,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&cover_code],
    )
    .await?;
    Ok(())
}
