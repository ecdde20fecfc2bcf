//! Stage ordering and stop rules (see the module docs for the why).

use std::time::{Duration, Instant};

use super::collector::Collector;
use super::linear::{self, Layout, LinearSpec, RowBinarizer};
use super::matrix::{self, Binarization, MatrixSpec};
use super::raster::{self, Plane, View};
use super::{DecodeOptions, PageBarcodes, Symbology, rqrr_qr, zxing};

/// Long side of the cheap working copy. 300 dpi A4 (3508) halves to 1754;
/// 200 dpi (2339) is left alone because halving would make 4-dot bars 1.3 px.
const WORK_LONG_SIDE: usize = 1600;
/// Above this the page is reduced before anything else: nothing printed on
/// paper needs more, and it bounds memory and time for absurd inputs.
const MAX_LONG_SIDE: usize = 8000;
/// Images up to this long side are also tried at double size as a last resort.
const SMALL_LONG_SIDE: usize = 1000;
/// Wall-clock limits checked between passes (a single pass can overrun by its own cost).
const COVER_BUDGET: Duration = Duration::from_millis(1500);
const FULL_BUDGET: Duration = Duration::from_millis(4000);

struct Ctx<'o, 'c> {
    opts: &'o DecodeOptions,
    sink: Collector<'c>,
    deadline: Instant,
    /// Some detector located a symbol it could not decode: worth trying harder.
    damaged: bool,
}

impl Ctx<'_, '_> {
    fn cover_done(&self) -> bool {
        self.sink.has_cover() || Instant::now() >= self.deadline
    }
    fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
    fn cover_qr_unread(&self) -> bool {
        self.sink.has_cover() && !self.sink.has(Symbology::Qr) && !self.expired()
    }
    /// Extra symbologies are chased hard only when the page yielded nothing yet.
    fn want_more_formats(&self) -> bool {
        self.opts.full_scan && self.sink.is_empty() && !self.expired()
    }
    /// Whether an escalation step should run: a cover is still missing, or a
    /// full scan has found nothing at all.
    fn go(&self) -> bool {
        !self.cover_done() || self.want_more_formats()
    }
    fn linear(&self, all_formats: bool, step: usize, rows: RowBinarizer) -> LinearSpec {
        LinearSpec {
            code128: true,
            code39: all_formats,
            ean13: all_formats,
            row_step: step,
            binarizer: rows,
            stop_on_cover: !self.opts.full_scan,
        }
    }
}

const BOTH: [Layout; 2] = [Layout::Rows, Layout::Columns];

pub(super) fn run(img: &image::GrayImage, opts: &DecodeOptions) -> PageBarcodes {
    let Some(original) = View::of(img) else {
        return PageBarcodes::default();
    };
    let start = Instant::now();
    let budget = if opts.full_scan {
        FULL_BUDGET
    } else {
        COVER_BUDGET
    };
    let mut ctx = Ctx {
        opts,
        sink: Collector::new(&*opts.is_cover),
        deadline: start + budget,
        damaged: false,
    };

    let long = original.width.max(original.height);
    let capped =
        (long > MAX_LONG_SIDE).then(|| raster::downscale(original, long.div_ceil(MAX_LONG_SIDE)));
    let full = capped.as_ref().map_or(original, Plane::view);
    let factor = (full.width.max(full.height) / WORK_LONG_SIDE).max(1);
    let reduced = (factor > 1).then(|| raster::downscale(full, factor));
    let work = reduced.as_ref().map_or(full, Plane::view);

    if opts.full_scan {
        zxing::scan(full, &mut ctx.sink);
    }
    cheap_pass(&mut ctx, work);
    cover_qr_pass(&mut ctx, full, work, factor > 1);
    if ctx.go() {
        escalate(&mut ctx, full, work, factor > 1);
    }
    let (cover_code, barcodes) = ctx.sink.finish();
    PageBarcodes {
        cover_code,
        barcodes,
    }
}

/// Lines to skip between scan lines: 8 px is 1.4 mm on a 150-dpi-equivalent
/// working copy; fewer on small crops so short symbols still get several lines.
fn row_step(extent: usize) -> usize {
    (extent / 48).clamp(1, 8)
}

fn cheap_pass(ctx: &mut Ctx<'_, '_>, work: View<'_>) {
    let full = ctx.opts.full_scan;
    let spec = ctx.linear(full, row_step(work.height), RowBinarizer::Histogram);
    ctx.damaged |= linear::scan(work, &[Layout::Rows], &spec, &mut ctx.sink, ctx.deadline);
    // A full scan wants every symbology even when the cover is already known.
    // A cover read from its Code 128 gets the one QR pass too: an IMC cover's
    // QR carries the declared attachment count (cover pages only, ~10 ms).
    if !ctx.go() && !full && !ctx.cover_qr_unread() {
        return;
    }
    // Formats zxing-cpp already read are not read again: rxing's PDF417 text
    // decoder can give a second, wrong text for the same symbol.
    let m = MatrixSpec {
        qr: true,
        datamatrix: full && !ctx.sink.has(Symbology::DataMatrix),
        pdf417: full && !ctx.sink.has(Symbology::Pdf417),
        ..MatrixSpec::default()
    };
    ctx.damaged |= matrix::scan(work, Binarization::Hybrid, &m, &mut ctx.sink);
    // A full scan wants every symbology even when the cover is already known.
    if !ctx.go() && !full {
        return;
    }
    ctx.damaged |= linear::scan(work, &[Layout::Columns], &spec, &mut ctx.sink, ctx.deadline);
}

/// A cover read from its Code 128 whose QR the cheap pass missed: the QR
/// carries the signed declared count, so it is worth a second look at full
/// resolution, then with an independent detector (cover pages only; about
/// one clean signed cover in forty needs it).
fn cover_qr_pass(ctx: &mut Ctx<'_, '_>, full: View<'_>, work: View<'_>, reduced: bool) {
    if reduced && ctx.cover_qr_unread() {
        let m = MatrixSpec {
            qr: true,
            ..MatrixSpec::default()
        };
        matrix::scan(full, Binarization::Hybrid, &m, &mut ctx.sink);
    }
    if ctx.cover_qr_unread() {
        rqrr_qr::scan(work, &mut ctx.sink);
    }
}

fn escalate(ctx: &mut Ctx<'_, '_>, full: View<'_>, work: View<'_>, reduced: bool) {
    // 1. Full resolution 1D: the reduced copy averages 1-2 dot bars into grey.
    //    In cover mode only when a detector located a symbol it could not read:
    //    cover sheets' bars and QR modules survive halving, and the ~10 ms this
    //    costs would otherwise be paid by every page without a barcode.
    if reduced && ctx.go() && (ctx.damaged || ctx.opts.full_scan) {
        let more = ctx.want_more_formats();
        // 12 px is 1 mm at 300 dpi; the cheap pass already swept every 16th line.
        let spec = ctx.linear(more, 12, RowBinarizer::Histogram);
        ctx.damaged |= linear::scan(full, &BOTH, &spec, &mut ctx.sink, ctx.deadline);
        if ctx.want_more_formats() {
            let m = MatrixSpec {
                qr: true,
                datamatrix: true,
                pdf417: true,
                ..MatrixSpec::default()
            };
            matrix::scan(full, Binarization::Hybrid, &m, &mut ctx.sink);
        }
    }
    // The rest costs several cheap passes: only when a detector saw a symbol it
    // could not read, or when the caller asked for a full scan.
    if !(ctx.damaged || ctx.opts.full_scan) {
        return;
    }
    if ctx.opts.full_scan && !ctx.go() {
        if !ctx.expired() {
            rqrr_qr::scan(work, &mut ctx.sink);
        }
        return;
    }
    // 2. Independent QR detectors on the working copy.
    if ctx.go() {
        let more = ctx.want_more_formats();
        let m = MatrixSpec {
            qr_alt: true,
            datamatrix: more,
            ..MatrixSpec::default()
        };
        matrix::scan(work, Binarization::Hybrid, &m, &mut ctx.sink);
    }
    // rqrr is also our only multi-QR reader, so a full scan always runs it.
    if (ctx.go() && !ctx.sink.has(Symbology::Qr)) || (ctx.opts.full_scan && !ctx.expired()) {
        rqrr_qr::scan(work, &mut ctx.sink);
    }
    if ctx.go() {
        let more = ctx.want_more_formats();
        let m = MatrixSpec {
            qr: true,
            qr_alt: true,
            datamatrix: more,
            pdf417: more,
            try_harder: true,
            ..MatrixSpec::default()
        };
        matrix::scan(work, Binarization::Histogram, &m, &mut ctx.sink);
    }
    // 3. Locally thresholded, denser lines for shaded or washed-out 1D symbols.
    if ctx.go() {
        let more = ctx.want_more_formats();
        let step = (row_step(work.height) / 2).max(1);
        let spec = ctx.linear(more, step, RowBinarizer::Local);
        linear::scan(work, &BOTH, &spec, &mut ctx.sink, ctx.deadline);
    }
    if ctx.want_more_formats() {
        last_resort(ctx, work);
    }
}

/// Full-scan only, page still empty: inverted print, pure symbols.
fn last_resort(ctx: &mut Ctx<'_, '_>, work: View<'_>) {
    let all = MatrixSpec {
        qr: true,
        qr_alt: true,
        datamatrix: true,
        pdf417: true,
        try_harder: true,
        ..MatrixSpec::default()
    };
    let inv = raster::invert(work);
    matrix::scan(inv.view(), Binarization::Hybrid, &all, &mut ctx.sink);
    if ctx.want_more_formats() {
        let spec = ctx.linear(true, row_step(work.height), RowBinarizer::Histogram);
        linear::scan(inv.view(), &BOTH, &spec, &mut ctx.sink, ctx.deadline);
    }
    if ctx.want_more_formats() {
        let pure = MatrixSpec { pure: true, ..all };
        matrix::scan(work, Binarization::Histogram, &pure, &mut ctx.sink);
    }
    // A DataMatrix filling the image that rxing's detectors missed (large
    // multi-region or rotated rectangular symbols).
    for b in [Binarization::Histogram, Binarization::Hybrid] {
        if ctx.want_more_formats() && work.width.max(work.height) <= SMALL_LONG_SIDE {
            matrix::fitted_datamatrix(work, b, &mut ctx.sink);
        }
    }
    if ctx.want_more_formats() {
        let m = raster::mirror(work);
        matrix::scan(m.view(), Binarization::Hybrid, &all, &mut ctx.sink);
    }
    // Small crops only: doubling a page would cost 4x for nothing.
    if ctx.want_more_formats() && work.width.max(work.height) <= SMALL_LONG_SIDE {
        let d = raster::double(work);
        for b in [Binarization::Hybrid, Binarization::Histogram] {
            if ctx.want_more_formats() {
                matrix::scan(d.view(), b, &all, &mut ctx.sink);
            }
        }
    }
}
