//! Synthetic scanned pages for tests and the bench example.
//!
//! Compiled into the library only under `cfg(test)`; the examples include this
//! file by path, so nothing here ships in the agent.
#![allow(dead_code)]

use image::{GrayImage, Luma, imageops};
use rxing::{
    BarcodeFormat, EncodeHints, MultiFormatWriter, Writer, oned::Code128Writer,
    qrcode::QRCodeWriter,
};

/// A4 at 300 dpi.
pub const A4_300: (u32, u32) = (2480, 3508);

/// Tiny deterministic xorshift64* generator (no `rand` dependency).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

pub fn blank_page() -> GrayImage {
    GrayImage::from_pixel(A4_300.0, A4_300.1, Luma([255]))
}

fn fill_rect(img: &mut GrayImage, x: u32, y: u32, w: u32, h: u32, v: u8) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, Luma([v]));
        }
    }
}

/// Draws `text` as Code 128 with its quiet zones; returns the drawn width.
pub fn draw_code128(
    img: &mut GrayImage,
    text: &str,
    x: u32,
    y: u32,
    module: u32,
    height: u32,
) -> u32 {
    let Ok(bits) = Code128Writer.encode(text, &BarcodeFormat::CODE_128, 0, 1) else {
        return 0;
    };
    for col in 0..bits.getWidth() {
        if bits.get(col, 0) {
            fill_rect(img, x + col * module, y, module, height, 0);
        }
    }
    bits.getWidth() * module
}

/// Draws `text` as a QR code (with its 4-module quiet zone); returns the side length.
pub fn draw_qr(img: &mut GrayImage, text: &str, x: u32, y: u32, module: u32) -> u32 {
    let Ok(bits) = QRCodeWriter.encode(text, &BarcodeFormat::QR_CODE, 0, 0) else {
        return 0;
    };
    for row in 0..bits.getHeight() {
        for col in 0..bits.getWidth() {
            if bits.get(col, row) {
                fill_rect(img, x + col * module, y + row * module, module, module, 0);
            }
        }
    }
    bits.getWidth() * module
}

/// Draws `text` as a DataMatrix or PDF417 symbol, `module` pixels per
/// module (PDF417 rows are three modules tall); returns (width, height).
pub fn draw_matrix(
    img: &mut GrayImage,
    format: BarcodeFormat,
    text: &str,
    x: u32,
    y: u32,
    module: u32,
) -> (u32, u32) {
    // UTF-8 with an ECI designator, so non-Latin text survives.
    let hints = EncodeHints {
        CharacterSet: Some("UTF-8".into()),
        ..EncodeHints::default()
    };
    let Ok(bits) = MultiFormatWriter.encode_with_hints(text, &format, 0, 0, &hints) else {
        return (0, 0);
    };
    let tall = if format == BarcodeFormat::PDF_417 {
        3
    } else {
        1
    };
    for row in 0..bits.getHeight() {
        for col in 0..bits.getWidth() {
            if bits.get(col, row) {
                let (px, py) = (x + col * module, y + row * module * tall);
                fill_rect(img, px, py, module, module * tall, 0);
            }
        }
    }
    (bits.getWidth() * module, bits.getHeight() * module * tall)
}

/// Lines of "words": dark blocks with letter-like gaps, like body text at 10-12 pt.
pub fn draw_text(img: &mut GrayImage, rng: &mut Rng, x0: u32, y0: u32, x1: u32, y1: u32) {
    let mut y = y0;
    while y + 30 < y1 {
        let mut x = x0;
        while x + 40 < x1 {
            let word = 30 + rng.below(200);
            let end = (x + word).min(x1);
            let mut cx = x;
            while cx < end {
                let letter = 6 + rng.below(14);
                let tall = rng.below(3) == 0;
                let top = if tall { y } else { y + 10 };
                fill_rect(img, cx, top, letter.min(end - cx), 32 - (top - y), 30);
                cx += letter + 3 + rng.below(3);
            }
            x = end + 25 + rng.below(20);
        }
        y += 55 + rng.below(10);
    }
}

/// An A4 cover sheet: title, cover code as Code 128 and QR at the top, some text.
pub fn cover_page(code: &str, seed: u64) -> GrayImage {
    let mut img = blank_page();
    let mut rng = Rng::new(seed);
    draw_text(&mut img, &mut rng, 250, 120, 1500, 200);
    draw_code128(&mut img, code, 250, 260, 4, 160);
    draw_qr(&mut img, code, 1800, 150, 8);
    draw_text(&mut img, &mut rng, 250, 600, 2230, 3200);
    img
}

/// A cover as IMC prints it since covers are signed: the QR holds the code,
/// a count, a key id and an 86-character signature (the length matters for
/// decoding, not the bytes).
pub fn signed_cover_page(code: &str, seed: u64) -> GrayImage {
    let mut img = blank_page();
    let mut rng = Rng::new(seed);
    let signature: String = (0..86).map(|i| (b'A' + (i % 26) as u8) as char).collect();
    let qr = format!("IMC1|{code}|3|0a1b2c3d|{signature}");
    draw_text(&mut img, &mut rng, 250, 120, 1500, 200);
    draw_code128(&mut img, code, 250, 260, 4, 160);
    draw_qr(&mut img, &qr, 1800, 150, 6);
    draw_text(&mut img, &mut rng, 250, 600, 2230, 3200);
    img
}

/// A content page with a VAT-invoice style QR in the top-left corner and text.
pub fn vat_page(text: &str, seed: u64) -> GrayImage {
    let mut img = blank_page();
    let mut rng = Rng::new(seed);
    draw_qr(&mut img, text, 150, 150, 6);
    draw_text(&mut img, &mut rng, 700, 200, 2300, 600);
    draw_text(&mut img, &mut rng, 200, 800, 2300, 3300);
    img
}

/// A content page with text only.
pub fn text_page(seed: u64) -> GrayImage {
    let mut img = blank_page();
    let mut rng = Rng::new(seed);
    draw_text(&mut img, &mut rng, 200, 200, 2300, 3300);
    img
}

/// Uniform random pixels.
pub fn noise_page(seed: u64) -> GrayImage {
    let mut rng = Rng::new(seed);
    GrayImage::from_fn(A4_300.0, A4_300.1, |_, _| Luma([rng.below(256) as u8]))
}

/// Resamples a 300 dpi page to `dpi` by area averaging, like a scanner's optics.
pub fn to_dpi(img: &GrayImage, dpi: u32) -> GrayImage {
    let s = 300.0 / dpi as f32;
    let (w, h) = (
        (img.width() as f32 / s) as u32,
        (img.height() as f32 / s) as u32,
    );
    GrayImage::from_fn(w, h, |x, y| {
        let (x0, y0) = (x as f32 * s, y as f32 * s);
        let (mut sum, mut area) = (0.0f32, 0.0f32);
        let mut sy = y0.floor();
        while sy < y0 + s {
            let hy = (sy + 1.0).min(y0 + s) - sy.max(y0);
            let mut sx = x0.floor();
            while sx < x0 + s {
                let wx = (sx + 1.0).min(x0 + s) - sx.max(x0);
                let p = img.get_pixel(
                    (sx as u32).min(img.width() - 1),
                    (sy as u32).min(img.height() - 1),
                );
                sum += p[0] as f32 * wx * hy;
                area += wx * hy;
                sx += 1.0;
            }
            sy += 1.0;
        }
        Luma([(sum / area.max(1e-6)).round() as u8])
    })
}

/// Rotates by `degrees` (clockwise) about the centre, bilinear, white outside.
pub fn rotate_small(img: &GrayImage, degrees: f32) -> GrayImage {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (img.width() as f32 / 2.0, img.height() as f32 / 2.0);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let at = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            255.0
        } else {
            img.get_pixel(x as u32, y as u32)[0] as f32
        }
    };
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        // Inverse mapping: where in the source does this output pixel come from?
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let sx = cos * dx + sin * dy + cx;
        let sy = -sin * dx + cos * dy + cy;
        let (fx, fy) = (sx.floor(), sy.floor());
        let (ax, ay) = (sx - fx, sy - fy);
        let (ix, iy) = (fx as i64, fy as i64);
        let top = at(ix, iy) * (1.0 - ax) + at(ix + 1, iy) * ax;
        let bottom = at(ix, iy + 1) * (1.0 - ax) + at(ix + 1, iy + 1) * ax;
        Luma([(top * (1.0 - ay) + bottom * ay).round().clamp(0.0, 255.0) as u8])
    })
}

/// Adds roughly uniform noise of +-`amplitude` grey levels.
pub fn add_noise(img: &GrayImage, amplitude: u8, seed: u64) -> GrayImage {
    let mut rng = Rng::new(seed);
    let span = 2 * amplitude as u32 + 1;
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let v = p[0] as i32 + rng.below(span) as i32 - amplitude as i32;
        p[0] = v.clamp(0, 255) as u8;
    }
    out
}

/// JPEG round trip at `quality`; the input is returned unchanged if encoding fails.
pub fn jpeg(img: &GrayImage, quality: u8) -> GrayImage {
    let mut buf = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality);
    if img.write_with_encoder(enc).is_err() {
        return img.clone();
    }
    image::load_from_memory(&buf).map_or_else(|_| img.clone(), |d| d.to_luma8())
}

/// Quarter turn clockwise (0, 90, 180, 270).
pub fn turn(img: &GrayImage, degrees: u16) -> GrayImage {
    match degrees % 360 {
        90 => imageops::rotate90(img),
        180 => imageops::rotate180(img),
        270 => imageops::rotate270(img),
        _ => img.clone(),
    }
}
