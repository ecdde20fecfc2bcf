//! Delivery: what the uplink takes from the queue in scan order and what it
//! records when the server answers.

use super::*;

impl Queue {
    /// The first page waiting to be delivered, in scan order.
    pub fn next_page(&self) -> QueueResult<Option<QueuedPage>> {
        self.next_page_after(0)
    }

    /// The first page waiting to be delivered that comes after `seq` in scan order.
    pub fn next_page_after(&self, seq: i64) -> QueueResult<Option<QueuedPage>> {
        Ok(self.next_pages_after(seq, 1)?.pop())
    }

    /// Up to `limit` pages waiting to be delivered that come after `seq`, in
    /// scan order: the uplink fills its window with one query, not one a page.
    pub fn next_pages_after(&self, seq: i64, limit: usize) -> QueueResult<Vec<QueuedPage>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT p.capture_id, p.packet_id, p.page_index, k.cover_code, p.spool_path, p.sha256, p.size, \
                 p.content_type, p.source_name, p.barcodes, p.blank, p.seq, k.seq \
                 FROM pages p JOIN packets k ON k.id = p.packet_id \
                 WHERE p.state = 'queued' AND p.seq > ?1 ORDER BY p.seq LIMIT ?2",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![seq, limit], |r| {
                Ok(QueuedPage {
                    seq: r.get(11)?,
                    packet_seq: r.get(12)?,
                    capture_id: uuid_column(r, 0)?,
                    packet_id: uuid_column(r, 1)?,
                    page_index: r.get(2)?,
                    cover_code: r.get(3)?,
                    spool_path: PathBuf::from(r.get::<_, String>(4)?),
                    sha256: r.get(5)?,
                    size: r.get(6)?,
                    content_type: r.get(7)?,
                    source_name: r.get(8)?,
                    barcodes_json: r.get(9)?,
                    blank: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A sealed packet whose pages are all stored and whose seal the server
    /// has not confirmed. A packet with a failed page is held back: the
    /// server could never complete it.
    pub fn next_seal(&self) -> QueueResult<Option<SealWork>> {
        let sql = format!(
            "SELECT k.id, k.cover_code, k.page_count, {EMPTY}, k.seq, k.cover_problem, k.rescan_of FROM packets k \
             WHERE k.sealed = 1 AND k.seal_acked = 0 AND k.seal_failure IS NULL \
             AND NOT EXISTS (SELECT 1 FROM pages p WHERE p.packet_id = k.id AND p.state IN ('queued', 'failed')) \
             ORDER BY k.seq LIMIT 1"
        );
        self.with(|c| {
            let row = c
                .prepare_cached(&sql)?
                .query_row([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, u64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                    ))
                })
                .optional()?;
            row.map(
                |(id, cover_code, page_count, empty, packet_seq, cover_problem, rescan_of)| {
                    Ok(SealWork {
                        packet_id: uuid(&id)?,
                        packet_seq,
                        cover_code,
                        page_count,
                        empty,
                        cover_problem,
                        rescan_of,
                    })
                },
            )
            .transpose()
        })
    }

    /// Marks a page delivered; returns the source files now wholly delivered.
    pub fn mark_stored(&self, capture_id: Uuid) -> QueueResult<Vec<DeliveredFile>> {
        self.mark_stored_many(&[capture_id])
    }

    /// Marks pages delivered in one transaction (one sync for a batch of
    /// acknowledgements); returns the source files now wholly delivered.
    pub fn mark_stored_many(&self, capture_ids: &[Uuid]) -> QueueResult<Vec<DeliveredFile>> {
        self.tx(|tx| {
            let mut files = Vec::new();
            let at = now();
            for capture_id in capture_ids {
                tx.prepare_cached(
                    "UPDATE pages SET state = 'stored', stored_at = ?2 WHERE capture_id = ?1 AND state = 'queued'",
                )?
                .execute(params![capture_id.to_string(), at])?;
                let mut stmt = tx.prepare_cached(
                    "SELECT f.id, f.path, f.watch_dir, f.size, f.mtime_ns FROM files f JOIN pages p ON p.file_id = f.id \
                     WHERE p.capture_id = ?1 AND f.state = 'queued' \
                     AND NOT EXISTS (SELECT 1 FROM pages q WHERE q.file_id = f.id AND q.state IN ('queued', 'failed'))",
                )?;
                for file in stmt.query_map([capture_id.to_string()], delivered_file)? {
                    let file = file?;
                    if !files.iter().any(|f: &DeliveredFile| f.id == file.id) {
                        files.push(file);
                    }
                }
            }
            Ok(files)
        })
    }

    /// Sets a page aside that the server refused for good: it is not offered
    /// again, its spool copy stays, its packet is not sealed and its source
    /// file stays in the inbox.
    pub fn mark_failed(&self, capture_id: Uuid, reason: &str) -> QueueResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pages SET state = 'failed', failure = ?2, failed_at = ?3 WHERE capture_id = ?1 AND state = 'queued'",
                params![capture_id.to_string(), reason, now()],
            )?;
            Ok(())
        })
    }

    /// Files delivered whose move to `done` has not happened yet (e.g. after a crash).
    pub fn delivered_unmoved(&self) -> QueueResult<Vec<DeliveredFile>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT f.id, f.path, f.watch_dir, f.size, f.mtime_ns FROM files f WHERE f.state = 'queued' \
                 AND NOT EXISTS (SELECT 1 FROM pages q WHERE q.file_id = f.id AND q.state IN ('queued', 'failed'))",
            )?;
            let files = stmt.query_map([], delivered_file)?;
            Ok(files.collect::<Result<_, _>>()?)
        })
    }

    pub fn mark_file_done(&self, file_id: i64, moved_to: Option<&Path>) -> QueueResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE files SET state = 'done', moved_to = ?2 WHERE id = ?1",
                params![file_id, moved_to.map(|p| p.to_string_lossy().into_owned())],
            )?;
            Ok(())
        })
    }

    pub fn mark_seal_acked(&self, packet_id: Uuid) -> QueueResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE packets SET seal_acked = 1 WHERE id = ?1",
                [packet_id.to_string()],
            )?;
            Ok(())
        })
    }

    /// Sets a packet aside whose seal the server refused for good: it is not
    /// sealed again, and `status` shows why.
    pub fn mark_seal_failed(&self, packet_id: Uuid, reason: &str) -> QueueResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE packets SET seal_failure = ?2 WHERE id = ?1 AND seal_acked = 0",
                params![packet_id.to_string(), reason],
            )?;
            Ok(())
        })
    }

    pub fn record_outcome(&self, packet_id: Uuid, fate: &PacketFate<'_>) -> QueueResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE packets SET outcome = ?2, matched = ?3, fate = ?4, \
                 doc_no = COALESCE(?5, doc_no), document_id = COALESCE(?6, document_id), fate_at = ?7, \
                 warnings = ?8 WHERE id = ?1",
                params![
                    packet_id.to_string(),
                    fate.message,
                    fate.kind == FateKind::Matched,
                    fate.kind.as_str(),
                    fate.doc_no,
                    fate.document_id,
                    now(),
                    (!fate.warnings.is_empty()).then(|| fate.warnings.join("\n"))
                ],
            )?;
            Ok(())
        })
    }

    /// Spool files with no queued page behind them: left by a crash between
    /// the spool write and the commit, or already delivered.
    pub fn is_spooled_page_pending(&self, capture_id: &str) -> QueueResult<bool> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM pages WHERE capture_id = ?1 AND state IN ('queued', 'failed'))",
                [capture_id],
                |r| r.get(0),
            )?)
        })
    }
}

/// Maps `id, path, watch_dir, size, mtime_ns` of a `files` row.
pub(super) fn delivered_file(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveredFile> {
    Ok(DeliveredFile {
        id: r.get(0)?,
        path: PathBuf::from(r.get::<_, String>(1)?),
        watch_dir: PathBuf::from(r.get::<_, String>(2)?),
        size: r.get(3)?,
        mtime_ns: r.get(4)?,
    })
}
