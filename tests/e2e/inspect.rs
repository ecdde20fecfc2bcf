//! `imc-agent inspect`: what the agent reads from files, without uploading.

use crate::harness::bin;
use crate::scan::{self, Degrade};
use serde_json::Value;
use std::process::Command;

#[test]
fn inspect_prints_pages_barcodes_and_the_packet_split() {
    let dir = tempfile::tempdir().unwrap();
    let code = imc_shared::CoverCode::issue(0xBEEF_CAFE).to_string();
    let cover = scan::degrade(
        &scan::turn_upside_down(&scan::barcode_page(&code)),
        &Degrade {
            dpi: 150,
            skew_degrees: 1.0,
            noise: 6,
            jpeg_quality: 60,
        },
        3,
    );
    let files = [
        ("0-stray.png", scan::png(&scan::text_page(1))),
        ("1-cover.jpg", cover),
        ("2-page.png", scan::png(&scan::text_page(2))),
        ("3-broken.jpg", b"\xFF\xD8\xFF garbage".to_vec()),
    ];
    let mut paths = Vec::new();
    for (name, bytes) in &files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        paths.push(path);
    }
    let output = Command::new(bin("imc-agent"))
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg("inspect")
        .args(&paths)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "one file failed");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| {
        lines
            .iter()
            .filter(|l| l["type"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let pages = of("page");
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages[1]["cover_code"],
        code.as_str(),
        "upside-down 150 dpi cover read: {}",
        pages[1]
    );
    assert!(pages[0]["cover_code"].is_null() && pages[2]["cover_code"].is_null());
    let errors = of("error");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("3-broken.jpg")
    );
    let packets = of("packet");
    assert_eq!(packets.len(), 2, "{packets:?}");
    assert!(
        packets[0]["cover_code"].is_null(),
        "pages before the first cover form a coverless packet"
    );
    assert_eq!(packets[1]["cover_code"], code.as_str());
    assert_eq!(packets[1]["pages"].as_array().map(Vec::len), Some(2));
}

#[test]
fn inspect_prints_the_resolution_a_file_declares() {
    let dir = tempfile::tempdir().unwrap();
    let page = scan::text_page(3);
    let mut jpeg = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 70);
    encoder.set_pixel_density(image::codecs::jpeg::PixelDensity::dpi(200));
    page.write_with_encoder(encoder).unwrap();
    let (with, without) = (dir.path().join("a.jpg"), dir.path().join("b.png"));
    std::fs::write(&with, &jpeg).unwrap();
    std::fs::write(&without, scan::png(&page)).unwrap();
    let output = Command::new(bin("imc-agent"))
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg("inspect")
        .arg(&with)
        .arg(&without)
        .output()
        .unwrap();
    assert!(output.status.success());
    let pages: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "page")
        .collect();
    assert_eq!(pages.len(), 2);
    assert_eq!(
        pages[0]["dpi"],
        serde_json::json!([200, 200]),
        "{}",
        pages[0]
    );
    assert!(
        pages[1]["dpi"].is_null(),
        "a PNG without pHYs: {}",
        pages[1]
    );
}
