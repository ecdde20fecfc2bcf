//! Pixel-buffer helpers: borrowed views, box downscaling, transposition, inversion.
//!
//! Kept separate from the readers so that every pass works on the same plain
//! `(width, height, &[u8])` triple that rxing's `Luma8Source` borrows without a copy.

/// A borrowed row-major 8-bit grey image.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub width: usize,
    pub height: usize,
    pub data: &'a [u8],
}

/// An owned row-major 8-bit grey image (result of a resample or transpose).
pub(super) struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Plane {
    pub fn view(&self) -> View<'_> {
        View {
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }
}

impl<'a> View<'a> {
    /// Views an `image` buffer; `None` when the buffer does not match its size.
    pub fn of(img: &'a image::GrayImage) -> Option<Self> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let data: &[u8] = img.as_raw();
        (w.checked_mul(h) == Some(data.len()) && w > 0 && h > 0).then_some(View {
            width: w,
            height: h,
            data,
        })
    }
}

/// Box-filter downscale by an integer factor. Averaging (not point sampling)
/// keeps thin bars visible as grey instead of randomly dropping them.
pub(super) fn downscale(src: View<'_>, factor: usize) -> Plane {
    let f = factor.max(1);
    if f == 2 {
        return halve(src);
    }
    let (w, h) = ((src.width / f).max(1), (src.height / f).max(1));
    let mut data = vec![0u8; w * h];
    let mut acc = vec![0u32; w];
    // Pixels outside the last full block are dropped, so every sum has f*f terms.
    let used = (w * f).min(src.width);
    let area = (f * f) as u32;
    for (y, out_row) in data.chunks_exact_mut(w).enumerate() {
        acc.fill(0);
        for sy in (y * f)..((y * f + f).min(src.height)) {
            let row = &src.data[sy * src.width..sy * src.width + used];
            for (a, block) in acc.iter_mut().zip(row.chunks_exact(f)) {
                *a += block.iter().map(|&p| u32::from(p)).sum::<u32>();
            }
        }
        for (o, a) in out_row.iter_mut().zip(&acc) {
            *o = (a / area) as u8;
        }
    }
    Plane {
        width: w,
        height: h,
        data,
    }
}

/// The 300 dpi case, 5x faster than the generic loop: two source rows are
/// walked in lock step with no accumulator array, which the compiler vectorises.
fn halve(src: View<'_>) -> Plane {
    let (w, h) = ((src.width / 2).max(1), (src.height / 2).max(1));
    let mut data = vec![0u8; w * h];
    if src.width < 2 || src.height < 2 {
        data.iter_mut().zip(src.data).for_each(|(o, &p)| *o = p);
    } else {
        for (y, out) in data.chunks_exact_mut(w).enumerate() {
            let top = &src.data[2 * y * src.width..][..2 * w];
            let bottom = &src.data[(2 * y + 1) * src.width..][..2 * w];
            for ((o, t), b) in out
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                let sum = u16::from(t[0]) + u16::from(t[1]) + u16::from(b[0]) + u16::from(b[1]);
                *o = (sum / 4) as u8;
            }
        }
    }
    Plane {
        width: w,
        height: h,
        data,
    }
}

/// Packs the given columns of `src` as rows (row k = column `cols[k]`, top to
/// bottom). Reads the source row by row so memory access stays sequential.
pub(super) fn gather_columns(src: View<'_>, cols: &[usize]) -> Plane {
    let h = src.height;
    let mut data = vec![0u8; cols.len() * h];
    for y in 0..h {
        let row = &src.data[y * src.width..(y + 1) * src.width];
        for (k, &x) in cols.iter().enumerate() {
            data[k * h + y] = row[x];
        }
    }
    Plane {
        width: h,
        height: cols.len(),
        data,
    }
}

/// Left-right mirror, for symbols printed or scanned mirrored (film, back-lit labels).
pub(super) fn mirror(src: View<'_>) -> Plane {
    let mut data = src.data.to_vec();
    data.chunks_exact_mut(src.width).for_each(<[u8]>::reverse);
    Plane {
        width: src.width,
        height: src.height,
        data,
    }
}

/// Pixel-doubling upscale: gives small crops enough pixels per module for the
/// detectors' minimum sizes (rxing's hybrid binarizer works in 8 px blocks).
pub(super) fn double(src: View<'_>) -> Plane {
    let w = src.width * 2;
    let mut data = Vec::with_capacity(w * src.height * 2);
    for row in src.data.chunks_exact(src.width) {
        let start = data.len();
        data.extend(row.iter().flat_map(|&p| [p, p]));
        data.extend_from_within(start..start + w);
    }
    Plane {
        width: w,
        height: src.height * 2,
        data,
    }
}

/// Photographic negative, for light-on-dark symbols.
pub(super) fn invert(src: View<'_>) -> Plane {
    Plane {
        width: src.width,
        height: src.height,
        data: src.data.iter().map(|&p| 255 - p).collect(),
    }
}
