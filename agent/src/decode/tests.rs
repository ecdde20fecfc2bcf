//! Behaviour tests on generated pages (see `synth.rs`).

use super::synth::{self, Rng};
use super::{DecodeOptions, PageBarcodes, Symbology, scan_page};
use image::GrayImage;

const COVER: &str = "IMC7K3M9Q2XHA";
const VAT: &str = "01,10,3200154130,12345678,1234.56,20240105,12345678901234567890,ABCD,";

fn options(full_scan: bool) -> DecodeOptions {
    DecodeOptions {
        is_cover: Box::new(|t: &str| {
            t.len() == 13
                && t.starts_with("IMC")
                && t[3..].chars().all(|c| c.is_ascii_alphanumeric())
        }),
        full_scan,
    }
}

/// Degradations in the order a real scan applies them: resolution, skew, sensor noise, JPEG, page turn.
fn degrade(
    page: &GrayImage,
    dpi: u32,
    skew: f32,
    noise: u8,
    jpeg: Option<u8>,
    turn: u16,
) -> GrayImage {
    let mut img = if dpi == 300 {
        page.clone()
    } else {
        synth::to_dpi(page, dpi)
    };
    if skew != 0.0 {
        img = synth::rotate_small(&img, skew);
    }
    if noise > 0 {
        img = synth::add_noise(&img, noise, 7);
    }
    if let Some(q) = jpeg {
        img = synth::jpeg(&img, q);
    }
    synth::turn(&img, turn)
}

/// (name, dpi, skew degrees, noise amplitude, jpeg quality, quarter turn)
type Case = (&'static str, u32, f32, u8, Option<u8>, u16);

fn summary(r: &PageBarcodes) -> String {
    format!("{:?} {:?}", r.cover_code, r.barcodes)
}

#[test]
fn cover_found_under_degradations() {
    let page = synth::cover_page(COVER, 11);
    let cases: &[Case] = &[
        ("clean 300 dpi", 300, 0.0, 0, None, 0),
        ("200 dpi", 200, 0.0, 0, None, 0),
        ("150 dpi", 150, 0.0, 0, None, 0),
        ("skew 1 deg", 300, 1.0, 0, None, 0),
        ("skew -2 deg", 300, -2.0, 0, None, 0),
        ("skew 5 deg", 300, 5.0, 0, None, 0),
        ("noise", 300, 0.0, 40, None, 0),
        ("jpeg q50", 300, 0.0, 0, Some(50), 0),
        ("turn 90", 300, 0.0, 0, None, 90),
        ("turn 180", 300, 0.0, 0, None, 180),
        ("turn 270", 300, 0.0, 0, None, 270),
        (
            "150 dpi skew 2 noise jpeg turn 90",
            150,
            2.0,
            25,
            Some(50),
            90,
        ),
        ("200 dpi skew -5 jpeg turn 180", 200, -5.0, 0, Some(50), 180),
        (
            "300 dpi skew 1.5 noise jpeg turn 270",
            300,
            1.5,
            30,
            Some(50),
            270,
        ),
    ];
    let mut failures = Vec::new();
    for &(name, dpi, skew, noise, jpeg, turn) in cases {
        let img = degrade(&page, dpi, skew, noise, jpeg, turn);
        for full_scan in [false, true] {
            let r = scan_page(&img, &options(full_scan));
            if r.cover_code.as_deref() != Some(COVER) {
                failures.push(format!("{name} (full_scan={full_scan}): {}", summary(&r)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "missed covers:\n{}",
        failures.join("\n")
    );
}

#[test]
fn orientation_reports_the_turn_that_makes_the_page_upright() {
    let page = synth::cover_page(COVER, 12);
    for turn in [0u16, 90, 180, 270] {
        let r = scan_page(&synth::turn(&page, turn), &options(true));
        let undo = (360 - turn) % 360;
        assert!(!r.barcodes.is_empty(), "turn {turn}: nothing found");
        for b in &r.barcodes {
            assert_eq!(b.orientation, undo, "turn {turn}: {b:?}");
        }
    }
}

#[test]
fn vat_qr_is_reported_but_never_a_cover() {
    let img = synth::jpeg(&synth::vat_page(VAT, 13), 60);
    let full = scan_page(&img, &options(true));
    assert_eq!(full.cover_code, None);
    assert!(
        full.barcodes
            .iter()
            .any(|b| b.symbology == Symbology::Qr && b.text == VAT),
        "{}",
        summary(&full)
    );
    assert_eq!(scan_page(&img, &options(false)).cover_code, None);
}

/// A shipping label's DataMatrix and a PDF417 with Chinese text (an ECI
/// switch inside the symbol) on a skewed, noisy JPEG page: a full scan reads
/// both exactly, once each; cover mode does not look for them.
#[test]
fn datamatrix_and_pdf417_are_read_in_a_full_scan() {
    const DATAMATRIX: &str =
        "[)>\u{1e}06\u{1d}P445-175186-1-ND\u{1d}1PTFM252012\u{1d}Q10\u{1e}\u{4}";
    const PDF417: &str = "INV 2024-00017 收货单位：上海某某有限公司 金额 1234.56";
    let mut page = synth::blank_page();
    synth::draw_text(&mut page, &mut Rng::new(17), 200, 700, 2300, 2000);
    synth::draw_matrix(
        &mut page,
        rxing::BarcodeFormat::DATA_MATRIX,
        DATAMATRIX,
        1900,
        150,
        8,
    );
    synth::draw_matrix(
        &mut page,
        rxing::BarcodeFormat::PDF_417,
        PDF417,
        250,
        2100,
        4,
    );
    let img = degrade(&page, 300, 2.0, 12, Some(70), 90);

    let full = scan_page(&img, &options(true));
    for (symbology, text) in [
        (Symbology::DataMatrix, DATAMATRIX),
        (Symbology::Pdf417, PDF417),
    ] {
        let reads = full
            .barcodes
            .iter()
            .filter(|b| b.symbology == symbology)
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>();
        assert_eq!(reads, [text], "{}", summary(&full));
    }
    assert_eq!(full.cover_code, None);
    let cover_mode = scan_page(&img, &options(false));
    assert!(cover_mode.barcodes.is_empty(), "{}", summary(&cover_mode));
}

#[test]
fn pages_without_barcodes_report_nothing() {
    let cases: &[(&str, GrayImage)] = &[
        ("blank", synth::blank_page()),
        ("noise", synth::noise_page(14)),
        ("text", synth::jpeg(&synth::text_page(15), 60)),
    ];
    for (name, img) in cases {
        for full_scan in [false, true] {
            let r = scan_page(img, &options(full_scan));
            assert_eq!(r, PageBarcodes::default(), "{name} full_scan={full_scan}");
        }
    }
}

#[test]
fn odd_inputs_and_panicking_predicate_do_not_panic() {
    let panicking = DecodeOptions {
        is_cover: Box::new(|_: &str| panic!("caller bug")),
        full_scan: true,
    };
    let cover = synth::to_dpi(&synth::cover_page(COVER, 16), 150);
    let r = scan_page(&cover, &panicking);
    assert_eq!(r.cover_code, None);
    assert!(!r.barcodes.is_empty());

    let mut rng = Rng::new(17);
    let shapes = [(0u32, 0u32), (1, 1), (3, 700), (700, 3), (41, 41)];
    for (w, h) in shapes {
        let img = GrayImage::from_fn(w, h, |_, _| image::Luma([rng.below(256) as u8]));
        let _ = scan_page(&img, &options(true));
    }
}

#[test]
fn symbology_names_are_stable() {
    let names: Vec<_> = [
        Symbology::Code128,
        Symbology::Code39,
        Symbology::Qr,
        Symbology::DataMatrix,
        Symbology::Pdf417,
        Symbology::Ean13,
        Symbology::Other,
    ]
    .iter()
    .map(Symbology::as_str)
    .collect();
    assert_eq!(
        names,
        [
            "code128",
            "code39",
            "qr",
            "datamatrix",
            "pdf417",
            "ean13",
            "other"
        ]
    );
}
