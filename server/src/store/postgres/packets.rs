//! Packets from agents: recording pages and seals, and matching a complete
//! packet to the document its cover code names (see `store/sqlite/packets.rs`).
//!
//! Concurrency, by the database: a packet's row is locked while a page or
//! seal is recorded, so exactly one transaction sees the packet complete and
//! resolves it; resolving and creating a document take the same advisory
//! lock on the cover code, so a packet resolving while its document is being
//! created on another replica is either matched or bound late, never lost.

use super::db;
use super::documents::{apply_attach, lock, next_page_no, require};
use crate::matching::{self, CoveredDocument, Settled, Unattached};
use crate::store::*;
use crate::workflow::{self, Attach, Via};
use deadpool_postgres::GenericClient;

pub async fn page_stored(c: &impl GenericClient, capture_id: Uuid) -> StoreResult<bool> {
    Ok(db::query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM pages WHERE capture_id = $1)",
        &[&capture_id.to_string()],
    )
    .await?
    .get(0))
}

/// Whether a packet of `agent_id` holds a stored page.
pub async fn packet_has_pages(
    c: &impl GenericClient,
    packet_id: Uuid,
    agent_id: &str,
) -> StoreResult<bool> {
    Ok(db::query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM pages JOIN packets ON packets.id = pages.packet_id \
         WHERE packets.id = $1 AND packets.agent_id = $2)",
        &[&packet_id.to_string(), &agent_id],
    )
    .await?
    .get(0))
}

pub async fn site_holds_blob(
    c: &impl GenericClient,
    site: &str,
    sha256: &str,
) -> StoreResult<bool> {
    Ok(db::query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM pages JOIN packets ON packets.id = pages.packet_id \
         WHERE pages.sha256 = $1 AND packets.site = $2)",
        &[&sha256, &site],
    )
    .await?
    .get(0))
}

/// [`page_stored`], counting only a page in a packet of `agent_id`.
pub async fn page_stored_by(
    c: &impl GenericClient,
    capture_id: Uuid,
    agent_id: &str,
) -> StoreResult<bool> {
    Ok(db::query_one(
        c,
        "SELECT EXISTS (SELECT 1 FROM pages JOIN packets ON packets.id = pages.packet_id \
         WHERE pages.capture_id = $1 AND packets.agent_id = $2)",
        &[&capture_id.to_string(), &agent_id],
    )
    .await?
    .get(0))
}

/// Creates the packet if new and locks its row until the transaction ends.
async fn ensure_packet(
    tx: &impl GenericClient,
    agent: &Agent,
    packet_id: Uuid,
    cover_code: Option<&str>,
    packet_seq: Option<u64>,
) -> StoreResult<()> {
    let at = now();
    let id = packet_id.to_string();
    let desk_seq = desk_seq(packet_seq)?;
    db::execute(
        tx,
        "INSERT INTO packets (id, agent_id, site, cover_code, state, created_at, updated_at, desk_seq) \
         VALUES ($1, $2, $3, $4, 'open', $5, $5, $6) ON CONFLICT (id) DO NOTHING",
        &[&id, &agent.id, &agent.site, &cover_code, &at, &desk_seq],
    )
    .await?;
    let row = db::query_one(
        tx,
        "SELECT agent_id, cover_code, desk_seq FROM packets WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?;
    let (owner, stored_cover, stored_seq): (String, Option<String>, Option<i64>) =
        (row.get(0), row.get(1), row.get(2));
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
        db::execute(
            tx,
            "UPDATE packets SET desk_seq = $2 WHERE id = $1",
            &[&id, &desk_seq],
        )
        .await?;
    }
    Ok(())
}

pub async fn record_page(
    tx: &impl GenericClient,
    agent: &Agent,
    page: &StoredPage,
) -> StoreResult<PacketResolution> {
    let actor = Actor(format!("agent:{}", agent.id));
    // Ownership first (it also locks the packet), also for a replay: an
    // agent hears only about its own packets.
    ensure_packet(
        tx,
        agent,
        page.packet_id,
        page.cover_code.as_deref(),
        page.packet_seq,
    )
    .await?;
    if page_stored(tx, page.capture_id).await? {
        return resolve(tx, page.packet_id, &actor).await;
    }
    let barcodes = serde_json::to_string(&page.barcodes)
        .map_err(|e| StoreError::Corrupt(format!("page {} barcodes: {e}", page.capture_id)))?;
    let inserted = db::execute(
        tx,
        "INSERT INTO pages (capture_id, packet_id, page_index, sha256, size, content_type, source_name, \
         barcodes, blank, stored_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT DO NOTHING",
        &[
            &page.capture_id.to_string(),
            &page.packet_id.to_string(),
            &db::i32_of(page.page_index, "page_index")?,
            &page.sha256,
            &db::i64_of(page.size, "size")?,
            &page.content_type,
            &page.source_name,
            &barcodes,
            &page.blank,
            &now(),
        ],
    )
    .await?;
    // Nothing inserted: the same page raced in on another connection (fine),
    // or another page already holds this index (not fine).
    if inserted == 0 && !page_stored(tx, page.capture_id).await? {
        return Err(StoreError::Conflict(format!(
            "packet {} already has a different page {}",
            page.packet_id, page.page_index
        )));
    }
    resolve(tx, page.packet_id, &actor).await
}

/// Records a batch of pages in the caller's transaction (group commit), each
/// under its own savepoint, as SQLite does: one page's conflict or error rolls
/// back that page alone (its locks included) and the others stay in.
pub async fn record_pages(
    tx: &mut deadpool_postgres::Transaction<'_>,
    pages: &[(Agent, StoredPage)],
) -> StoreResult<Vec<StoreResult<PacketResolution>>> {
    let mut results = Vec::with_capacity(pages.len());
    for (agent, page) in pages {
        let savepoint = tx.savepoint("page").await?;
        match record_page(&savepoint, agent, page).await {
            Ok(resolution) => {
                savepoint.commit().await?;
                results.push(Ok(resolution));
            }
            Err(e) => {
                savepoint.rollback().await?;
                results.push(Err(e));
            }
        }
    }
    Ok(results)
}

pub async fn seal(
    tx: &impl GenericClient,
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
    )
    .await?;
    let id = packet_id.to_string();
    let sealed: Option<i32> = db::query_one(
        tx,
        "SELECT sealed_page_count FROM packets WHERE id = $1",
        &[&id],
    )
    .await?
    .get(0);
    match sealed {
        Some(count) if count != db::i32_of(page_count, "page_count")? => {
            return Err(StoreError::Conflict(format!(
                "packet {packet_id} was sealed with {count} pages, not {page_count}"
            )));
        }
        Some(_) => {}
        None => {
            db::execute(
                tx,
                "UPDATE packets SET sealed_page_count = $2, empty = $3, updated_at = $4, cover_problem = $5 \
                 WHERE id = $1",
                &[
                    &id,
                    &db::i32_of(page_count, "page_count")?,
                    &(empty || page_count == 0),
                    &now(),
                    &seal.cover_problem,
                ],
            )
            .await?;
        }
    }
    resolve(tx, packet_id, &Actor(format!("agent:{}", agent.id))).await
}

/// Decides a complete packet's fate once; later calls report that fate.
/// The caller holds the packet's row lock.
async fn resolve(
    tx: &impl GenericClient,
    packet_id: Uuid,
    actor: &Actor,
) -> StoreResult<PacketResolution> {
    let id = packet_id.to_string();
    let row = db::query_one(
        tx,
        "SELECT state, sealed_page_count, cover_code, document_id, reason, empty, cover_problem \
         FROM packets WHERE id = $1",
        &[&id],
    )
    .await?;
    #[allow(clippy::type_complexity)]
    let (state, sealed, cover, document_id, reason, empty, cover_problem): (
        String,
        Option<i32>,
        Option<String>,
        Option<i64>,
        Option<String>,
        bool,
        Option<String>,
    ) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
    );
    match matching::settled(&state, document_id, reason.as_deref()) {
        Some(Settled::Matched { document_id }) => {
            let doc = require(tx, document_id).await?;
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
    let stored: i64 = db::query_one(
        tx,
        "SELECT COUNT(*) FROM pages WHERE packet_id = $1",
        &[&id],
    )
    .await?
    .get(0);
    let sealed = u32::try_from(sealed)
        .map_err(|_| StoreError::Corrupt(format!("packet {packet_id}: sealed count {sealed}")))?;
    let stored = u64::try_from(stored).unwrap_or_default();
    if !matching::complete(&id, sealed, stored).map_err(StoreError::Conflict)? {
        return Ok(PacketResolution::Open);
    }
    let verdict =
        match matching::cover_to_look_up(empty, cover.as_deref(), cover_problem.as_deref()) {
            Err(unattached) => Err(unattached),
            Ok(code) => {
                db::lock_cover(tx, code).await?;
                match document_by_cover(tx, code).await? {
                    None => Err(matching::no_document(code)),
                    Some(doc_id) => {
                        let doc = lock(tx, doc_id).await?;
                        matching::attach_to(CoveredDocument {
                            doc_no: &doc.doc_no,
                            mode: doc.mode,
                            status: doc.status,
                        })
                        .map(|attach| (doc, attach))
                    }
                }
            }
        };
    match verdict {
        Ok((doc, attach)) => {
            attach_packet(tx, packet_id, &doc, attach, actor).await?;
            let first_page_at: String =
                db::query_one(tx, "SELECT created_at FROM packets WHERE id = $1", &[&id])
                    .await?
                    .get(0);
            crate::metrics::packet_matched(&first_page_at);
            Ok(PacketResolution::Matched {
                document_id: doc.id,
                doc_no: doc.doc_no,
            })
        }
        Err(Unattached { state, reason }) => {
            db::execute(
                tx,
                "UPDATE packets SET state = $2, reason = $3, updated_at = $4 WHERE id = $1",
                &[&id, &state, &reason, &now()],
            )
            .await?;
            Ok(PacketResolution::Unmatched { reason })
        }
    }
}

async fn document_by_cover(c: &impl GenericClient, cover_code: &str) -> StoreResult<Option<i64>> {
    Ok(db::query_opt(
        c,
        "SELECT id FROM documents WHERE cover_code = $1",
        &[&cover_code],
    )
    .await?
    .map(|r| r.get(0)))
}

/// Makes the packet's pages the document's images (after, or instead of, the
/// ones it has) and moves the document on. The caller holds the document's lock.
async fn attach_packet(
    tx: &impl GenericClient,
    packet_id: Uuid,
    doc: &Document,
    attach: Attach,
    actor: &Actor,
) -> StoreResult<()> {
    let at = now();
    if let Attach::Replace(_) = attach {
        db::execute(
            tx,
            "UPDATE images SET replaced_at = $2 WHERE document_id = $1 AND replaced_at IS NULL",
            &[&doc.id, &at],
        )
        .await?;
    }
    let first = db::i32_of(next_page_no(tx, doc.id).await?, "page_no")?;
    let id = packet_id.to_string();
    db::execute(
        tx,
        "INSERT INTO images (document_id, page_no, sha256, size, content_type, blank, barcodes, packet_id, \
         capture_id, created_at, purged_at, purge_reason) \
         SELECT $1, $2 + page_index, sha256, size, content_type, blank, barcodes, packet_id, capture_id, $3, purged_at, purge_reason \
         FROM pages WHERE packet_id = $4 ORDER BY page_index",
        &[&doc.id, &first, &at, &id],
    )
    .await?;
    db::execute(
        tx,
        "UPDATE packets SET state = 'matched', document_id = $2, reason = NULL, updated_at = $3 WHERE id = $1",
        &[&id, &doc.id, &at],
    )
    .await?;
    let action = match attach {
        Attach::Replace(_) => "packet.rescan",
        Attach::Append(_) if doc.status == DocStatus::AwaitingImages => "packet.match",
        Attach::Append(_) => "packet.supplement",
    };
    apply_attach(tx, doc, attach, actor, action, None, first).await
}

/// Late binding: packets that waited for this cover code attach to the new
/// document. Called by document creation, under the cover code's lock.
pub async fn attach_waiting_packets(
    tx: &impl GenericClient,
    document_id: i64,
    cover_code: &str,
) -> StoreResult<()> {
    db::lock_cover(tx, cover_code).await?;
    let waiting: Vec<WaitingPacket> = db::query(
        tx,
        "SELECT id, agent_id, desk_seq FROM packets WHERE cover_code = $1 AND state = 'unmatched' \
         ORDER BY created_at, id FOR UPDATE",
        &[&cover_code],
    )
    .await?
    .into_iter()
    .map(|r| WaitingPacket {
        id: r.get(0),
        agent_id: r.get(1),
        desk_seq: r.get(2),
    })
    .collect();
    for id in late_binding_order(waiting) {
        let packet_id = Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt(format!("packet id {id}: {e}")))?;
        let doc = lock(tx, document_id).await?;
        if let Some(attach) = workflow::on_images(doc.mode, doc.status, Via::Packet(None)) {
            attach_packet(
                tx,
                packet_id,
                &doc,
                attach,
                &Actor("system:late-binding".into()),
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn match_by_hand(
    tx: &impl GenericClient,
    packet_id: Uuid,
    document_id: i64,
    mode: Option<AttachMode>,
    actor: &Actor,
) -> StoreResult<Document> {
    let state = db::query_opt(
        tx,
        "SELECT state, document_id FROM packets WHERE id = $1 FOR UPDATE",
        &[&packet_id.to_string()],
    )
    .await?
    .map(|r| (r.get::<_, String>(0), r.get::<_, Option<i64>>(1)));
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
    let doc = lock(tx, document_id).await?;
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
    attach_packet(tx, packet_id, &doc, attach, actor).await?;
    require(tx, document_id).await
}

const PACKET_COLUMNS: &str =
    "id, agent_id, site, cover_code, state, sealed_page_count, document_id, reason, created_at";

pub async fn list(
    c: &impl GenericClient,
    state: Option<PacketState>,
    limit: u32,
) -> StoreResult<Vec<Packet>> {
    let rows = db::query(
        c,
        &format!(
            "SELECT {PACKET_COLUMNS} FROM packets WHERE $1::text IS NULL OR state = $1 \
             ORDER BY created_at, id LIMIT $2"
        ),
        &[&state.map(|s| s.as_str()), &i64::from(limit)],
    )
    .await?;
    with_pages(c, rows).await
}

/// Packets in `state`, oldest first; with `site`, only that site's.
pub async fn list_at(
    c: &impl GenericClient,
    state: PacketState,
    site: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<Packet>> {
    let rows = db::query(
        c,
        &format!(
            "SELECT {PACKET_COLUMNS} FROM packets WHERE state = $1 \
             AND ($2::text IS NULL OR site = $2) ORDER BY created_at, id LIMIT $3"
        ),
        &[&state.as_str(), &site, &i64::from(limit)],
    )
    .await?;
    with_pages(c, rows).await
}

/// One packet with its pages, by id.
pub async fn one(c: &impl GenericClient, packet_id: Uuid) -> StoreResult<Option<Packet>> {
    let rows = db::query(
        c,
        &format!("SELECT {PACKET_COLUMNS} FROM packets WHERE id = $1"),
        &[&packet_id.to_string()],
    )
    .await?;
    Ok(with_pages(c, rows).await?.pop())
}

async fn with_pages(
    c: &impl GenericClient,
    rows: Vec<tokio_postgres::Row>,
) -> StoreResult<Vec<Packet>> {
    let mut packets = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        let packet_id = Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt(format!("packet id {id}: {e}")))?;
        let state: String = r.get(4);
        let state = state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("packet {id} state: {e}")))?;
        let sealed: Option<i32> = r.get(5);
        packets.push(Packet {
            id: packet_id,
            agent_id: r.get(1),
            site: r.get(2),
            cover_code: r.get(3),
            state,
            sealed_page_count: sealed
                .map(|n| db::u32_of(n, "sealed_page_count"))
                .transpose()?,
            document_id: r.get(6),
            reason: r.get(7),
            created_at: r.get(8),
            pages: pages(c, &id).await?,
        });
    }
    Ok(packets)
}

async fn pages(c: &impl GenericClient, packet_id: &str) -> StoreResult<Vec<PacketPage>> {
    let rows = db::query(
        c,
        "SELECT page_index, sha256, size, content_type, source_name, blank FROM pages \
         WHERE packet_id = $1 ORDER BY page_index",
        &[&packet_id],
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(PacketPage {
                page_index: db::u32_of(r.get(0), "page_index")?,
                sha256: r.get(1),
                size: db::u64_of(r.get(2), "page size")?,
                content_type: r.get(3),
                source_name: r.get(4),
                blank: r.get(5),
            })
        })
        .collect()
}

pub async fn page_blob(
    c: &impl GenericClient,
    packet_id: Uuid,
    page_index: u32,
) -> StoreResult<Option<PageBlob>> {
    Ok(db::query_opt(
        c,
        "SELECT sha256, content_type, purged_at, purge_reason FROM pages \
         WHERE packet_id = $1 AND page_index = $2",
        &[
            &packet_id.to_string(),
            &db::i32_of(page_index, "page_index")?,
        ],
    )
    .await?
    .map(|r| PageBlob {
        sha256: r.get(0),
        content_type: r.get(1),
        purged: crate::store::purged(r.get(2), r.get(3)),
    }))
}

pub async fn of_document(
    c: &impl GenericClient,
    document_id: i64,
) -> StoreResult<Vec<(Uuid, String)>> {
    let rows = db::query(
        c,
        "SELECT id, agent_id FROM packets WHERE document_id = $1 AND state = 'matched' \
         ORDER BY created_at, id",
        &[&document_id],
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let id: String = r.get(0);
            let uuid = Uuid::parse_str(&id)
                .map_err(|e| StoreError::Corrupt(format!("packet id {id}: {e}")))?;
            Ok((uuid, r.get(1)))
        })
        .collect()
}
