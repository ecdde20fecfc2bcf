//! Reports: what `imc-agent status` and the server's desk view are told.

use super::*;

impl Queue {
    pub fn failed_pages(&self, limit: u32) -> QueueResult<Vec<FailedPage>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT capture_id, source_name, spool_path, COALESCE(failure, ''), COALESCE(failed_at, '') \
                 FROM pages WHERE state = 'failed' ORDER BY seq DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(FailedPage {
                    capture_id: r.get(0)?,
                    source_name: r.get(1)?,
                    spool_path: r.get(2)?,
                    reason: r.get(3)?,
                    at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// How many pages wait to be delivered: answered from the index alone,
    /// cheap enough to ask while a long backlog drains.
    pub fn waiting_pages(&self) -> QueueResult<u64> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT COUNT(*) FROM pages WHERE state = 'queued'")?
                    .query_row([], |r| r.get(0))?,
            )
        })
    }

    pub fn stats(&self) -> QueueResult<QueueStats> {
        self.with(|c| {
            let (pages, bytes): (u64, u64) = c
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM pages WHERE state = 'queued'",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let quarantined: u64 = c
                .prepare_cached("SELECT COUNT(*) FROM files WHERE state = 'quarantined'")?
                .query_row([], |r| r.get(0))?;
            let (failed, failed_bytes): (u64, u64) = c
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM pages WHERE state = 'failed'",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let failed_packets: u64 = c
                .prepare_cached("SELECT COUNT(*) FROM packets WHERE seal_failure IS NOT NULL")?
                .query_row([], |r| r.get(0))?;
            Ok(QueueStats {
                pages,
                bytes,
                quarantined,
                failed,
                failed_bytes,
                failed_packets,
            })
        })
    }

    pub fn recent_packets(&self, limit: u32) -> QueueResult<Vec<PacketSummary>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT k.id, k.cover_code, \
                 (SELECT COUNT(*) FROM pages p WHERE p.packet_id = k.id), \
                 (SELECT COUNT(*) FROM pages p WHERE p.packet_id = k.id AND p.state = 'stored'), \
                 (SELECT COUNT(*) FROM pages p WHERE p.packet_id = k.id AND p.state = 'failed'), \
                 k.sealed, k.outcome, k.matched, k.created_at, k.sealed = 1 AND {EMPTY}, k.seal_failure, \
                 k.declared, k.count_note, \
                 (SELECT COUNT(*) FROM pages p WHERE p.packet_id = k.id AND p.blank = 0 \
                  AND (k.cover_code IS NULL OR p.page_index > 0)), \
                 k.cover_problem, k.fate, k.doc_no, k.document_id, \
                 (SELECT COUNT(*) FROM pages p WHERE p.packet_id = k.id AND p.blank = 1), k.rescan_doc_no, k.warnings \
                 FROM packets k ORDER BY k.seq DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], |r| {
                Ok(PacketSummary {
                    id: r.get(0)?,
                    cover_code: r.get(1)?,
                    pages: r.get(2)?,
                    pages_stored: r.get(3)?,
                    pages_failed: r.get(4)?,
                    sealed: r.get(5)?,
                    outcome: r.get(6)?,
                    matched: r.get(7)?,
                    created_at: r.get(8)?,
                    empty: r.get(9)?,
                    seal_failure: r.get(10)?,
                    declared: r.get(11)?,
                    count_note: r.get(12)?,
                    scanned: r.get(13)?,
                    cover_problem: r.get(14)?,
                    fate: r.get(15)?,
                    doc_no: r.get(16)?,
                    document_id: r.get(17)?,
                    blanks: r.get(18)?,
                    rescan_doc_no: r.get(19)?,
                    warnings: r.get(20)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    pub fn quarantined(&self, limit: u32) -> QueueResult<Vec<Quarantined>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, COALESCE(moved_to, path), COALESCE(reason, ''), created_at FROM files \
                 WHERE state = 'quarantined' ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(Quarantined {
                    id: r.get(0)?,
                    path: r.get(1)?,
                    reason: r.get(2)?,
                    at: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// When a file last arrived in each watched folder (taken, queued or quarantined).
    pub fn last_arrivals(&self) -> QueueResult<Vec<(String, String)>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT watch_dir, MAX(created_at) FROM files GROUP BY watch_dir",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Takes a quarantined file back (a clerk fixed it): `put_back(kept,
    /// inbox_path)` moves it into its inbox while its record is deleted in
    /// the same transaction, so the watcher takes it as new, and a failed
    /// move leaves it quarantined. Returns where it went, or None when no
    /// file is quarantined under `id`.
    pub fn retry_quarantined(
        &self,
        id: i64,
        put_back: impl FnOnce(&Path, &Path) -> std::io::Result<PathBuf>,
    ) -> QueueResult<Option<PathBuf>> {
        self.tx(|tx| {
            let found: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT path, moved_to FROM files WHERE id = ?1 AND state = 'quarantined'",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((path, moved_to)) = found else {
                return Ok(None);
            };
            tx.execute("DELETE FROM files WHERE id = ?1", [id])?;
            let kept = PathBuf::from(moved_to.unwrap_or_else(|| path.clone()));
            let inbox_path = PathBuf::from(path);
            if kept == inbox_path {
                return Ok(Some(inbox_path));
            }
            let back = put_back(&kept, &inbox_path).map_err(|e| {
                QueueError::File(format!(
                    "moving {} back to {}: {e}",
                    kept.display(),
                    inbox_path.display()
                ))
            })?;
            Ok(Some(back))
        })
    }
}
