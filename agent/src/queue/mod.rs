//! The agent's durable queue: one SQLite file (WAL, `synchronous = FULL`).
//!
//! It is the source of truth on the desk. A page is copied into the spool and
//! its row committed here before anything is sent; it leaves the queue only
//! when the server has said `Stored`. Packets are assigned here, in the same
//! transaction as their pages, so a crash never leaves a page without a packet.
//! Methods are synchronous: async callers run them on the blocking pool.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use uuid::Uuid;

mod delivery;
mod desk_documents;
pub use desk_documents::FETCHED_KEY as DESK_DOCUMENTS_FETCHED;
mod intake;
pub use intake::RESCAN_NEXT_KEY;
mod report;
pub use desk_documents::CachedDocument;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("queue database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("queue data is corrupt: {0}")]
    Corrupt(String),
    #[error("queue lock poisoned")]
    Poisoned,
    #[error("{0}")]
    File(String),
}

pub type QueueResult<T> = Result<T, QueueError>;

/// Identifies one version of a file in an inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKey {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

#[derive(Debug, Clone)]
pub struct NewPage {
    pub capture_id: Uuid,
    pub spool_path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub source_name: String,
    pub cover_code: Option<String>,
    /// On a cover page: the attachment count its QR declares.
    pub declared: Option<u32>,
    /// On a cover page: why a count its QR carried was not taken.
    pub count_note: Option<String>,
    /// A page that looked like a cover and is not one (its QR signature
    /// failed): why. It starts a packet of its own, which stays unmatched.
    pub cover_problem: Option<String>,
    pub barcodes_json: String,
    pub blank: bool,
}

/// An inbox's open packet and how far it has come.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenPacket {
    pub cover_code: Option<String>,
    pub declared: Option<u32>,
    /// Pages after the cover that are not blank (blank backs of a duplex scan do not count).
    pub scanned: u32,
    /// Its last page is blank: the back of the last sheet is already in.
    pub ends_blank: bool,
}

impl OpenPacket {
    /// How soon the packet may close, judged by its declared count.
    pub fn completion(&self) -> Completion {
        match self.declared {
            Some(declared) if self.scanned >= declared && self.ends_blank => Completion::Now,
            Some(declared) if self.scanned >= declared => Completion::AfterGrace,
            _ => Completion::Open,
        }
    }
}

/// How far a packet is from holding its declared count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// No count declared, or not reached: the quiet time applies.
    Open,
    /// Reached: a blank back of the last sheet may still come.
    AfterGrace,
    /// Reached, and the last sheet's blank back is in too.
    Now,
}

/// A page waiting to be delivered, in scan order.
#[derive(Debug, Clone)]
pub struct QueuedPage {
    /// Scan order.
    pub seq: i64,
    pub capture_id: Uuid,
    pub packet_id: Uuid,
    /// The desk's packet sequence: the order packets were opened in.
    pub packet_seq: u64,
    pub page_index: u32,
    pub cover_code: Option<String>,
    pub spool_path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub source_name: String,
    pub barcodes_json: String,
    pub blank: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SealWork {
    pub packet_id: Uuid,
    pub packet_seq: u64,
    pub cover_code: Option<String>,
    pub page_count: u32,
    /// Nothing but the cover sheet (and blank backs): two covers in a row.
    pub empty: bool,
    /// Why the first page was refused as a cover.
    pub cover_problem: Option<String>,
    /// The rejected document the clerk chose this cover-less packet for.
    pub rescan_of: Option<i64>,
}

/// A source file all of whose pages the server has stored.
#[derive(Debug, Clone)]
pub struct DeliveredFile {
    pub id: i64,
    pub path: PathBuf,
    pub watch_dir: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    pub pages: u64,
    pub bytes: u64,
    pub quarantined: u64,
    /// Pages the server refused for good; kept in the spool for a person to look at.
    pub failed: u64,
    pub failed_bytes: u64,
    /// Packets whose seal the server refused for good.
    pub failed_packets: u64,
}

/// A page the server refused for a reason retrying cannot fix.
#[derive(Debug, Clone)]
pub struct FailedPage {
    pub capture_id: String,
    pub source_name: String,
    pub spool_path: String,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone)]
pub struct PacketSummary {
    pub id: String,
    pub cover_code: Option<String>,
    pub pages: u32,
    pub pages_stored: u32,
    pub pages_failed: u32,
    pub sealed: bool,
    /// Sealed with nothing after its cover sheet.
    pub empty: bool,
    pub outcome: Option<String>,
    pub matched: Option<bool>,
    pub created_at: String,
    /// Why the server refused the packet's seal for good.
    pub seal_failure: Option<String>,
    /// The attachment count the cover declares.
    pub declared: Option<u32>,
    /// Why a count on the cover was not taken.
    pub count_note: Option<String>,
    /// Pages after the cover that are not blank.
    pub scanned: u32,
    /// Why the first page was refused as a cover (its QR signature failed).
    pub cover_problem: Option<String>,
    /// What the server said it became (`matched`, `unmatched`, `rejected`).
    pub fate: Option<String>,
    pub doc_no: Option<String>,
    pub document_id: Option<i64>,
    /// Blank pages (dropped backs) in the packet.
    pub blanks: u32,
    /// The rejected document the clerk chose this packet for (its number).
    pub rescan_doc_no: Option<String>,
    /// What the server said to look at, one per line.
    pub warnings: Option<String>,
}

/// What the server said became of a sealed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FateKind {
    Matched,
    /// No document has its cover yet (it may arrive: late binding), or no cover.
    Unmatched,
    /// Sign-off staff sent the paper back.
    Rejected,
}

impl FateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FateKind::Matched => "matched",
            FateKind::Unmatched => "unmatched",
            FateKind::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PacketFate<'a> {
    pub kind: FateKind,
    pub message: &'a str,
    pub doc_no: Option<&'a str>,
    pub document_id: Option<i64>,
    /// What the clerk should look at although it matched.
    pub warnings: &'a [String],
}

#[derive(Debug, Clone)]
pub struct Quarantined {
    pub id: i64,
    pub path: String,
    pub reason: String,
    pub at: String,
}

pub struct Queue {
    conn: Mutex<Connection>,
    spool_dir: PathBuf,
    /// Counts row changes committed through this queue, so the console can
    /// wait for one instead of polling.
    changes: tokio::sync::watch::Sender<u64>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    watch_dir TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL,            -- queued | done | quarantined
    reason TEXT,
    moved_to TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (path, size, mtime_ns, sha256)
);
CREATE INDEX IF NOT EXISTS files_by_key ON files (path, size, mtime_ns);
CREATE TABLE IF NOT EXISTS packets (
    id TEXT PRIMARY KEY,
    watch_dir TEXT NOT NULL,
    cover_code TEXT,
    sealed INTEGER NOT NULL DEFAULT 0,
    page_count INTEGER,
    seal_acked INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    matched INTEGER,
    last_page_at_ms INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    -- The desk's packet sequence: packets in the order they were opened,
    -- independent of the wall clock.
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS packets_open ON packets (watch_dir, sealed);
-- seq is scan order: pages are delivered in it.
CREATE TABLE IF NOT EXISTS pages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    capture_id TEXT NOT NULL UNIQUE,
    packet_id TEXT NOT NULL REFERENCES packets (id),
    page_index INTEGER NOT NULL,
    file_id INTEGER NOT NULL REFERENCES files (id),
    spool_path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    source_name TEXT NOT NULL,
    barcodes TEXT NOT NULL,
    blank INTEGER NOT NULL,
    state TEXT NOT NULL,            -- queued | stored | failed
    stored_at TEXT
);
CREATE INDEX IF NOT EXISTS pages_by_state ON pages (state, seq);
CREATE INDEX IF NOT EXISTS pages_by_file ON pages (file_id);
CREATE INDEX IF NOT EXISTS pages_by_packet ON pages (packet_id);
-- The server's description of documents this desk may scan (see desk_documents.rs).
-- `listed`: in the server's latest list; others are kept a while to name
-- the packets already scanned for them.
CREATE TABLE IF NOT EXISTS desk_documents (
    cover_code TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    listed INTEGER NOT NULL DEFAULT 1,
    fetched_at TEXT NOT NULL
);
";

/// Adds columns to a queue made by an older agent: `ddl` runs when `table`
/// lacks `column` (the first column it adds).
fn add_columns(conn: &Connection, table: &str, column: &str, ddl: &str) -> rusqlite::Result<()> {
    let present: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        [table, column],
        |r| r.get(0),
    )?;
    if present {
        return Ok(());
    }
    // In one transaction, so that another process opening the queue at the
    // same moment sees all of the columns or none.
    match conn.execute_batch(&format!("BEGIN IMMEDIATE; {ddl} COMMIT;")) {
        Err(e) if e.to_string().contains("duplicate column name") => {
            let _ = conn.execute_batch("ROLLBACK;");
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK;");
            Err(e)
        }
        Ok(()) => Ok(()),
    }
}

/// How long opening the queue keeps trying while another process creates it.
const OPEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Queues made before pages could fail, or covers declared a count, get
/// the columns saying why, when and how many.
fn add_failure_columns(conn: &Connection) -> rusqlite::Result<()> {
    add_columns(
        conn,
        "pages",
        "failure",
        "ALTER TABLE pages ADD COLUMN failure TEXT; ALTER TABLE pages ADD COLUMN failed_at TEXT;",
    )?;
    add_columns(
        conn,
        "packets",
        "seal_failure",
        "ALTER TABLE packets ADD COLUMN seal_failure TEXT;",
    )?;
    add_columns(
        conn,
        "packets",
        "declared",
        "ALTER TABLE packets ADD COLUMN declared INTEGER; ALTER TABLE packets ADD COLUMN count_note TEXT;",
    )?;
    add_columns(
        conn,
        "packets",
        "cover_problem",
        "ALTER TABLE packets ADD COLUMN cover_problem TEXT;",
    )?;
    // What the server said the packet became, for the desk's console.
    add_columns(
        conn,
        "packets",
        "fate",
        "ALTER TABLE packets ADD COLUMN fate TEXT; ALTER TABLE packets ADD COLUMN doc_no TEXT; \
         ALTER TABLE packets ADD COLUMN document_id INTEGER; ALTER TABLE packets ADD COLUMN fate_at TEXT;",
    )?;
    // A cover-less packet the clerk chose on the console as a document's rescan.
    add_columns(
        conn,
        "packets",
        "rescan_of",
        "ALTER TABLE packets ADD COLUMN rescan_of INTEGER; ALTER TABLE packets ADD COLUMN rescan_doc_no TEXT;",
    )?;
    add_columns(
        conn,
        "packets",
        "warnings",
        "ALTER TABLE packets ADD COLUMN warnings TEXT;",
    )
}

/// Queues made before packets had a sequence: existing packets numbered in
/// the order they were inserted (rowid), the counter set past them.
fn add_packet_sequence(conn: &Connection) -> rusqlite::Result<()> {
    add_columns(
        conn,
        "packets",
        "seq",
        "ALTER TABLE packets ADD COLUMN seq INTEGER;",
    )?;
    conn.execute_batch(&format!(
        "UPDATE packets SET seq = rowid WHERE seq IS NULL; \
         INSERT INTO meta (key, value) SELECT '{PACKET_SEQ_KEY}', COALESCE(MAX(seq), 0) FROM packets WHERE true \
         ON CONFLICT (key) DO NOTHING;"
    ))?;
    Ok(())
}

/// Meta key of the last packet sequence number handed out.
const PACKET_SEQ_KEY: &str = "packet_seq";

/// SQL on a packet `k`: a cover and no page after it but blank backs (a
/// duplex scan of the cover has one). Pages stay in the table once stored.
const EMPTY: &str = "(k.cover_code IS NOT NULL AND NOT EXISTS \
    (SELECT 1 FROM pages e WHERE e.packet_id = k.id AND e.page_index > 0 AND e.blank = 0))";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn uuid(text: &str) -> QueueResult<Uuid> {
    Uuid::parse_str(text).map_err(|e| QueueError::Corrupt(format!("id {text:?}: {e}")))
}

/// A UUID stored as text, read inside a row mapping (which can only fail with
/// a rusqlite error).
fn uuid_column(r: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Uuid> {
    let text: String = r.get(column)?;
    Uuid::parse_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("id {text:?}: {e}").into(),
        )
    })
}

impl Queue {
    pub fn open(data_dir: &Path) -> QueueResult<Queue> {
        let path = data_dir.join("queue.sqlite3");
        let open_err = |source| QueueError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir.join("spool"))
            .map_err(|e| open_err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        // Two processes making a new queue at once (`status` run while the
        // agent starts) can meet in the switch to WAL, where SQLite answers
        // "busy" without waiting, to avoid a deadlock: try again a while.
        let started = std::time::Instant::now();
        let mut conn = loop {
            match Self::connect(&path) {
                Err(e) if is_busy(&e) && started.elapsed() < OPEN_PATIENCE => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other.map_err(open_err)?,
            }
        };
        let (changes, _) = tokio::sync::watch::channel(0u64);
        let hook = changes.clone();
        conn.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, _: &str, _: i64| {
                hook.send_modify(|n| *n = n.wrapping_add(1));
            },
        ))
        .map_err(open_err)?;
        Ok(Queue {
            conn: Mutex::new(conn),
            spool_dir: data_dir.join("spool"),
            changes,
        })
    }

    fn connect(path: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        // First, so that every statement below (even the journal-mode pragma)
        // waits for a running agent's write instead of failing `status`.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed page survives power loss, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        add_failure_columns(&conn)?;
        add_packet_sequence(&conn)?;
        Ok(conn)
    }

    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    /// Ticks whenever a row changes (seen once the change's lock is released).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> QueueResult<T>) -> QueueResult<T> {
        let mut conn = self.conn.lock().map_err(|_| QueueError::Poisoned)?;
        f(&mut conn)
    }

    fn tx<T>(&self, f: impl FnOnce(&Transaction<'_>) -> QueueResult<T>) -> QueueResult<T> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
    }

    pub fn meta(&self, key: &str) -> QueueResult<Option<String>> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> QueueResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![key, value],
            )?;
            Ok(())
        })
    }

    pub fn delete_meta(&self, key: &str) -> QueueResult<()> {
        self.with(|c| {
            c.execute("DELETE FROM meta WHERE key = ?1", [key])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(cover: Option<&str>) -> NewPage {
        NewPage {
            capture_id: Uuid::new_v4(),
            spool_path: PathBuf::from("/spool/x"),
            sha256: "0".repeat(64),
            size: 10,
            content_type: "image/png".into(),
            source_name: "x.png".into(),
            cover_code: cover.map(str::to_owned),
            declared: None,
            count_note: None,
            cover_problem: None,
            barcodes_json: "[]".into(),
            blank: false,
        }
    }

    fn key(name: &str) -> FileKey {
        FileKey {
            path: PathBuf::from(name),
            size: 10,
            mtime_ns: 1,
        }
    }

    #[test]
    fn covers_split_packets_in_scan_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let inbox = Path::new("/inbox");
        // A stray page, then cover A with two pages, then cover B with one.
        let pages = [
            page(None),
            page(Some("A")),
            page(None),
            page(None),
            page(Some("B")),
            page(None),
        ];
        for (i, p) in pages.iter().enumerate() {
            assert!(
                q.enqueue(inbox, &key(&format!("{i}")), "h", std::slice::from_ref(p))
                    .unwrap()
            );
        }
        assert!(
            !q.enqueue(inbox, &key("0"), "h", &[page(None)]).unwrap(),
            "same file twice"
        );
        assert!(q.seal_open_packet(inbox).unwrap(), "B is still open");
        assert!(!q.seal_open_packet(inbox).unwrap(), "nothing else is");

        let mut seen = Vec::new();
        while let Some(p) = q.next_page().unwrap() {
            seen.push((p.cover_code.clone(), p.page_index));
            q.mark_stored(p.capture_id).unwrap();
        }
        let expected = vec![
            (None, 0),
            (Some("A".to_owned()), 0),
            (Some("A".to_owned()), 1),
            (Some("A".to_owned()), 2),
            (Some("B".to_owned()), 0),
            (Some("B".to_owned()), 1),
        ];
        assert_eq!(seen, expected);
        let mut seals = Vec::new();
        while let Some(s) = q.next_seal().unwrap() {
            seals.push((s.cover_code.clone(), s.page_count));
            q.mark_seal_acked(s.packet_id).unwrap();
        }
        assert_eq!(
            seals,
            vec![(None, 1), (Some("A".into()), 3), (Some("B".into()), 2)]
        );
        assert_eq!(q.stats().unwrap().pages, 0);
    }

    #[test]
    fn two_processes_making_a_new_queue_at_once_both_open_it() {
        // `imc-agent status` run while the agent starts on a new desk.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|scope| {
                let opens: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            Queue::open(dir.path()).map(|_| ())
                        })
                    })
                    .collect();
                for open in opens {
                    open.join().unwrap().unwrap();
                }
            });
        }
    }

    #[test]
    fn a_refused_cover_closes_the_packet_before_it_and_starts_one_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let inbox = Path::new("/inbox");
        let forged = NewPage {
            cover_problem: Some("cover_signature_invalid: altered".into()),
            ..page(None)
        };
        let pages = [page(Some("A")), page(None), forged, page(None), page(None)];
        for (i, p) in pages.iter().enumerate() {
            q.enqueue(inbox, &key(&format!("{i}")), "h", std::slice::from_ref(p))
                .unwrap();
        }
        assert!(q.seal_open_packet(inbox).unwrap());
        while let Some(p) = q.next_page().unwrap() {
            q.mark_stored(p.capture_id).unwrap();
        }
        let mut seals = Vec::new();
        while let Some(s) = q.next_seal().unwrap() {
            seals.push((s.cover_code.clone(), s.page_count, s.cover_problem.clone()));
            q.mark_seal_acked(s.packet_id).unwrap();
        }
        assert_eq!(
            seals,
            vec![
                (Some("A".into()), 2, None),
                (None, 3, Some("cover_signature_invalid: altered".into())),
            ],
            "the pages after the refused cover never join A"
        );
    }

    #[test]
    fn pages_are_read_ahead_in_scan_order_a_window_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let inbox = Path::new("/inbox");
        for name in ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"] {
            q.enqueue(inbox, &key(name), "h", &[page(None)]).unwrap();
        }
        assert_eq!(q.waiting_pages().unwrap(), 5);
        let first_two = q.next_pages_after(0, 2).unwrap();
        assert_eq!(first_two.len(), 2);
        assert!(first_two[0].seq < first_two[1].seq);
        q.mark_failed(first_two[1].capture_id, "refused").unwrap();
        let rest = q.next_pages_after(first_two[1].seq, 10).unwrap();
        assert_eq!(rest.len(), 3, "what is left after the second, no more");
        assert!(rest.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(
            q.next_pages_after(0, 10).unwrap().len(),
            4,
            "the failed page is skipped"
        );
        assert_eq!(q.waiting_pages().unwrap(), 4);
        assert_eq!(q.waiting_pages().unwrap(), q.stats().unwrap().pages);
    }

    #[test]
    fn a_file_is_delivered_when_all_its_pages_are() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let pages = [page(Some("A")), page(None)];
        q.enqueue(Path::new("/inbox"), &key("multi.tif"), "h", &pages)
            .unwrap();
        assert!(q.knows(&key("multi.tif"), "h").unwrap());
        assert!(
            !q.knows(&key("multi.tif"), "other").unwrap(),
            "same name, size and time, other bytes: a new scan"
        );
        let first = q.next_page().unwrap().unwrap();
        assert!(q.mark_stored(first.capture_id).unwrap().is_empty());
        let second = q.next_page().unwrap().unwrap();
        let done = q.mark_stored(second.capture_id).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].path, PathBuf::from("multi.tif"));
    }

    #[test]
    fn a_failed_page_is_set_aside_and_holds_its_packet_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let inbox = Path::new("/inbox");
        q.enqueue(inbox, &key("a.tif"), "h", &[page(Some("A")), page(None)])
            .unwrap();
        q.enqueue(inbox, &key("b.jpg"), "h", &[page(None)]).unwrap();
        q.seal_open_packet(inbox).unwrap();
        let first = q.next_page().unwrap().unwrap();
        q.mark_failed(first.capture_id, "page too large (bad_offer)")
            .unwrap();
        let second = q.next_page().unwrap().unwrap();
        assert_ne!(second.capture_id, first.capture_id, "not offered again");
        let third = q.next_page_after(second.seq).unwrap().unwrap();
        let delivered = q
            .mark_stored_many(&[second.capture_id, third.capture_id])
            .unwrap();
        let names: Vec<_> = delivered.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            names,
            vec![PathBuf::from("b.jpg")],
            "a.tif keeps a failed page, so it stays in the inbox"
        );
        assert!(q.next_page().unwrap().is_none());
        assert!(
            q.next_seal().unwrap().is_none(),
            "the packet cannot complete"
        );
        let stats = q.stats().unwrap();
        assert_eq!((stats.pages, stats.failed), (0, 1));
        let failed = q.failed_pages(10).unwrap();
        assert_eq!(failed[0].reason, "page too large (bad_offer)");
        assert!(
            q.is_spooled_page_pending(&first.capture_id.to_string())
                .unwrap(),
            "its spool copy is kept"
        );
        let packets = q.recent_packets(10).unwrap();
        assert_eq!(packets[0].pages_failed, 1);
    }
}
