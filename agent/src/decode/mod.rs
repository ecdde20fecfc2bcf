//! Barcode finding for scanned document pages.
//!
//! The scan desk needs one answer per page fast: "is this a cover sheet, and
//! which code?" Cover codes are printed twice (Code 128 and QR), so reading
//! either is enough, and most pages carry no barcode at all. The search is
//! therefore staged, cheapest first, and stops once a cover is known:
//!
//! 1. **Cheap pass** on a working copy box-downscaled to about 1600 px on the
//!    long side (a 300 dpi A4 page is halved, 200 dpi and smaller stay as they
//!    are). Code 128 is read by our own coarse-to-fine row loop around rxing's
//!    single-row decoder, forwards and reversed (0 and 180 degrees) on the
//!    image and on its transpose (90 and 270). QR goes through rxing's classic
//!    QR reader on a hybrid-binarized bitmap; QR is rotation invariant.
//! 2. **Escalation**, only while no cover is known, and only when a detector
//!    *located* a symbol it could not decode (QR format/checksum error, Code
//!    128 checksum error) or in full-scan mode, because most pages carry no
//!    barcode and would pay it for nothing: Code 128 on sampled
//!    full-resolution rows and columns (thin bars that averaging blurred away,
//!    about 10 ms), then the zxing-cpp-port QR
//!    detector and rqrr as independent QR finders, TRY_HARDER with the
//!    global-histogram binarizer, locally thresholded lines for shaded 1D.
//! 3. With [`DecodeOptions::full_scan`], every pass also runs Code 39, EAN-13,
//!    DataMatrix and PDF417 so page metadata (e.g. the QR on a VAT invoice) is
//!    reported. DataMatrix and PDF417 are read first by zxing-cpp, whose
//!    readers beat rxing's on distorted prints and ECI texts; rxing's look for
//!    them only when zxing-cpp found none. When nothing at all was found, the
//!    last stage adds inverted images, pure-symbol mode and quarter turns.
//!
//! rxing's multi-barcode readers cost 0.5-5 s per page and are never used.
//! Every third-party call is wrapped in `catch_unwind`, and escalation stops at
//! a time budget, so a hostile page costs bounded time and never panics.

mod code32;
mod collector;
mod dm_grid;
mod linear;
mod matrix;
mod orient;
mod pipeline;
mod raster;
mod rqrr_qr;
mod zxing;

#[cfg(test)]
pub(crate) mod synth;
#[cfg(test)]
mod tests;

/// Formats we report. Serialisable names: "code128", "code39", "code32", "qr", "datamatrix", "pdf417", "ean13", "other".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symbology {
    Code128,
    Code39,
    /// Italian pharmacode: a Code 39 symbol whose text is a valid Code 32;
    /// reported besides (not instead of) its raw Code 39 reading.
    Code32,
    Qr,
    DataMatrix,
    Pdf417,
    Ean13,
    Other,
}

impl Symbology {
    pub fn as_str(&self) -> &'static str {
        match self {
            Symbology::Code128 => "code128",
            Symbology::Code39 => "code39",
            Symbology::Code32 => "code32",
            Symbology::Qr => "qr",
            Symbology::DataMatrix => "datamatrix",
            Symbology::Pdf417 => "pdf417",
            Symbology::Ean13 => "ean13",
            Symbology::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FoundBarcode {
    pub symbology: Symbology,
    pub text: String,
    /// Clockwise rotation of the page (0, 90, 180, 270) at which it was read:
    /// turning the page clockwise by this much makes the symbol upright.
    /// DataMatrix and PDF417 always report 0 (their readers give no reliable corner order).
    pub orientation: u16,
}

pub struct DecodeOptions {
    /// Called on each decoded text; true means "this is a cover code" (the caller matches a regex).
    /// When a cover is found the search can stop early for the cover part (still report other codes found so far).
    pub is_cover: Box<dyn Fn(&str) -> bool + Send + Sync>,
    /// Also search the full set of symbologies for non-cover barcodes (page metadata, e.g. the QR on a VAT invoice).
    pub full_scan: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageBarcodes {
    pub cover_code: Option<String>,
    pub barcodes: Vec<FoundBarcode>,
}

/// Never panics (guard rqrr and rxing with catch_unwind where they might), never takes unbounded time.
pub fn scan_page(img: &image::GrayImage, opts: &DecodeOptions) -> PageBarcodes {
    pipeline::run(img, opts)
}
