//! A page's scan resolution, as the file declares it: JFIF density or EXIF
//! resolution in a JPEG, `pHYs` in a PNG, pixels per metre in a BMP,
//! XResolution/YResolution in a TIFF, and for a scanner's PDF the image's
//! pixels over the page's MediaBox. Only read for people (`imc-agent
//! inspect`); nothing depends on it, so a missing or odd value is `None`.

use image::ImageFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpi {
    pub x: u32,
    pub y: u32,
}

const INCH_PER_METRE: f64 = 1.0 / 0.0254;
const CM_PER_INCH: f64 = 2.54;

impl Dpi {
    /// Rounded; `None` unless both values are plausible for a scan.
    pub(crate) fn new(x: f64, y: f64) -> Option<Dpi> {
        let plausible = |v: f64| v.is_finite() && (1.0..=100_000.0).contains(&v);
        (plausible(x) && plausible(y)).then(|| Dpi {
            x: x.round() as u32,
            y: y.round() as u32,
        })
    }
}

/// From a single-image file's header.
pub(crate) fn of_image(bytes: &[u8], format: ImageFormat) -> Option<Dpi> {
    match format {
        ImageFormat::Jpeg => of_jpeg(bytes),
        ImageFormat::Png => of_png(bytes),
        ImageFormat::Bmp => of_bmp(bytes),
        _ => None,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// JFIF density when it has a unit, else EXIF resolution.
pub(crate) fn of_jpeg(bytes: &[u8]) -> Option<Dpi> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    let mut exif = None;
    // Marker segments up to the start of scan, where the headers end.
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = be16(bytes, at + 2)? as usize;
        let data = bytes.get(at + 4..at + 2 + len)?;
        match marker {
            0xE0 if data.starts_with(b"JFIF\0") && data.len() >= 12 => {
                let (x, y) = (be16(data, 8)? as f64, be16(data, 10)? as f64);
                match data[7] {
                    1 => return Dpi::new(x, y),
                    2 => return Dpi::new(x * CM_PER_INCH, y * CM_PER_INCH),
                    _ => {}
                }
            }
            0xE1 if data.starts_with(b"Exif\0\0") => exif = of_exif(&data[6..]),
            _ => {}
        }
        at += 2 + len;
    }
    exif
}

/// XResolution, YResolution and ResolutionUnit from EXIF's first directory.
fn of_exif(tiff: &[u8]) -> Option<Dpi> {
    let little = match tiff.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let rational = |entry: usize| -> Option<f64> {
        let offset = u32_at(entry + 8)? as usize;
        let (n, d) = (u32_at(offset)?, u32_at(offset + 4)?);
        (d != 0).then(|| n as f64 / d as f64)
    };
    let ifd = u32_at(4)? as usize;
    let count = u16_at(ifd)? as usize;
    let (mut x, mut y, mut unit) = (None, None, 2);
    for i in 0..count.min(256) {
        let entry = ifd + 2 + i * 12;
        match u16_at(entry)? {
            0x011A => x = rational(entry),
            0x011B => y = rational(entry),
            0x0128 => unit = u16_at(entry + 8)?,
            _ => {}
        }
    }
    in_unit(x?, y?, unit)
}

/// TIFF's ResolutionUnit: 2 inch, 3 centimetre, 1 none (an aspect ratio only).
pub(crate) fn in_unit(x: f64, y: f64, unit: u16) -> Option<Dpi> {
    match unit {
        2 => Dpi::new(x, y),
        3 => Dpi::new(x * CM_PER_INCH, y * CM_PER_INCH),
        _ => None,
    }
}

/// The `pHYs` chunk, when its unit is the metre.
fn of_png(bytes: &[u8]) -> Option<Dpi> {
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = be32(bytes, at)? as usize;
        let kind = bytes.get(at + 4..at + 8)?;
        match kind {
            b"pHYs" => {
                let data = bytes.get(at + 8..at + 8 + len)?;
                if *data.get(8)? != 1 {
                    return None;
                }
                return Dpi::new(
                    be32(data, 0)? as f64 / INCH_PER_METRE,
                    be32(data, 4)? as f64 / INCH_PER_METRE,
                );
            }
            b"IDAT" | b"IEND" => return None,
            _ => at += 12 + len,
        }
    }
    None
}

/// BITMAPINFOHEADER's pixels per metre (0 when the writer did not say).
fn of_bmp(bytes: &[u8]) -> Option<Dpi> {
    let le32 = |at: usize| -> Option<i32> {
        Some(i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    if le32(14)? < 40 {
        return None;
    }
    Dpi::new(
        le32(38)? as f64 / INCH_PER_METRE,
        le32(42)? as f64 / INCH_PER_METRE,
    )
}

/// An image filling a PDF page: its pixels over the page size in inches
/// (PDF units are 1/72 inch). The box is turned to match the image.
pub(crate) fn of_pdf_page(width_px: u32, height_px: u32, media_box: [f64; 4]) -> Option<Dpi> {
    let (mut w, mut h) = (
        (media_box[2] - media_box[0]).abs() / 72.0,
        (media_box[3] - media_box[1]).abs() / 72.0,
    );
    if (width_px > height_px) != (w > h) {
        std::mem::swap(&mut w, &mut h);
    }
    if w <= 0.0 || h <= 0.0 {
        return None;
    }
    Dpi::new(width_px as f64 / w, height_px as f64 / h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};
    use std::io::Cursor;

    #[test]
    fn jfif_density_and_units() {
        let img = GrayImage::from_pixel(40, 40, Luma([200]));
        let mut jpeg = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80);
        encoder.set_pixel_density(image::codecs::jpeg::PixelDensity::dpi(300));
        img.write_with_encoder(encoder).unwrap();
        assert_eq!(of_jpeg(&jpeg), Some(Dpi { x: 300, y: 300 }));
        // Units 0: an aspect ratio, not a resolution.
        let mut plain = Vec::new();
        img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new(&mut plain))
            .unwrap();
        assert_eq!(of_jpeg(&plain), None);
    }

    #[test]
    fn exif_resolution_when_jfif_has_none() {
        // SOI, APP1 Exif (big-endian TIFF, 3 entries), EOI.
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
        tiff.extend_from_slice(&3u16.to_be_bytes());
        let rationals = 8 + 2 + 3 * 12 + 4;
        for (tag, kind, value) in [
            (0x011Au16, 5u16, rationals as u32),
            (0x011B, 5, rationals as u32 + 8),
            (0x0128, 3, 3 << 16),
        ] {
            tiff.extend_from_slice(&tag.to_be_bytes());
            tiff.extend_from_slice(&kind.to_be_bytes());
            tiff.extend_from_slice(&1u32.to_be_bytes());
            tiff.extend_from_slice(&value.to_be_bytes());
        }
        tiff.extend_from_slice(&[0; 4]);
        for (n, d) in [(236u32, 2u32), (118, 1)] {
            tiff.extend_from_slice(&n.to_be_bytes());
            tiff.extend_from_slice(&d.to_be_bytes());
        }
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
        jpeg.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        jpeg.extend_from_slice(b"Exif\0\0");
        jpeg.extend_from_slice(&tiff);
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        // 118 dots per cm is 300 dpi (299.72).
        assert_eq!(of_jpeg(&jpeg), Some(Dpi { x: 300, y: 300 }));
    }

    #[test]
    fn png_phys() {
        let img = GrayImage::from_pixel(10, 10, Luma([0]));
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        assert_eq!(of_png(&png), None, "no pHYs");
        // pHYs goes before IDAT: after the 8-byte signature and the 25-byte IHDR.
        let mut chunk = 9u32.to_be_bytes().to_vec();
        chunk.extend_from_slice(b"pHYs");
        chunk.extend_from_slice(&7874u32.to_be_bytes());
        chunk.extend_from_slice(&3937u32.to_be_bytes());
        chunk.push(1);
        chunk.extend_from_slice(&[0; 4]);
        png.splice(33..33, chunk);
        assert_eq!(of_png(&png), Some(Dpi { x: 200, y: 100 }));
    }

    #[test]
    fn pdf_page_size() {
        let a4 = [0.0, 0.0, 595.0, 842.0];
        assert_eq!(of_pdf_page(2480, 3508, a4), Some(Dpi { x: 300, y: 300 }));
        // A landscape image on a portrait box: the page was turned.
        assert_eq!(of_pdf_page(3508, 2480, a4), Some(Dpi { x: 300, y: 300 }));
        assert_eq!(of_pdf_page(100, 100, [0.0, 0.0, 0.0, 0.0]), None);
    }
}
