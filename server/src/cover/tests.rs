use std::time::Instant;

use image::imageops::{self, FilterType};
use rxing::common::HybridBinarizer;
use rxing::oned::Code128Reader;
use rxing::qrcode::QRCodeReader;
use rxing::{BinaryBitmap, DecodeHints, Luma8LuminanceSource, Reader};

use super::*;

const CODE: &str = "IMC7K3M9Q2XHA";

/// Covers as printed: the QR signed, by a key with a fixed seed.
fn signed(code: &str, declared: Option<u32>) -> String {
    use base64::Engine;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let key = Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
    let message = imc_shared::cover_qr::signed_message(code, declared);
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()));
    let id = imc_shared::cover_keys::key_id(key.public_key().as_ref());
    imc_shared::cover_qr::encode_signed(code, declared, &id, &signature)
}

static SIGNED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| signed(CODE, None));

fn fields() -> CoverFields<'static> {
    CoverFields {
        cover_code: CODE,
        source_system: "费控系统 EXP",
        doc_no: "BX-2024-000123",
        doc_type: "差旅费报销单",
        org: "华东财务共享中心",
        title: Some(
            "上海出差报销——客户拜访及会议费用，含交通、住宿、餐饮等多项明细，超长标题需要被截断以适应页面宽度",
        ),
        amount: Some("¥12,345.60"),
        submitter: Some("张三"),
        attachment_count: None,
        qr_text: &SIGNED,
        created_at: "2024-05-06 09:30:00",
    }
}

fn renderer() -> CoverRenderer {
    let r = CoverRenderer::from_system_fonts();
    assert!(r.has_cjk_font(), "install fonts-wqy-microhei");
    r
}

fn decode(img: &GrayImage, mut reader: impl Reader) -> String {
    let (w, h) = img.dimensions();
    let source = Luma8LuminanceSource::new(img.as_raw().clone(), w, h).unwrap();
    let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
    let hints = DecodeHints {
        TryHarder: Some(true),
        ..Default::default()
    };
    reader
        .decode_with_hints(&mut bitmap, &hints)
        .unwrap()
        .getText()
        .to_owned()
}

/// The Code 128 holds the bare code; the QR the framed payload.
fn assert_decodes(img: &GrayImage) {
    assert_eq!(decode(img, Code128Reader), CODE);
    assert_eq!(decode(img, QRCodeReader), *SIGNED);
}

#[test]
fn the_qr_carries_the_declared_count_and_the_bars_the_bare_code() {
    let qr_text = signed(CODE, Some(3));
    let with_count = CoverFields {
        attachment_count: Some(3),
        qr_text: &qr_text,
        ..fields()
    };
    let img = renderer().render_gray(&with_count).unwrap();
    assert_eq!(decode(&img, QRCodeReader), qr_text);
    assert_eq!(decode(&img, Code128Reader), CODE);
    let read = imc_shared::cover_qr::parse(&decode(&img, QRCodeReader)).unwrap();
    assert_eq!((read.code.as_str(), read.declared), (CODE, Some(3)));
    assert!(read.signature.is_some());
    // Still readable in a 150 dpi scan.
    let half = imageops::resize(&img, PAGE_W / 2, PAGE_H / 2, FilterType::Triangle);
    assert_eq!(decode(&half, QRCodeReader), qr_text);
}

#[test]
fn a_declared_count_is_printed() {
    let r = renderer();
    let without = r.render_gray(&fields()).unwrap();
    let with = CoverFields {
        attachment_count: Some(3),
        ..fields()
    };
    let with = r.render_gray(&with).unwrap();
    let ink = |img: &GrayImage| img.as_raw().iter().filter(|&&p| p < 128).count();
    assert!(ink(&with) > ink(&without));
}

#[test]
fn barcodes_decode_at_300_and_150_dpi() {
    let t = Instant::now();
    let img = renderer().render_gray(&fields()).unwrap();
    eprintln!("render_gray incl. font lookup: {:?}", t.elapsed());
    assert_eq!(img.dimensions(), (PAGE_W, PAGE_H));
    assert_decodes(&img);
    let half = imageops::resize(&img, PAGE_W / 2, PAGE_H / 2, FilterType::Triangle);
    assert_decodes(&half);
}

#[test]
fn barcodes_render_without_any_font() {
    let r = CoverRenderer {
        font: None,
        cjk: false,
    };
    assert_decodes(&r.render_gray(&fields()).unwrap());
}

#[test]
fn render_time() {
    let r = renderer();
    let t = Instant::now();
    for _ in 0..5 {
        r.render_gray(&fields()).unwrap();
    }
    eprintln!("render_gray: {:?}/page", t.elapsed() / 5);
    let t = Instant::now();
    r.render_png(&fields()).unwrap();
    eprintln!("render_png: {:?}", t.elapsed());
    let t = Instant::now();
    r.render_pdf(&fields()).unwrap();
    eprintln!("render_pdf: {:?}", t.elapsed());
}

#[test]
fn png_is_a4_at_300_dpi() {
    let png = renderer().render_png(&fields()).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (2480, 3508));
    assert_eq!(img.color(), image::ColorType::L8);
    let at = png
        .windows(4)
        .position(|w| w == b"pHYs")
        .expect("pHYs chunk");
    assert_eq!(
        &png[at + 4..at + 13],
        &[0, 0, 0x2e, 0x23, 0, 0, 0x2e, 0x23, 1]
    );
    // CRC as libpng checks it: over type + data.
    assert_eq!(
        png[at + 13..at + 17],
        crc32(&png[at..at + 13]).to_be_bytes()
    );
}

#[test]
fn pdf_has_one_page_with_one_gray_image() {
    let pdf = renderer().render_pdf(&fields()).unwrap();
    let doc = lopdf::Document::load_mem(&pdf).unwrap();
    let pages = doc.get_pages();
    assert_eq!(pages.len(), 1);
    let page_id = pages[&1];
    let images = doc.get_page_images(page_id).unwrap();
    assert_eq!(images.len(), 1);
    let im = &images[0];
    assert_eq!((im.width, im.height), (2480, 3508));
    assert_eq!(im.color_space.as_deref(), Some("DeviceGray"));
    assert_eq!(im.bits_per_component, Some(8));
    assert_eq!(im.filters.as_deref(), Some(&["FlateDecode".to_owned()][..]));
    let media = doc
        .get_dictionary(page_id)
        .unwrap()
        .get(b"MediaBox")
        .unwrap()
        .as_array()
        .unwrap();
    let media: Vec<f32> = media.iter().map(|o| o.as_float().unwrap()).collect();
    assert_eq!(media, [0.0, 0.0, 595.28, 841.89]);
}

#[test]
fn chinese_value_darkens_its_row() {
    let r = renderer();
    let blank = r
        .render_gray(&CoverFields {
            org: "",
            ..fields()
        })
        .unwrap();
    let inked = r
        .render_gray(&CoverFields {
            org: "华东财务共享中心",
            ..fields()
        })
        .unwrap();
    let darker = blank
        .as_raw()
        .iter()
        .zip(inked.as_raw())
        .filter(|(a, b)| b < a)
        .count();
    let lighter = blank
        .as_raw()
        .iter()
        .zip(inked.as_raw())
        .filter(|(a, b)| b > a)
        .count();
    assert!(
        darker > 2000,
        "only {darker} pixels darkened: CJK glyphs not drawn"
    );
    assert_eq!(lighter, 0);
}

#[test]
fn long_values_are_truncated_with_ellipsis() {
    let r = renderer();
    let f = r.font.as_ref().unwrap();
    let long = "超长标题".repeat(50);
    let shown = text::fit(f, 52.0, &long, 800.0);
    assert!(shown.ends_with('…'));
    assert!(text::text_width(f, 52.0, &shown) <= 800.0);
    assert_eq!(text::fit(f, 52.0, "short", 800.0), "short");
}

#[test]
fn optional_fields_are_skipped() {
    let r = renderer();
    let all = r.render_gray(&fields()).unwrap();
    let none = CoverFields {
        title: None,
        amount: None,
        submitter: None,
        ..fields()
    };
    let sparse = r.render_gray(&none).unwrap();
    let ink = |img: &GrayImage| img.as_raw().iter().filter(|&&p| p < 128).count();
    assert!(ink(&sparse) < ink(&all));
}

#[test]
fn explicit_font_file() {
    let wqy = Path::new("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc");
    assert!(CoverRenderer::with_font_file(wqy).unwrap().has_cjk_font());
    assert!(matches!(
        CoverRenderer::with_font_file(Path::new("/nonexistent/font.ttf")),
        Err(CoverError::Font(_))
    ));
}

#[test]
fn overlong_code_is_an_error_not_a_panic() {
    let code = "X".repeat(200);
    let err = renderer().render_gray(&CoverFields {
        cover_code: &code,
        ..fields()
    });
    assert!(matches!(err, Err(CoverError::Barcode(_))));
}

#[test]
fn write_sample() {
    // Handy for eyeballing the layout: `COVER_SAMPLE=/tmp/cover.png cargo test`.
    if let Ok(path) = std::env::var("COVER_SAMPLE") {
        std::fs::write(path, renderer().render_png(&fields()).unwrap()).unwrap();
    }
}

/// The desk reads the signed QR of every cover the server prints, at 300
/// and 200 dpi: without it a cover declares no count. Key seed 33 gives a QR
/// that the desk's cheap pass over the halved page misses.
#[test]
fn the_desk_reads_the_signed_qr_of_covers_as_printed() {
    use base64::Engine;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let r = renderer();
    let options = imc_agent::decode::DecodeOptions {
        is_cover: Box::new(|text: &str| text.starts_with("IMC")),
        full_scan: false,
    };
    for seed in 32u8..=34 {
        let key = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let code = format!("IMC{:010}", u32::from(seed) * 7919);
        let message = imc_shared::cover_qr::signed_message(&code, Some(2));
        let signature =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()));
        let id = imc_shared::cover_keys::key_id(key.public_key().as_ref());
        let qr_text = imc_shared::cover_qr::encode_signed(&code, Some(2), &id, &signature);
        let page = r
            .render_gray(&CoverFields {
                cover_code: &code,
                qr_text: &qr_text,
                attachment_count: Some(2),
                ..fields()
            })
            .unwrap();
        let at_200_dpi =
            imageops::resize(&page, PAGE_W * 2 / 3, PAGE_H * 2 / 3, FilterType::Triangle);
        for (dpi, scan) in [(300, &page), (200, &at_200_dpi)] {
            let found = imc_agent::decode::scan_page(scan, &options);
            assert!(
                found.barcodes.iter().any(|b| b.text == qr_text),
                "key seed {seed} at {dpi} dpi: {found:?}"
            );
        }
    }
}
