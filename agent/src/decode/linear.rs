//! 1D (linear) symbols: our own row loop over rxing's single-row decoders.
//!
//! rxing's `OneDReader::decode` looks at only 15 rows around the image middle
//! unless TRY_HARDER is set, and a cover code sits at the top of the page. So we
//! drive `decode_row` ourselves: rows are visited coarse-to-fine (a tall symbol
//! anywhere on the page is hit within the first few dozen rows), each binarized
//! row is tried forwards and reversed (180 degrees) by every enabled reader.
//! Vertical symbols (pages at 90/270) are read along columns.

use std::collections::HashMap;
use std::time::Instant;

use rxing::common::{BitArray, BitMatrix, GlobalHistogramBinarizer, HybridBinarizer};
use rxing::oned::{Code39Reader, Code128Reader, EAN13Reader, OneDReader};
use rxing::{Binarizer, DecodeHints, Exceptions, Luma8Source};

use super::Symbology;
use super::code32;
use super::collector::Collector;
use super::raster::{self, Plane, View};
use imc_pages::guard::guarded;

/// How a grey row becomes bars and spaces.
#[derive(Clone, Copy, Debug)]
pub(super) enum RowBinarizer {
    /// Per-row histogram threshold plus a small sharpening filter: fast, the zxing default.
    Histogram,
    /// Rows of the 2D hybrid (local block) threshold: survives shading and grey washes.
    Local,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct LinearSpec {
    pub code128: bool,
    pub code39: bool,
    pub ean13: bool,
    /// Distance between scanned rows (pixels of the image passed in).
    pub row_step: usize,
    pub binarizer: RowBinarizer,
    /// Stop as soon as a cover code is known (cover-only mode).
    pub stop_on_cover: bool,
}

/// Which way the caller prepared the image; turns a row direction into a page orientation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    Rows,
    Columns,
}

struct Readers {
    code128: Option<Code128Reader>,
    code39_ext: Option<Code39Reader>,
    code39: Option<Code39Reader>,
    ean13: Option<EAN13Reader>,
    hints: DecodeHints,
}

impl Readers {
    fn new(spec: &LinearSpec) -> Self {
        Self {
            code128: spec.code128.then_some(Code128Reader),
            // Full-ASCII ("extended") Code 39 first: it is what printers emit for
            // lower case; on plain data with no shift pairs both readers agree.
            code39_ext: spec
                .code39
                .then(|| Code39Reader::with_all_config(false, true)),
            code39: spec.code39.then(Code39Reader::new),
            ean13: spec.ean13.then(EAN13Reader::default),
            hints: DecodeHints::default(),
        }
    }

    /// Every symbology decodable from this binarized row, in reader order.
    /// Returns true if Code 128 read a whole start-to-stop symbol whose checksum
    /// failed: a symbol is there, just not readable at this setting. (Format
    /// errors are not counted: text edges trigger them all the time.)
    fn decode(&mut self, y: u32, row: &BitArray, out: &mut Vec<(Symbology, String)>) -> bool {
        let hints = &self.hints;
        let mut damaged = false;
        if let Some(r) = self.code128.as_mut() {
            match guarded(|| r.decode_row(y, row, hints)) {
                Some(Ok(res)) => out.push((Symbology::Code128, res.getText().to_owned())),
                Some(Err(Exceptions::ChecksumException(_))) => {
                    damaged = true;
                }
                _ => {}
            }
        }
        if let Some(r) = self.code39_ext.as_mut() {
            let ext = guarded(|| r.decode_row(y, row, hints)).and_then(Result::ok);
            let res = match (ext, self.code39.as_mut()) {
                (Some(res), _) => Some(res),
                (None, Some(plain)) => {
                    guarded(|| plain.decode_row(y, row, hints)).and_then(Result::ok)
                }
                (None, None) => None,
            };
            if let Some(res) = res {
                let text = res.getText().to_owned();
                if let Some(pharmacode) = code32::from_code39(&text) {
                    out.push((Symbology::Code32, pharmacode));
                }
                out.push((Symbology::Code39, text));
            }
        }
        if let Some(r) = self.ean13.as_mut()
            && let Some(Ok(res)) = guarded(|| r.decode_row(y, row, hints))
        {
            out.push((Symbology::Ean13, res.getText().to_owned()));
        }
        damaged
    }
}

/// Row indices in coarse-to-fine order: every 2^k-th row first, then the gaps.
fn row_order(height: usize, step: usize) -> Vec<usize> {
    let step = step.max(1);
    let n = height.div_ceil(step);
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut stride = n.next_power_of_two().max(1);
    while stride >= 1 {
        // Offset by half a stride so the first rows sampled are not the page edge.
        let start = (stride / 2).min(n.saturating_sub(1));
        for i in (start..n).step_by(stride).chain((0..n).step_by(stride)) {
            if !seen[i] {
                seen[i] = true;
                order.push((i * step + step / 2).min(height - 1));
            }
        }
        stride /= 2;
    }
    order
}

/// Symbologies without a strong checksum need a second agreeing row before we
/// believe them; text and noise produce plausible Code 39 / EAN fragments.
fn rows_needed(symbology: Symbology) -> u32 {
    match symbology {
        Symbology::Code128 => 1,
        _ => 2,
    }
}

/// Scans `view` line by line in each of `layouts`; returns true when some
/// line looked like a damaged symbol (start pattern found, decode failed),
/// which is the cue for the caller to escalate.
/// Returns early at `deadline` or, if asked, once a cover is known.
pub(super) fn scan(
    view: View<'_>,
    layouts: &[Layout],
    spec: &LinearSpec,
    sink: &mut Collector<'_>,
    deadline: Instant,
) -> bool {
    let mut state = ScanState {
        readers: Readers::new(spec),
        hits: HashMap::new(),
        decoded: Vec::new(),
        damaged: false,
    };
    match spec.binarizer {
        RowBinarizer::Histogram => {
            for &layout in layouts {
                histogram_lines(view, layout, spec, &mut state, sink, deadline);
            }
        }
        RowBinarizer::Local => {
            // One local-threshold matrix serves both directions: its columns are
            // what a transposed image's rows would be.
            let Some(matrix) = local_matrix(view) else {
                return false;
            };
            for &layout in layouts {
                let extent = match layout {
                    Layout::Rows => view.height,
                    Layout::Columns => view.width,
                };
                for (n, line) in row_order(extent, spec.row_step).into_iter().enumerate() {
                    if n % 64 == 0 && Instant::now() >= deadline {
                        return state.damaged;
                    }
                    let bits = match layout {
                        Layout::Rows => matrix.getRow(line as u32),
                        Layout::Columns => matrix.getCol(line as u32),
                    };
                    if state.line(line, &bits, layout, spec, sink) {
                        return state.damaged;
                    }
                }
            }
        }
    }
    state.damaged
}

fn local_matrix(view: View<'_>) -> Option<BitMatrix> {
    let source =
        Luma8Source::new_with_slice(view.data, view.width as u32, view.height as u32).ok()?;
    let hybrid = HybridBinarizer::new(source);
    guarded(|| hybrid.get_black_matrix().ok().cloned()).flatten()
}

/// Per-line histogram thresholding. Columns are first gathered into a packed
/// image (only the sampled ones): far cheaper than transposing a whole page.
fn histogram_lines(
    view: View<'_>,
    layout: Layout,
    spec: &LinearSpec,
    state: &mut ScanState,
    sink: &mut Collector<'_>,
    deadline: Instant,
) {
    let (lines, packed) = match layout {
        Layout::Rows => (row_order(view.height, spec.row_step), None),
        Layout::Columns => {
            let cols = row_order(view.width, spec.row_step);
            let packed = raster::gather_columns(view, &cols);
            (cols, Some(packed))
        }
    };
    let source_view = packed.as_ref().map_or(view, Plane::view);
    let Ok(source) = Luma8Source::new_with_slice(
        source_view.data,
        source_view.width as u32,
        source_view.height as u32,
    ) else {
        return;
    };
    let binarizer = GlobalHistogramBinarizer::new(source);
    for (n, &line) in lines.iter().enumerate() {
        if n % 64 == 0 && Instant::now() >= deadline {
            return;
        }
        let source_row = if packed.is_some() { n } else { line };
        let Some(Ok(bits)) = guarded(|| binarizer.get_black_row(source_row)) else {
            // All-white or flat lines have no black point: nothing to read.
            continue;
        };
        if state.line(line, &bits, layout, spec, sink) {
            return;
        }
    }
}

struct ScanState {
    readers: Readers,
    hits: HashMap<(Symbology, String), u32>,
    decoded: Vec<(Symbology, String)>,
    damaged: bool,
}

impl ScanState {
    /// Tries one binarized line both ways; true means "stop scanning".
    fn line(
        &mut self,
        line: usize,
        bits: &BitArray,
        layout: Layout,
        spec: &LinearSpec,
        sink: &mut Collector<'_>,
    ) -> bool {
        for reversed in [false, true] {
            let flipped;
            let bits = if reversed {
                let mut r = bits.clone();
                r.reverse();
                flipped = r;
                &flipped
            } else {
                bits
            };
            self.decoded.clear();
            self.damaged |= self.readers.decode(line as u32, bits, &mut self.decoded);
            for (symbology, text) in self.decoded.drain(..) {
                let orientation = match (layout, reversed) {
                    (Layout::Rows, false) => 0,
                    (Layout::Rows, true) => 180,
                    // Left-to-right in the transpose is top-to-bottom on the page:
                    // the page must turn 270 clockwise to make the symbol upright.
                    (Layout::Columns, false) => 270,
                    (Layout::Columns, true) => 90,
                };
                let count = self.hits.entry((symbology, text.clone())).or_insert(0);
                *count += 1;
                if *count >= rows_needed(symbology) {
                    sink.add(symbology, text, orientation);
                }
            }
            if spec.stop_on_cover && sink.has_cover() {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::row_order;

    #[test]
    fn row_order_visits_every_row_once() {
        for (h, step) in [(1, 1), (7, 2), (100, 8), (1754, 8), (33, 40)] {
            let mut rows = row_order(h, step);
            let n = rows.len();
            rows.sort_unstable();
            rows.dedup();
            assert_eq!(rows.len(), n, "h={h} step={step}");
            assert_eq!(n, h.div_ceil(step));
            assert!(rows.iter().all(|&y| y < h));
        }
    }
}
