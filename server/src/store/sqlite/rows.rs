//! Mapping between SQLite rows and the store's types.

use crate::store::{Document, Image, StoreError, StoreResult};
use imc_shared::protocol::BarcodeInfo;
use rusqlite::Row;

pub const DOCUMENT_COLUMNS: &str = "d.id, d.source_system, d.doc_no, d.doc_type, d.org, d.cover_code, \
     d.title, d.amount, d.submitter, d.metadata, d.mode, d.status, d.reject_reason, \
     d.created_at, d.updated_at, \
     (SELECT COUNT(*) FROM images i WHERE i.document_id = d.id AND i.replaced_at IS NULL), \
     d.attachment_count";
/// How many columns `DOCUMENT_COLUMNS` selects: queries that select more
/// after them read those from here on.
pub const DOCUMENT_WIDTH: usize = 17;

pub fn document(row: &Row<'_>) -> rusqlite::Result<Result<Document, StoreError>> {
    let metadata: Option<String> = row.get(9)?;
    let mode: String = row.get(10)?;
    let status: String = row.get(11)?;
    let id: i64 = row.get(0)?;
    let parsed = (|| {
        Ok(Document {
            id,
            source_system: row.get(1)?,
            doc_no: row.get(2)?,
            doc_type: row.get(3)?,
            org: row.get(4)?,
            cover_code: row.get(5)?,
            title: row.get(6)?,
            amount: row.get(7)?,
            submitter: row.get(8)?,
            attachment_count: row.get(16)?,
            metadata: match metadata {
                Some(text) => Some(
                    serde_json::from_str(&text)
                        .map_err(|e| StoreError::Corrupt(format!("document {id} metadata: {e}")))?,
                ),
                None => None,
            },
            mode: mode
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("document {id} mode: {e}")))?,
            status: status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("document {id} status: {e}")))?,
            reject_reason: row.get(12)?,
            created_at: row.get(13)?,
            updated_at: row.get(14)?,
            image_count: row.get(15)?,
        })
    })();
    Ok(parsed)
}

pub const IMAGE_COLUMNS: &str = "id, document_id, page_no, sha256, size, content_type, blank, barcodes, purged_at, purge_reason";

pub fn image(row: &Row<'_>) -> rusqlite::Result<Result<Image, StoreError>> {
    let id: i64 = row.get(0)?;
    let barcodes: String = row.get(7)?;
    let barcodes = serde_json::from_str::<Vec<BarcodeInfo>>(&barcodes)
        .map_err(|e| StoreError::Corrupt(format!("image {id} barcodes: {e}")));
    Ok(match barcodes {
        Ok(barcodes) => Ok(Image {
            id,
            document_id: row.get(1)?,
            page_no: row.get(2)?,
            sha256: row.get(3)?,
            size: row.get(4)?,
            content_type: row.get(5)?,
            blank: row.get(6)?,
            barcodes,
            purged: crate::store::purged(row.get(8)?, row.get(9)?),
        }),
        Err(e) => Err(e),
    })
}

/// Collects rows whose mapping may fail on corrupt data.
pub fn collect<T>(
    rows: impl Iterator<Item = rusqlite::Result<StoreResult<T>>>,
) -> StoreResult<Vec<T>> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}
