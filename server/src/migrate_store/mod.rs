//! `imc-server migrate-store`: moves an embedded installation (the SQLite
//! file and blob folder of a data dir) into a scaled-out one (PostgreSQL and
//! an object store or folder).
//!
//! Everything is read inside one SQLite read transaction: one snapshot. The
//! target is migrated and must be empty. Blobs go first: they are create-only
//! and named by their hash, so a run that fails there leaves the database
//! empty and the next run sends only what is missing. Then all tables in one
//! PostgreSQL transaction, ids kept; then the audit chain is verified on the
//! target.

mod blobs;
mod source;
mod tables;

use crate::blobs::{BlobStore, FolderBlobs};
use crate::config::{ServerConfig, redact_password};
use crate::store::{AuditCheck, PgStore, SqliteStore, verify_audit_file};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::sync::Arc;

pub use blobs::BlobTotals;
pub use tables::TABLES;

pub struct Options {
    /// The embedded installation's data dir.
    pub from: PathBuf,
    /// `postgres://...` of the target database.
    pub to: String,
    /// `s3://bucket/prefix` or a folder.
    pub blobs: String,
    /// Draw a progress line while blobs are copied.
    pub progress: bool,
}

#[derive(Debug)]
pub struct Summary {
    /// Rows copied per table, in copy order.
    pub tables: Vec<(&'static str, u64)>,
    pub blobs: BlobTotals,
    pub audit_rows: u64,
}

/// Copies the installation at `opts.from` into `opts.to` and `opts.blobs`.
/// Must run on a multi-threaded runtime; the SQLite reads block this task.
pub async fn run(opts: &Options) -> anyhow::Result<Summary> {
    let config = ServerConfig::new(opts.from.clone());
    let db_path = config.database_path();
    if !db_path.is_file() {
        bail!(
            "no database at {}: is --from the embedded server's data dir?",
            db_path.display()
        );
    }
    // Bring the file to this binary's schema, as starting the server would.
    drop(SqliteStore::open(&db_path).with_context(|| format!("opening {}", db_path.display()))?);
    let snapshot = source::Snapshot::open(&db_path)?;
    if let AuditCheck::Broken { row, reason } = verify_audit_file(&db_path)? {
        bail!("the source's audit chain is broken at row {row}: {reason}; nothing was copied");
    }

    let shown = redact_password(&opts.to);
    let store = PgStore::pool(&opts.to)?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("migrating {shown}: {e}"))?;
    let (mut client, connection) = tokio_postgres::connect(&opts.to, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {shown}"))?;
    let connection = tokio::spawn(connection);
    tables::ensure_empty(&client, &shown).await?;

    let source_blobs: Arc<dyn BlobStore> = Arc::new(
        FolderBlobs::open(&config.blobs_dir())
            .with_context(|| format!("opening {}", config.blobs_dir().display()))?,
    );
    let target_blobs = crate::blobs::open(&opts.blobs)
        .with_context(|| format!("opening the blob store {}", opts.blobs))?;
    let wanted = snapshot.referenced_blobs()?;
    let blob_totals = blobs::copy(
        &wanted,
        source_blobs,
        target_blobs,
        &opts.blobs,
        opts.progress,
    )
    .await?;

    let copied = tables::copy(&snapshot, &mut client, &shown).await?;
    for (table, n) in &copied {
        let want = if snapshot.columns(table)?.is_empty() {
            0
        } else {
            snapshot.count(table)?
        };
        // The SQLite-only chain head setting is not copied.
        let want = if *table == "settings" {
            want.saturating_sub(audit_head_setting(&snapshot)?)
        } else {
            want
        };
        if *n != want {
            bail!("copied {n} rows of {table} but the embedded database has {want}");
        }
    }
    drop(client);
    let _ = connection.await;

    let audit_rows = match store
        .verify_audit()
        .await
        .map_err(|e| anyhow::anyhow!("checking the audit chain in {shown}: {e}"))?
    {
        AuditCheck::Intact { rows } => rows,
        AuditCheck::Broken { row, reason } => bail!(
            "copied, but the audit chain in {shown} is broken at row {row}: {reason}; \
             do not serve from it"
        ),
    };
    Ok(Summary {
        tables: copied,
        blobs: blob_totals,
        audit_rows,
    })
}

fn audit_head_setting(snapshot: &source::Snapshot) -> anyhow::Result<u64> {
    let n: i64 = snapshot.conn.query_row(
        "SELECT COUNT(*) FROM settings WHERE key = 'audit.head'",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}
