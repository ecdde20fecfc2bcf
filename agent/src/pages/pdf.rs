//! PDF as scanners write it: each page is one embedded image XObject. We take
//! that image out rather than render the page (no PDF renderer on a desk PC):
//! `DCTDecode` images are JPEG and kept byte for byte; `FlateDecode` (or
//! unfiltered) pixels and `CCITTFaxDecode` bitonal images become PNG.
//!
//! A page with several images (a scanner's thumbnail, a mask) gives its
//! largest; a page with none is a text PDF, which the agent does not read.

use super::ccitt::{self, Coding};
use super::{Page, PageError, Splitter, check_dimensions, encode_png, guarded};
use image::{DynamicImage, GrayImage, ImageBuffer, ImageFormat, Luma};
use lopdf::{Dictionary, Document, Object};

const FORMAT: &str = "PDF";

/// The header may follow a little junk; readers accept it within the first KiB.
pub fn is_pdf(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
}

fn decode_error(e: impl std::fmt::Display) -> PageError {
    PageError::Decode {
        format: FORMAT,
        message: e.to_string(),
    }
}

fn unsupported(what: String) -> PageError {
    PageError::Unsupported {
        format: FORMAT,
        what,
    }
}

pub fn extract_each(bytes: &[u8], each: &mut dyn FnMut(Page)) -> Result<usize, PageError> {
    let options = lopdf::LoadOptions {
        // Object and xref streams are small; a huge one is a bomb.
        max_decompressed_size: Some(64 * 1024 * 1024),
        ..Default::default()
    };
    let doc = guarded(|| Document::load_mem_with_options(bytes, options))
        .ok_or_else(|| decode_error("the PDF reader failed on this file"))?
        .map_err(decode_error)?;
    let pages = doc.get_pages();
    if pages.len() > super::MAX_PAGES_PER_FILE {
        return Err(PageError::TooManyPages);
    }
    let mut splitter = Splitter::new(each);
    for &page_id in pages.values() {
        let index = splitter.next_index()?;
        let page = guarded(|| page_image(&doc, page_id))
            .unwrap_or_else(|| Err(decode_error("the PDF reader failed on this page")))
            .map_err(|e| e.in_page(index))?;
        splitter.push(page)?;
    }
    if splitter.count() == 0 {
        return Err(PageError::NoImage);
    }
    Ok(splitter.count())
}

fn page_image(doc: &Document, page_id: lopdf::ObjectId) -> Result<Page, PageError> {
    let images = doc.get_page_images(page_id).map_err(decode_error)?;
    let image = images
        .iter()
        .max_by_key(|i| i.width.saturating_mul(i.height))
        .ok_or(PageError::NoImage)?;
    let (width, height) = (image.width, image.height);
    if width <= 0 || height <= 0 {
        return Err(PageError::Dimensions {
            width: width.max(0) as u64,
            height: height.max(0) as u64,
        });
    }
    let (width, height) = (width as u64, height as u64);
    check_dimensions(width, height, 1)?;
    let (w, h) = (width as u32, height as u32);
    let filters: Vec<&str> = image.filters.iter().flatten().map(String::as_str).collect();
    let dict = image.origin_dict;
    match filters.as_slice() {
        ["DCTDecode"] => {
            let jpeg = image.content.to_vec();
            if !super::has_jpeg_end(&jpeg) {
                return Err(PageError::TruncatedJpeg);
            }
            let gray = super::decode_gray(&jpeg, ImageFormat::Jpeg, "JPEG")?;
            Ok(Page {
                bytes: jpeg,
                content_type: "image/jpeg",
                gray,
            })
        }
        ["CCITTFaxDecode"] => {
            let params = decode_params(dict);
            let k = params
                .and_then(|p| p.get(b"K").ok())
                .and_then(|k| k.as_i64().ok())
                .unwrap_or(0);
            let coding = match k {
                k if k < 0 => Coding::G4,
                0 => Coding::G3,
                _ => return Err(unsupported("CCITT G3 with 2-D coding".to_owned())),
            };
            let mut gray = ccitt::decode(image.content, coding, w, h, FORMAT)?;
            if inverted(dict) {
                image::imageops::invert(&mut gray);
            }
            png_page(DynamicImage::ImageLuma8(gray))
        }
        [] | ["FlateDecode"] | ["LZWDecode"] | ["RunLengthDecode"] => {
            let components = components(doc, dict)?;
            let bpc = dict
                .get(b"BitsPerComponent")
                .and_then(Object::as_i64)
                .unwrap_or(if is_mask(dict) { 1 } else { 8 });
            let row_bits = width * components * bpc.max(1) as u64;
            let expected = row_bits.div_ceil(8) * height;
            check_dimensions(width, height, components)?;
            let stream = doc
                .get_object(image.id)
                .and_then(Object::as_stream)
                .map_err(decode_error)?;
            // Bounded: a Flate bomb stops at the size the image says it is.
            let data = stream
                .decompressed_content_with_limit(expected as usize + 1024)
                .map_err(decode_error)?;
            let image = pixels(&data, w, h, components, bpc)?;
            let image = match image {
                DynamicImage::ImageLuma8(mut gray) if inverted(dict) => {
                    image::imageops::invert(&mut gray);
                    DynamicImage::ImageLuma8(gray)
                }
                other => other,
            };
            png_page(image)
        }
        other => Err(unsupported(format!("image filter {other:?}"))),
    }
}

fn png_page(image: DynamicImage) -> Result<Page, PageError> {
    Ok(Page {
        bytes: encode_png(&image)?,
        content_type: "image/png",
        gray: image.into_luma8(),
    })
}

fn decode_params(dict: &Dictionary) -> Option<&Dictionary> {
    match dict.get(b"DecodeParms").ok()? {
        Object::Dictionary(d) => Some(d),
        Object::Array(a) => a.first()?.as_dict().ok(),
        _ => None,
    }
}

fn is_mask(dict: &Dictionary) -> bool {
    dict.get(b"ImageMask")
        .and_then(Object::as_bool)
        .unwrap_or(false)
}

/// `/Decode [1 0]` swaps black and white (and an image mask paints its 0 bits).
fn inverted(dict: &Dictionary) -> bool {
    let decode_first = dict
        .get(b"Decode")
        .and_then(Object::as_array)
        .ok()
        .and_then(|a| a.first())
        .and_then(|v| v.as_float().ok());
    decode_first.is_some_and(|v| v > 0.5)
}

/// Colour components of the image's colour space.
fn components(doc: &Document, dict: &Dictionary) -> Result<u64, PageError> {
    if is_mask(dict) {
        return Ok(1);
    }
    let space = dict.get(b"ColorSpace").map_err(decode_error)?;
    let space = match space {
        Object::Reference(id) => doc.get_object(*id).map_err(decode_error)?,
        other => other,
    };
    let (name, array) = match space {
        Object::Name(name) => (name.as_slice(), None),
        Object::Array(array) => (
            array
                .first()
                .and_then(|n| n.as_name().ok())
                .unwrap_or_default(),
            Some(array),
        ),
        _ => return Err(decode_error("colour space is neither a name nor an array")),
    };
    match name {
        b"DeviceGray" | b"CalGray" | b"G" => Ok(1),
        b"DeviceRGB" | b"CalRGB" | b"RGB" => Ok(3),
        b"DeviceCMYK" | b"CMYK" => Ok(4),
        b"ICCBased" => {
            let n = array
                .and_then(|a| a.get(1))
                .and_then(|r| r.as_reference().ok())
                .and_then(|id| doc.get_object(id).ok())
                .and_then(|o| o.as_stream().ok())
                .and_then(|s| s.dict.get(b"N").ok())
                .and_then(|n| n.as_i64().ok());
            match n {
                Some(n @ (1 | 3 | 4)) => Ok(n as u64),
                _ => Err(decode_error("ICC colour space without a usable N")),
            }
        }
        other => Err(unsupported(format!(
            "colour space {}",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// Raw samples to an image: 1- and 8-bit grey, 8-bit RGB and CMYK.
fn pixels(
    data: &[u8],
    w: u32,
    h: u32,
    components: u64,
    bpc: i64,
) -> Result<DynamicImage, PageError> {
    let short = || decode_error("image data is shorter than its size says");
    let (wu, hu) = (w as usize, h as usize);
    match (components, bpc) {
        (1, 1) => {
            let stride = wu.div_ceil(8);
            if data.len() < stride * hu {
                return Err(short());
            }
            Ok(DynamicImage::ImageLuma8(GrayImage::from_fn(
                w,
                h,
                |x, y| {
                    let byte = data[y as usize * stride + x as usize / 8];
                    Luma([if byte & (0x80 >> (x % 8)) != 0 {
                        255
                    } else {
                        0
                    }])
                },
            )))
        }
        (1, 8) => {
            let v = data.get(..wu * hu).ok_or_else(short)?.to_vec();
            Ok(DynamicImage::ImageLuma8(
                ImageBuffer::from_raw(w, h, v).ok_or_else(short)?,
            ))
        }
        (3, 8) => {
            let v = data.get(..wu * hu * 3).ok_or_else(short)?.to_vec();
            Ok(DynamicImage::ImageRgb8(
                ImageBuffer::from_raw(w, h, v).ok_or_else(short)?,
            ))
        }
        (4, 8) => {
            let v: Vec<u8> = data
                .get(..wu * hu * 4)
                .ok_or_else(short)?
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - p[3] as u16;
                    [0, 1, 2].map(|i| ((255 - p[i] as u16) * k / 255) as u8)
                })
                .collect();
            Ok(DynamicImage::ImageRgb8(
                ImageBuffer::from_raw(w, h, v).ok_or_else(short)?,
            ))
        }
        (c, b) => Err(unsupported(format!(
            "{c} colour components at {b} bits each"
        ))),
    }
}
