//! Barcode encoding, painted at whole-pixel module sizes: QR by `qrcode`,
//! Code 128 by `barcoders`. The server only writes barcodes; the readers
//! live at the desk, so the server links no decoder.
//!
//! Both encoders give one value per module and no margin: we want an exact
//! integer module width and our own quiet zones, so we paint them ourselves.

use image::GrayImage;
use qrcode::{EcLevel, QrCode};

use super::{CoverError, fill_rect};

/// A 2-D symbol, one bool per module (true = dark), without quiet zone.
pub(super) struct Matrix {
    width: u32,
    dark: Vec<bool>,
}

impl Matrix {
    pub(super) fn width(&self) -> u32 {
        self.width
    }

    fn get(&self, x: u32, y: u32) -> bool {
        self.dark[(y * self.width + x) as usize]
    }
}

/// Code 128 bars as one bool per module (true = bar), start/stop included.
pub(super) fn code128_modules(code: &str) -> Result<Vec<bool>, CoverError> {
    let symbol = barcoders::sym::code128::Code128::new(code128_text(code)?)
        .map_err(|e| CoverError::Barcode(format!("Code 128 of {code:?}: {e}")))?;
    Ok(symbol.encode().into_iter().map(|m| m == 1).collect())
}

/// `code` in barcoders' notation: set B (`Ɓ`), switching to set C (`Ć`,
/// two digits a module group) for runs of four or more digits, the usual
/// choice that keeps digit-heavy codes narrow.
fn code128_text(code: &str) -> Result<String, CoverError> {
    if code.is_empty() || !code.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(CoverError::Barcode(format!(
            "cover code {code:?}: Code 128 prints printable ASCII only"
        )));
    }
    let mut text = String::with_capacity(code.len() + 4);
    let mut current_set = None;
    let mut rest = code;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (set, take) = if digits >= 4 {
            ('Ć', digits - digits % 2)
        } else {
            ('Ɓ', 1)
        };
        if current_set != Some(set) {
            text.push(set);
            current_set = Some(set);
        }
        text.push_str(&rest[..take]);
        rest = &rest[take..];
    }
    Ok(text)
}

/// QR symbol without quiet zone. Level Q (25 % recovery) rather than the
/// minimum M: covers get stapled, stamped and folded, and for short cover
/// codes Q still fits the smallest symbol version.
pub(super) fn qr_matrix(text: &str) -> Result<Matrix, CoverError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::Q)
        .map_err(|e| CoverError::Barcode(format!("QR of {text:?}: {e}")))?;
    let width = u32::try_from(code.width())
        .map_err(|_| CoverError::Barcode(format!("QR of {text:?} is too large")))?;
    let dark = code
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    Ok(Matrix { width, dark })
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
pub(super) fn paint_matrix(img: &mut GrayImage, m: &Matrix, x: u32, y: u32, module: u32) {
    for my in 0..m.width() {
        for mx in 0..m.width() {
            if m.get(mx, my) {
                fill_rect(img, x + mx * module, y + my * module, module, module, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_128_uses_set_c_for_runs_of_four_digits_or_more() {
        let cases = [
            ("IMCW15SN503SX", "ƁIMCW15SN503SX"),
            ("KD-20240101", "ƁKD-Ć20240101"),
            ("12345", "Ć1234Ɓ5"),
            ("AB123", "ƁAB123"),
            ("X1234Y", "ƁXĆ1234ƁY"),
        ];
        for (code, text) in cases {
            assert_eq!(code128_text(code).unwrap(), text, "{code}");
        }
        // Set C halves the width of a digit run: 11 modules a pair, not a digit.
        let digits = code128_modules("ABCD12345678").unwrap().len();
        let letters = code128_modules("ABCDEFGHIJKL").unwrap().len();
        assert_eq!(letters - digits, 4 * 11 - 11);
    }

    #[test]
    fn code_128_refuses_what_it_cannot_print() {
        for code in ["", "发票", "TAB\there"] {
            assert!(code128_text(code).is_err(), "{code:?}");
        }
    }

    #[test]
    fn the_qr_has_no_quiet_zone_and_a_finder_in_its_corner() {
        let m = qr_matrix("IMCW15SN503SX").unwrap();
        assert_eq!(
            m.width(),
            21,
            "the smallest version fits a cover code at level Q"
        );
        // The top-left finder: a dark 7x7 ring starting at (0, 0).
        assert!((0..7).all(|i| m.get(i, 0) && m.get(0, i) && m.get(6, i)));
        assert!(!m.get(1, 1));
    }
}
