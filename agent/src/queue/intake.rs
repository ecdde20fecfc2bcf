//! Intake: what the watcher and ingest commit to the queue (pages, the
//! packets they open and seal, quarantined files).

use super::*;

impl Queue {
    /// True when this exact file version, its content included, was already
    /// taken (queued, delivered or quarantined). Size and mtime alone are not
    /// enough: a file rewritten within one timestamp tick keeps both.
    pub fn knows(&self, key: &FileKey, sha256: &str) -> QueueResult<bool> {
        self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM files WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND sha256 = ?4)",
            )?
            .query_row(
                params![key.path.to_string_lossy(), key.size, key.mtime_ns, sha256],
                |r| r.get(0),
            )?)
        })
    }

    /// Commits a file and its pages (already in the spool) in scan order,
    /// assigning each page to a packet: a cover starts a new one.
    pub fn enqueue(
        &self,
        watch_dir: &Path,
        key: &FileKey,
        sha256: &str,
        pages: &[NewPage],
    ) -> QueueResult<bool> {
        let watch = watch_dir.to_string_lossy().into_owned();
        self.tx(|tx| {
            let inserted = tx.execute(
                "INSERT INTO files (path, watch_dir, size, mtime_ns, sha256, state, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6) ON CONFLICT DO NOTHING",
                params![key.path.to_string_lossy(), watch, key.size, key.mtime_ns, sha256, now()],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            let file_id = tx.last_insert_rowid();
            for page in pages {
                let packet_id = match &page.cover_code {
                    Some(code) => {
                        seal_open(tx, &watch)?;
                        let id = new_packet(tx, &watch, Some(code))?;
                        tx.execute(
                            "UPDATE packets SET declared = ?2, count_note = ?3 WHERE id = ?1",
                            params![id, page.declared, page.count_note],
                        )?;
                        id
                    }
                    // A refused cover still ends the packet before it: its
                    // pages belong to no earlier document.
                    None if page.cover_problem.is_some() => {
                        seal_open(tx, &watch)?;
                        let id = new_packet(tx, &watch, None)?;
                        tx.execute(
                            "UPDATE packets SET cover_problem = ?2 WHERE id = ?1",
                            params![id, page.cover_problem],
                        )?;
                        id
                    }
                    None => match open_packet(tx, &watch)? {
                        Some(id) => id,
                        None => {
                            let id = new_packet(tx, &watch, None)?;
                            bind_rescan(tx, &id)?;
                            id
                        }
                    },
                };
                let page_index: u32 = tx.query_row(
                    "SELECT COUNT(*) FROM pages WHERE packet_id = ?1",
                    [&packet_id],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO pages (capture_id, packet_id, page_index, file_id, spool_path, sha256, size, \
                     content_type, source_name, barcodes, blank, state) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'queued')",
                    params![
                        page.capture_id.to_string(),
                        packet_id,
                        page_index,
                        file_id,
                        page.spool_path.to_string_lossy(),
                        page.sha256,
                        page.size,
                        page.content_type,
                        page.source_name,
                        page.barcodes_json,
                        page.blank
                    ],
                )?;
            }
            if pages.is_empty() {
                tx.execute("UPDATE files SET state = 'done' WHERE id = ?1", [file_id])?;
            }
            Ok(true)
        })
    }

    /// Records an unreadable file so it is reported, and never taken again.
    pub fn quarantine(
        &self,
        watch_dir: &Path,
        key: &FileKey,
        reason: &str,
        moved_to: Option<&Path>,
    ) -> QueueResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO files (path, watch_dir, size, mtime_ns, sha256, state, reason, moved_to, created_at) \
                 VALUES (?1, ?2, ?3, ?4, '', 'quarantined', ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![
                    key.path.to_string_lossy(),
                    watch_dir.to_string_lossy(),
                    key.size,
                    key.mtime_ns,
                    reason,
                    moved_to.map(|p| p.to_string_lossy().into_owned()),
                    now()
                ],
            )?;
            Ok(())
        })
    }

    /// The inbox's open packet, with its declared count and the non-blank
    /// pages after its cover so far.
    pub fn open_packet(&self, watch_dir: &Path) -> QueueResult<Option<OpenPacket>> {
        self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT k.cover_code, k.declared, \
                 (SELECT COUNT(*) FROM pages p WHERE p.packet_id = k.id AND p.blank = 0 \
                  AND (k.cover_code IS NULL OR p.page_index > 0)), \
                 COALESCE((SELECT p.blank FROM pages p WHERE p.packet_id = k.id AND p.page_index > 0 \
                  ORDER BY p.page_index DESC LIMIT 1), 0) \
                 FROM packets k WHERE k.watch_dir = ?1 AND k.sealed = 0 ORDER BY k.seq DESC LIMIT 1",
            )?
            .query_row([watch_dir.to_string_lossy()], |r| {
                Ok(OpenPacket {
                    cover_code: r.get(0)?,
                    declared: r.get(1)?,
                    scanned: r.get(2)?,
                    ends_blank: r.get(3)?,
                })
            })
            .optional()?)
        })
    }

    /// Closes the open packet of one inbox (its quiet ran out); true when
    /// there was one.
    pub fn seal_open_packet(&self, watch_dir: &Path) -> QueueResult<bool> {
        let watch = watch_dir.to_string_lossy().into_owned();
        self.tx(|tx| {
            let open = open_packet(tx, &watch)?;
            if let Some(id) = &open {
                seal(tx, id)?;
            }
            Ok(open.is_some())
        })
    }
}

fn open_packet(tx: &Transaction<'_>, watch: &str) -> QueueResult<Option<String>> {
    Ok(tx
        .query_row(
            "SELECT id FROM packets WHERE watch_dir = ?1 AND sealed = 0 ORDER BY seq DESC LIMIT 1",
            [watch],
            |r| r.get(0),
        )
        .optional()?)
}

fn new_packet(tx: &Transaction<'_>, watch: &str, cover_code: Option<&str>) -> QueueResult<String> {
    let id = Uuid::now_v7().to_string();
    let seq: i64 = tx.query_row(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?1 RETURNING CAST(value AS INTEGER)",
        [PACKET_SEQ_KEY],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO packets (id, watch_dir, cover_code, last_page_at_ms, created_at, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, watch, cover_code, now_ms(), now(), seq],
    )?;
    Ok(id)
}

/// Meta key: the rejected document (`{"id", "doc_no"}`) the clerk chose on
/// the console for the next packet without a cover.
pub const RESCAN_NEXT_KEY: &str = "rescan_next";

/// Gives a new cover-less packet the rescan the clerk asked for, once.
fn bind_rescan(tx: &Transaction<'_>, packet_id: &str) -> QueueResult<()> {
    let chosen: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [RESCAN_NEXT_KEY],
            |r| r.get(0),
        )
        .optional()?;
    let Some(chosen) = chosen else {
        return Ok(());
    };
    tx.execute("DELETE FROM meta WHERE key = ?1", [RESCAN_NEXT_KEY])?;
    let chosen: serde_json::Value = serde_json::from_str(&chosen)
        .map_err(|e| QueueError::Corrupt(format!("the chosen rescan: {e}")))?;
    tx.execute(
        "UPDATE packets SET rescan_of = ?2, rescan_doc_no = ?3 WHERE id = ?1",
        params![packet_id, chosen["id"].as_i64(), chosen["doc_no"].as_str()],
    )?;
    Ok(())
}

impl Queue {
    /// Binds the next packet without a cover to a rejected document (the
    /// clerk's choice on the console): the open packets close first, so the
    /// next page starts it.
    pub fn choose_rescan(
        &self,
        watch_dirs: &[PathBuf],
        document_id: i64,
        doc_no: &str,
    ) -> QueueResult<()> {
        let chosen = serde_json::json!({ "id": document_id, "doc_no": doc_no }).to_string();
        self.tx(|tx| {
            for dir in watch_dirs {
                seal_open(tx, &dir.to_string_lossy())?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![RESCAN_NEXT_KEY, chosen],
            )?;
            Ok(())
        })
    }

    /// The rescan chosen for the next packet, if any: `(document id, doc_no)`.
    pub fn chosen_rescan(&self) -> QueueResult<Option<(i64, String)>> {
        let Some(json) = self.meta(RESCAN_NEXT_KEY)? else {
            return Ok(None);
        };
        let chosen: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| QueueError::Corrupt(format!("the chosen rescan: {e}")))?;
        Ok(chosen["id"]
            .as_i64()
            .map(|id| (id, chosen["doc_no"].as_str().unwrap_or_default().to_owned())))
    }
}

fn seal_open(tx: &Transaction<'_>, watch: &str) -> QueueResult<()> {
    if let Some(id) = open_packet(tx, watch)? {
        seal(tx, &id)?;
    }
    Ok(())
}

fn seal(tx: &Transaction<'_>, packet_id: &str) -> QueueResult<()> {
    tx.execute(
        "UPDATE packets SET sealed = 1, page_count = (SELECT COUNT(*) FROM pages WHERE packet_id = ?1) WHERE id = ?1",
        [packet_id],
    )?;
    Ok(())
}
