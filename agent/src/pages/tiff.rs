//! TIFF, single or multi-page: uncompressed, LZW, Deflate, JPEG and CCITT G4
//! through the `tiff` crate; CCITT G3 (which `tiff` does not read) through
//! [`super::ccitt`] on the raw strips.
//!
//! A single-page TIFF is delivered byte for byte; each page of a multi-page
//! TIFF becomes its own file, since a viewer shows one image per page: the
//! page's JPEG as is when it was stored as one, else PNG.

use super::ccitt::{self, Coding};
use super::{Page, PageError, Splitter, check_dimensions, encode_png, guarded};
use image::{DynamicImage, GrayImage, ImageBuffer, Luma, Rgb, Rgba};
use std::io::Cursor;
use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;

const FORMAT: &str = "TIFF";
/// T4Options, which the `tiff` crate has no name for.
const T4_OPTIONS: Tag = Tag::Unknown(292);
/// TIFF's Compression values for CCITT Modified Huffman and T.4.
const COMPRESSION_CCITT_RLE: u16 = 2;
const COMPRESSION_T4: u16 = 3;

type TiffDecoder<'a> = Decoder<Cursor<&'a [u8]>>;

fn decode_error(e: impl std::fmt::Display) -> PageError {
    PageError::Decode {
        format: FORMAT,
        message: e.to_string(),
    }
}

fn panicked() -> PageError {
    decode_error("the decoder failed on this file")
}

fn limits() -> tiff::decoder::Limits {
    let mut limits = tiff::decoder::Limits::default();
    limits.decoding_buffer_size = super::MAX_DECODED_BYTES as usize;
    limits.intermediate_buffer_size = super::MAX_DECODED_BYTES as usize;
    limits
}

pub fn extract_each(bytes: Vec<u8>, each: &mut dyn FnMut(Page)) -> Result<usize, PageError> {
    let mut splitter = Splitter::new(each);
    // The decoder borrows the bytes; a single page gives them back whole.
    let first = {
        let mut decoder = guarded(|| Decoder::new(Cursor::new(bytes.as_slice())))
            .ok_or_else(panicked)?
            .map_err(decode_error)?
            .with_limits(limits());
        if decoder.more_images() {
            // Multi-page: every page becomes its own JPEG or PNG.
            split_all(&mut decoder, &bytes, &mut splitter)?;
            return Ok(splitter.count());
        }
        read_page(&mut decoder, &bytes)?
    };
    if bytes.len() as u64 > super::MAX_PAGE_BYTES {
        return Err(PageError::PageTooLarge(bytes.len() as u64));
    }
    splitter.push(Page {
        bytes,
        content_type: "image/tiff",
        gray: first.to_luma8(),
    })?;
    Ok(splitter.count())
}

fn split_all(
    decoder: &mut TiffDecoder<'_>,
    bytes: &[u8],
    splitter: &mut Splitter<'_>,
) -> Result<(), PageError> {
    loop {
        let index = splitter.next_index()?;
        let page = split_page(decoder, bytes).map_err(|e| e.in_page(index))?;
        splitter.push(page)?;
        if !decoder.more_images() {
            return Ok(());
        }
        guarded(|| decoder.next_image())
            .ok_or_else(panicked)?
            .map_err(|e| decode_error(e).in_page(index + 1))?;
    }
}

/// One page of a multi-page TIFF: its JPEG as is when it holds one, else PNG.
fn split_page(decoder: &mut TiffDecoder<'_>, bytes: &[u8]) -> Result<Page, PageError> {
    if let Some(jpeg) = embedded_jpeg(decoder, bytes) {
        // Kept only if it stands on its own; otherwise the pixels are re-encoded.
        if let Ok(gray) = super::decode_gray(&jpeg, image::ImageFormat::Jpeg, "JPEG") {
            let (width, height) = decoder.dimensions().map_err(decode_error)?;
            if gray.dimensions() == (width, height) {
                return Ok(Page {
                    bytes: jpeg,
                    content_type: "image/jpeg",
                    gray,
                });
            }
        }
    }
    let image = read_page(decoder, bytes)?;
    Ok(Page {
        bytes: encode_png(&image)?,
        content_type: "image/png",
        gray: image.into_luma8(),
    })
}

/// A JPEG-compressed page stored as one strip is a JPEG file once the shared
/// tables are put in front of it. Grey and YCbCr only: an RGB JPEG strip has no
/// marker saying so and would show in false colours on its own.
fn embedded_jpeg(decoder: &mut TiffDecoder<'_>, bytes: &[u8]) -> Option<Vec<u8>> {
    const COMPRESSION_JPEG: u16 = 7;
    const BLACK_IS_ZERO: u16 = 1;
    const YCBCR: u16 = 6;
    let compression: u16 = decoder.find_tag_unsigned(Tag::Compression).ok()??;
    let photometric: u16 = decoder
        .find_tag_unsigned(Tag::PhotometricInterpretation)
        .ok()??;
    if compression != COMPRESSION_JPEG || !matches!(photometric, BLACK_IS_ZERO | YCBCR) {
        return None;
    }
    let offsets: Vec<u64> = decoder.find_tag_unsigned_vec(Tag::StripOffsets).ok()??;
    let counts: Vec<u64> = decoder.find_tag_unsigned_vec(Tag::StripByteCounts).ok()??;
    let ([offset], [count]) = (offsets.as_slice(), counts.as_slice()) else {
        return None;
    };
    let start = usize::try_from(*offset).ok()?;
    let strip = bytes.get(start..start.checked_add(usize::try_from(*count).ok()?)?)?;
    let tables = decoder
        .find_tag(Tag::JPEGTables)
        .ok()
        .flatten()
        .and_then(|v| v.into_u8_vec().ok());
    let jpeg = match tables {
        // Tables are SOI..EOI, the strip SOI..EOI: drop the inner EOI and SOI.
        Some(tables) if tables.len() > 4 && strip.len() > 4 => {
            let mut jpeg = tables[..tables.len() - 2].to_vec();
            jpeg.extend_from_slice(&strip[2..]);
            jpeg
        }
        _ => strip.to_vec(),
    };
    (jpeg.starts_with(&[0xFF, 0xD8]) && super::has_jpeg_end(&jpeg)).then_some(jpeg)
}

/// Decodes the decoder's current page.
fn read_page(decoder: &mut TiffDecoder<'_>, bytes: &[u8]) -> Result<DynamicImage, PageError> {
    let (width, height) = decoder.dimensions().map_err(decode_error)?;
    let color = decoder.colortype().map_err(decode_error)?;
    let bytes_per_pixel = match color {
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) => 2,
        _ => 4,
    };
    check_dimensions(width as u64, height as u64, bytes_per_pixel)?;
    let compression: Option<u16> = decoder
        .find_tag_unsigned(Tag::Compression)
        .map_err(decode_error)?;
    if matches!(compression, Some(COMPRESSION_T4 | COMPRESSION_CCITT_RLE)) {
        return read_g3(decoder, bytes, compression, width, height).map(DynamicImage::ImageLuma8);
    }
    let data = guarded(|| decoder.read_image())
        .ok_or_else(panicked)?
        .map_err(decode_error)?;
    to_image(color, data, width, height)
}

fn to_image(
    color: ColorType,
    data: DecodingResult,
    width: u32,
    height: u32,
) -> Result<DynamicImage, PageError> {
    let short = || decode_error("image data is shorter than its size says");
    let image = match (color, data) {
        // Bitonal: rows packed MSB first, 1 is white once `tiff` has applied
        // the photometric interpretation.
        (ColorType::Gray(1), DecodingResult::U8(packed)) => {
            let stride = width.div_ceil(8) as usize;
            if packed.len() < stride * height as usize {
                return Err(short());
            }
            DynamicImage::ImageLuma8(GrayImage::from_fn(width, height, |x, y| {
                let byte = packed[y as usize * stride + x as usize / 8];
                Luma([if byte & (0x80 >> (x % 8)) != 0 {
                    255
                } else {
                    0
                }])
            }))
        }
        (ColorType::Gray(8), DecodingResult::U8(v)) => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(width, height, v).ok_or_else(short)?)
        }
        (ColorType::Gray(16), DecodingResult::U16(v)) => {
            let v = v.into_iter().map(|s| (s >> 8) as u8).collect();
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(width, height, v).ok_or_else(short)?)
        }
        (ColorType::RGB(8), DecodingResult::U8(v)) => DynamicImage::ImageRgb8(
            ImageBuffer::<Rgb<u8>, _>::from_raw(width, height, v).ok_or_else(short)?,
        ),
        (ColorType::RGBA(8), DecodingResult::U8(v)) => DynamicImage::ImageRgba8(
            ImageBuffer::<Rgba<u8>, _>::from_raw(width, height, v).ok_or_else(short)?,
        ),
        (ColorType::CMYK(8), DecodingResult::U8(v)) => {
            let rgb: Vec<u8> = v
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - p[3] as u16;
                    [0, 1, 2].map(|i| ((255 - p[i] as u16) * k / 255) as u8)
                })
                .collect();
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(width, height, rgb).ok_or_else(short)?)
        }
        (color, _) => {
            return Err(PageError::Unsupported {
                format: FORMAT,
                what: format!("colour type {color:?}"),
            });
        }
    };
    Ok(image)
}

/// T.4 one-dimensional strips, decoded strip by strip from the raw file bytes.
fn read_g3(
    decoder: &mut TiffDecoder<'_>,
    bytes: &[u8],
    compression: Option<u16>,
    width: u32,
    height: u32,
) -> Result<GrayImage, PageError> {
    let unsupported = |what: &str| PageError::Unsupported {
        format: FORMAT,
        what: what.to_owned(),
    };
    if compression == Some(COMPRESSION_CCITT_RLE) {
        return Err(unsupported("CCITT Modified Huffman (compression 2)"));
    }
    let options: u32 = decoder
        .find_tag_unsigned(T4_OPTIONS)
        .map_err(decode_error)?
        .unwrap_or(0);
    if options & 1 != 0 {
        return Err(unsupported("CCITT G3 with 2-D coding"));
    }
    let offsets: Vec<u64> = decoder
        .find_tag_unsigned_vec(Tag::StripOffsets)
        .map_err(decode_error)?
        .ok_or_else(|| decode_error("no strip offsets"))?;
    let counts: Vec<u64> = decoder
        .find_tag_unsigned_vec(Tag::StripByteCounts)
        .map_err(decode_error)?
        .ok_or_else(|| decode_error("no strip byte counts"))?;
    let rows_per_strip: u32 = decoder
        .find_tag_unsigned(Tag::RowsPerStrip)
        .map_err(decode_error)?
        .unwrap_or(height)
        .clamp(1, height);
    let mut page = GrayImage::from_pixel(width, height, Luma([255]));
    for (i, (&offset, &count)) in offsets.iter().zip(&counts).enumerate() {
        let top = i as u32 * rows_per_strip;
        if top >= height {
            break;
        }
        let rows = rows_per_strip.min(height - top);
        let strip = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(count).ok())
            .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?))
            .ok_or_else(|| decode_error("a strip lies outside the file"))?;
        let decoded = ccitt::decode(strip, Coding::G3, width, rows, FORMAT)?;
        image::imageops::replace(&mut page, &decoded, 0, top as i64);
    }
    Ok(page)
}
