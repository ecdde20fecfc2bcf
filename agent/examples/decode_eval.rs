//! Decode rate and time on the public decoder test images.
//!
//! `cargo run --release -p imc-agent --example decode_eval -- [DIR] [-v]`; DIR defaults to
//! ../shared/testdata/barcodes (manifest.tsv + README.md there). Images are
//! read in place, never copied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{DynamicImage, GrayImage, Luma};
use imc_agent::decode::{DecodeOptions, PageBarcodes, Symbology, scan_page};

struct Row {
    path: String,
    format: String,
    expected: String,
}

/// Undoes the manifest escaping: `\\`, `\t`, `\n`, `\r`, `\xHH`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                if let Ok(v) = u8::from_str_radix(&hex, 16) {
                    out.push(char::from(v));
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn symbology(format: &str) -> Option<Symbology> {
    Some(match format {
        "qrcode" => Symbology::Qr,
        "code128" => Symbology::Code128,
        "code39" | "code39-damaged" => Symbology::Code39,
        "datamatrix" => Symbology::DataMatrix,
        "pdf417" => Symbology::Pdf417,
        _ => return None,
    })
}

/// The upstream sets file Code 32 (a Code 39 variant) under code39, as
/// zxing-cpp reports it within the Code 39 family.
fn same_family(found: Symbology, wanted: Symbology) -> bool {
    found == wanted || (wanted == Symbology::Code39 && found == Symbology::Code32)
}

/// Grey with transparency composited onto white paper (alpha scans otherwise turn black).
fn to_gray(img: DynamicImage) -> GrayImage {
    if !img.color().has_alpha() {
        return img.to_luma8();
    }
    let la = img.to_luma_alpha8();
    GrayImage::from_fn(la.width(), la.height(), |x, y| {
        let p = la.get_pixel(x, y);
        let (l, a) = (u32::from(p[0]), u32::from(p[1]));
        Luma([((l * a + 255 * (255 - a)) / 255) as u8])
    })
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let dir = args.iter().find(|a| !a.starts_with('-')).map_or_else(
        || PathBuf::from("../shared/testdata/barcodes"),
        PathBuf::from,
    );
    let manifest = match std::fs::read_to_string(dir.join("manifest.tsv")) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot read {}: {e}", dir.join("manifest.tsv").display());
            std::process::exit(2);
        }
    };
    let rows: Vec<Row> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Row {
                path: f.next()?.to_owned(),
                format: f.next()?.to_owned(),
                expected: unescape(f.next()?),
            })
        })
        .collect();

    let opts = DecodeOptions {
        is_cover: Box::new(|_: &str| false),
        full_scan: true,
    };
    // Each distinct image is decoded once; rows sharing it are scored against that result.
    let mut results: BTreeMap<String, (PageBarcodes, f64)> = BTreeMap::new();
    let mut unreadable = 0;
    for row in &rows {
        if results.contains_key(&row.path) {
            continue;
        }
        let Ok(img) = image::open(Path::new(&dir).join(&row.path)) else {
            unreadable += 1;
            eprintln!("cannot decode image {}", row.path);
            continue;
        };
        let gray = to_gray(img);
        let t = Instant::now();
        let r = scan_page(&gray, &opts);
        results.insert(row.path.clone(), (r, t.elapsed().as_secs_f64() * 1e3));
    }

    // format -> (rows, passed, times)
    let mut table: BTreeMap<&str, (usize, usize, Vec<f64>)> = BTreeMap::new();
    for row in &rows {
        let Some((found, ms)) = results.get(&row.path) else {
            continue;
        };
        let ok = match symbology(&row.format) {
            Some(sym) => found
                .barcodes
                .iter()
                .any(|b| same_family(b.symbology, sym) && b.text == row.expected),
            None => found.barcodes.is_empty(),
        };
        let e = table.entry(row.format.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(ok);
        e.2.push(*ms);
        if verbose && !ok {
            let got: Vec<_> = found
                .barcodes
                .iter()
                .map(|b| format!("{}:{:?}", b.symbology.as_str(), b.text))
                .collect();
            println!(
                "MISS {} [{}] want {:?} got {:?}",
                row.path, row.format, row.expected, got
            );
        }
    }
    println!(
        "{:<16} {:>5} {:>6} {:>7} {:>10}",
        "format", "rows", "ok", "rate", "median ms"
    );
    for (format, (n, ok, times)) in &mut table {
        let note = match *format {
            "none" => "  (ok = no barcode reported)",
            "code39-damaged" => "  (upstream expects no read)",
            _ => "",
        };
        println!(
            "{format:<16} {n:>5} {ok:>6} {:>6.1}% {:>10.1}{note}",
            100.0 * *ok as f64 / *n as f64,
            median(times)
        );
    }
    if unreadable > 0 {
        println!("{unreadable} images could not be decoded by the image crate");
    }
}
