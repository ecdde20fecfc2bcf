//! DataMatrix symbols that fill an image (labels, crops), sampled on a grid
//! fitted to the symbol's own finder and timing edges.
//!
//! rxing's DataMatrix detectors lose large multi-region symbols (2x2 data
//! regions and up, whose inner alignment bars look like extra edges) and
//! rectangular ones on their side; its "pure" mode needs an integral module
//! size in pixels, which a resampled image never has. The symbol's outline
//! already tells everything: the two solid sides of the L finder give the
//! orientation and module thickness, the two alternating timing sides give
//! the number of rows and columns, so the grid can be sampled at module
//! centres with fractional module sizes and handed to rxing's decoder (which
//! handles multi-region layout, error correction and mirroring).
//!
//! Only for an axis-aligned symbol whose black bounding box is the symbol:
//! this runs in the full scan's last stage, on images that yielded nothing.

use rxing::common::BitMatrix;
use rxing::datamatrix::decoder::Decoder;

use imc_pages::guard::guarded;

/// Smallest DataMatrix is 10x10 modules; below ~2 px a module is unreadable.
const MIN_SIDE: u32 = 16;
/// A solid finder side is black along nearly all its length.
const SOLID: f64 = 0.85;

#[derive(Clone, Copy)]
struct P {
    x: f64,
    y: f64,
}

/// The symbol in its own frame: `s` runs along the finder's horizontal bar,
/// `t` up its vertical bar, both 0..1 over the bounding box.
struct Frame<'m> {
    bits: &'m BitMatrix,
    origin: P,
    along_s: P,
    along_t: P,
}

impl Frame<'_> {
    fn black(&self, s: f64, t: f64) -> bool {
        let x = self.origin.x + s * self.along_s.x + t * self.along_t.x;
        let y = self.origin.y + s * self.along_s.y + t * self.along_t.y;
        let (w, h) = (self.bits.getWidth(), self.bits.getHeight());
        let xi = (x.max(0.0) as u32).min(w - 1);
        let yi = (y.max(0.0) as u32).min(h - 1);
        self.bits.get(xi, yi)
    }

    fn len_s(&self) -> f64 {
        self.along_s.x.hypot(self.along_s.y)
    }

    fn len_t(&self) -> f64 {
        self.along_t.x.hypot(self.along_t.y)
    }

    /// Module thickness in pixels: how far black reaches in from each finder
    /// bar (lower quartile: data modules behind the bar are black half the time).
    fn module_px(&self) -> Option<f64> {
        let mut runs = Vec::new();
        let (ls, lt) = (self.len_s(), self.len_t());
        for i in 1..16 {
            let f = f64::from(i) / 16.0;
            // Inward from the vertical bar (s = 0) and from the horizontal bar (t = 0).
            let run_s = (0..ls as usize)
                .take_while(|&p| self.black((p as f64 + 0.5) / ls, f))
                .count();
            let run_t = (0..lt as usize)
                .take_while(|&p| self.black(f, (p as f64 + 0.5) / lt))
                .count();
            runs.extend([run_s, run_t]);
        }
        runs.sort_unstable();
        let q = runs[runs.len() / 4] as f64;
        (q >= 1.0).then_some(q)
    }

    /// Modules along a timing side: runs of one colour, ignoring specks
    /// shorter than a third of a module.
    fn count_modules(&self, along_s: bool, module: f64) -> usize {
        let (len, other_len) = if along_s {
            (self.len_s(), self.len_t())
        } else {
            (self.len_t(), self.len_s())
        };
        // Half a module in from the far edge: the middle of the timing row.
        let inset = 1.0 - (module / 2.0) / other_len;
        let samples: Vec<bool> = (0..len as usize)
            .map(|p| {
                let f = (p as f64 + 0.5) / len;
                if along_s {
                    self.black(f, inset)
                } else {
                    self.black(inset, f)
                }
            })
            .collect();
        let min_run = (module / 3.0).max(1.0) as usize;
        let mut runs: Vec<(bool, usize)> = Vec::new();
        for b in samples {
            match runs.last_mut() {
                Some((c, n)) if *c == b => *n += 1,
                _ => runs.push((b, 1)),
            }
        }
        // Merge specks into their neighbours.
        let mut merged: Vec<(bool, usize)> = Vec::new();
        for (c, n) in runs {
            match merged.last_mut() {
                Some((_, m)) if n < min_run => *m += n,
                Some((pc, m)) if *pc == c => *m += n,
                _ => merged.push((c, n)),
            }
        }
        merged.len()
    }

    fn sample(&self, rows: usize, cols: usize) -> Option<BitMatrix> {
        let mut bits = BitMatrix::new(cols as u32, rows as u32).ok()?;
        for r in 0..rows {
            // Row 0 is the top: farthest from the horizontal finder bar.
            let t = (rows - r) as f64 / rows as f64 - 0.5 / rows as f64;
            for c in 0..cols {
                let s = (c as f64 + 0.5) / cols as f64;
                if self.black(s, t) {
                    bits.set(c as u32, r as u32);
                }
            }
        }
        Some(bits)
    }
}

/// Reads one DataMatrix symbol filling `bits`' black bounding box.
pub(super) fn read(bits: &BitMatrix) -> Option<String> {
    let [left, top, width, height] = symbol_box(bits)?;
    if width < MIN_SIDE || height < MIN_SIDE {
        return None;
    }
    let (l, t) = (f64::from(left), f64::from(top));
    let (r, b) = (l + f64::from(width), t + f64::from(height));
    let corners = [
        P { x: l, y: t },
        P { x: r, y: t },
        P { x: r, y: b },
        P { x: l, y: b },
    ];
    let dir = |from: P, to: P| P {
        x: to.x - from.x,
        y: to.y - from.y,
    };
    // Each corner with its two sides; the L finder is the corner whose two sides are solid.
    for i in 0..4 {
        let origin = corners[i];
        let next = corners[(i + 1) % 4];
        let prev = corners[(i + 3) % 4];
        let frame = Frame {
            bits,
            origin,
            along_s: dir(origin, next),
            along_t: dir(origin, prev),
        };
        if !solid(&frame) {
            continue;
        }
        let Some(module) = frame.module_px() else {
            continue;
        };
        let cols = frame.count_modules(true, module);
        let rows = frame.count_modules(false, module);
        // Either bar may be the finder's "bottom": the decoder retries mirrored.
        let Some(grid) = frame.sample(rows, cols) else {
            continue;
        };
        if let Some(Ok(result)) = guarded(|| Decoder::new().decode(&grid)) {
            let text = result.getText().to_owned();
            if !text.is_empty() {
                return Some(text);
            }
        }
    }
    None
}

/// Both sides leaving the frame's origin are (nearly) all black, half a pixel in.
fn solid(frame: &Frame<'_>) -> bool {
    let fraction = |along_s: bool| {
        let len = if along_s {
            frame.len_s()
        } else {
            frame.len_t()
        };
        let inset_s = 0.5 / frame.len_s();
        let inset_t = 0.5 / frame.len_t();
        let n = len as usize;
        let black = (0..n)
            .filter(|&p| {
                let f = (p as f64 + 0.5) / len;
                if along_s {
                    frame.black(f, inset_t)
                } else {
                    frame.black(inset_s, f)
                }
            })
            .count();
        black as f64 / n.max(1) as f64
    };
    fraction(true) >= SOLID && fraction(false) >= SOLID
}

/// The symbol's box: the outermost rows and columns holding a real share of
/// black (an eighth of the busiest one), so specks and scanner edge dirt
/// outside the quiet zone do not widen it. `[left, top, width, height]`.
fn symbol_box(bits: &BitMatrix) -> Option<[u32; 4]> {
    let (w, h) = (bits.getWidth(), bits.getHeight());
    let mut rows = vec![0u32; h as usize];
    let mut cols = vec![0u32; w as usize];
    for y in 0..h {
        for x in 0..w {
            if bits.get(x, y) {
                rows[y as usize] += 1;
                cols[x as usize] += 1;
            }
        }
    }
    let span = |counts: &[u32]| {
        let busiest = *counts.iter().max()?;
        let floor = (busiest / 8).max(1);
        let first = counts.iter().position(|&c| c >= floor)?;
        let last = counts.iter().rposition(|&c| c >= floor)?;
        Some((first as u32, (last - first + 1) as u32))
    };
    let (left, width) = span(&cols)?;
    let (top, height) = span(&rows)?;
    Some([left, top, width, height])
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, imageops};
    use rxing::common::GlobalHistogramBinarizer;
    use rxing::datamatrix::DataMatrixWriter;
    use rxing::{BarcodeFormat, BinaryBitmap, Luma8Source, Writer};

    /// Long enough for a multi-region symbol (2x2 data regions).
    const TEXT: &str =
        "[)>06P445-175186-1-ND1PTFM252012ALMA3R3MTAA30P445-175186-1-NDK1K9595228310K118292010";

    /// The symbol drawn `scale` px per module with a quiet zone.
    fn drawn(text: &str, scale: u32) -> GrayImage {
        let bits = DataMatrixWriter
            .encode(text, &BarcodeFormat::DATA_MATRIX, 0, 0)
            .unwrap();
        assert!(bits.getWidth() >= 32, "{}", bits.getWidth());
        let q = 4 * scale;
        let (w, h) = (
            bits.getWidth() * scale + 2 * q,
            bits.getHeight() * scale + 2 * q,
        );
        GrayImage::from_fn(w, h, |x, y| {
            let inside = x >= q && y >= q && x < w - q && y < h - q;
            let black = inside && bits.get((x - q) / scale, (y - q) / scale);
            Luma([if black { 0 } else { 255 }])
        })
    }

    fn binarized(img: &GrayImage) -> BitMatrix {
        let src = Luma8Source::new_with_slice(img.as_raw(), img.width(), img.height()).unwrap();
        let bitmap = BinaryBitmap::new(GlobalHistogramBinarizer::new(src));
        bitmap.get_black_matrix().clone()
    }

    #[test]
    fn resampled_turned_symbol_with_edge_dirt_is_read() {
        // A quarter turn, a non-integral module size (4 px scaled by 1.3) and
        // a speck of scanner dirt in the corner, outside the quiet zone.
        let img = imageops::rotate90(&drawn(TEXT, 4));
        let (w, h) = img.dimensions();
        let mut img = imageops::resize(
            &img,
            w * 13 / 10,
            h * 13 / 10,
            imageops::FilterType::Triangle,
        );
        for (x, y) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            img.put_pixel(x, y, Luma([0]));
        }
        assert_eq!(read(&binarized(&img)).as_deref(), Some(TEXT));
    }

    #[test]
    fn no_symbol_no_text() {
        let mut img = GrayImage::from_pixel(200, 120, Luma([255]));
        for y in 20..100 {
            for x in (10..190).filter(|x| x % 9 < 4) {
                img.put_pixel(x, y, Luma([0]));
            }
        }
        assert_eq!(read(&binarized(&img)), None);
    }
}
