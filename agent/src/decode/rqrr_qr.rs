//! rqrr as an independent second QR reader.
//!
//! Its capstone (finder) detector is flood-fill based rather than zxing's
//! run-length scan, so it reads some blurred, low-contrast or damaged symbols
//! that rxing misses, and it returns every symbol on the page.

use super::Symbology;
use super::collector::Collector;
use super::raster::View;
use imc_pages::guard::guarded;

/// Decodes every QR grid rqrr finds in `view`.
pub(super) fn scan(view: View<'_>, sink: &mut Collector<'_>) {
    let found = guarded(|| {
        let mut prepared =
            rqrr::PreparedImage::prepare_from_greyscale(view.width, view.height, |x, y| {
                view.data[y * view.width + x]
            });
        prepared
            .detect_grids()
            .into_iter()
            .filter_map(|grid| {
                let (_, text) = grid.decode().ok()?;
                // bounds: top-left, top-right, bottom-right, bottom-left.
                let [tl, tr, _, _] = grid.bounds;
                let turn = super::orient::from_top_edge(
                    rxing::Point::new(tl.x as f32, tl.y as f32),
                    rxing::Point::new(tr.x as f32, tr.y as f32),
                );
                Some((text, turn))
            })
            .collect::<Vec<_>>()
    });
    for (text, turn) in found.unwrap_or_default() {
        sink.add(Symbology::Qr, text, turn);
    }
}
