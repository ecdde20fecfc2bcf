//! The desk's copy of the documents its clerk may be scanning (from the
//! server's `/agent/documents`), so the console names a cover even while
//! the server is away. Each refresh marks what the server listed; a
//! document it no longer lists (matched since) is kept for a week, so the
//! packets scanned for it stay named.

use super::*;
use imc_shared::api::DeskDocument;

/// Meta key: when the cached list was last fetched (RFC 3339).
pub const FETCHED_KEY: &str = "desk_documents_fetched";

/// How long a document the server stopped listing is kept.
const KEEP_UNLISTED: chrono::Duration = chrono::Duration::days(7);

/// A cached document, as the server described it.
pub type CachedDocument = DeskDocument;

impl Queue {
    /// Records the server's latest list, in one transaction.
    pub fn replace_desk_documents(&self, documents: &[DeskDocument]) -> QueueResult<()> {
        let at = now();
        let forget_before = (chrono::Utc::now() - KEEP_UNLISTED)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.tx(|tx| {
            tx.execute("UPDATE desk_documents SET listed = 0", [])?;
            let mut upsert = tx.prepare_cached(
                "INSERT INTO desk_documents (cover_code, body, listed, fetched_at) VALUES (?1, ?2, 1, ?3) \
                 ON CONFLICT (cover_code) DO UPDATE SET body = ?2, listed = 1, fetched_at = ?3",
            )?;
            for doc in documents {
                let body = serde_json::to_string(doc)
                    .map_err(|e| QueueError::Corrupt(format!("document {}: {e}", doc.doc_no)))?;
                upsert.execute(params![doc.cover_code, body, at])?;
            }
            tx.execute(
                "DELETE FROM desk_documents WHERE listed = 0 AND fetched_at < ?1",
                [&forget_before],
            )?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![FETCHED_KEY, at],
            )?;
            Ok(())
        })
    }

    /// The cached documents with these cover codes (unknown ones left out).
    pub fn desk_documents_by_cover(&self, codes: &[&str]) -> QueueResult<Vec<DeskDocument>> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT body FROM desk_documents WHERE cover_code = ?1")?;
            let mut found = Vec::new();
            for code in codes {
                let body: Option<String> = stmt.query_row([code], |r| r.get(0)).optional()?;
                if let Some(body) = body {
                    found.push(parse(&body)?);
                }
            }
            Ok(found)
        })
    }

    /// The documents the server listed last (awaiting paper or a rescan).
    pub fn desk_documents(&self) -> QueueResult<Vec<DeskDocument>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT body FROM desk_documents WHERE listed = 1 ORDER BY fetched_at DESC, rowid",
            )?;
            let bodies = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            bodies.iter().map(|b| parse(b)).collect()
        })
    }
}

fn parse(body: &str) -> QueueResult<DeskDocument> {
    serde_json::from_str(body).map_err(|e| QueueError::Corrupt(format!("cached document: {e}")))
}
