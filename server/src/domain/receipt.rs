//! The receipt of images: when pages join a document, the audit trail
//! records which bytes arrived (page number and SHA-256), so that an archive
//! package can later prove that each image is the one received, from the
//! chained audit rows alone.

/// The audit action of a receipt row.
pub const RECEIVE_ACTION: &str = "images.receive";

/// One received page: its page number on the document and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub page_no: u32,
    pub sha256: String,
}

/// The reason text of a receipt row: `page sha256` pairs, `; `-separated,
/// in page order (`3 ab12…; 4 cd34…`).
pub fn receipt_text(pages: &[Received]) -> String {
    pages
        .iter()
        .map(|p| format!("{} {}", p.page_no, p.sha256))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The pages a receipt row's reason names; `None` when it is not a receipt.
pub fn parse_receipt(text: &str) -> Option<Vec<Received>> {
    text.split("; ")
        .map(|pair| {
            let (page_no, sha256) = pair.split_once(' ')?;
            let sha256_ok = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
            sha256_ok.then_some(())?;
            Some(Received {
                page_no: page_no.parse().ok()?,
                sha256: sha256.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_reads_back_as_written() {
        let pages = vec![
            Received {
                page_no: 3,
                sha256: "a".repeat(64),
            },
            Received {
                page_no: 4,
                sha256: "0b".repeat(32),
            },
        ];
        let text = receipt_text(&pages);
        assert_eq!(parse_receipt(&text), Some(pages));
    }

    #[test]
    fn other_reasons_are_not_receipts() {
        for text in ["pushed by erp", "", "3 xyz", "x abc"] {
            assert_eq!(parse_receipt(text), None, "{text:?}");
        }
    }
}
