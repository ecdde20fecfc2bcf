//! TIFF, single or multi-page: uncompressed, LZW, Deflate, JPEG and CCITT G4
//! through the `tiff` crate; CCITT G3 (T.4 1-D and 2-D, and Modified Huffman,
//! which `tiff` does not read) through [`super::ccitt`] on the raw strips.
//! What `tiff` refuses but scanners write is worked around: JPEG pages it will not convert (old-style JPEG, YCbCr
//! subsampling) go to the JPEG decoder; 8-bit palette pages, PIXTIFF's
//! private zlib code (50013) and a bogus StripByteCounts of 0 are read from a
//! patched copy of the page's directory.
//!
//! A single-page TIFF is delivered byte for byte; each page of a multi-page
//! TIFF becomes its own file, since a viewer shows one image per page: the
//! page's JPEG as is when it was stored as one, else PNG.

use super::ccitt::{self, Coding};
use super::dpi::Dpi;
use super::{Page, PageError, Splitter, check_dimensions, encode_png};
use crate::guard::guarded;
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
const COMPRESSION_OLD_JPEG: u16 = 6;
const COMPRESSION_JPEG: u16 = 7;
const COMPRESSION_DEFLATE: u16 = 8;
/// PIXTIFF's private number for zlib-compressed strips.
const COMPRESSION_PIXTIFF_ZIP: u16 = 50013;
const PHOTOMETRIC_PALETTE: u16 = 3;
/// Old-style JPEG's pointer to its JPEG header.
const JPEG_INTERCHANGE_FORMAT: Tag = Tag::Unknown(513);

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
        (
            read_page(&mut decoder, &bytes, 0)?,
            resolution(&mut decoder),
        )
    };
    let (first, dpi) = first;
    if bytes.len() as u64 > super::MAX_PAGE_BYTES {
        return Err(PageError::PageTooLarge(bytes.len() as u64));
    }
    splitter.push(Page {
        bytes,
        content_type: "image/tiff",
        gray: first.to_luma8(),
        dpi,
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
        let page = split_page(decoder, bytes, index).map_err(|e| e.in_page(index))?;
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
fn split_page(
    decoder: &mut TiffDecoder<'_>,
    bytes: &[u8],
    index: usize,
) -> Result<Page, PageError> {
    let dpi = resolution(decoder);
    if let Some(jpeg) = embedded_jpeg(decoder, bytes) {
        // Kept only if it stands on its own; otherwise the pixels are re-encoded.
        if let Ok(gray) = super::decode_gray(&jpeg, image::ImageFormat::Jpeg, "JPEG") {
            let (width, height) = decoder.dimensions().map_err(decode_error)?;
            if gray.dimensions() == (width, height) {
                return Ok(Page {
                    bytes: jpeg,
                    content_type: "image/jpeg",
                    gray,
                    dpi,
                });
            }
        }
    }
    let image = read_page(decoder, bytes, index)?;
    Ok(Page {
        bytes: encode_png(&image)?,
        content_type: "image/png",
        gray: image.into_luma8(),
        dpi,
    })
}

/// The page's XResolution/YResolution in its ResolutionUnit (inch by default).
fn resolution(decoder: &mut TiffDecoder<'_>) -> Option<Dpi> {
    let mut number = |tag| -> Option<f64> {
        match decoder.find_tag(tag).ok()?? {
            tiff::decoder::ifd::Value::Rational(n, d) if d != 0 => Some(n as f64 / d as f64),
            other => other.into_u64().ok().map(|v| v as f64),
        }
    };
    let (x, y) = (number(Tag::XResolution)?, number(Tag::YResolution)?);
    let unit = decoder
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
        .unwrap_or(2);
    super::dpi::in_unit(x, y, unit)
}

/// A JPEG-compressed page stored as one strip is a JPEG file once the shared
/// tables are put in front of it. Grey and YCbCr only: an RGB JPEG strip has no
/// marker saying so and would show in false colours on its own.
fn embedded_jpeg(decoder: &mut TiffDecoder<'_>, bytes: &[u8]) -> Option<Vec<u8>> {
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

/// Decodes the decoder's current page, the `index`th of the file.
fn read_page(
    decoder: &mut TiffDecoder<'_>,
    bytes: &[u8],
    index: usize,
) -> Result<DynamicImage, PageError> {
    let (width, height) = decoder.dimensions().map_err(decode_error)?;
    // Palette pages are 1 byte a pixel until the colour map makes them RGB.
    check_dimensions(width as u64, height as u64, 4)?;
    let compression: Option<u16> = decoder
        .find_tag_unsigned(Tag::Compression)
        .map_err(decode_error)?;
    if matches!(compression, Some(COMPRESSION_T4 | COMPRESSION_CCITT_RLE)) {
        return read_g3(decoder, bytes, compression, width, height).map(DynamicImage::ImageLuma8);
    }
    if compression == Some(COMPRESSION_OLD_JPEG) {
        return read_old_jpeg(decoder, bytes);
    }
    let photometric: Option<u16> = decoder
        .find_tag_unsigned(Tag::PhotometricInterpretation)
        .map_err(decode_error)?;
    let counts: Vec<u64> = decoder
        .find_tag_unsigned_vec(Tag::StripByteCounts)
        .map_err(decode_error)?
        .unwrap_or_default();
    let mut fixes = Vec::new();
    if compression == Some(COMPRESSION_PIXTIFF_ZIP) {
        // PIXTIFF's private code for what is plain zlib (Adobe Deflate).
        fixes.push(Fix::Set(Tag::Compression.to_u16(), COMPRESSION_DEFLATE));
    }
    if photometric == Some(PHOTOMETRIC_PALETTE) {
        // Read the indices as grey, then apply the ColorMap here.
        fixes.push(Fix::Set(Tag::PhotometricInterpretation.to_u16(), 1));
    }
    if counts == [0] {
        // A bogus StripByteCounts of 0: the strip runs to the end of the file.
        fixes.push(Fix::StripToEnd);
    }
    if !fixes.is_empty() {
        let pointer = decoder
            .ifd_pointer()
            .ok_or_else(|| decode_error("no image directory"))?;
        let patched = patch_ifd(bytes, pointer.0, &fixes)
            .ok_or_else(|| decode_error("cannot read this page's directory"))?;
        let mut patched_decoder = guarded(|| Decoder::new(Cursor::new(patched.as_slice())))
            .ok_or_else(panicked)?
            .map_err(decode_error)?
            .with_limits(limits());
        guarded(|| patched_decoder.seek_to_image(index))
            .ok_or_else(panicked)?
            .map_err(decode_error)?;
        let image = decode_pixels(&mut patched_decoder, width, height)?;
        if photometric == Some(PHOTOMETRIC_PALETTE) {
            let map: Vec<u16> = decoder
                .find_tag_unsigned_vec(Tag::ColorMap)
                .map_err(decode_error)?
                .ok_or_else(|| decode_error("palette image without a ColorMap"))?;
            return apply_color_map(image, &map);
        }
        return Ok(image);
    }
    match decode_pixels(decoder, width, height) {
        // The `tiff` crate refuses some JPEG pages (YCbCr subsampling or
        // colour types it does not convert); the JPEG decoder reads them.
        Err(e) if compression == Some(COMPRESSION_JPEG) => {
            read_new_jpeg(decoder, bytes, height).map_err(|_| e)
        }
        other => other,
    }
}

fn decode_pixels(
    decoder: &mut TiffDecoder<'_>,
    width: u32,
    height: u32,
) -> Result<DynamicImage, PageError> {
    let color = decoder.colortype().map_err(decode_error)?;
    let data = guarded(|| decoder.read_image())
        .ok_or_else(panicked)?
        .map_err(decode_error)?;
    to_image(color, data, width, height)
}

/// A change made to a copy of the file so that the `tiff` crate reads a page.
enum Fix {
    /// A one-value SHORT or LONG tag gets this value.
    Set(u16, u16),
    /// A single strip's byte count becomes "to the end of the file".
    StripToEnd,
}

/// A copy of `bytes` with the fixes made in the (classic TIFF) IFD at `ifd`.
fn patch_ifd(bytes: &[u8], ifd: u64, fixes: &[Fix]) -> Option<Vec<u8>> {
    let big = match bytes.get(..4)? {
        [b'I', b'I', 42, 0] => false,
        [b'M', b'M', 0, 42] => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd = usize::try_from(ifd).ok()?;
    let entries = u16_at(ifd)? as usize;
    let mut out = bytes.to_vec();
    let mut put = |at: usize, value: &[u8]| -> Option<()> {
        out.get_mut(at..at + value.len())?.copy_from_slice(value);
        Some(())
    };
    let mut strip_offset = None;
    let mut count_value_at = None;
    for i in 0..entries {
        let entry = ifd + 2 + 12 * i;
        let (tag, kind, count) = (u16_at(entry)?, u16_at(entry + 2)?, u32_at(entry + 4)?);
        let value_at = entry + 8;
        for fix in fixes {
            if let Fix::Set(wanted, value) = fix
                && *wanted == tag
                && count == 1
            {
                match kind {
                    3 if big => put(value_at, &value.to_be_bytes())?,
                    3 => put(value_at, &value.to_le_bytes())?,
                    4 if big => put(value_at, &u32::from(*value).to_be_bytes())?,
                    4 => put(value_at, &u32::from(*value).to_le_bytes())?,
                    _ => return None,
                }
            }
        }
        if count == 1 && tag == Tag::StripOffsets.to_u16() {
            strip_offset = Some(match kind {
                3 => u32::from(u16_at(value_at)?),
                4 => u32_at(value_at)?,
                _ => return None,
            });
        }
        if count == 1 && kind == 4 && tag == Tag::StripByteCounts.to_u16() {
            count_value_at = Some(value_at);
        }
    }
    if fixes.iter().any(|f| matches!(f, Fix::StripToEnd)) {
        let length = u32::try_from(bytes.len().checked_sub(strip_offset? as usize)?).ok()?;
        let length = if big {
            length.to_be_bytes()
        } else {
            length.to_le_bytes()
        };
        put(count_value_at?, &length)?;
    }
    Some(out)
}

/// Palette indices (read as grey) through the TIFF ColorMap: all reds, then
/// greens, then blues, each 16-bit. Some writers store 0-255 instead; a map
/// with no value over 255 is taken as that.
fn apply_color_map(indices: DynamicImage, map: &[u16]) -> Result<DynamicImage, PageError> {
    let DynamicImage::ImageLuma8(indices) = indices else {
        return Err(PageError::Unsupported {
            format: FORMAT,
            what: "palette image that is not 8 bits a pixel".to_owned(),
        });
    };
    if map.len() < 3 * 256 {
        return Err(decode_error("ColorMap is too short for 8-bit indices"));
    }
    let eight_bit = map.iter().all(|&v| v <= 255);
    let level = |v: u16| if eight_bit { v as u8 } else { (v >> 8) as u8 };
    let (w, h) = indices.dimensions();
    Ok(DynamicImage::ImageRgb8(image::RgbImage::from_fn(
        w,
        h,
        |x, y| {
            let i = indices.get_pixel(x, y).0[0] as usize;
            Rgb([level(map[i]), level(map[256 + i]), level(map[512 + i])])
        },
    )))
}

/// The page's strips as (offset, length) slices of the file.
fn strips<'a>(decoder: &mut TiffDecoder<'_>, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, PageError> {
    let offsets: Vec<u64> = decoder
        .find_tag_unsigned_vec(Tag::StripOffsets)
        .map_err(decode_error)?
        .ok_or_else(|| decode_error("no strip offsets"))?;
    let counts: Vec<u64> = decoder
        .find_tag_unsigned_vec(Tag::StripByteCounts)
        .map_err(decode_error)?
        .ok_or_else(|| decode_error("no strip byte counts"))?;
    offsets
        .iter()
        .zip(&counts)
        .map(|(&offset, &count)| {
            usize::try_from(offset)
                .ok()
                .zip(usize::try_from(count).ok())
                .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?))
                .ok_or_else(|| decode_error("a strip lies outside the file"))
        })
        .collect()
}

/// MCUs in one strip of an old-style JPEG page stored as several scans.
fn restart_interval(decoder: &mut TiffDecoder<'_>) -> Result<u16, PageError> {
    let (width, height) = decoder.dimensions().map_err(decode_error)?;
    let rows: u32 = decoder
        .find_tag_unsigned(Tag::RowsPerStrip)
        .map_err(decode_error)?
        .unwrap_or(height);
    let photometric: Option<u16> = decoder
        .find_tag_unsigned(Tag::PhotometricInterpretation)
        .map_err(decode_error)?;
    let (h, v) = match decoder.find_tag_unsigned_vec::<u32>(Tag::ChromaSubsampling) {
        Ok(Some(s)) if s.len() == 2 && photometric == Some(6) => (s[0], s[1]),
        _ if photometric == Some(6) => (2, 2),
        _ => (1, 1),
    };
    let (mcu_w, mcu_h) = (8 * h.clamp(1, 4), 8 * v.clamp(1, 4));
    if !rows.is_multiple_of(mcu_h) {
        return Err(PageError::Unsupported {
            format: FORMAT,
            what: "old-style JPEG strips that split MCU rows".to_owned(),
        });
    }
    u16::try_from(width.div_ceil(mcu_w) * (rows / mcu_h))
        .map_err(|_| decode_error("old-style JPEG strips are too large"))
}

/// New-style JPEG (compression 7) strips, each a JPEG once the shared tables
/// are put in front of it, decoded by the JPEG decoder and stacked.
fn read_new_jpeg(
    decoder: &mut TiffDecoder<'_>,
    bytes: &[u8],
    height: u32,
) -> Result<DynamicImage, PageError> {
    let tables = decoder
        .find_tag(Tag::JPEGTables)
        .ok()
        .flatten()
        .and_then(|v| v.into_u8_vec().ok());
    let rows_per_strip: u32 = decoder
        .find_tag_unsigned(Tag::RowsPerStrip)
        .map_err(decode_error)?
        .unwrap_or(height)
        .clamp(1, height);
    let strips = strips(decoder, bytes)?;
    let (width, _) = decoder.dimensions().map_err(decode_error)?;
    let mut page: Option<image::RgbImage> = None;
    for (i, strip) in strips.iter().enumerate() {
        let jpeg = match &tables {
            Some(tables) if tables.len() > 4 && strip.len() > 4 => {
                let mut jpeg = tables[..tables.len() - 2].to_vec();
                jpeg.extend_from_slice(&strip[2..]);
                jpeg
            }
            _ => strip.to_vec(),
        };
        let decoded = super::decode_image(&jpeg, image::ImageFormat::Jpeg, FORMAT)?.into_rgb8();
        if strips.len() == 1 {
            return Ok(DynamicImage::ImageRgb8(decoded));
        }
        let page = page.get_or_insert_with(|| image::RgbImage::new(width, height));
        image::imageops::replace(page, &decoded, 0, i as i64 * rows_per_strip as i64);
    }
    page.map(DynamicImage::ImageRgb8)
        .ok_or_else(|| decode_error("JPEG page without strips"))
}

/// Old-style JPEG (compression 6): JPEGInterchangeFormat points at either a
/// whole JPEG, or at its header (tables, frame) with the scan data in the
/// strips, which start at their SOS marker.
fn read_old_jpeg(decoder: &mut TiffDecoder<'_>, bytes: &[u8]) -> Result<DynamicImage, PageError> {
    let start: Option<usize> = decoder
        .find_tag_unsigned(JPEG_INTERCHANGE_FORMAT)
        .map_err(decode_error)?;
    let strips = strips(decoder, bytes)?;
    let unsupported = || PageError::Unsupported {
        format: FORMAT,
        what: "old-style JPEG without a JPEG header".to_owned(),
    };
    let start = start.ok_or_else(unsupported)?;
    let header = bytes.get(start..).ok_or_else(unsupported)?;
    let first = strips.first().ok_or_else(unsupported)?;
    if !header.starts_with(&[0xFF, 0xD8]) {
        return Err(unsupported());
    }
    if !first.starts_with(&[0xFF, 0xDA]) {
        // A whole JPEG: the decoder stops at its end-of-image marker.
        return super::decode_image(header, image::ImageFormat::Jpeg, FORMAT);
    }
    let first_offset = first.as_ptr() as usize - bytes.as_ptr() as usize;
    let mut header = bytes
        .get(start..first_offset.max(start))
        .ok_or_else(unsupported)?;
    if header.ends_with(&[0xFF, 0xD9]) {
        header = &header[..header.len() - 2];
    }
    let mut jpeg = header.to_vec();
    if let [first, rest @ ..] = strips.as_slice()
        && !rest.is_empty()
    {
        // Each strip restarts the entropy coding on whole MCU rows: as
        // libtiff does, make it one scan with a restart marker per strip.
        let interval = restart_interval(decoder)?;
        jpeg.extend_from_slice(&[0xFF, 0xDD, 0, 4]);
        jpeg.extend_from_slice(&interval.to_be_bytes());
        jpeg.extend_from_slice(first);
        for (i, strip) in rest.iter().enumerate() {
            // Later strips are bare entropy data, or repeat the SOS header.
            let data = if strip.starts_with(&[0xFF, 0xDA]) {
                strip
                    .get(2..4)
                    .map(|l| 2 + u16::from_be_bytes([l[0], l[1]]) as usize)
                    .and_then(|skip| strip.get(skip..))
                    .ok_or_else(unsupported)?
            } else {
                strip
            };
            jpeg.extend_from_slice(&[0xFF, 0xD0 + (i % 8) as u8]);
            jpeg.extend_from_slice(data);
        }
    } else {
        for strip in &strips {
            jpeg.extend_from_slice(strip);
        }
    }
    if !jpeg.ends_with(&[0xFF, 0xD9]) {
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
    }
    super::decode_image(&jpeg, image::ImageFormat::Jpeg, FORMAT)
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
    let options: u32 = decoder
        .find_tag_unsigned(T4_OPTIONS)
        .map_err(decode_error)?
        .unwrap_or(0);
    let coding = if compression == Some(COMPRESSION_CCITT_RLE) {
        Coding::ModifiedHuffman
    } else if options & 1 != 0 {
        Coding::G3TwoD
    } else {
        Coding::G3
    };
    // FillOrder 2: the bits of each byte are stored lowest first.
    let reversed = decoder
        .find_tag_unsigned::<u16>(Tag::FillOrder)
        .map_err(decode_error)?
        == Some(2);
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
        let decoded = if reversed {
            let strip: Vec<u8> = strip.iter().map(|b| b.reverse_bits()).collect();
            ccitt::decode(&strip, coding, width, rows, FORMAT)?
        } else {
            ccitt::decode(strip, coding, width, rows, FORMAT)?
        };
        image::imageops::replace(&mut page, &decoded, 0, top as i64);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: u16 = 3;
    const LONG: u16 = 4;

    /// A little-endian one-strip TIFF written by hand, for the cases the
    /// `tiff` encoder cannot write. The strip is at offset 8; `tags` must not
    /// include StripOffsets, which is added.
    fn raw_tiff(tags: &[(u16, u16, Vec<u32>)], strip: &[u8]) -> Vec<u8> {
        let mut tags = tags.to_vec();
        tags.push((273, LONG, vec![8]));
        tags.sort_by_key(|t| t.0);
        let mut out = b"II*\0\0\0\0\0".to_vec();
        out.extend_from_slice(strip);
        let encode = |kind: u16, values: &[u32]| -> Vec<u8> {
            values
                .iter()
                .flat_map(|&v| match kind {
                    SHORT => (v as u16).to_le_bytes().to_vec(),
                    LONG => v.to_le_bytes().to_vec(),
                    _ => vec![v as u8],
                })
                .collect()
        };
        // Out-of-line values first, then the IFD.
        let mut fields = Vec::new();
        for (tag, kind, values) in &tags {
            let mut data = encode(*kind, values);
            if data.len() > 4 {
                if out.len() % 2 == 1 {
                    out.push(0);
                }
                let at = out.len() as u32;
                out.extend_from_slice(&data);
                data = at.to_le_bytes().to_vec();
            }
            data.resize(4, 0);
            fields.push((*tag, *kind, values.len() as u32, data));
        }
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let ifd = out.len() as u32;
        out[4..8].copy_from_slice(&ifd.to_le_bytes());
        out.extend_from_slice(&(fields.len() as u16).to_le_bytes());
        for (tag, kind, count, data) in fields {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&data);
        }
        out.extend_from_slice(&[0; 4]);
        out
    }

    fn base_tags(
        w: u32,
        h: u32,
        bits: u32,
        compression: u32,
        photometric: u32,
    ) -> Vec<(u16, u16, Vec<u32>)> {
        vec![
            (256, LONG, vec![w]),
            (257, LONG, vec![h]),
            (258, SHORT, vec![bits]),
            (259, SHORT, vec![compression]),
            (262, SHORT, vec![photometric]),
            (277, SHORT, vec![1]),
            (278, LONG, vec![h]),
        ]
    }

    fn one_page(bytes: Vec<u8>) -> Page {
        let mut pages = Vec::new();
        extract_each(bytes, &mut |p| pages.push(p)).unwrap();
        assert_eq!(pages.len(), 1);
        pages.remove(0)
    }

    #[test]
    fn palette_pages_go_through_their_color_map() {
        let (w, h) = (4u32, 2u32);
        let indices = vec![0u8, 1, 2, 3, 3, 2, 1, 0];
        for scale in [257u32, 1] {
            // Index i is grey 80*i; `scale` 1 is the 0-255 writer bug.
            let mut map: Vec<u32> = Vec::new();
            for _ in 0..3 {
                map.extend((0..256u32).map(|i| (80 * i).min(255) * scale));
            }
            let mut tags = base_tags(w, h, 8, 1, 3);
            tags.push((279, LONG, vec![indices.len() as u32]));
            tags.push((320, SHORT, map));
            let page = one_page(raw_tiff(&tags, &indices));
            assert_eq!(page.content_type, "image/tiff");
            assert_eq!(page.gray.as_raw(), &vec![0, 80, 160, 240, 240, 160, 80, 0]);
        }
    }

    #[test]
    fn pixtiff_zip_is_read_as_deflate() {
        let pixels = GrayImage::from_fn(64, 32, |x, y| Luma([(x * 3 + y) as u8]));
        let mut out = Cursor::new(Vec::new());
        ::tiff::encoder::TiffEncoder::new(&mut out)
            .unwrap()
            .with_compression(::tiff::encoder::Compression::Deflate(Default::default()))
            .write_image::<::tiff::encoder::colortype::Gray8>(64, 32, pixels.as_raw())
            .unwrap();
        let deflate = out.into_inner();
        let ifd = if deflate.starts_with(b"II") {
            u32::from_le_bytes(deflate[4..8].try_into().unwrap())
        } else {
            u32::from_be_bytes(deflate[4..8].try_into().unwrap())
        };
        let pixtiff = patch_ifd(&deflate, ifd.into(), &[Fix::Set(259, 50013)]).unwrap();
        assert_ne!(pixtiff, deflate);
        let page = one_page(pixtiff);
        assert_eq!(page.gray, pixels);
    }

    #[test]
    fn a_strip_byte_count_of_zero_reads_to_the_end() {
        let mut img = GrayImage::from_pixel(64, 16, Luma([255]));
        for x in 10..50 {
            img.put_pixel(x, 5, Luma([0]));
        }
        let mut encoder = fax::encoder::Encoder::new(fax::VecWriter::new());
        for row in img.rows() {
            let pels = row.map(|p| {
                if p.0[0] < 128 {
                    fax::Color::Black
                } else {
                    fax::Color::White
                }
            });
            encoder.encode_line(pels, 64).unwrap();
        }
        let g4 = encoder.finish().unwrap().finish();
        let mut tags = base_tags(64, 16, 1, 4, 0);
        tags.push((279, LONG, vec![0]));
        let page = one_page(raw_tiff(&tags, &g4));
        assert_eq!(page.gray, img);
    }

    fn test_jpeg() -> (image::RgbImage, Vec<u8>) {
        let img = image::RgbImage::from_fn(48, 32, |x, _| {
            if x < 24 {
                Rgb([20, 20, 20])
            } else {
                Rgb([235, 235, 235])
            }
        });
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90);
        img.write_with_encoder(encoder).unwrap();
        (img, jpeg)
    }

    fn assert_halves(gray: &GrayImage) {
        assert_eq!(gray.dimensions(), (48, 32));
        assert!(gray.get_pixel(2, 2).0[0] < 60, "{:?}", gray.get_pixel(2, 2));
        assert!(
            gray.get_pixel(45, 30).0[0] > 200,
            "{:?}",
            gray.get_pixel(45, 30)
        );
    }

    #[test]
    fn jpeg_pages_the_tiff_crate_refuses_go_to_the_jpeg_decoder() {
        let (_, jpeg) = test_jpeg();
        // New-style JPEG, YCbCr with subsampling tags.
        let mut tags = base_tags(48, 32, 8, 7, 6);
        tags[2] = (258, SHORT, vec![8, 8, 8]);
        tags[5] = (277, SHORT, vec![3]);
        tags.push((279, LONG, vec![jpeg.len() as u32]));
        tags.push((530, SHORT, vec![2, 2]));
        assert_halves(&one_page(raw_tiff(&tags, &jpeg)).gray);

        // Old-style JPEG whose JPEGInterchangeFormat is the whole JPEG.
        let mut tags = base_tags(48, 32, 8, 6, 6);
        tags[2] = (258, SHORT, vec![8, 8, 8]);
        tags[5] = (277, SHORT, vec![3]);
        tags.push((279, LONG, vec![jpeg.len() as u32]));
        tags.push((513, LONG, vec![8]));
        tags.push((514, LONG, vec![jpeg.len() as u32]));
        assert_halves(&one_page(raw_tiff(&tags, &jpeg)).gray);

        // Old-style JPEG with the header before the strip, which starts at SOS.
        let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut tags = base_tags(48, 32, 8, 6, 6);
        tags[2] = (258, SHORT, vec![8, 8, 8]);
        tags[5] = (277, SHORT, vec![3]);
        tags.push((279, LONG, vec![(jpeg.len() - sos) as u32]));
        tags.push((513, LONG, vec![8]));
        // StripOffsets is 8 in raw_tiff: point the header there and move the
        // strip by hand.
        let mut file = raw_tiff(&tags, &jpeg);
        let ifd = u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize;
        let entries = u16::from_le_bytes(file[ifd..ifd + 2].try_into().unwrap()) as usize;
        for i in 0..entries {
            let e = ifd + 2 + 12 * i;
            if file[e..e + 2] == 273u16.to_le_bytes() {
                file[e + 8..e + 12].copy_from_slice(&(8 + sos as u32).to_le_bytes());
            }
        }
        assert_halves(&one_page(file).gray);
    }
}
