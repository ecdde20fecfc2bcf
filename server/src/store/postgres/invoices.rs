//! The duplicate-invoice guard (see `store/sqlite/invoices.rs`): the index is
//! rebuilt inside the transaction that changes a document's images;
//! conflicts are computed when read.

use super::db;
use crate::store::*;
use deadpool_postgres::GenericClient;

pub async fn index_document(tx: &impl GenericClient, document_id: i64) -> StoreResult<()> {
    db::execute(
        tx,
        "DELETE FROM invoices WHERE document_id = $1",
        &[&document_id],
    )
    .await?;
    let rows = db::query(
        tx,
        "SELECT id, barcodes FROM images WHERE document_id = $1 AND replaced_at IS NULL",
        &[&document_id],
    )
    .await?;
    for row in rows {
        let (image_id, barcodes): (i64, String) = (row.get(0), row.get(1));
        let barcodes: Vec<BarcodeInfo> = serde_json::from_str(&barcodes)
            .map_err(|e| StoreError::Corrupt(format!("image {image_id} barcodes: {e}")))?;
        if let Some(invoice) =
            imc_shared::vat::first_on_page(barcodes.iter().map(|b| b.text.as_str()))
        {
            let (code, number) = invoice.key();
            db::execute(
                tx,
                "INSERT INTO invoices (image_id, document_id, invoice_code, invoice_number) \
                 VALUES ($1, $2, $3, $4)",
                &[&image_id, &document_id, &code, &number],
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn conflicts(
    c: &impl GenericClient,
    document_id: i64,
) -> StoreResult<Vec<InvoiceConflict>> {
    let rows = db::query(
        c,
        "SELECT DISTINCT mine.invoice_code, mine.invoice_number, other.document_id \
         FROM invoices mine \
         JOIN invoices other ON other.invoice_code = mine.invoice_code \
              AND other.invoice_number = mine.invoice_number \
              AND other.document_id <> mine.document_id \
         JOIN documents d ON d.id = other.document_id AND d.status <> 'cancelled' \
         JOIN documents me ON me.id = mine.document_id AND me.status <> 'cancelled' \
         WHERE mine.document_id = $1 \
         ORDER BY other.document_id, mine.invoice_code, mine.invoice_number",
        &[&document_id],
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| InvoiceConflict {
            invoice_code: r.get(0),
            invoice_number: r.get(1),
            other_document_id: r.get(2),
        })
        .collect())
}
