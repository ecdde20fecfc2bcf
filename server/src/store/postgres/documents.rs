//! Documents, their images, schemes and decisions.
//!
//! A status change reads the document `FOR UPDATE`, so two replicas deciding
//! on the same document at once take turns and the second sees the first's
//! result.

use super::rows::{self, DOCUMENT_COLUMNS, IMAGE_COLUMNS};
use super::{audit as chain, db, invoices, webhooks};
use crate::domain::receipt::{RECEIVE_ACTION, Received, receipt_text};
use crate::store::audit_chain::NewEntry;
use crate::store::*;
use crate::workflow::{self, Attach, Via};
use deadpool_postgres::GenericClient;

pub async fn delete_scheme(
    tx: &impl GenericClient,
    name: &str,
    actor: &Actor,
) -> StoreResult<bool> {
    if db::execute(tx, "DELETE FROM schemes WHERE name = $1", &[&name]).await? == 0 {
        return Ok(false);
    }
    audit(tx, actor, None, "scheme.delete", None, None, Some(name)).await?;
    Ok(true)
}

pub async fn put_scheme(
    tx: &impl GenericClient,
    scheme: Scheme,
    actor: &Actor,
) -> StoreResult<Scheme> {
    let rules = scheme.rules.as_ref().map(|r| r.to_string());
    db::execute(
        tx,
        "INSERT INTO schemes (name, org, doc_type, mode, rules, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (name) DO UPDATE SET org = EXCLUDED.org, doc_type = EXCLUDED.doc_type, \
         mode = EXCLUDED.mode, rules = EXCLUDED.rules, updated_at = EXCLUDED.updated_at",
        &[&scheme.name, &scheme.org, &scheme.doc_type, &scheme.mode.as_str(), &rules, &now()],
    )
    .await?;
    audit(
        tx,
        actor,
        None,
        "scheme.put",
        None,
        None,
        Some(&format!("{} -> {}", scheme.name, scheme.mode)),
    )
    .await?;
    Ok(scheme)
}

/// The most specific scheme wins: org and type, then type, then org, then a
/// global one; no scheme at all means basic mode.
async fn resolve_mode(
    tx: &impl GenericClient,
    org: &str,
    doc_type: &str,
) -> StoreResult<ImageMode> {
    let mode: Option<String> = db::query_opt(
        tx,
        "SELECT mode FROM schemes \
         WHERE (org IS NULL OR org = $1) AND (doc_type IS NULL OR doc_type = $2) \
         ORDER BY (CASE WHEN doc_type IS NOT NULL THEN 2 ELSE 0 END) \
                + (CASE WHEN org IS NOT NULL THEN 1 ELSE 0 END) DESC, name LIMIT 1",
        &[&org, &doc_type],
    )
    .await?
    .map(|r| r.get(0));
    match mode {
        Some(mode) => mode
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("scheme mode: {e}"))),
        None => Ok(ImageMode::Basic),
    }
}

async fn existing(tx: &impl GenericClient, doc: &NewDocument) -> StoreResult<Option<i64>> {
    Ok(db::query_opt(
        tx,
        "SELECT id FROM documents WHERE source_system = $1 AND doc_no = $2",
        &[&doc.source_system, &doc.doc_no],
    )
    .await?
    .map(|r| r.get(0)))
}

pub async fn create(
    tx: &impl GenericClient,
    doc: NewDocument,
    actor: &Actor,
) -> StoreResult<Created> {
    // Creates naming one cover code take turns, so the checks below see any
    // racing create of the same document (ERP retries carry the same code).
    db::lock_cover(tx, &doc.cover_code).await?;
    if let Some(id) = existing(tx, &doc).await? {
        return Ok(Created::Existing(require(tx, id).await?));
    }
    let cover_taken = || {
        StoreError::Conflict(format!(
            "cover code {} belongs to another document",
            doc.cover_code
        ))
    };
    let taken: bool = db::query_one(
        tx,
        "SELECT EXISTS (SELECT 1 FROM documents WHERE cover_code = $1)",
        &[&doc.cover_code],
    )
    .await?
    .get(0);
    if taken {
        return Err(cover_taken());
    }
    let mode = resolve_mode(tx, &doc.org, &doc.doc_type).await?;
    let at = now();
    let attachment_count = doc
        .attachment_count
        .map(|n| {
            i32::try_from(n).map_err(|_| StoreError::Invalid {
                field: "attachment_count".into(),
                message: format!("{n} is too large"),
            })
        })
        .transpose()?;
    // A racing create of the same document waits on the unique key and then
    // inserts nothing; it then answers with the winner's document.
    let inserted = db::query_opt(
        tx,
        "INSERT INTO documents (source_system, doc_no, doc_type, org, cover_code, title, amount, submitter, \
         metadata, mode, status, created_at, updated_at, attachment_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13) \
         ON CONFLICT (source_system, doc_no) DO NOTHING RETURNING id",
        &[
            &doc.source_system,
            &doc.doc_no,
            &doc.doc_type,
            &doc.org,
            &doc.cover_code,
            &doc.title,
            &doc.amount,
            &doc.submitter,
            &doc.metadata.as_ref().map(|m| m.to_string()),
            &mode.as_str(),
            &DocStatus::AwaitingImages.as_str(),
            &at,
            &attachment_count,
        ],
    )
    .await;
    let id: i64 = match inserted {
        Ok(Some(row)) => row.get(0),
        Ok(None) => {
            let id = existing(tx, &doc)
                .await?
                .ok_or_else(|| StoreError::Task("document vanished while created".into()))?;
            return Ok(Created::Existing(require(tx, id).await?));
        }
        Err(e) if db::is_unique_violation(&e) => return Err(cover_taken()),
        Err(e) => return Err(e),
    };
    audit(
        tx,
        actor,
        Some(id),
        "document.create",
        None,
        Some(DocStatus::AwaitingImages),
        None,
    )
    .await?;
    Ok(Created::New(require(tx, id).await?))
}

pub async fn require(c: &impl GenericClient, id: i64) -> StoreResult<Document> {
    by_id(c, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("document {id}")))
}

/// The document, locked until the transaction ends.
pub async fn lock(tx: &impl GenericClient, id: i64) -> StoreResult<Document> {
    let found = db::query_opt(
        tx,
        "SELECT id FROM documents WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?;
    if found.is_none() {
        return Err(StoreError::NotFound(format!("document {id}")));
    }
    require(tx, id).await
}

pub async fn by_id(c: &impl GenericClient, id: i64) -> StoreResult<Option<Document>> {
    let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.id = $1");
    db::query_opt(c, &sql, &[&id])
        .await?
        .map(|r| rows::document(&r))
        .transpose()
}

pub async fn by_ids(c: &impl GenericClient, ids: &[i64]) -> StoreResult<Vec<Document>> {
    let sql =
        format!("SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.id = ANY($1) ORDER BY d.id");
    let ids = ids.to_vec();
    db::query(c, &sql, &[&ids])
        .await?
        .iter()
        .map(rows::document)
        .collect()
}

pub async fn to_archive(
    c: &impl GenericClient,
    filter: &ArchiveFilter,
    after_id: i64,
    limit: u32,
) -> StoreResult<Vec<Document>> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents d \
         WHERE d.status = $1 AND ($2::text IS NULL OR d.source_system = $2) \
         AND ($3::text IS NULL OR d.created_at >= $3) AND ($4::text IS NULL OR d.created_at < $4) \
         AND d.id > $5 ORDER BY d.id LIMIT $6"
    );
    db::query(
        c,
        &sql,
        &[
            &filter.status.as_str(),
            &filter.source_system,
            &filter.created_from,
            &filter.created_before,
            &after_id,
            &i64::from(limit),
        ],
    )
    .await?
    .iter()
    .map(rows::document)
    .collect()
}

pub async fn by_doc_nos(c: &impl GenericClient, doc_nos: &[String]) -> StoreResult<Vec<Document>> {
    by_text_key(c, "doc_no", doc_nos).await
}

pub async fn by_cover_codes(
    c: &impl GenericClient,
    codes: &[String],
) -> StoreResult<Vec<Document>> {
    by_text_key(c, "cover_code", codes).await
}

/// The documents whose `column` (a fixed name, never input) is one of `keys`.
async fn by_text_key(
    c: &impl GenericClient,
    column: &str,
    keys: &[String],
) -> StoreResult<Vec<Document>> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.{column} = ANY($1) ORDER BY d.id"
    );
    let keys = keys.to_vec();
    db::query(c, &sql, &[&keys])
        .await?
        .iter()
        .map(rows::document)
        .collect()
}

/// See [`crate::store::Store::desk_documents`].
pub async fn for_desk(
    c: &impl GenericClient,
    site: &str,
    limit: u32,
) -> StoreResult<Vec<Document>> {
    let sql = format!(
        "SELECT {DOCUMENT_COLUMNS} FROM documents d \
         WHERE (d.status = 'awaiting_images' AND d.mode = 'match') \
         OR (d.status = 'rejected' AND EXISTS \
             (SELECT 1 FROM packets p WHERE p.document_id = d.id AND p.site = $1)) \
         ORDER BY d.updated_at DESC, d.id DESC LIMIT $2"
    );
    db::query(c, &sql, &[&site, &i64::from(limit)])
        .await?
        .iter()
        .map(rows::document)
        .collect()
}

pub async fn images(c: &impl GenericClient, document_id: i64) -> StoreResult<Vec<Image>> {
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE document_id = $1 AND replaced_at IS NULL ORDER BY page_no"
    );
    db::query(c, &sql, &[&document_id])
        .await?
        .iter()
        .map(rows::image)
        .collect()
}

/// The document's current pages that came from scanned packets, for the
/// attachment check.
pub async fn scanned_pages(
    c: &impl GenericClient,
    document_id: i64,
) -> StoreResult<Vec<ScannedPage>> {
    db::query(
        c,
        "SELECT p.page_index, i.blank, k.cover_code IS NOT NULL FROM images i \
         JOIN pages p ON p.capture_id = i.capture_id JOIN packets k ON k.id = p.packet_id \
         WHERE i.document_id = $1 AND i.replaced_at IS NULL",
        &[&document_id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ScannedPage {
            page_index: db::u32_of(r.get(0), "page index")?,
            blank: r.get(1),
            packet_has_cover: r.get(2),
        })
    })
    .collect()
}

/// The document's attachment check, from inside a transaction or not.
pub async fn attachment_check(
    c: &impl GenericClient,
    doc: &Document,
) -> StoreResult<Option<AttachmentCheck>> {
    if doc.attachment_count.is_none() {
        return Ok(None);
    }
    let pages = scanned_pages(c, doc.id).await?;
    Ok(crate::attachments::check(doc.attachment_count, &pages))
}

pub async fn image(c: &impl GenericClient, image_id: i64) -> StoreResult<Option<Image>> {
    let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1");
    db::query_opt(c, &sql, &[&image_id])
        .await?
        .map(|r| rows::image(&r))
        .transpose()
}

/// The capture API: an image uploaded straight onto a document.
pub async fn add_uploaded_image(
    tx: &impl GenericClient,
    document_id: i64,
    image: NewImage,
    actor: &Actor,
) -> StoreResult<Image> {
    let doc = lock(tx, document_id).await?;
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
    let page_no = db::i32_of(next_page_no(tx, document_id).await?, "page_no")?;
    let size = db::i64_of(image.size, "size")?;
    let image_id: i64 = db::query_one(
        tx,
        "INSERT INTO images (document_id, page_no, sha256, size, content_type, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        &[
            &document_id,
            &page_no,
            &image.sha256,
            &size,
            &image.content_type,
            &now(),
        ],
    )
    .await?
    .get(0);
    let action = match doc.mode {
        ImageMode::Sync => "images.sync",
        _ => "images.upload",
    };
    let reason = image.source.as_deref().map(|s| format!("pushed by {s}"));
    apply_attach(tx, &doc, attach, actor, action, reason.as_deref(), page_no).await?;
    image_by_id(tx, image_id).await
}

async fn image_by_id(c: &impl GenericClient, id: i64) -> StoreResult<Image> {
    image(c, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("image {id}")))
}

pub async fn next_page_no(c: &impl GenericClient, document_id: i64) -> StoreResult<u32> {
    let next: i32 = db::query_one(
        c,
        "SELECT COALESCE(MAX(page_no), 0) + 1 FROM images WHERE document_id = $1 AND replaced_at IS NULL",
        &[&document_id],
    )
    .await?
    .get(0);
    db::u32_of(next, "next page_no")
}

/// Moves the document to the status an attachment leads to, with its audit row.
pub async fn apply_attach(
    tx: &impl GenericClient,
    doc: &Document,
    attach: Attach,
    actor: &Actor,
    action: &str,
    reason: Option<&str>,
    first_page: i32,
) -> StoreResult<()> {
    let to = match attach {
        Attach::Append(to) | Attach::Replace(to) => to,
    };
    invoices::index_document(tx, doc.id).await?;
    change_status(tx, doc, to, None).await?;
    audit(
        tx,
        actor,
        Some(doc.id),
        action,
        Some(doc.status),
        Some(to),
        reason,
    )
    .await?;
    let received: Vec<Received> = tx
        .query(
            "SELECT page_no, sha256 FROM images \
             WHERE document_id = $1 AND page_no >= $2 AND replaced_at IS NULL ORDER BY page_no",
            &[&doc.id, &first_page],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Received {
                page_no: db::u32_of(r.try_get::<_, i32>(0)?, "page_no")?,
                sha256: r.try_get(1)?,
            })
        })
        .collect::<StoreResult<_>>()?;
    audit(
        tx,
        actor,
        Some(doc.id),
        RECEIVE_ACTION,
        None,
        None,
        Some(&receipt_text(&received)),
    )
    .await
}

pub async fn decide(
    tx: &impl GenericClient,
    document_id: i64,
    decision: &Decision,
    actor: &Actor,
) -> StoreResult<Document> {
    let doc = lock(tx, document_id).await?;
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
    change_status(tx, &doc, to, reject_reason).await?;
    audit(
        tx,
        actor,
        Some(doc.id),
        decision.name(),
        Some(doc.status),
        Some(to),
        reason,
    )
    .await?;
    require(tx, document_id).await
}

/// Every status change goes through here, so none escapes the outbox.
async fn change_status(
    tx: &impl GenericClient,
    doc: &Document,
    status: DocStatus,
    reject_reason: Option<&str>,
) -> StoreResult<()> {
    db::execute(
        tx,
        "UPDATE documents SET status = $2, reject_reason = $3, updated_at = $4 WHERE id = $1",
        &[&doc.id, &status.as_str(), &reject_reason, &now()],
    )
    .await?;
    if !webhooks::wanted(tx, doc, doc.status, status).await? {
        return Ok(());
    }
    let check = attachment_check(tx, doc).await?;
    webhooks::enqueue(tx, doc, doc.status, status, check).await
}

pub async fn audit(
    tx: &impl GenericClient,
    actor: &Actor,
    document_id: Option<i64>,
    action: &str,
    from: Option<DocStatus>,
    to: Option<DocStatus>,
    reason: Option<&str>,
) -> StoreResult<()> {
    chain::append(
        tx,
        &NewEntry {
            actor,
            document_id,
            action,
            from,
            to,
            reason,
        },
    )
    .await
}
