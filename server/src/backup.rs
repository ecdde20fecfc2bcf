//! `imc-server backup` and `restore`: an online, consistent copy of a data dir.
//!
//! The database is copied with SQLite's backup API in one step, which reads
//! one snapshot while the server keeps writing (WAL). Blobs are copied after
//! it: a page row is committed only after its blob is in place, so every blob
//! the snapshot names exists already. Blobs are content-addressed, so each is
//! verified against its name while copied and one already in the backup
//! folder is not copied again (later backups into the same folder are
//! incremental). The manifest is written last: a folder without one is not a
//! finished backup.

use crate::blobs::is_sha256_hex;
use crate::config::ServerConfig;
use crate::store::{AuditCheck, verify_audit_file};
use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MANIFEST: &str = "backup.json";
const DATABASE: &str = "imc.sqlite3";
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created_at: String,
    pub documents: u64,
    pub pages: u64,
    pub images: u64,
    pub blobs: u64,
    pub audit_rows: u64,
}

/// Refuses a server that keeps its data outside the data dir: this backup
/// copies an embedded installation (SQLite file + blob folder) only.
/// `database` and `blobs` are the server's `--database` and `--blobs`.
pub fn embedded_only(database: Option<&str>, blobs: Option<&str>) -> anyhow::Result<()> {
    if let Some(url) = database {
        bail!(
            "this server keeps its metadata in PostgreSQL ({}), not in the data dir: back it up \
             with pg_dump (or the database's own backups) and the image bytes with the object \
             store's own replication or versioning; see docs/OPERATIONS.md",
            crate::config::redact_password(url)
        );
    }
    if let Some(location) = blobs {
        bail!(
            "this server keeps its image bytes in {location}, not in the data dir's blobs folder: \
             back them up with the object store's own replication (or copy that folder; blobs \
             never change once written); see docs/OPERATIONS.md"
        );
    }
    Ok(())
}

/// Copies the live data dir at `data_dir` into `to`.
pub fn backup(data_dir: &Path, to: &Path) -> anyhow::Result<Manifest> {
    let source_db = ServerConfig::new(data_dir.to_owned()).database_path();
    if !source_db.is_file() {
        bail!(
            "no database at {}: is --data-dir right?",
            source_db.display()
        );
    }
    std::fs::create_dir_all(to.join("blobs"))
        .with_context(|| format!("creating backup folder {}", to.display()))?;
    // An unfinished backup must not look finished.
    remove_if_exists(&to.join(MANIFEST))?;
    let tmp_db = to.join(format!("{DATABASE}.tmp"));
    remove_if_exists(&tmp_db)?;
    let source = Connection::open_with_flags(&source_db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", source_db.display()))?;
    source.busy_timeout(std::time::Duration::from_secs(30))?;
    copy_database(&source, &tmp_db)?;
    drop(source);

    let snapshot = Connection::open_with_flags(&tmp_db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let blobs = referenced_blobs(&snapshot)?;
    let source_blobs = ServerConfig::new(data_dir.to_owned()).blobs_dir();
    for sha in &blobs {
        copy_blob(&source_blobs, &to.join("blobs"), sha)?;
    }
    let mut manifest = count(&snapshot)?;
    manifest.blobs = blobs.len() as u64;
    drop(snapshot);
    sync_file(&tmp_db)?;
    std::fs::rename(&tmp_db, to.join(DATABASE))
        .with_context(|| format!("finishing {}", to.join(DATABASE).display()))?;
    write_manifest(to, &manifest)?;
    Ok(manifest)
}

/// Rebuilds a data dir at `data_dir` (which must hold no database) from `from`.
pub fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<Manifest> {
    let manifest_path = from.join(MANIFEST);
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("{} is not a finished backup", from.display()))?,
    )
    .with_context(|| format!("reading {}", manifest_path.display()))?;
    if manifest.format != FORMAT {
        bail!(
            "backup format {} is not supported (want {FORMAT})",
            manifest.format
        );
    }
    let config = ServerConfig::new(data_dir.to_owned());
    let target_db = config.database_path();
    if target_db.exists() {
        bail!(
            "{} already holds a database: restore into an empty data dir",
            data_dir.display()
        );
    }
    let backup = Connection::open_with_flags(from.join(DATABASE), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", from.join(DATABASE).display()))?;
    let integrity: String = backup.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        bail!("the backup's database is damaged: {integrity}");
    }
    std::fs::create_dir_all(config.blobs_dir())
        .with_context(|| format!("creating {}", config.blobs_dir().display()))?;
    for sha in referenced_blobs(&backup)? {
        copy_blob(&from.join("blobs"), &config.blobs_dir(), &sha)?;
    }
    let tmp_db = data_dir.join(format!("{DATABASE}.restoring"));
    remove_if_exists(&tmp_db)?;
    copy_database(&backup, &tmp_db)?;
    drop(backup);
    sync_file(&tmp_db)?;
    std::fs::rename(&tmp_db, &target_db)
        .with_context(|| format!("finishing {}", target_db.display()))?;
    match verify_audit_file(&target_db)? {
        AuditCheck::Intact { .. } => {}
        AuditCheck::Broken { row, reason } => {
            bail!("restored, but the audit chain is broken at row {row}: {reason}")
        }
    }
    Ok(manifest)
}

/// One backup step of every page: a single consistent read of the source.
fn copy_database(source: &Connection, to: &Path) -> anyhow::Result<()> {
    let mut target = Connection::open(to).with_context(|| format!("creating {}", to.display()))?;
    let backup = rusqlite::backup::Backup::new(source, &mut target)
        .with_context(|| format!("starting the copy into {}", to.display()))?;
    // All pages in one step: one read snapshot, which a writer cannot invalidate.
    loop {
        match backup
            .step(-1)
            .with_context(|| format!("copying the database into {}", to.display()))?
        {
            rusqlite::backup::StepResult::Done => break,
            rusqlite::backup::StepResult::More => {}
            // Busy or locked: the writer holds a lock for a moment; try again.
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    drop(backup);
    // One self-contained file: no -wal beside it.
    target.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

fn referenced_blobs(db: &Connection) -> anyhow::Result<Vec<String>> {
    // Bytes retention purged are gone; a backup from before retention has no such column.
    let purgeable: bool = db.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('images') WHERE name = 'purged_at')",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = db.prepare(if purgeable {
        "SELECT sha256 FROM pages WHERE purged_at IS NULL \
         UNION SELECT sha256 FROM images WHERE purged_at IS NULL ORDER BY 1"
    } else {
        "SELECT sha256 FROM pages UNION SELECT sha256 FROM images ORDER BY 1"
    })?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for name in &names {
        if !is_sha256_hex(name) {
            bail!("the database names a blob {name:?} that is not a SHA-256");
        }
    }
    Ok(names)
}

fn count(db: &Connection) -> anyhow::Result<Manifest> {
    let n = |sql: &str| -> anyhow::Result<u64> { Ok(db.query_row(sql, [], |r| r.get(0))?) };
    Ok(Manifest {
        format: FORMAT,
        created_at: crate::store::now(),
        documents: n("SELECT COUNT(*) FROM documents")?,
        pages: n("SELECT COUNT(*) FROM pages")?,
        images: n("SELECT COUNT(*) FROM images")?,
        blobs: 0,
        audit_rows: n("SELECT COUNT(*) FROM audit")?,
    })
}

fn blob_path(root: &Path, sha: &str) -> PathBuf {
    root.join(&sha[..2]).join(sha)
}

/// Copies one blob, checking its bytes against its name; skips one already there.
fn copy_blob(from_root: &Path, to_root: &Path, sha: &str) -> anyhow::Result<()> {
    let from = blob_path(from_root, sha);
    let to = blob_path(to_root, sha);
    if to.is_file() {
        return Ok(());
    }
    let dir = to.parent().unwrap_or(to_root);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut input = std::fs::File::open(&from)
        .with_context(|| format!("blob {sha} missing at {}", from.display()))?;
    let tmp = dir.join(format!(".{sha}.tmp"));
    let mut output =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("reading {}", from.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    if hex::encode(hasher.finalize()) != sha {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "blob {} does not match its SHA-256: the copy is damaged",
            from.display()
        );
    }
    output
        .sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, &to).with_context(|| format!("writing {}", to.display()))
}

fn write_manifest(to: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let path = to.join(MANIFEST);
    let tmp = to.join(format!("{MANIFEST}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(manifest)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    sync_file(&tmp)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

fn sync_file(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
