//! Barcode encoding via rxing, painted at whole-pixel module sizes.
//!
//! rxing's writers can scale for us, but they pick the module size from a
//! requested pixel width and centre the symbol; we want an exact integer
//! module width and our own quiet zones, so we ask for a 1 px/module matrix
//! with no margin and paint it ourselves.

use image::GrayImage;
use rxing::{BarcodeFormat, EncodeHints, MultiFormatWriter, Writer, common::BitMatrix};

use super::{CoverError, fill_rect};

fn encode(code: &str, format: BarcodeFormat, ec: Option<&str>) -> Result<BitMatrix, CoverError> {
    let hints = EncodeHints {
        // Quiet zones are added by the layout, sized in modules.
        Margin: Some("0".to_owned()),
        ErrorCorrection: ec.map(str::to_owned),
        ..Default::default()
    };
    // Width/height 0: the writers then fall back to one pixel per module.
    MultiFormatWriter
        .encode_with_hints(code, &format, 0, 0, &hints)
        .map_err(|e| CoverError::Barcode(format!("{format:?}: {e}")))
}

/// Code 128 bars as one bool per module (true = bar), start/stop included.
pub(super) fn code128_modules(code: &str) -> Result<Vec<bool>, CoverError> {
    let m = encode(code, BarcodeFormat::CODE_128, None)?;
    Ok((0..m.width()).map(|x| m.get(x, 0)).collect())
}

/// QR symbol without quiet zone. Level Q (25 % recovery) rather than the
/// minimum M: covers get stapled, stamped and folded, and for short cover
/// codes Q still fits the smallest symbol version.
pub(super) fn qr_matrix(code: &str) -> Result<BitMatrix, CoverError> {
    encode(code, BarcodeFormat::QR_CODE, Some("Q"))
}

/// Paints 1-D modules from (x, y); runs of bars become one rectangle each.
pub(super) fn paint_bars(
    img: &mut GrayImage,
    modules: &[bool],
    x: u32,
    y: u32,
    module: u32,
    h: u32,
) {
    let mut i = 0;
    while i < modules.len() {
        if !modules[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < modules.len() && modules[i] {
            i += 1;
        }
        let run = (i - start) as u32;
        fill_rect(img, x + start as u32 * module, y, run * module, h, 0);
    }
}

/// Paints a 2-D matrix from (x, y) with square modules of `module` px.
pub(super) fn paint_matrix(img: &mut GrayImage, m: &BitMatrix, x: u32, y: u32, module: u32) {
    for my in 0..m.height() {
        for mx in 0..m.width() {
            if m.get(mx, my) {
                fill_rect(img, x + mx * module, y + my * module, module, module, 0);
            }
        }
    }
}
