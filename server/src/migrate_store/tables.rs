//! The table phase: every row of the embedded schema into PostgreSQL, ids
//! kept (ERPs hold document ids, the audit chain hashes them), in one
//! transaction so a failure leaves the target as empty as it was.

use super::source::Snapshot;
use anyhow::{Context, bail};
use rusqlite::types::ValueRef;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};

/// Every table, parents before the rows that refer to them.
pub const TABLES: &[&str] = &[
    "api_tokens",
    "enrollment_codes",
    "agents",
    "settings",
    "schemes",
    "documents",
    "packets",
    "pages",
    "images",
    "invoices",
    "audit",
    "webhooks",
    "webhook_outbox",
    "webhook_deliveries",
    "users",
    "sessions",
    // Blobs retention marked for deletion: the target's sweeper finishes the job.
    "blob_deletions",
];

/// The SQLite store's copy of the chain head; PostgreSQL keeps it in `audit_head`.
const SQLITE_ONLY_SETTING: &str = "audit.head";

/// Rows per INSERT: few round trips, well under PostgreSQL's 65535 parameters.
const ROWS_PER_INSERT: usize = 500;

/// A target column and how to turn an SQLite value into it.
struct Column {
    name: String,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    BigInt,
    Int,
    Text,
    Bool,
}

/// Refuses a target that holds anything an installation writes.
pub async fn ensure_empty(
    db: &impl tokio_postgres::GenericClient,
    shown: &str,
) -> anyhow::Result<()> {
    for table in TABLES {
        let row = db
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await
            .with_context(|| format!("looking into table {table} of {shown}"))?;
        if row.get::<_, bool>(0) {
            bail!(
                "{shown} is not empty (table {table} has rows): migrate-store copies into a \
                 fresh database only; nothing was copied"
            );
        }
    }
    let head: i64 = db
        .query_one("SELECT id FROM audit_head", &[])
        .await
        .with_context(|| format!("reading the audit head of {shown}"))?
        .get(0);
    if head != 0 {
        bail!("{shown} is not empty (its audit chain is at row {head}); nothing was copied");
    }
    Ok(())
}

/// Copies every table; returns (table, rows copied) in copy order.
pub async fn copy(
    snapshot: &Snapshot,
    client: &mut Client,
    shown: &str,
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let present = snapshot.tables()?;
    if let Some(unknown) = present.iter().find(|t| !TABLES.contains(&t.as_str())) {
        bail!(
            "the embedded database has a table {unknown} that this imc-server does not know how \
             to move; use the imc-server version that wrote it"
        );
    }
    let tx = client
        .transaction()
        .await
        .with_context(|| format!("starting a transaction on {shown}"))?;
    // Again inside the transaction: nothing may have arrived since the first look.
    ensure_empty(&tx, shown).await?;
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let n = copy_table(snapshot, &tx, table)
            .await
            .with_context(|| format!("copying table {table}"))?;
        copied.push((*table, n));
    }
    move_sequences(&tx).await?;
    set_audit_head(&tx).await?;
    tx.commit()
        .await
        .with_context(|| format!("committing the copy into {shown}"))?;
    Ok(copied)
}

async fn target_columns(tx: &Transaction<'_>, table: &str) -> anyhow::Result<Vec<(Column, bool)>> {
    let rows = tx
        .query(
            "SELECT column_name::text, data_type::text, column_default IS NOT NULL \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let name: String = r.get(0);
            let kind = match r.get::<_, String>(1).as_str() {
                "bigint" => Kind::BigInt,
                "integer" => Kind::Int,
                "text" => Kind::Text,
                "boolean" => Kind::Bool,
                other => bail!(
                    "target column {table}.{name} has type {other}, not one migrate-store copies"
                ),
            };
            Ok((Column { name, kind }, r.get(2)))
        })
        .collect()
}

async fn copy_table(snapshot: &Snapshot, tx: &Transaction<'_>, table: &str) -> anyhow::Result<u64> {
    let source_columns = snapshot.columns(table)?;
    if source_columns.is_empty() {
        // Not in the embedded database at all (written by an older version): nothing to copy.
        return Ok(0);
    }
    let mut columns = Vec::new();
    for (column, has_default) in target_columns(tx, table).await? {
        if source_columns.contains(&column.name) {
            columns.push(column);
        } else if !has_default {
            bail!(
                "the embedded database has no column {table}.{} and the target needs one",
                column.name
            );
        }
    }
    if let Some(extra) = source_columns
        .iter()
        .find(|c| !columns.iter().any(|t| &t.name == *c))
    {
        bail!(
            "the target has no column {table}.{extra}: migrate it with the same imc-server version"
        );
    }
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut select = format!("SELECT \"{}\" FROM \"{table}\"", names.join("\", \""));
    if table == "settings" {
        select.push_str(&format!(" WHERE key <> '{SQLITE_ONLY_SETTING}'"));
    }
    let mut stmt = snapshot.conn.prepare(&select)?;
    let mut rows = stmt.query([])?;
    let mut batch: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut in_batch = 0usize;
    let mut total = 0u64;
    while let Some(row) = rows.next()? {
        for (i, column) in columns.iter().enumerate() {
            let value = convert(row.get_ref(i)?, column.kind).with_context(|| {
                format!("row {} column {}", total + in_batch as u64 + 1, column.name)
            })?;
            batch.push(value);
        }
        in_batch += 1;
        if in_batch == ROWS_PER_INSERT {
            insert(tx, table, &names, in_batch, &batch).await?;
            total += in_batch as u64;
            batch.clear();
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        insert(tx, table, &names, in_batch, &batch).await?;
        total += in_batch as u64;
    }
    Ok(total)
}

fn convert(value: ValueRef<'_>, kind: Kind) -> anyhow::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(match (value, kind) {
        (ValueRef::Null, Kind::BigInt) => Box::new(None::<i64>),
        (ValueRef::Null, Kind::Int) => Box::new(None::<i32>),
        (ValueRef::Null, Kind::Text) => Box::new(None::<String>),
        (ValueRef::Null, Kind::Bool) => Box::new(None::<bool>),
        (ValueRef::Integer(n), Kind::BigInt) => Box::new(n),
        (ValueRef::Integer(n), Kind::Int) => {
            Box::new(i32::try_from(n).with_context(|| format!("{n} does not fit an INTEGER"))?)
        }
        (ValueRef::Integer(n @ (0 | 1)), Kind::Bool) => Box::new(n == 1),
        (ValueRef::Text(text), Kind::Text) => Box::new(
            std::str::from_utf8(text)
                .context("text that is not UTF-8")?
                .to_owned(),
        ),
        (other, _) => bail!("unexpected value {other:?} for this column"),
    })
}

async fn insert(
    tx: &Transaction<'_>,
    table: &str,
    names: &[&str],
    rows: usize,
    values: &[Box<dyn ToSql + Sync + Send>],
) -> anyhow::Result<()> {
    let width = names.len();
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES {}",
        names.join(", "),
        tuples.join(", ")
    );
    let params: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect();
    tx.execute(&sql, &params).await.map_err(|e| {
        let detail = e
            .as_db_error()
            .map_or(e.to_string(), |d| d.message().to_owned());
        anyhow::anyhow!("inserting into {table}: {detail}")
    })?;
    Ok(())
}

/// Serial ids continue after the copied ones, so new rows never collide.
async fn move_sequences(tx: &Transaction<'_>) -> anyhow::Result<()> {
    let serials = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'",
            &[],
        )
        .await
        .context("listing the target's sequences")?;
    for row in serials {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), \
                 COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            ),
            &[&table, &column],
        )
        .await
        .with_context(|| format!("moving the sequence of {table}.{column}"))?;
    }
    Ok(())
}

/// PostgreSQL appends after the head row: point it at the copied chain's end.
async fn set_audit_head(tx: &Transaction<'_>) -> anyhow::Result<()> {
    let last = tx
        .query_opt("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", &[])
        .await
        .context("reading the copied audit chain's end")?;
    if let Some(row) = last {
        let (id, hash): (i64, String) = (row.get(0), row.get(1));
        tx.execute("UPDATE audit_head SET id = $1, hash = $2", &[&id, &hash])
            .await
            .context("setting the audit head")?;
    }
    Ok(())
}
