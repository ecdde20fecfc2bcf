//! Splitting multi-page files and the limits on them.

use super::*;
use image::Luma;

fn tiff(pages: &[GrayImage]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut encoder = ::tiff::encoder::TiffEncoder::new(&mut out)
        .unwrap()
        .with_compression(::tiff::encoder::Compression::Deflate(Default::default()));
    for page in pages {
        encoder
            .write_image::<::tiff::encoder::colortype::Gray8>(
                page.width(),
                page.height(),
                page.as_raw(),
            )
            .unwrap();
    }
    out.into_inner()
}

/// A one-image-per-page PDF; `declared` overrides the image's stated size.
fn pdf(images: &[(GrayImage, Option<(i64, i64)>)], with_image: bool) -> Vec<u8> {
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut kids = Vec::new();
    for (img, declared) in images {
        let (w, h) = declared.unwrap_or((img.width() as i64, img.height() as i64));
        let mut stream = Stream::new(
            dictionary! {"Type" => "XObject", "Subtype" => "Image", "Width" => w, "Height" => h,
            "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8},
            img.as_raw().clone(),
        );
        stream.compress().unwrap();
        let image_id = doc.add_object(stream);
        let resources = if with_image {
            dictionary! {"XObject" => dictionary! {"Im0" => image_id}}
        } else {
            dictionary! {}
        };
        let page_id = doc.add_object(
            dictionary! {"Type" => "Page", "Parent" => pages_id, "Resources" => resources},
        );
        kids.push(Object::Reference(page_id));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {"Type" => "Pages", "Kids" => kids, "Count" => count}),
    );
    let catalog = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages_id});
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn page(shade: u8) -> GrayImage {
    GrayImage::from_fn(120, 90, |x, _| Luma([if x < 60 { shade } else { 255 }]))
}

#[test]
fn a_single_page_tiff_is_kept_byte_for_byte() {
    let bytes = tiff(&[page(0)]);
    let pages = extract(bytes.clone()).unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].bytes, bytes);
    assert_eq!(pages[0].content_type, "image/tiff");
}

#[test]
fn a_multi_page_tiff_gives_one_png_per_page_in_order() {
    let originals = [page(0), page(60), page(120)];
    let pages = extract(tiff(&originals)).unwrap();
    assert_eq!(pages.len(), 3);
    for (got, want) in pages.iter().zip(&originals) {
        assert_eq!(got.content_type, "image/png");
        assert_eq!(&got.gray, want);
        assert_eq!(
            &image::load_from_memory(&got.bytes).unwrap().into_luma8(),
            want
        );
    }
}

#[test]
fn too_many_pages_is_refused() {
    let tiny = GrayImage::from_pixel(1, 1, Luma([255]));
    let pages = vec![tiny; MAX_PAGES_PER_FILE + 1];
    assert!(matches!(
        extract(tiff(&pages)),
        Err(PageError::TooManyPages)
    ));
}

#[test]
fn pdf_pages_are_extracted_and_limits_hold() {
    let pages = extract(pdf(&[(page(0), None), (page(90), None)], true)).unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1].gray, page(90));
    assert_eq!(pages[1].content_type, "image/png");

    let bomb = pdf(&[(page(0), None), (page(0), Some((50_000, 50_000)))], true);
    let err = extract(bomb).err().unwrap();
    assert!(
        matches!(&err, PageError::InPage { page: 2, error } if matches!(**error, PageError::Dimensions { .. })),
        "{err}"
    );
    // The image says it is bigger than its data.
    let short = pdf(&[(page(0), Some((120, 900)))], true);
    assert!(extract(short).is_err());

    let text_only = pdf(&[(page(0), None)], false);
    let err = extract(text_only).err().unwrap();
    assert!(err.to_string().contains("no embedded image"), "{err}");
}

#[test]
fn truncated_multi_page_files_are_errors_not_panics() {
    let bytes = tiff(&[page(0), page(60)]);
    for cut in [10, bytes.len() / 2, bytes.len() - 5] {
        let _ = extract(bytes[..cut].to_vec());
    }
    let bytes = pdf(&[(page(0), None), (page(60), None)], true);
    for cut in [20, bytes.len() / 2, bytes.len() - 5] {
        let _ = extract(bytes[..cut].to_vec());
    }
}

/// A multi-page TIFF whose pages are each one JPEG strip (compression 7, no
/// shared tables), as some colour scanners write.
fn jpeg_tiff(jpegs: &[(Vec<u8>, u32, u32)]) -> Vec<u8> {
    let mut out = b"II*\0\0\0\0\0".to_vec();
    let mut link = 4usize;
    for (jpeg, w, h) in jpegs {
        let data_at = out.len() as u32;
        out.extend_from_slice(jpeg);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let ifd_at = out.len() as u32;
        out[link..link + 4].copy_from_slice(&ifd_at.to_le_bytes());
        let entries: [(u16, u16, u32); 9] = [
            (256, 4, *w),
            (257, 4, *h),
            (258, 3, 8),
            (259, 3, 7),
            (262, 3, 1),
            (273, 4, data_at),
            (277, 3, 1),
            (278, 4, *h),
            (279, 4, jpeg.len() as u32),
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

#[test]
fn jpeg_pages_of_a_multi_page_tiff_keep_their_jpeg_bytes() {
    let jpegs: Vec<(Vec<u8>, u32, u32)> = [page(0), page(100)]
        .iter()
        .map(|p| {
            let mut jpeg = Vec::new();
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85);
            p.write_with_encoder(encoder).unwrap();
            (jpeg, p.width(), p.height())
        })
        .collect();
    let pages = extract(jpeg_tiff(&jpegs)).unwrap();
    assert_eq!(pages.len(), 2);
    for (got, (jpeg, w, h)) in pages.iter().zip(&jpegs) {
        assert_eq!(got.content_type, "image/jpeg");
        assert_eq!(&got.bytes, jpeg);
        assert_eq!(got.gray.dimensions(), (*w, *h));
    }
}
