//! Documents, their images, schemes, decisions and the audit trail.

use super::rows::{self, DOCUMENT_COLUMNS, IMAGE_COLUMNS};
use super::{audit as chain, invoices, now, webhooks};
use crate::domain::receipt::{RECEIVE_ACTION, Received, receipt_text};
use crate::store::*;
use crate::workflow::{self, Attach, Via};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub fn put_scheme(tx: &Transaction<'_>, scheme: Scheme, actor: &Actor) -> StoreResult<Scheme> {
    let rules = scheme.rules.as_ref().map(|r| r.to_string());
    tx.execute(
        "INSERT INTO schemes (name, org, doc_type, mode, rules, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (name) DO UPDATE SET org = ?2, doc_type = ?3, mode = ?4, rules = ?5, updated_at = ?6",
        params![scheme.name, scheme.org, scheme.doc_type, scheme.mode.as_str(), rules, now()],
    )?;
    audit(
        tx,
        actor,
        None,
        "scheme.put",
        None,
        None,
        Some(&format!("{} -> {}", scheme.name, scheme.mode)),
    )?;
    Ok(scheme)
}

pub fn delete_scheme(tx: &Transaction<'_>, name: &str, actor: &Actor) -> StoreResult<bool> {
    if tx.execute("DELETE FROM schemes WHERE name = ?1", [name])? == 0 {
        return Ok(false);
    }
    audit(tx, actor, None, "scheme.delete", None, None, Some(name))?;
    Ok(true)
}

/// The most specific scheme wins: org and type, then type, then org, then a
/// global one; no scheme at all means basic mode.
fn resolve_mode(tx: &Transaction<'_>, org: &str, doc_type: &str) -> StoreResult<ImageMode> {
    let mode: Option<String> = tx
        .query_row(
            "SELECT mode FROM schemes \
             WHERE (org IS NULL OR org = ?1) AND (doc_type IS NULL OR doc_type = ?2) \
             ORDER BY (doc_type IS NOT NULL) * 2 + (org IS NOT NULL) DESC, name LIMIT 1",
            params![org, doc_type],
            |r| r.get(0),
        )
        .optional()?;
    match mode {
        Some(mode) => mode
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("scheme mode: {e}"))),
        None => Ok(ImageMode::Basic),
    }
}

pub fn create(tx: &Transaction<'_>, doc: NewDocument, actor: &Actor) -> StoreResult<Created> {
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM documents WHERE source_system = ?1 AND doc_no = ?2",
            params![doc.source_system, doc.doc_no],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Ok(Created::Existing(require(tx, id)?));
    }
    let taken: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM documents WHERE cover_code = ?1)",
        [&doc.cover_code],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "cover code {} belongs to another document",
            doc.cover_code
        )));
    }
    let mode = resolve_mode(tx, &doc.org, &doc.doc_type)?;
    let at = now();
    tx.execute(
        "INSERT INTO documents (source_system, doc_no, doc_type, org, cover_code, title, amount, submitter, \
         metadata, mode, status, created_at, updated_at, attachment_count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)",
        params![
            doc.source_system,
            doc.doc_no,
            doc.doc_type,
            doc.org,
            doc.cover_code,
            doc.title,
            doc.amount,
            doc.submitter,
            doc.metadata.as_ref().map(|m| m.to_string()),
            mode.as_str(),
            DocStatus::AwaitingImages.as_str(),
            at,
            doc.attachment_count,
        ],
    )?;
    let id = tx.last_insert_rowid();
    audit(
        tx,
        actor,
        Some(id),
        "document.create",
        None,
        Some(DocStatus::AwaitingImages),
        None,
    )?;
    Ok(Created::New(require(tx, id)?))
}

/// Databases from before declared attachment counts get the column.
pub fn migrate(conn: &Connection) -> StoreResult<()> {
    let present: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('documents') WHERE name = 'attachment_count')",
        [],
        |r| r.get(0),
    )?;
    if !present {
        conn.execute(
            "ALTER TABLE documents ADD COLUMN attachment_count INTEGER",
            [],
        )?;
    }
    Ok(())
}

pub fn require(conn: &Connection, id: i64) -> StoreResult<Document> {
    by_id(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("document {id}")))
}

pub fn by_id(conn: &Connection, id: i64) -> StoreResult<Option<Document>> {
    let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id], rows::document)
        .optional()?
        .transpose()
}

/// Bulk lookups pass the keys as one JSON array, so the statement text never
/// changes (it stays in the prepared-statement cache) and needs no chunking.
pub fn by_ids(conn: &Connection, ids: &[i64]) -> StoreResult<Vec<Document>> {
    let keys =
        serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(format!("bulk ids: {e}")))?;
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents d \
         WHERE d.id IN (SELECT value FROM json_each(?1)) ORDER BY d.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    rows::collect(stmt.query_map([keys], rows::document)?)
}

pub fn to_archive(
    conn: &Connection,
    filter: &ArchiveFilter,
    after_id: i64,
    limit: u32,
) -> StoreResult<Vec<Document>> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents d \
         WHERE d.status = ?1 AND (?2 IS NULL OR d.source_system = ?2) \
         AND (?3 IS NULL OR d.created_at >= ?3) AND (?4 IS NULL OR d.created_at < ?4) \
         AND d.id > ?5 ORDER BY d.id LIMIT ?6"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    rows::collect(stmt.query_map(
        params![
            filter.status.as_str(),
            filter.source_system,
            filter.created_from,
            filter.created_before,
            after_id,
            limit
        ],
        rows::document,
    )?)
}

pub fn by_doc_nos(conn: &Connection, doc_nos: &[String]) -> StoreResult<Vec<Document>> {
    by_text_key(conn, "doc_no", doc_nos)
}

pub fn by_cover_codes(conn: &Connection, codes: &[String]) -> StoreResult<Vec<Document>> {
    by_text_key(conn, "cover_code", codes)
}

/// The documents whose `column` (a fixed name, never input) is one of `keys`.
fn by_text_key(conn: &Connection, column: &str, keys: &[String]) -> StoreResult<Vec<Document>> {
    let keys = serde_json::to_string(keys)
        .map_err(|e| StoreError::Corrupt(format!("bulk {column}s: {e}")))?;
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents d \
         WHERE d.{column} IN (SELECT value FROM json_each(?1)) ORDER BY d.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    rows::collect(stmt.query_map([keys], rows::document)?)
}

/// See [`crate::store::Store::desk_documents`].
pub fn for_desk(conn: &Connection, site: &str, limit: u32) -> StoreResult<Vec<Document>> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents d \
         WHERE (d.status = 'awaiting_images' AND d.mode = 'match') \
         OR (d.status = 'rejected' AND EXISTS \
             (SELECT 1 FROM packets p WHERE p.document_id = d.id AND p.site = ?1)) \
         ORDER BY d.updated_at DESC, d.id DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    rows::collect(stmt.query_map(params![site, limit], rows::document)?)
}

pub fn images(conn: &Connection, document_id: i64) -> StoreResult<Vec<Image>> {
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE document_id = ?1 AND replaced_at IS NULL ORDER BY page_no"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let images = rows::collect(stmt.query_map([document_id], rows::image)?)?;
    Ok(images)
}

/// The document's current pages that came from scanned packets, for the
/// attachment check.
pub fn scanned_pages(conn: &Connection, document_id: i64) -> StoreResult<Vec<ScannedPage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.page_index, i.blank, k.cover_code IS NOT NULL FROM images i \
         JOIN pages p ON p.capture_id = i.capture_id JOIN packets k ON k.id = p.packet_id \
         WHERE i.document_id = ?1 AND i.replaced_at IS NULL",
    )?;
    let pages = stmt.query_map([document_id], |r| {
        Ok(ScannedPage {
            page_index: r.get(0)?,
            blank: r.get(1)?,
            packet_has_cover: r.get(2)?,
        })
    })?;
    Ok(pages.collect::<Result<_, _>>()?)
}

/// The document's attachment check, from inside a transaction or not.
pub fn attachment_check(conn: &Connection, doc: &Document) -> StoreResult<Option<AttachmentCheck>> {
    if doc.attachment_count.is_none() {
        return Ok(None);
    }
    let pages = scanned_pages(conn, doc.id)?;
    Ok(crate::attachments::check(doc.attachment_count, &pages))
}

pub fn image(conn: &Connection, image_id: i64) -> StoreResult<Option<Image>> {
    let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?1");
    conn.query_row(&sql, [image_id], rows::image)
        .optional()?
        .transpose()
}

/// The capture API: an image uploaded straight onto a document.
pub fn add_uploaded_image(
    tx: &Transaction<'_>,
    document_id: i64,
    image: NewImage,
    actor: &Actor,
) -> StoreResult<Image> {
    let doc = require(tx, document_id)?;
    let Some(attach) = workflow::on_images(doc.mode, doc.status, Via::Upload) else {
        return Err(StoreError::InvalidTransition {
            id: doc.id,
            current: doc.status,
            action: if doc.mode == ImageMode::Match {
                "uploading images (match mode takes scanned paper)"
            } else {
                "uploading images"
            },
        });
    };
    let page_no = next_page_no(tx, document_id)?;
    tx.execute(
        "INSERT INTO images (document_id, page_no, sha256, size, content_type, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            document_id,
            page_no,
            image.sha256,
            image.size,
            image.content_type,
            now()
        ],
    )?;
    let image_id = tx.last_insert_rowid();
    let action = match doc.mode {
        ImageMode::Sync => "images.sync",
        _ => "images.upload",
    };
    let reason = image.source.as_deref().map(|s| format!("pushed by {s}"));
    apply_attach(tx, &doc, attach, actor, action, reason.as_deref(), page_no)?;
    image_by_id(tx, image_id)
}

fn image_by_id(conn: &Connection, id: i64) -> StoreResult<Image> {
    image(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("image {id}")))
}

pub fn next_page_no(conn: &Connection, document_id: i64) -> StoreResult<u32> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(page_no), 0) + 1 FROM images WHERE document_id = ?1 AND replaced_at IS NULL",
        [document_id],
        |r| r.get(0),
    )?)
}

/// Moves the document to the status an attachment leads to, with its audit row.
pub fn apply_attach(
    tx: &Transaction<'_>,
    doc: &Document,
    attach: Attach,
    actor: &Actor,
    action: &str,
    reason: Option<&str>,
    first_page: u32,
) -> StoreResult<()> {
    let to = match attach {
        Attach::Append(to) | Attach::Replace(to) => to,
    };
    invoices::index_document(tx, doc.id)?;
    change_status(tx, doc, to, None)?;
    audit(
        tx,
        actor,
        Some(doc.id),
        action,
        Some(doc.status),
        Some(to),
        reason,
    )?;
    let received: Vec<Received> = {
        let mut stmt = tx.prepare(
            "SELECT page_no, sha256 FROM images \
             WHERE document_id = ?1 AND page_no >= ?2 AND replaced_at IS NULL ORDER BY page_no",
        )?;
        let rows = stmt.query_map(params![doc.id, first_page], |r| {
            Ok(Received {
                page_no: r.get(0)?,
                sha256: r.get(1)?,
            })
        })?;
        rows.collect::<Result<_, _>>()?
    };
    audit(
        tx,
        actor,
        Some(doc.id),
        RECEIVE_ACTION,
        None,
        None,
        Some(&receipt_text(&received)),
    )
}

pub fn decide(
    tx: &Transaction<'_>,
    document_id: i64,
    decision: &Decision,
    actor: &Actor,
) -> StoreResult<Document> {
    let doc = require(tx, document_id)?;
    let Some(to) = workflow::after_decision(doc.mode, doc.status, decision) else {
        return Err(StoreError::InvalidTransition {
            id: doc.id,
            current: doc.status,
            action: decision.name(),
        });
    };
    let reason = match decision {
        Decision::SignOff => None,
        Decision::Reject { reason } | Decision::Unsign { reason } => Some(reason.as_str()),
        Decision::Cancel { reason } => reason.as_deref(),
    };
    let reject_reason = matches!(decision, Decision::Reject { .. })
        .then_some(reason)
        .flatten();
    change_status(tx, &doc, to, reject_reason)?;
    audit(
        tx,
        actor,
        Some(doc.id),
        decision.name(),
        Some(doc.status),
        Some(to),
        reason,
    )?;
    require(tx, document_id)
}

/// Every status change goes through here, so none escapes the outbox.
fn change_status(
    tx: &Transaction<'_>,
    doc: &Document,
    status: DocStatus,
    reject_reason: Option<&str>,
) -> StoreResult<()> {
    tx.prepare_cached(
        "UPDATE documents SET status = ?2, reject_reason = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![doc.id, status.as_str(), reject_reason, now()])?;
    if !webhooks::wanted(tx, doc, doc.status, status)? {
        return Ok(());
    }
    let check = attachment_check(tx, doc)?;
    webhooks::enqueue(tx, doc, doc.status, status, check)
}

pub fn audit(
    tx: &Transaction<'_>,
    actor: &Actor,
    document_id: Option<i64>,
    action: &str,
    from: Option<DocStatus>,
    to: Option<DocStatus>,
    reason: Option<&str>,
) -> StoreResult<()> {
    chain::append(
        tx,
        &chain::NewEntry {
            actor,
            document_id,
            action,
            from,
            to,
            reason,
        },
    )
}
