//! PDF as scanners write it: each page is one embedded image XObject. We take
//! that image out rather than render the page (no PDF renderer on a desk PC):
//! `DCTDecode` images are JPEG and kept byte for byte; `FlateDecode` (or
//! unfiltered) pixels, `CCITTFaxDecode` and `JBIG2Decode` bitonal images
//! become PNG.
//!
//! A page with several images (a scanner's thumbnail, a mask) gives its
//! largest; a page with none is a text PDF, which the agent does not read.

use super::ccitt::{self, Coding};
use super::jbig2;
use super::{Page, PageError, Splitter, check_dimensions, encode_png};
use crate::guard::guarded;
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
        let page = guarded(|| page_image(&doc, page_id).map(|page| with_dpi(&doc, page_id, page)))
            .unwrap_or_else(|| Err(decode_error("the PDF reader failed on this page")))
            .map_err(|e| e.in_page(index))?;
        splitter.push(page)?;
    }
    if splitter.count() == 0 {
        return Err(PageError::NoImage);
    }
    Ok(splitter.count())
}

/// One image XObject of a page, with every indirect value resolved.
struct PdfImage<'a> {
    id: lopdf::ObjectId,
    width: i64,
    height: i64,
    filters: Vec<String>,
    content: &'a [u8],
    dict: &'a Dictionary,
}

/// Follows indirect references (bounded by lopdf); a dangling one is `Null`.
fn deref<'a>(doc: &'a Document, object: &'a Object) -> &'a Object {
    doc.dereference(object)
        .map(|(_, o)| o)
        .unwrap_or(&Object::Null)
}

fn get<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    dict.get(key).ok().map(|o| deref(doc, o))
}

fn get_i64(doc: &Document, dict: &Dictionary, key: &[u8]) -> Option<i64> {
    get(doc, dict, key).and_then(|o| o.as_i64().ok())
}

/// The page's image XObjects, its own resources first, then inherited ones.
/// Unlike `Document::get_page_images` it accepts indirect Width, Height,
/// Filter and XObject entries, as real scanners write them.
fn page_images(doc: &Document, page_id: lopdf::ObjectId) -> Result<Vec<PdfImage<'_>>, PageError> {
    let (own, inherited) = doc.get_page_resources(page_id).map_err(decode_error)?;
    let mut resources: Vec<&Dictionary> = own.into_iter().collect();
    resources.extend(
        inherited
            .into_iter()
            .filter_map(|id| doc.get_dictionary(id).ok()),
    );
    let mut images = Vec::new();
    for resource in resources {
        let Some(Object::Dictionary(xobjects)) = get(doc, resource, b"XObject") else {
            continue;
        };
        for (_, value) in xobjects.iter() {
            let Ok(id) = value.as_reference() else {
                continue;
            };
            let Ok(stream) = doc.get_object(id).and_then(Object::as_stream) else {
                continue;
            };
            let dict = &stream.dict;
            if get(doc, dict, b"Subtype").and_then(|s| s.as_name().ok()) != Some(b"Image") {
                continue;
            }
            let filters = match get(doc, dict, b"Filter") {
                Some(Object::Name(name)) => vec![String::from_utf8_lossy(name).into_owned()],
                Some(Object::Array(array)) => array
                    .iter()
                    .filter_map(|f| deref(doc, f).as_name().ok())
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect(),
                _ => Vec::new(),
            };
            images.push(PdfImage {
                id,
                width: get_i64(doc, dict, b"Width").unwrap_or(0),
                height: get_i64(doc, dict, b"Height").unwrap_or(0),
                filters,
                content: &stream.content,
                dict,
            });
        }
    }
    Ok(images)
}

fn page_image(doc: &Document, page_id: lopdf::ObjectId) -> Result<Page, PageError> {
    let images = page_images(doc, page_id)?;
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
    let filters: Vec<&str> = image.filters.iter().map(String::as_str).collect();
    let dict = image.dict;
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
                dpi: None,
            })
        }
        ["CCITTFaxDecode"] => {
            let k = decode_params(doc, dict)
                .and_then(|p| get_i64(doc, p, b"K"))
                .unwrap_or(0);
            let coding = match k {
                k if k < 0 => Coding::G4,
                0 => Coding::G3,
                _ => Coding::G3TwoD,
            };
            let mut gray = ccitt::decode(image.content, coding, w, h, FORMAT)?;
            if inverted(doc, dict) {
                image::imageops::invert(&mut gray);
            }
            png_page(DynamicImage::ImageLuma8(gray))
        }
        [] | ["FlateDecode"] | ["LZWDecode"] | ["RunLengthDecode"] => {
            let space = color_space(doc, dict)?;
            let components = space.samples();
            let bpc = get_i64(doc, dict, b"BitsPerComponent").unwrap_or(if is_mask(doc, dict) {
                1
            } else {
                8
            });
            let row_bits = width * components * bpc.max(1) as u64;
            // PNG predictors add a filter-type byte in front of every row.
            let expected = (row_bits.div_ceil(8) + 1) * height;
            check_dimensions(width, height, components)?;
            let stream = doc
                .get_object(image.id)
                .and_then(Object::as_stream)
                .map_err(decode_error)?;
            // Bounded: a Flate bomb stops at the size the image says it is.
            let data = stream
                .decompressed_content_with_limit(expected as usize + 1024)
                .map_err(decode_error)?;
            let image = match &space {
                Space::Indexed { base, lookup } => indexed_pixels(&data, w, h, bpc, *base, lookup)?,
                Space::Direct(_) => pixels(&data, w, h, components, bpc)?,
            };
            let indexed = matches!(space, Space::Indexed { .. });
            let image = match image {
                DynamicImage::ImageLuma8(mut gray) if !indexed && inverted(doc, dict) => {
                    image::imageops::invert(&mut gray);
                    DynamicImage::ImageLuma8(gray)
                }
                other => other,
            };
            png_page(image)
        }
        ["JBIG2Decode"] => {
            let globals = jbig2_globals(doc, dict)?;
            let mut gray = jbig2::decode(image.content, globals.as_deref(), w, h)?;
            if inverted(doc, dict) {
                image::imageops::invert(&mut gray);
            }
            png_page(DynamicImage::ImageLuma8(gray))
        }
        other => Err(unsupported(format!("image filter {other:?}"))),
    }
}

/// Largest `JBIG2Globals` stream we inflate: symbol dictionaries for a page
/// are tens of KiB; anything near this is a bomb.
const MAX_JBIG2_GLOBALS: usize = 16 * 1024 * 1024;

/// The shared symbol dictionaries a JBIG2 image refers to, if any.
fn jbig2_globals(doc: &Document, dict: &Dictionary) -> Result<Option<Vec<u8>>, PageError> {
    let Some(params) = decode_params(doc, dict) else {
        return Ok(None);
    };
    let Ok(reference) = params.get(b"JBIG2Globals").and_then(Object::as_reference) else {
        return Ok(None);
    };
    let stream = doc
        .get_object(reference)
        .and_then(Object::as_stream)
        .map_err(|e| decode_error(format!("JBIG2Globals: {e}")))?;
    if stream.dict.get(b"Filter").is_err() {
        return Ok(Some(stream.content.clone()));
    }
    stream
        .decompressed_content_with_limit(MAX_JBIG2_GLOBALS)
        .map(Some)
        .map_err(|e| decode_error(format!("JBIG2Globals: {e}")))
}

fn png_page(image: DynamicImage) -> Result<Page, PageError> {
    Ok(Page {
        bytes: encode_png(&image)?,
        content_type: "image/png",
        gray: image.into_luma8(),
        dpi: None,
    })
}

/// A scanner's page image fills the page: its resolution is its pixels over
/// the page's MediaBox (inherited from the page tree when the page has none).
fn with_dpi(doc: &Document, page_id: lopdf::ObjectId, mut page: Page) -> Page {
    let mut node = doc.get_dictionary(page_id).ok();
    // Bounded: a page tree cycle must not hang the agent.
    for _ in 0..32 {
        let Some(dict) = node else { break };
        if let Some(Object::Array(corners)) = get(doc, dict, b"MediaBox") {
            let corners: Vec<f64> = corners
                .iter()
                .filter_map(|c| match deref(doc, c) {
                    Object::Integer(i) => Some(*i as f64),
                    Object::Real(r) => Some(f64::from(*r)),
                    _ => None,
                })
                .collect();
            if let Ok(media_box) = <[f64; 4]>::try_from(corners) {
                let (w, h) = page.gray.dimensions();
                page.dpi = super::dpi::of_pdf_page(w, h, media_box);
            }
            break;
        }
        node = get(doc, dict, b"Parent").and_then(|p| p.as_dict().ok());
    }
    page
}

fn decode_params<'a>(doc: &'a Document, dict: &'a Dictionary) -> Option<&'a Dictionary> {
    match get(doc, dict, b"DecodeParms")? {
        Object::Dictionary(d) => Some(d),
        Object::Array(a) => deref(doc, a.first()?).as_dict().ok(),
        _ => None,
    }
}

fn is_mask(doc: &Document, dict: &Dictionary) -> bool {
    get(doc, dict, b"ImageMask")
        .and_then(|m| m.as_bool().ok())
        .unwrap_or(false)
}

/// `/Decode [1 0]` swaps black and white (and an image mask paints its 0 bits).
fn inverted(doc: &Document, dict: &Dictionary) -> bool {
    let decode_first = get(doc, dict, b"Decode")
        .and_then(|d| d.as_array().ok())
        .and_then(|a| a.first())
        .and_then(|v| deref(doc, v).as_float().ok());
    decode_first.is_some_and(|v| v > 0.5)
}

/// An image's colour space, as far as splitting pages needs it.
enum Space {
    /// Samples are colours with this many components.
    Direct(u64),
    /// Samples index `lookup`, whose entries have `base` components each.
    Indexed { base: u64, lookup: Vec<u8> },
}

impl Space {
    /// Samples per pixel in the image data.
    fn samples(&self) -> u64 {
        match self {
            Space::Direct(n) => *n,
            Space::Indexed { .. } => 1,
        }
    }
}

/// The image's colour space; an image mask is 1-component.
fn color_space(doc: &Document, dict: &Dictionary) -> Result<Space, PageError> {
    if is_mask(doc, dict) {
        return Ok(Space::Direct(1));
    }
    let space =
        get(doc, dict, b"ColorSpace").ok_or_else(|| decode_error("image has no colour space"))?;
    if let Object::Array(array) = space
        && array.first().and_then(|n| deref(doc, n).as_name().ok()) == Some(b"Indexed")
    {
        let base = array
            .get(1)
            .ok_or_else(|| decode_error("Indexed colour space without a base"))?;
        let base = components(doc, deref(doc, base))?;
        let hival = array
            .get(2)
            .and_then(|h| deref(doc, h).as_i64().ok())
            .filter(|h| (0..=255).contains(h))
            .ok_or_else(|| decode_error("Indexed colour space without a usable hival"))?;
        let wanted = (hival as usize + 1) * base as usize;
        let lookup = match array.get(3).map(|l| deref(doc, l)) {
            Some(Object::String(bytes, _)) => bytes.clone(),
            Some(Object::Stream(stream)) => stream
                .decompressed_content_with_limit(wanted + 1024)
                .unwrap_or_else(|_| stream.content.clone()),
            _ => return Err(decode_error("Indexed colour space without a lookup table")),
        };
        return Ok(Space::Indexed { base, lookup });
    }
    components(doc, space).map(Space::Direct)
}

/// Colour components of a (non-indexed) colour space.
fn components(doc: &Document, space: &Object) -> Result<u64, PageError> {
    let (name, array) = match space {
        Object::Name(name) => (name.as_slice(), None),
        Object::Array(array) => (
            array
                .first()
                .and_then(|n| deref(doc, n).as_name().ok())
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
                .and_then(|r| deref(doc, r).as_stream().ok())
                .and_then(|s| get_i64(doc, &s.dict, b"N"));
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

/// Palette indices (1, 2, 4 or 8 bits, rows byte-aligned) through the lookup
/// table to grey or RGB. An index past the table's end is black.
fn indexed_pixels(
    data: &[u8],
    w: u32,
    h: u32,
    bpc: i64,
    base: u64,
    lookup: &[u8],
) -> Result<DynamicImage, PageError> {
    if !matches!(bpc, 1 | 2 | 4 | 8) {
        return Err(unsupported(format!("Indexed colour at {bpc} bits")));
    }
    let bpc = bpc as usize;
    let stride = (w as usize * bpc).div_ceil(8);
    if data.len() < stride * h as usize {
        return Err(decode_error("image data is shorter than its size says"));
    }
    let base = base as usize;
    let entry = |x: u32, y: u32| -> &[u8] {
        let bit = x as usize * bpc;
        let byte = data[y as usize * stride + bit / 8];
        let index = (byte >> (8 - bpc - bit % 8)) & ((1u16 << bpc) - 1) as u8;
        let start = index as usize * base;
        lookup
            .get(start..start + base)
            .unwrap_or(&[0, 0, 0, 0][..base])
    };
    Ok(match base {
        1 => DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| Luma([entry(x, y)[0]]))),
        3 => DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            let e = entry(x, y);
            image::Rgb([e[0], e[1], e[2]])
        })),
        4 => DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            let p = entry(x, y);
            let k = 255 - p[3] as u16;
            image::Rgb([0, 1, 2].map(|i| ((255 - p[i] as u16) * k / 255) as u8))
        })),
        n => return Err(unsupported(format!("Indexed colour over {n} components"))),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::{Stream, dictionary};

    /// A one-page PDF whose page shows one image XObject built by `image`.
    fn one_image_pdf(image: impl FnOnce(&mut Document) -> Stream) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let stream = image(&mut doc);
        let image_id = doc.add_object(stream);
        let page_id = doc.add_object(dictionary! {"Type" => "Page", "Parent" => pages_id,
        "Resources" => dictionary! {"XObject" => dictionary! {"Im0" => image_id}}});
        doc.objects.insert(
            pages_id,
            Object::Dictionary(
                dictionary! {"Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1},
            ),
        );
        let catalog = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
        doc.trailer.set("Root", catalog);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    fn split(bytes: &[u8]) -> Result<Vec<Page>, PageError> {
        let mut pages = Vec::new();
        extract_each(bytes, &mut |p| pages.push(p))?;
        Ok(pages)
    }

    #[test]
    fn indexed_images_go_through_their_palette() {
        // 1-bit Indexed over RGB, as img2pdf writes a bitonal palette PNG:
        // index 0 is white, 1 is black; the left half of each row is black.
        let (w, h) = (16u32, 4u32);
        let data: Vec<u8> = (0..h).flat_map(|_| [0xFF, 0x00]).collect();
        let pdf = one_image_pdf(|doc| {
            let lookup = doc.add_object(Stream::new(dictionary! {}, vec![255, 255, 255, 0, 0, 0]));
            let space: Vec<Object> = vec![
                "Indexed".into(),
                "DeviceRGB".into(),
                1.into(),
                lookup.into(),
            ];
            let mut stream = Stream::new(
                dictionary! {"Type" => "XObject", "Subtype" => "Image", "Width" => w as i64,
                "Height" => h as i64, "ColorSpace" => space, "BitsPerComponent" => 1},
                data,
            );
            stream.compress().unwrap();
            stream
        });
        let pages = split(&pdf).unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].content_type, "image/png");
        let gray = &pages[0].gray;
        assert_eq!(gray.dimensions(), (w, h));
        assert_eq!(gray.get_pixel(0, 0).0[0], 0);
        assert_eq!(gray.get_pixel(15, 3).0[0], 255);

        // 8-bit Indexed over grey with the table as a string.
        let pdf = one_image_pdf(|_| {
            let space: Vec<Object> = vec![
                "Indexed".into(),
                "DeviceGray".into(),
                2.into(),
                Object::string_literal(vec![10u8, 128, 250]),
            ];
            Stream::new(
                dictionary! {"Type" => "XObject", "Subtype" => "Image", "Width" => 3,
                "Height" => 1, "ColorSpace" => space, "BitsPerComponent" => 8},
                vec![2, 1, 0],
            )
        });
        let gray = &split(&pdf).unwrap()[0].gray;
        assert_eq!(gray.as_raw(), &vec![250, 128, 10]);
    }

    #[test]
    fn indirect_sizes_and_decode_parms_are_resolved() {
        let mut page = GrayImage::from_pixel(64, 32, Luma([255]));
        for x in 8..40 {
            page.put_pixel(x, 10, Luma([0]));
        }
        let g4 = {
            let mut encoder = fax::encoder::Encoder::new(fax::VecWriter::new());
            for row in page.rows() {
                let pels = row.map(|p| {
                    if p.0[0] < 128 {
                        fax::Color::Black
                    } else {
                        fax::Color::White
                    }
                });
                encoder.encode_line(pels, 64).unwrap();
            }
            encoder.finish().unwrap().finish()
        };
        let pdf = one_image_pdf(|doc| {
            let width = doc.add_object(64);
            let height = doc.add_object(32);
            let k = doc.add_object(-1);
            let parms =
                doc.add_object(dictionary! {"K" => k, "Columns" => width, "Rows" => height});
            let filter = doc.add_object("CCITTFaxDecode");
            Stream::new(
                dictionary! {"Type" => "XObject", "Subtype" => "Image", "Width" => width,
                "Height" => height, "ColorSpace" => "DeviceGray", "BitsPerComponent" => 1,
                "Filter" => filter, "DecodeParms" => parms},
                g4,
            )
        });
        let pages = split(&pdf).unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].gray, page);
    }

    #[test]
    fn jbig2_pages_decode_with_their_globals() {
        let page = crate::jbig2::tests::test_page();
        let stream = crate::jbig2::tests::mmr_stream(&page);
        let pdf = one_image_pdf(|doc| {
            // Real encoders put shared symbol dictionaries here; an empty one
            // still has to be fetched and parsed.
            let globals = doc.add_object(Stream::new(dictionary! {}, Vec::new()));
            Stream::new(
                dictionary! {"Type" => "XObject", "Subtype" => "Image", "Width" => 75,
                "Height" => 40, "ColorSpace" => "DeviceGray", "BitsPerComponent" => 1,
                "Filter" => "JBIG2Decode", "DecodeParms" => dictionary! {"JBIG2Globals" => globals}},
                stream,
            )
        });
        let pages = split(&pdf).unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].content_type, "image/png");
        assert_eq!(pages[0].gray, page);
    }

    #[test]
    fn broken_jbig2_is_a_clear_error() {
        let pdf = one_image_pdf(|_| {
            Stream::new(
                dictionary! {"Type" => "XObject", "Subtype" => "Image", "Width" => 8,
                "Height" => 8, "ColorSpace" => "DeviceGray", "BitsPerComponent" => 1,
                "Filter" => "JBIG2Decode"},
                vec![0; 16],
            )
        });
        let message = split(&pdf).err().unwrap().to_string();
        assert!(message.contains("page 1"), "{message}");
        assert!(message.contains("JBIG2"), "{message}");
    }
}
