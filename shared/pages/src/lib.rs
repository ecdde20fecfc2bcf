//! Turning a scanned file into pages: what bytes each page is, and its pixels.
//!
//! A single-image file is one page delivered byte for byte as it is. A
//! multi-page TIFF ([`tiff`]) or a scanner's PDF ([`pdf`]) becomes one page per
//! image, in order: JPEG pages keep their JPEG bytes, every other page is
//! re-encoded as PNG. Limits on file size, pages per file and decoded pixels
//! keep a hostile or broken file from exhausting the desk PC; breaking one is
//! an error that quarantines the file. Third-party decoders run behind
//! `catch_unwind`: a decoder bug must quarantine the file, not stop the agent.

mod ccitt;
pub mod dpi;
pub mod guard;
mod jbig2;
mod pdf;
#[cfg(test)]
mod split_tests;
mod t4;
mod tiff;

use guard::guarded;
use image::{DynamicImage, GrayImage, ImageFormat};
use std::io::Cursor;

/// Largest scanned file taken at all.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest single page: what the server accepts.
pub const MAX_PAGE_BYTES: u64 = imc_shared::protocol::MAX_PAGE_BYTES;
/// Largest page side: A3 at 600 dpi is about 7,000 x 9,900.
pub const MAX_SIDE: u32 = 12_000;
/// Largest decoded allocation for one page.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;
/// Most pages taken from one file: a long duplex batch is a few hundred.
pub const MAX_PAGES_PER_FILE: usize = 1000;
/// Most bytes of split pages kept for one file (re-encoded pages can be larger
/// than the compressed original, e.g. G4 pages as PNG).
pub const MAX_SPLIT_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("file is {0} bytes, over the limit of {MAX_FILE_BYTES}")]
    TooLarge(u64),
    #[error(
        "page is {0} bytes, over the server's limit of {MAX_PAGE_BYTES}; scan at a lower resolution or with compression"
    )]
    PageTooLarge(u64),
    #[error("file is empty")]
    Empty,
    #[error("not an image format the agent reads (JPEG, PNG, BMP, WebP, TIFF, PDF)")]
    UnknownFormat,
    #[error("JPEG is truncated (no end-of-image marker); was the scanner still writing it?")]
    TruncatedJpeg,
    #[error("cannot decode {format} image: {message}")]
    Decode {
        format: &'static str,
        message: String,
    },
    #[error("image is {width}x{height} pixels, over the limit of {MAX_SIDE} a side")]
    Dimensions { width: u64, height: u64 },
    #[error("image would decode to {0} bytes, over the limit of {MAX_DECODED_BYTES}")]
    DecodedTooLarge(u64),
    #[error("file has more than {MAX_PAGES_PER_FILE} pages")]
    TooManyPages,
    #[error("the file's pages add up to more than {MAX_SPLIT_BYTES} bytes once split")]
    SplitTooLarge,
    #[error("{format} feature not supported: {what}")]
    Unsupported { format: &'static str, what: String },
    #[error("PDF page has no embedded image (only scanned PDFs are read, not text PDFs)")]
    NoImage,
    #[error("page {page}: {error}")]
    InPage {
        /// 1-based, as a clerk counts.
        page: usize,
        #[source]
        error: Box<PageError>,
    },
}

impl PageError {
    /// Names the (0-based) page an error came from.
    pub(crate) fn in_page(self, index: usize) -> PageError {
        PageError::InPage {
            page: index + 1,
            error: Box::new(self),
        }
    }
}

pub struct Page {
    /// The bytes delivered to the server for this page.
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub gray: GrayImage,
    /// The resolution the file declares, if it does.
    pub dpi: Option<dpi::Dpi>,
}

fn describe(format: ImageFormat) -> Option<(&'static str, &'static str)> {
    Some(match format {
        ImageFormat::Jpeg => ("JPEG", "image/jpeg"),
        ImageFormat::Png => ("PNG", "image/png"),
        ImageFormat::Bmp => ("BMP", "image/bmp"),
        ImageFormat::WebP => ("WebP", "image/webp"),
        ImageFormat::Tiff => ("TIFF", "image/tiff"),
        _ => return None,
    })
}

fn limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    limits
}

/// Checks a page's declared size before anything is allocated for it.
pub(crate) fn check_dimensions(
    width: u64,
    height: u64,
    bytes_per_pixel: u64,
) -> Result<(), PageError> {
    if width == 0 || height == 0 || width > MAX_SIDE as u64 || height > MAX_SIDE as u64 {
        return Err(PageError::Dimensions { width, height });
    }
    let decoded = width * height * bytes_per_pixel.max(1);
    if decoded > MAX_DECODED_BYTES {
        return Err(PageError::DecodedTooLarge(decoded));
    }
    Ok(())
}

/// Splits a file into pages. The format comes from the bytes, never the name.
pub fn extract(bytes: Vec<u8>) -> Result<Vec<Page>, PageError> {
    let mut pages = Vec::new();
    extract_each(bytes, |page| pages.push(page))?;
    Ok(pages)
}

/// Splits a file into pages, handing each to `each` in order, so that only one
/// decoded page is in memory at a time. Returns how many pages there were.
pub fn extract_each(bytes: Vec<u8>, mut each: impl FnMut(Page)) -> Result<usize, PageError> {
    if bytes.is_empty() {
        return Err(PageError::Empty);
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(PageError::TooLarge(bytes.len() as u64));
    }
    if pdf::is_pdf(&bytes) {
        return pdf::extract_each(&bytes, &mut each);
    }
    let format = image::guess_format(&bytes).map_err(|_| PageError::UnknownFormat)?;
    if format == ImageFormat::Tiff {
        return tiff::extract_each(bytes, &mut each);
    }
    let (name, content_type) = describe(format).ok_or(PageError::UnknownFormat)?;
    // JPEG decoders happily return the top part of a cut-off file; we must not.
    if format == ImageFormat::Jpeg && !has_jpeg_end(&bytes) {
        return Err(PageError::TruncatedJpeg);
    }
    if bytes.len() as u64 > MAX_PAGE_BYTES {
        return Err(PageError::PageTooLarge(bytes.len() as u64));
    }
    let gray = decode_gray(&bytes, format, name)?;
    let dpi = dpi::of_image(&bytes, format);
    each(Page {
        bytes,
        content_type,
        gray,
        dpi,
    });
    Ok(1)
}

/// Collects split pages, enforcing the per-file limits on count and bytes.
pub(crate) struct Splitter<'a> {
    each: &'a mut dyn FnMut(Page),
    count: usize,
    bytes: u64,
}

impl<'a> Splitter<'a> {
    pub(crate) fn new(each: &'a mut dyn FnMut(Page)) -> Splitter<'a> {
        Splitter {
            each,
            count: 0,
            bytes: 0,
        }
    }

    /// Call before decoding each page, so a bomb of pages stops early.
    pub(crate) fn next_index(&self) -> Result<usize, PageError> {
        if self.count >= MAX_PAGES_PER_FILE {
            return Err(PageError::TooManyPages);
        }
        Ok(self.count)
    }

    pub(crate) fn push(&mut self, page: Page) -> Result<(), PageError> {
        let size = page.bytes.len() as u64;
        if size > MAX_PAGE_BYTES {
            return Err(PageError::PageTooLarge(size).in_page(self.count));
        }
        self.bytes += size;
        if self.bytes > MAX_SPLIT_BYTES {
            return Err(PageError::SplitTooLarge);
        }
        self.count += 1;
        (self.each)(page);
        Ok(())
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

/// A page as PNG: the lossless choice for a page that was not JPEG.
pub(crate) fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, PageError> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| PageError::Decode {
            format: "PNG",
            message: format!("re-encoding the page: {e}"),
        })?;
    Ok(out.into_inner())
}

/// The end-of-image marker, allowing the zero padding some scanners append.
pub(crate) fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    let trimmed = tail
        .iter()
        .rposition(|&b| b != 0)
        .map_or(&tail[..0], |end| &tail[..=end]);
    trimmed.ends_with(&[0xFF, 0xD9])
}

pub(crate) fn decode_gray(
    bytes: &[u8],
    format: ImageFormat,
    name: &'static str,
) -> Result<GrayImage, PageError> {
    decode_image(bytes, format, name).map(DynamicImage::into_luma8)
}

/// Decodes one image within the agent's limits, behind `catch_unwind`.
pub(crate) fn decode_image(
    bytes: &[u8],
    format: ImageFormat,
    name: &'static str,
) -> Result<DynamicImage, PageError> {
    let decoded = guarded(|| {
        let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
        reader.limits(limits());
        reader.decode()
    });
    match decoded {
        Some(Ok(image)) => Ok(image),
        Some(Err(image::ImageError::Limits(e))) => Err(PageError::Decode {
            format: name,
            message: format!(
                "over the agent's limits ({MAX_SIDE} px a side, {MAX_DECODED_BYTES} bytes decoded): {e}"
            ),
        }),
        Some(Err(e)) => Err(PageError::Decode {
            format: name,
            message: e.to_string(),
        }),
        None => Err(PageError::Decode {
            format: name,
            message: "the decoder failed on this file".to_owned(),
        }),
    }
}

/// A page with almost no dark pixels away from its edges: the back of a duplex
/// scan. Marked, never dropped.
pub fn is_blank(gray: &GrayImage) -> bool {
    let (w, h) = gray.dimensions();
    if w < 20 || h < 20 {
        return false;
    }
    // Skip a 5% margin, where scanner edges and punch holes show.
    let (x0, y0, x1, y1) = (w / 20, h / 20, w - w / 20, h - h / 20);
    let step = (w.min(h) / 400).max(1);
    let (mut dark, mut total) = (0u64, 0u64);
    for y in (y0..y1).step_by(step as usize) {
        for x in (x0..x1).step_by(step as usize) {
            total += 1;
            if gray.get_pixel(x, y).0[0] < 128 {
                dark += 1;
            }
        }
    }
    total > 0 && dark * 1000 < total * 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn png(img: &GrayImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_single_image_is_one_page_byte_for_byte() {
        let img = GrayImage::from_pixel(100, 80, Luma([255]));
        let bytes = png(&img);
        let pages = extract(bytes.clone()).unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].bytes, bytes);
        assert_eq!(pages[0].content_type, "image/png");
        assert_eq!(pages[0].gray.dimensions(), (100, 80));
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(matches!(
            extract(b"hello, not an image".to_vec()),
            Err(PageError::UnknownFormat)
        ));
        assert!(matches!(extract(Vec::new()), Err(PageError::Empty)));
        let img = GrayImage::from_pixel(300, 300, Luma([10]));
        let mut bytes = png(&img);
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(extract(bytes), Err(PageError::Decode { .. })));

        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80);
        img.write_with_encoder(encoder).unwrap();
        assert_eq!(extract(jpeg.clone()).map(|p| p.len()).ok(), Some(1));
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 16]);
        assert!(extract(padded).is_ok(), "zero padding after EOI is fine");
        jpeg.truncate(jpeg.len() - 10);
        assert!(matches!(extract(jpeg), Err(PageError::TruncatedJpeg)));
    }

    #[test]
    fn blank_detection() {
        let white = GrayImage::from_pixel(800, 1100, Luma([250]));
        assert!(is_blank(&white));
        let mut text = white.clone();
        for y in 200..260 {
            for x in 100..700 {
                text.put_pixel(x, y, Luma([0]));
            }
        }
        assert!(!is_blank(&text));
    }
}
