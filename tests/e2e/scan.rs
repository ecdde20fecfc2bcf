//! Scanner-like images made by the tests themselves: degraded covers,
//! text-like pages, and pages carrying arbitrary barcodes.

use image::{GrayImage, ImageFormat, Luma, imageops};
use rand::{Rng, SeedableRng};
use std::io::Cursor;

/// What a desk scanner does to a printed cover.
pub struct Degrade {
    pub dpi: u32,
    pub skew_degrees: f32,
    pub noise: u8,
    pub jpeg_quality: u8,
}

pub fn decode_gray(bytes: &[u8]) -> GrayImage {
    image::load_from_memory(bytes)
        .expect("decodable image")
        .into_luma8()
}

/// Takes a 300 dpi page and returns a scanner-like JPEG of it.
pub fn degrade(page_300dpi: &GrayImage, how: &Degrade, seed: u64) -> Vec<u8> {
    let (w, h) = page_300dpi.dimensions();
    let scale = how.dpi as f32 / 300.0;
    let resized = imageops::resize(
        page_300dpi,
        (w as f32 * scale) as u32,
        (h as f32 * scale) as u32,
        imageops::FilterType::Triangle,
    );
    let mut page = rotate(&resized, how.skew_degrees);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = how.noise as i16;
    if n > 0 {
        for p in page.pixels_mut() {
            let v = p.0[0] as i16 + rng.random_range(-n..=n);
            p.0[0] = v.clamp(0, 255) as u8;
        }
    }
    jpeg(&page, how.jpeg_quality)
}

pub fn jpeg(page: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    page.write_with_encoder(encoder).expect("jpeg encode");
    out
}

pub fn png(page: &GrayImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    page.write_to(&mut out, ImageFormat::Png)
        .expect("png encode");
    out.into_inner()
}

/// Bilinear rotation about the centre, white where the page moved away.
pub fn rotate(src: &GrayImage, degrees: f32) -> GrayImage {
    let (w, h) = src.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let sx = cos * dx + sin * dy + cx;
        let sy = -sin * dx + cos * dy + cy;
        if sx < 0.0 || sy < 0.0 || sx >= (w - 1) as f32 || sy >= (h - 1) as f32 {
            return Luma([255]);
        }
        let (x0, y0) = (sx as u32, sy as u32);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let p = |x, y| src.get_pixel(x, y).0[0] as f32;
        let top = p(x0, y0) * (1.0 - fx) + p(x0 + 1, y0) * fx;
        let bottom = p(x0, y0 + 1) * (1.0 - fx) + p(x0 + 1, y0 + 1) * fx;
        Luma([(top * (1.0 - fy) + bottom * fy).round() as u8])
    })
}

pub fn turn_upside_down(page: &GrayImage) -> GrayImage {
    imageops::rotate180(page)
}

/// An A4 page at 150 dpi with lines of "text"; different seeds give different bytes.
pub fn text_page(seed: u64) -> GrayImage {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut page = GrayImage::from_pixel(1240, 1754, Luma([248]));
    let mut y = 150;
    while y < 1600 {
        let mut x = 120;
        while x < 1100 {
            let word = rng.random_range(30..120);
            for yy in y..y + 22 {
                for xx in x..(x + word).min(1120) {
                    page.put_pixel(xx, yy, Luma([rng.random_range(20..70)]));
                }
            }
            x += word + 25;
        }
        y += 60;
    }
    page
}

/// A 300 dpi A4 page with `text` as a Code 128 barcode and as QR near the top.
pub fn barcode_page(text: &str) -> GrayImage {
    use rxing::Writer;
    let mut page = GrayImage::from_pixel(2480, 3508, Luma([255]));
    let hints = rxing::EncodeHints::default();
    let code128 = rxing::oned::Code128Writer
        .encode_with_hints(text, &rxing::BarcodeFormat::CODE_128, 0, 0, &hints)
        .expect("encode code 128");
    paint(&mut page, &code128, 200, 300, 6, 180);
    let qr = rxing::qrcode::QRCodeWriter
        .encode_with_hints(text, &rxing::BarcodeFormat::QR_CODE, 0, 0, &hints)
        .expect("encode qr");
    paint(&mut page, &qr, 1700, 250, 12, 0);
    page
}

/// Paints a bit matrix at integer module size; a 1-row matrix (1D code) is stretched to `bar_height`.
fn paint(
    page: &mut GrayImage,
    matrix: &rxing::common::BitMatrix,
    left: u32,
    top: u32,
    module: u32,
    bar_height: u32,
) {
    let rows = matrix.getHeight();
    for my in 0..rows {
        for mx in 0..matrix.getWidth() {
            if !matrix.get(mx, my) {
                continue;
            }
            let (h, y0) = if rows == 1 {
                (bar_height, top)
            } else {
                (module, top + my * module)
            };
            for y in y0..y0 + h {
                for x in left + mx * module..left + (mx + 1) * module {
                    if x < page.width() && y < page.height() {
                        page.put_pixel(x, y, Luma([0]));
                    }
                }
            }
        }
    }
}
