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
    cover_page(text, text)
}

/// A cover as a forger might make one: `code` as Code 128, `qr` as the QR.
pub fn cover_page(code: &str, qr: &str) -> GrayImage {
    use rxing::Writer;
    let mut page = GrayImage::from_pixel(2480, 3508, Luma([255]));
    let hints = rxing::EncodeHints::default();
    let code128 = rxing::oned::Code128Writer
        .encode_with_hints(code, &rxing::BarcodeFormat::CODE_128, 0, 0, &hints)
        .expect("encode code 128");
    paint(&mut page, &code128, 200, 300, 6, 180);
    let qr = rxing::qrcode::QRCodeWriter
        .encode_with_hints(qr, &rxing::BarcodeFormat::QR_CODE, 0, 0, &hints)
        .expect("encode qr");
    paint(&mut page, &qr, 1700, 250, 10, 0);
    page
}

/// The text of the QR on a page (a printed cover's). rqrr reads the few
/// signed covers whose QR rxing misses (as the desk does).
pub fn read_qr(page: &GrayImage) -> String {
    use rxing::Reader;
    let (w, h) = page.dimensions();
    let source = rxing::Luma8LuminanceSource::new(page.as_raw().clone(), w, h).expect("luma");
    let mut bitmap = rxing::BinaryBitmap::new(rxing::common::HybridBinarizer::new(source));
    if let Ok(read) = rxing::qrcode::QRCodeReader.decode(&mut bitmap) {
        return read.getText().to_owned();
    }
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
            page.get_pixel(x as u32, y as u32).0[0]
        });
    let grids = prepared.detect_grids();
    let grid = grids.first().expect("a QR on the page");
    grid.decode().expect("a readable QR").1
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

/// A page with only `text` as a QR code (e.g. a VAT invoice's), no Code 128.
pub fn qr_page(text: &str) -> GrayImage {
    use rxing::Writer;
    let mut page = text_page(77);
    let qr = rxing::qrcode::QRCodeWriter
        .encode_with_hints(
            text,
            &rxing::BarcodeFormat::QR_CODE,
            0,
            0,
            &rxing::EncodeHints::default(),
        )
        .expect("encode qr");
    // Over the text, on a white patch, as on a printed invoice's corner.
    let side = qr.getWidth() * 6 + 40;
    for y in 40..40 + side {
        for x in 40..40 + side {
            page.put_pixel(x, y, Luma([255]));
        }
    }
    paint(&mut page, &qr, 60, 60, 6, 0);
    page
}

/// A page resized to `dpi` (from 300) and thresholded to black and white, as
/// a bitonal office scan.
pub fn bitonal(page_300dpi: &GrayImage, dpi: u32) -> GrayImage {
    let (w, h) = page_300dpi.dimensions();
    let mut page = imageops::resize(
        page_300dpi,
        w * dpi / 300,
        h * dpi / 300,
        imageops::FilterType::Triangle,
    );
    for p in page.pixels_mut() {
        p.0[0] = if p.0[0] < 128 { 0 } else { 255 };
    }
    page
}

/// G4 (T.6) data for a black-and-white page.
pub fn g4(page: &GrayImage) -> Vec<u8> {
    let mut encoder = fax::encoder::Encoder::new(fax::VecWriter::new());
    let width = u16::try_from(page.width()).expect("fax width");
    for row in page.rows() {
        let pels = row.map(|p| {
            if p.0[0] < 128 {
                fax::Color::Black
            } else {
                fax::Color::White
            }
        });
        encoder.encode_line(pels, width).expect("g4 line");
    }
    encoder.finish().expect("g4 end").finish()
}

/// A multi-page TIFF of G4 strips, one strip per page, as a bitonal scanner
/// writes. Written by hand: no Rust crate writes G4 TIFF. `declared` overrides
/// the size written in the header (for bombs).
pub fn tiff_g4(pages: &[GrayImage], declared: Option<(u32, u32)>) -> Vec<u8> {
    let mut out = b"II*\0\0\0\0\0".to_vec();
    // Where the previous IFD's next-IFD pointer (or the header's first) goes.
    let mut link = 4usize;
    for page in pages {
        let data = g4(page);
        let (w, h) = declared.unwrap_or(page.dimensions());
        let data_at = out.len() as u32;
        out.extend_from_slice(&data);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let ifd_at = out.len() as u32;
        out[link..link + 4].copy_from_slice(&ifd_at.to_le_bytes());
        // (tag, type, value): 3 SHORT, 4 LONG; tags in ascending order.
        let entries: [(u16, u16, u32); 9] = [
            (256, 4, w),
            (257, 4, h),
            (258, 3, 1),
            (259, 3, 4),
            (262, 3, 0),
            (273, 4, data_at),
            (277, 3, 1),
            (278, 4, h),
            (279, 4, data.len() as u32),
        ];
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, value) in entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        link = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out
}

/// A multi-page grey TIFF through the `tiff` encoder (LZW).
pub fn tiff_gray(pages: &[GrayImage]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut out)
        .expect("tiff encoder")
        .with_compression(tiff::encoder::Compression::Lzw);
    for page in pages {
        encoder
            .write_image::<tiff::encoder::colortype::Gray8>(
                page.width(),
                page.height(),
                page.as_raw(),
            )
            .expect("tiff page");
    }
    out.into_inner()
}

/// How one page of a test PDF stores its image.
pub enum PdfImage {
    /// DCTDecode: the JPEG bytes as they are.
    Jpeg(Vec<u8>),
    /// FlateDecode grey pixels.
    FlateGray(GrayImage),
    /// CCITTFaxDecode G4 of a black-and-white page.
    G4(GrayImage),
}

/// A PDF as a scanner writes it: one image XObject drawn over each page.
pub fn pdf(pages: &[PdfImage]) -> Vec<u8> {
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut kids = Vec::new();
    for page in pages {
        let (w, h, stream) = match page {
            PdfImage::Jpeg(jpeg) => {
                let (w, h) = decode_gray(jpeg).dimensions();
                let dict = dictionary! {
                    "Type" => "XObject", "Subtype" => "Image", "Width" => w as i64, "Height" => h as i64,
                    "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8, "Filter" => "DCTDecode",
                };
                (w, h, Stream::new(dict, jpeg.clone()))
            }
            PdfImage::FlateGray(img) => {
                let (w, h) = img.dimensions();
                let dict = dictionary! {
                    "Type" => "XObject", "Subtype" => "Image", "Width" => w as i64, "Height" => h as i64,
                    "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
                };
                let mut stream = Stream::new(dict, img.as_raw().clone());
                stream.compress().expect("flate");
                (w, h, stream)
            }
            PdfImage::G4(img) => {
                let (w, h) = img.dimensions();
                let dict = dictionary! {
                    "Type" => "XObject", "Subtype" => "Image", "Width" => w as i64, "Height" => h as i64,
                    "ColorSpace" => "DeviceGray", "BitsPerComponent" => 1, "Filter" => "CCITTFaxDecode",
                    "DecodeParms" => dictionary! { "K" => -1, "Columns" => w as i64, "Rows" => h as i64 },
                };
                (w, h, Stream::new(dict, g4(img)))
            }
        };
        let image_id = doc.add_object(stream);
        let content = format!("q {w} 0 0 {h} 0 0 cm /Im0 Do Q");
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.into_bytes()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "MediaBox" => vec![0.into(), 0.into(), (w as i64).into(), (h as i64).into()],
            "Resources" => dictionary! { "XObject" => dictionary! { "Im0" => image_id } },
        });
        kids.push(Object::Reference(page_id));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("pdf save");
    out
}

/// A PNG that declares `side` x `side` pixels but holds almost nothing: a
/// decompression bomb's header, caught before any pixel is allocated.
pub fn png_bomb(side: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes: a real bomb would be all zeros for gigabytes.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}
