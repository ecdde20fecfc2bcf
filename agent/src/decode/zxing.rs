//! DataMatrix and PDF417 through zxing-cpp, for full-scan page metadata.
//!
//! rxing's ports of these two readers miss distorted and multi-region
//! DataMatrix symbols and switch character sets wrongly in some PDF417 ECI
//! texts; zxing-cpp reads them (docs/PERFORMANCE.md, "Public decoder test
//! images"). It runs once per page with its own rotation, inversion and
//! downscale tries, so it needs no turned copies from us.

use zxingcpp::{BarcodeFormat, BarcodeReader, ImageFormat, ImageView, TextMode};

use super::Symbology;
use super::collector::Collector;
use super::raster::View;
use imc_pages::guard::guarded;

/// Reads every DataMatrix and PDF417 symbol on `view` into `sink`.
pub(super) fn scan(view: View<'_>, sink: &mut Collector<'_>) {
    for (symbology, text) in guarded(|| read(view)).unwrap_or_default() {
        // Neither reader reports a reliable corner order: orientation 0 (see `FoundBarcode`).
        sink.add(symbology, text, 0);
    }
}

fn read(view: View<'_>) -> Vec<(Symbology, String)> {
    let Ok(image) = ImageView::from_slice(view.data, view.width, view.height, ImageFormat::Lum)
    else {
        return Vec::new();
    };
    let reader = BarcodeReader::new()
        .formats([BarcodeFormat::DataMatrix, BarcodeFormat::PDF417])
        // The text as encoded, like rxing's results (not GS1 "(01)" brackets).
        .text_mode(TextMode::Plain)
        .try_harder(true)
        .try_rotate(true)
        .try_invert(true)
        .try_downscale(true);
    let Ok(barcodes) = reader.from(image) else {
        return Vec::new();
    };
    barcodes
        .iter()
        .filter(|b| b.is_valid())
        .filter_map(|b| {
            // The family, so Compact or Micro PDF417 count as PDF417.
            let symbology = match b.symbology() {
                BarcodeFormat::DataMatrix => Symbology::DataMatrix,
                BarcodeFormat::PDF417 => Symbology::Pdf417,
                _ => return None,
            };
            Some((symbology, b.text()))
        })
        .collect()
}
