//! Packets from agents: recording pages and seals, and matching a complete
//! packet to the document its cover code names.

use super::documents::{apply_attach, next_page_no, require};
use super::now;
use crate::matching::{self, CoveredDocument, Settled, Unattached};
use crate::store::*;
use crate::workflow::{self, Attach, Via};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub fn page_stored(conn: &Connection, capture_id: Uuid) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM pages WHERE capture_id = ?1)")?
        .query_row([capture_id.to_string()], |r| r.get(0))?)
}

pub fn site_holds_blob(conn: &Connection, site: &str, sha256: &str) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM pages JOIN packets ON packets.id = pages.packet_id \
             WHERE pages.sha256 = ?1 AND packets.site = ?2)",
        )?
        .query_row(params![sha256, site], |r| r.get(0))?)
}

/// Whether a packet of `agent_id` holds a stored page.
pub fn packet_has_pages(conn: &Connection, packet_id: Uuid, agent_id: &str) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM pages JOIN packets ON packets.id = pages.packet_id \
             WHERE packets.id = ?1 AND packets.agent_id = ?2)",
        )?
        .query_row(params![packet_id.to_string(), agent_id], |r| r.get(0))?)
}

/// [`page_stored`], counting only a page in a packet of `agent_id`.
pub fn page_stored_by(conn: &Connection, capture_id: Uuid, agent_id: &str) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM pages JOIN packets ON packets.id = pages.packet_id \
             WHERE pages.capture_id = ?1 AND packets.agent_id = ?2)",
        )?
        .query_row(params![capture_id.to_string(), agent_id], |r| r.get(0))?)
}

fn ensure_packet(
    tx: &Transaction<'_>,
    agent: &Agent,
    packet_id: Uuid,
    cover_code: Option<&str>,
    packet_seq: Option<u64>,
) -> StoreResult<()> {
    let at = now();
    let desk_seq = desk_seq(packet_seq)?;
    tx.prepare_cached(
        "INSERT INTO packets (id, agent_id, site, cover_code, state, created_at, updated_at, desk_seq) \
         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?5, ?6) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        packet_id.to_string(),
        agent.id,
        agent.site,
        cover_code,
        at,
        desk_seq
    ])?;
    let (owner, stored_cover, stored_seq): (String, Option<String>, Option<i64>) = tx
        .prepare_cached("SELECT agent_id, cover_code, desk_seq FROM packets WHERE id = ?1")?
        .query_row([packet_id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if owner != agent.id {
        return Err(StoreError::Conflict(format!(
            "packet {packet_id} belongs to another agent"
        )));
    }
    if stored_cover.as_deref() != cover_code {
        return Err(StoreError::Conflict(format!(
            "packet {packet_id} has cover code {stored_cover:?}, not {cover_code:?}"
        )));
    }
    // The first sequence heard stays (the desk gives a packet one); a packet
    // begun before its agent was upgraded takes the one it now sends.
    if stored_seq.is_none() && desk_seq.is_some() {
        tx.prepare_cached("UPDATE packets SET desk_seq = ?2 WHERE id = ?1")?
            .execute(params![packet_id.to_string(), desk_seq])?;
    }
    Ok(())
}

pub fn record_page(
    tx: &Transaction<'_>,
    agent: &Agent,
    page: &StoredPage,
) -> StoreResult<PacketResolution> {
    // Ownership first, also for a replay: an agent hears only about its own packets.
    ensure_packet(
        tx,
        agent,
        page.packet_id,
        page.cover_code.as_deref(),
        page.packet_seq,
    )?;
    if page_stored(tx, page.capture_id)? {
        return resolve(tx, page.packet_id, &Actor(format!("agent:{}", agent.id)));
    }
    let barcodes = serde_json::to_string(&page.barcodes)
        .map_err(|e| StoreError::Corrupt(format!("page {} barcodes: {e}", page.capture_id)))?;
    let inserted = tx.prepare_cached(
        "INSERT INTO pages (capture_id, packet_id, page_index, sha256, size, content_type, source_name, \
         barcodes, blank, stored_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (packet_id, page_index) DO NOTHING",
    )?
    .execute(params![
        page.capture_id.to_string(),
        page.packet_id.to_string(),
        page.page_index,
        page.sha256,
        page.size,
        page.content_type,
        page.source_name,
        barcodes,
        page.blank,
        now()
    ])?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "packet {} already has a different page {}",
            page.packet_id, page.page_index
        )));
    }
    resolve(tx, page.packet_id, &Actor(format!("agent:{}", agent.id)))
}

/// Databases from before empty packets, desk sequences or signed covers get
/// the column.
pub fn migrate(conn: &Connection) -> StoreResult<()> {
    for (column, definition) in [
        ("empty", "INTEGER NOT NULL DEFAULT 0"),
        ("desk_seq", "INTEGER"),
        ("cover_problem", "TEXT"),
    ] {
        let present: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('packets') WHERE name = ?1)",
            [column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute(
                &format!("ALTER TABLE packets ADD COLUMN {column} {definition}"),
                [],
            )?;
        }
    }
    Ok(())
}

pub fn seal(
    tx: &Transaction<'_>,
    agent: &Agent,
    seal: &imc_shared::protocol::PacketSeal,
) -> StoreResult<PacketResolution> {
    let (packet_id, page_count, empty) = (seal.packet_id, seal.page_count, seal.empty);
    ensure_packet(
        tx,
        agent,
        packet_id,
        seal.cover_code.as_deref(),
        seal.packet_seq,
    )?;
    let sealed: Option<u32> = tx.query_row(
        "SELECT sealed_page_count FROM packets WHERE id = ?1",
        [packet_id.to_string()],
        |r| r.get(0),
    )?;
    match sealed {
        Some(count) if count != page_count => {
            return Err(StoreError::Conflict(format!(
                "packet {packet_id} was sealed with {count} pages, not {page_count}"
            )));
        }
        Some(_) => {}
        None => {
            tx.execute(
                "UPDATE packets SET sealed_page_count = ?2, empty = ?3, updated_at = ?4, cover_problem = ?5 WHERE id = ?1",
                params![packet_id.to_string(), page_count, empty || page_count == 0, now(), seal.cover_problem],
            )?;
        }
    }
    resolve(tx, packet_id, &Actor(format!("agent:{}", agent.id)))
}

/// Decides a complete packet's fate once; later calls report that fate.
fn resolve(tx: &Transaction<'_>, packet_id: Uuid, actor: &Actor) -> StoreResult<PacketResolution> {
    #[allow(clippy::type_complexity)]
    let (state, sealed, cover, document_id, reason, empty, cover_problem): (String, Option<u32>, Option<String>, Option<i64>, Option<String>, bool, Option<String>) =
        tx.prepare_cached(
            "SELECT state, sealed_page_count, cover_code, document_id, reason, empty, cover_problem FROM packets WHERE id = ?1",
        )?
        .query_row([packet_id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })?;
    match matching::settled(&state, document_id, reason.as_deref()) {
        Some(Settled::Matched { document_id }) => {
            let doc = require(tx, document_id)?;
            return Ok(PacketResolution::Matched {
                document_id,
                doc_no: doc.doc_no,
            });
        }
        Some(Settled::Unmatched { reason }) => return Ok(PacketResolution::Unmatched { reason }),
        None => {}
    }
    let Some(sealed) = sealed else {
        return Ok(PacketResolution::Open);
    };
    let stored: u64 = tx.query_row(
        "SELECT COUNT(*) FROM pages WHERE packet_id = ?1",
        [packet_id.to_string()],
        |r| r.get(0),
    )?;
    if !matching::complete(&packet_id.to_string(), sealed, stored).map_err(StoreError::Conflict)? {
        return Ok(PacketResolution::Open);
    }
    let verdict =
        match matching::cover_to_look_up(empty, cover.as_deref(), cover_problem.as_deref()) {
            Err(unattached) => Err(unattached),
            Ok(code) => match document_by_cover(tx, code)? {
                None => Err(matching::no_document(code)),
                Some(doc) => matching::attach_to(CoveredDocument {
                    doc_no: &doc.doc_no,
                    mode: doc.mode,
                    status: doc.status,
                })
                .map(|attach| (doc, attach)),
            },
        };
    match verdict {
        Ok((doc, attach)) => {
            attach_packet(tx, packet_id, &doc, attach, actor)?;
            let first_page_at: String = tx.query_row(
                "SELECT created_at FROM packets WHERE id = ?1",
                [packet_id.to_string()],
                |r| r.get(0),
            )?;
            crate::metrics::packet_matched(&first_page_at);
            Ok(PacketResolution::Matched {
                document_id: doc.id,
                doc_no: doc.doc_no,
            })
        }
        Err(Unattached { state, reason }) => {
            tx.execute(
                "UPDATE packets SET state = ?2, reason = ?3, updated_at = ?4 WHERE id = ?1",
                params![packet_id.to_string(), state, reason, now()],
            )?;
            Ok(PacketResolution::Unmatched { reason })
        }
    }
}

fn document_by_cover(conn: &Connection, cover_code: &str) -> StoreResult<Option<Document>> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT id FROM documents WHERE cover_code = ?1",
            [cover_code],
            |r| r.get(0),
        )
        .optional()?;
    id.map(|id| require(conn, id)).transpose()
}

/// Makes the packet's pages the document's images (after, or instead of, the
/// ones it has) and moves the document on.
fn attach_packet(
    tx: &Transaction<'_>,
    packet_id: Uuid,
    doc: &Document,
    attach: Attach,
    actor: &Actor,
) -> StoreResult<()> {
    let at = now();
    if let Attach::Replace(_) = attach {
        tx.execute(
            "UPDATE images SET replaced_at = ?2 WHERE document_id = ?1 AND replaced_at IS NULL",
            params![doc.id, at],
        )?;
    }
    let first = next_page_no(tx, doc.id)?;
    tx.execute(
        "INSERT INTO images (document_id, page_no, sha256, size, content_type, blank, barcodes, packet_id, \
         capture_id, created_at, purged_at, purge_reason) \
         SELECT ?1, ?2 + page_index, sha256, size, content_type, blank, barcodes, packet_id, capture_id, ?3, purged_at, purge_reason \
         FROM pages WHERE packet_id = ?4 ORDER BY page_index",
        params![doc.id, first, at, packet_id.to_string()],
    )?;
    tx.execute(
        "UPDATE packets SET state = 'matched', document_id = ?2, reason = NULL, updated_at = ?3 WHERE id = ?1",
        params![packet_id.to_string(), doc.id, at],
    )?;
    let action = match attach {
        Attach::Replace(_) => "packet.rescan",
        Attach::Append(_) if doc.status == DocStatus::AwaitingImages => "packet.match",
        Attach::Append(_) => "packet.supplement",
    };
    apply_attach(tx, doc, attach, actor, action, None, first)
}

/// Late binding: packets that waited for this cover code attach to the new document.
pub fn attach_waiting_packets(
    tx: &Transaction<'_>,
    document_id: i64,
    cover_code: &str,
) -> StoreResult<()> {
    let waiting: Vec<WaitingPacket> = {
        let mut stmt = tx.prepare(
            "SELECT id, agent_id, desk_seq FROM packets WHERE cover_code = ?1 AND state = 'unmatched' \
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([cover_code], |r| {
            Ok(WaitingPacket {
                id: r.get(0)?,
                agent_id: r.get(1)?,
                desk_seq: r.get(2)?,
            })
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for id in late_binding_order(waiting) {
        let packet_id = Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt(format!("packet id {id}: {e}")))?;
        let doc = require(tx, document_id)?;
        if let Some(attach) = workflow::on_images(doc.mode, doc.status, Via::Packet(None)) {
            attach_packet(
                tx,
                packet_id,
                &doc,
                attach,
                &Actor("system:late-binding".into()),
            )?;
        }
    }
    Ok(())
}

pub fn match_by_hand(
    tx: &Transaction<'_>,
    packet_id: Uuid,
    document_id: i64,
    mode: Option<AttachMode>,
    actor: &Actor,
) -> StoreResult<Document> {
    let state: Option<(String, Option<i64>)> = tx
        .query_row(
            "SELECT state, document_id FROM packets WHERE id = ?1",
            [packet_id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match state {
        None => return Err(StoreError::NotFound(format!("packet {packet_id}"))),
        Some((state, _)) if state == "open" => {
            return Err(StoreError::Conflict(format!(
                "packet {packet_id} is still arriving"
            )));
        }
        Some((_, Some(doc))) => {
            return Err(StoreError::Conflict(format!(
                "packet {packet_id} is already matched to document {doc}"
            )));
        }
        Some(_) => {}
    }
    let doc = require(tx, document_id)?;
    let Some(attach) = workflow::on_images(doc.mode, doc.status, Via::Packet(mode)) else {
        return Err(StoreError::InvalidTransition {
            id: doc.id,
            current: doc.status,
            action: if doc.mode == ImageMode::Match {
                "attaching a packet"
            } else {
                "attaching a packet (only match mode documents take scanned paper)"
            },
        });
    };
    attach_packet(tx, packet_id, &doc, attach, actor)?;
    require(tx, document_id)
}

pub fn list(conn: &Connection, state: Option<PacketState>, limit: u32) -> StoreResult<Vec<Packet>> {
    query(
        conn,
        "SELECT id, agent_id, site, cover_code, state, sealed_page_count, document_id, reason, created_at \
         FROM packets WHERE ?1 IS NULL OR state = ?1 ORDER BY created_at, id LIMIT ?2",
        params![state.map(|s| s.as_str()), limit],
    )
}

/// Packets in `state`, oldest first; with `site`, only that site's.
pub fn list_at(
    conn: &Connection,
    state: PacketState,
    site: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<Packet>> {
    query(
        conn,
        "SELECT id, agent_id, site, cover_code, state, sealed_page_count, document_id, reason, created_at \
         FROM packets WHERE state = ?1 AND (?2 IS NULL OR site = ?2) ORDER BY created_at, id LIMIT ?3",
        params![state.as_str(), site, limit],
    )
}

/// One packet with its pages, by id.
pub fn one(conn: &Connection, packet_id: Uuid) -> StoreResult<Option<Packet>> {
    Ok(query(
        conn,
        "SELECT id, agent_id, site, cover_code, state, sealed_page_count, document_id, reason, created_at \
         FROM packets WHERE id = ?1",
        params![packet_id.to_string()],
    )?
    .pop())
}

fn query(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> StoreResult<Vec<Packet>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(args, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Option<u32>>(5)?,
            r.get::<_, Option<i64>>(6)?,
            r.get::<_, Option<String>>(7)?,
            r.get::<_, String>(8)?,
        ))
    })?;
    let mut packets = Vec::new();
    for row in rows {
        let (
            id,
            agent_id,
            site,
            cover_code,
            state,
            sealed_page_count,
            document_id,
            reason,
            created_at,
        ) = row?;
        let packet_id = Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt(format!("packet id {id}: {e}")))?;
        let state = state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("packet {id} state: {e}")))?;
        packets.push(Packet {
            id: packet_id,
            agent_id,
            site,
            cover_code,
            state,
            sealed_page_count,
            document_id,
            reason,
            created_at,
            pages: pages(conn, &id)?,
        });
    }
    Ok(packets)
}

fn pages(conn: &Connection, packet_id: &str) -> StoreResult<Vec<PacketPage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT page_index, sha256, size, content_type, source_name, blank FROM pages \
         WHERE packet_id = ?1 ORDER BY page_index",
    )?;
    let pages = stmt.query_map([packet_id], |r| {
        Ok(PacketPage {
            page_index: r.get(0)?,
            sha256: r.get(1)?,
            size: r.get(2)?,
            content_type: r.get(3)?,
            source_name: r.get(4)?,
            blank: r.get(5)?,
        })
    })?;
    Ok(pages.collect::<Result<_, _>>()?)
}

pub fn page_blob(
    conn: &Connection,
    packet_id: Uuid,
    page_index: u32,
) -> StoreResult<Option<PageBlob>> {
    Ok(conn
        .query_row(
            "SELECT sha256, content_type, purged_at, purge_reason FROM pages \
             WHERE packet_id = ?1 AND page_index = ?2",
            params![packet_id.to_string(), page_index],
            |r| {
                Ok(PageBlob {
                    sha256: r.get(0)?,
                    content_type: r.get(1)?,
                    purged: crate::store::purged(r.get(2)?, r.get(3)?),
                })
            },
        )
        .optional()?)
}

pub fn of_document(conn: &Connection, document_id: i64) -> StoreResult<Vec<(Uuid, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, agent_id FROM packets WHERE document_id = ?1 AND state = 'matched' ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([document_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, agent) = row?;
        let id = Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt(format!("packet id {id}: {e}")))?;
        out.push((id, agent));
    }
    Ok(out)
}
