//! The duplicate-invoice guard: which VAT invoices a document's current
//! pages show, and which other live documents show the same one.
//!
//! The index is rebuilt for a document whenever its images change (inside
//! that transaction); conflicts are computed when read, so cancelling one of
//! two documents clears the flag on the other without another write.

use crate::store::*;
use rusqlite::{Connection, Transaction, params};

pub fn index_document(tx: &Transaction<'_>, document_id: i64) -> StoreResult<()> {
    tx.prepare_cached("DELETE FROM invoices WHERE document_id = ?1")?
        .execute([document_id])?;
    let mut stmt = tx.prepare_cached(
        "SELECT id, barcodes FROM images WHERE document_id = ?1 AND replaced_at IS NULL",
    )?;
    let rows = stmt
        .query_map([document_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (image_id, barcodes) in rows {
        let barcodes: Vec<BarcodeInfo> = serde_json::from_str(&barcodes)
            .map_err(|e| StoreError::Corrupt(format!("image {image_id} barcodes: {e}")))?;
        if let Some(invoice) =
            imc_shared::vat::first_on_page(barcodes.iter().map(|b| b.text.as_str()))
        {
            let (code, number) = invoice.key();
            tx.prepare_cached(
                "INSERT INTO invoices (image_id, document_id, invoice_code, invoice_number) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![image_id, document_id, code, number])?;
        }
    }
    Ok(())
}

pub fn conflicts(conn: &Connection, document_id: i64) -> StoreResult<Vec<InvoiceConflict>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT mine.invoice_code, mine.invoice_number, other.document_id \
         FROM invoices mine \
         JOIN invoices other ON other.invoice_code = mine.invoice_code \
              AND other.invoice_number = mine.invoice_number \
              AND other.document_id <> mine.document_id \
         JOIN documents d ON d.id = other.document_id AND d.status <> 'cancelled' \
         JOIN documents me ON me.id = mine.document_id AND me.status <> 'cancelled' \
         WHERE mine.document_id = ?1 \
         ORDER BY other.document_id, mine.invoice_code, mine.invoice_number",
    )?;
    let rows = stmt.query_map([document_id], |r| {
        Ok(InvoiceConflict {
            invoice_code: r.get(0)?,
            invoice_number: r.get(1)?,
            other_document_id: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
