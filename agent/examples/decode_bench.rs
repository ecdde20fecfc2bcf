//! Times `scan_page` on generated A4 300 dpi pages, cover and no cover, in all
//! four orientations. Run with `cargo run --release -p imc-agent --example decode_bench`.

#[path = "../src/decode/synth.rs"]
mod synth;

use std::time::Instant;

use imc_agent::decode::{DecodeOptions, scan_page};

const RUNS: usize = 9;

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

fn median_ms(img: &image::GrayImage, opts: &DecodeOptions) -> (f64, String) {
    let mut times = Vec::with_capacity(RUNS);
    let mut summary = String::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = scan_page(img, opts);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        summary = format!(
            "cover={:?} found={}",
            r.cover_code,
            r.barcodes
                .iter()
                .map(|b| format!("{}@{}", b.symbology.as_str(), b.orientation))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    times.sort_by(f64::total_cmp);
    (times[RUNS / 2], summary)
}

fn main() {
    let cover = synth::cover_page("IMC7K3M9Q2XHA", 1);
    let signed = synth::signed_cover_page("IMC7K3M9Q2XHA", 1);
    let vat = synth::vat_page(
        "01,10,3200154130,12345678,1234.56,20240105,12345678901234567890,ABCD,",
        3,
    );
    let pages = [
        ("cover", synth::jpeg(&cover, 75)),
        ("cover-200dpi", synth::jpeg(&synth::to_dpi(&cover, 200), 75)),
        ("cover-signed", synth::jpeg(&signed, 75)),
        (
            "signed-200dpi",
            synth::jpeg(&synth::to_dpi(&signed, 200), 75),
        ),
        ("no-cover text", synth::jpeg(&synth::text_page(2), 75)),
        ("no-cover vat-qr", synth::jpeg(&vat, 75)),
    ];
    println!(
        "{:<16} {:>5} {:>9} {:>9}  result (cover mode | full scan)",
        "page", "turn", "cover ms", "full ms"
    );
    for (name, page) in &pages {
        for turn in [0u16, 90, 180, 270] {
            let img = synth::turn(page, turn);
            let (cover_ms, summary) = median_ms(&img, &options(false));
            let (full_ms, full_summary) = median_ms(&img, &options(true));
            println!(
                "{name:<16} {turn:>5} {cover_ms:>9.1} {full_ms:>9.1}  {summary} | {full_summary}"
            );
        }
    }
}
