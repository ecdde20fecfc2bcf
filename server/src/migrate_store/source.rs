//! The embedded side: one SQLite read transaction, so every table and the
//! list of blobs come from one snapshot even if a server still writes (WAL
//! readers never see a torn state, and a page row is committed only after its
//! blob is in place).

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

pub struct Snapshot {
    pub(super) conn: Connection,
}

/// A blob the snapshot names, with the size its rows record.
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
}

impl Snapshot {
    pub fn open(path: &Path) -> anyhow::Result<Snapshot> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // A deferred transaction takes its snapshot at the first read; every
        // later read in it sees the same state.
        conn.execute_batch("BEGIN")?;
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .with_context(|| format!("reading {}", path.display()))?;
        Ok(Snapshot { conn })
    }

    /// The tables of the embedded schema.
    pub fn tables(&self) -> anyhow::Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }

    pub fn columns(&self, table: &str) -> anyhow::Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        let names = stmt
            .query_map([table], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }

    pub fn count(&self, table: &str) -> anyhow::Result<u64> {
        let n: i64 = self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .with_context(|| format!("counting {table}"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every blob a page or image row not purged by retention names, once, in
    /// name order (purged bytes may already be gone).
    pub fn referenced_blobs(&self) -> anyhow::Result<Vec<BlobRef>> {
        let mut stmt = self.conn.prepare(
            "SELECT sha256, MAX(size) FROM \
             (SELECT sha256, size FROM pages WHERE purged_at IS NULL \
             UNION ALL SELECT sha256, size FROM images WHERE purged_at IS NULL) \
             GROUP BY sha256 ORDER BY sha256",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(sha256, size)| {
                if !crate::blobs::is_sha256_hex(&sha256) {
                    bail!("the database names a blob {sha256:?} that is not a SHA-256");
                }
                Ok(BlobRef {
                    sha256,
                    size: u64::try_from(size).unwrap_or(0),
                })
            })
            .collect()
    }
}
