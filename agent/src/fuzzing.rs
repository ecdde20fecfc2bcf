//! Fuzz target bodies, shared by `fuzz/` (cargo-fuzz) and the regression
//! tests that replay the committed inputs under `fuzz/regressions/`.
//! Each takes arbitrary bytes and panics only when an invariant breaks.

use crate::pages::{self, PageError};

/// VAT invoice QR text: parsing never panics; what parses has the shape the
/// duplicate-invoice index relies on.
pub fn vat_qr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(invoice) = crate::vat::parse(text) {
        assert!(!invoice.invoice_number.is_empty(), "{invoice:?}");
        assert!(
            invoice.invoice_number.bytes().all(|b| b.is_ascii_digit()),
            "{invoice:?}"
        );
        assert_eq!(invoice.date.len(), 10, "{invoice:?}");
    }
}

/// The page extractor (TIFF, PDF, single images): any bytes give pages or an
/// error, never a panic, and each page is within the limits.
pub fn page_extractor(data: &[u8]) {
    match pages::extract(data.to_vec()) {
        Ok(pages) => {
            for page in pages {
                assert!(!page.bytes.is_empty(), "an extracted page has bytes");
                let (width, height) = page.gray.dimensions();
                assert!(
                    width <= pages::MAX_SIDE && height <= pages::MAX_SIDE,
                    "page of {width}x{height} beyond the limit"
                );
            }
        }
        Err(PageError::Empty) => assert!(data.is_empty()),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imc_shared::fuzzing::regression_inputs;

    #[test]
    fn vat_qr_regressions() {
        for (path, bytes) in regression_inputs("vat_qr") {
            eprintln!("{}", path.display());
            vat_qr(&bytes);
        }
    }

    #[test]
    fn page_extractor_regressions() {
        for (path, bytes) in regression_inputs("page_extractor") {
            eprintln!("{}", path.display());
            page_extractor(&bytes);
        }
    }
}
