//! 2D symbols (QR, DataMatrix, PDF417) through rxing's single-symbol readers.
//!
//! One binarized bitmap is shared by all readers of a pass: the black matrix is
//! the expensive part and `BinaryBitmap` caches it.

use rxing::common::{GlobalHistogramBinarizer, HybridBinarizer};
use rxing::datamatrix::DataMatrixReader;
use rxing::pdf417::PDF417Reader;
use rxing::qrcode::QRCodeReader;
use rxing::qrcode::cpp_port::QrReader;
use rxing::{Binarizer, BinaryBitmap, DecodeHints, Exceptions, Luma8Source, RXingResult, Reader};

use super::Symbology;
use super::collector::Collector;
use super::dm_grid;
use super::orient;
use super::raster::View;
use imc_pages::guard::guarded;

#[derive(Clone, Copy, Debug)]
pub(super) enum Binarization {
    /// Local 8x8-block thresholds: the right default for paper with shading.
    Hybrid,
    /// One global threshold: better for small, crisp crops where blocks see no contrast.
    Histogram,
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MatrixSpec {
    /// zxing's classic QR detector.
    pub qr: bool,
    /// The zxing-cpp port of the QR detector: finds different (often skewed) symbols.
    pub qr_alt: bool,
    pub datamatrix: bool,
    pub pdf417: bool,
    pub try_harder: bool,
    /// Treat the whole image as one symbol with a quiet zone (crops, labels).
    pub pure: bool,
}

/// Runs the enabled readers on `view` (an upright, unmirrored page image: 2D
/// detectors are rotation invariant, so no turned copies are needed).
/// Returns true when a QR reader located a symbol but could not decode it.
pub(super) fn scan(
    view: View<'_>,
    binarization: Binarization,
    spec: &MatrixSpec,
    sink: &mut Collector<'_>,
) -> bool {
    let Ok(source) = Luma8Source::new_with_slice(view.data, view.width as u32, view.height as u32)
    else {
        return false;
    };
    match binarization {
        Binarization::Hybrid => run(BinaryBitmap::new(HybridBinarizer::new(source)), spec, sink),
        Binarization::Histogram => run(
            BinaryBitmap::new(GlobalHistogramBinarizer::new(source)),
            spec,
            sink,
        ),
    }
}

fn run<B: Binarizer>(
    mut bitmap: BinaryBitmap<B>,
    spec: &MatrixSpec,
    sink: &mut Collector<'_>,
) -> bool {
    let hints = DecodeHints {
        TryHarder: Some(spec.try_harder),
        PureBarcode: Some(spec.pure),
        ..DecodeHints::default()
    };
    // Binarize once, guarded: the hybrid binarizer is the step most exposed to odd sizes.
    if guarded(|| {
        bitmap.get_black_matrix();
    })
    .is_none()
    {
        return false;
    }
    let mut located = false;
    if spec.qr {
        match attempt(&mut QRCodeReader, &mut bitmap, &hints) {
            Attempt::Read(r) => {
                // Classic detector order: bottom-left, top-left, top-right.
                let turn = corner_turn(&r, 1, 2);
                sink.add(Symbology::Qr, r.getText().to_owned(), turn);
            }
            Attempt::Located => located = true,
            Attempt::Nothing => {}
        }
    }
    if spec.qr_alt {
        match attempt(&mut QrReader, &mut bitmap, &hints) {
            Attempt::Read(r) => {
                // zxing-cpp quadrilateral order: top-left, top-right, bottom-right, bottom-left.
                let turn = corner_turn(&r, 0, 1);
                sink.add(Symbology::Qr, r.getText().to_owned(), turn);
            }
            Attempt::Located => located = true,
            Attempt::Nothing => {}
        }
    }
    if spec.datamatrix
        && let Attempt::Read(r) = attempt(&mut DataMatrixReader, &mut bitmap, &hints)
    {
        sink.add(Symbology::DataMatrix, r.getText().to_owned(), 0);
    }
    if spec.pdf417
        && let Attempt::Read(r) = attempt(&mut PDF417Reader::new(), &mut bitmap, &hints)
    {
        sink.add(Symbology::Pdf417, r.getText().to_owned(), 0);
    }
    located
}

enum Attempt {
    Read(RXingResult),
    /// The detector found a symbol but sampling or error correction failed.
    Located,
    Nothing,
}

fn attempt<R: Reader, B: Binarizer>(
    reader: &mut R,
    bitmap: &mut BinaryBitmap<B>,
    hints: &DecodeHints,
) -> Attempt {
    match guarded(|| reader.decode_with_hints(bitmap, hints)) {
        Some(Ok(r)) if !r.getText().is_empty() => Attempt::Read(r),
        Some(Err(Exceptions::ChecksumException(_) | Exceptions::FormatException(_))) => {
            Attempt::Located
        }
        _ => Attempt::Nothing,
    }
}

fn corner_turn(r: &RXingResult, top_left: usize, top_right: usize) -> u16 {
    let pts = r.getPoints();
    match (pts.get(top_left), pts.get(top_right)) {
        (Some(&a), Some(&b)) => orient::from_top_edge(a, b),
        _ => 0,
    }
}

/// DataMatrix sampled on a grid fitted to a symbol that fills the image
/// (see `dm_grid`): for crops and labels rxing's detectors do not find.
pub(super) fn fitted_datamatrix(
    view: View<'_>,
    binarization: Binarization,
    sink: &mut Collector<'_>,
) {
    let Ok(source) = Luma8Source::new_with_slice(view.data, view.width as u32, view.height as u32)
    else {
        return;
    };
    let text = match binarization {
        Binarization::Hybrid => fitted(BinaryBitmap::new(HybridBinarizer::new(source))),
        Binarization::Histogram => fitted(BinaryBitmap::new(GlobalHistogramBinarizer::new(source))),
    };
    if let Some(text) = text {
        sink.add(Symbology::DataMatrix, text, 0);
    }
}

fn fitted<B: Binarizer>(bitmap: BinaryBitmap<B>) -> Option<String> {
    guarded(|| dm_grid::read(bitmap.get_black_matrix())).flatten()
}
