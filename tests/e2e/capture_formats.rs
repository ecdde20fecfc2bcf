//! What real scanners write: multi-page TIFF (G4) and PDF batches, covers in
//! any orientation and resolution, invoices whose QR is not a cover, files
//! written slowly in place, decompression bombs, files dropped while the
//! agent is stopped.

use crate::harness::{TestAgent, TestServer, bin, eventually, sha256_hex};
use crate::scan::{self, Degrade, PdfImage};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const VAT_QR: &str = "01,10,044031900111,12345678,1234.50,20240131,12345678901234567890,A1B2,";

fn cover_code(n: u64) -> String {
    imc_shared::CoverCode::issue(n).to_string()
}

/// Runs `imc-agent inspect` on files written into a temp dir; returns the
/// page and packet lines.
fn inspect(files: &[(&str, Vec<u8>)]) -> (Vec<Value>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|(name, bytes)| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    let output = Command::new(bin("imc-agent"))
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg("inspect")
        .args(&paths)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "inspect failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["type"] == kind)
            .cloned()
            .collect()
    };
    (of("page"), of("packet"))
}

/// Packets as (cover code, page count, empty) for compact assertions.
fn split(packets: &[Value]) -> Vec<(Option<String>, usize, bool)> {
    packets
        .iter()
        .map(|p| {
            (
                p["cover_code"].as_str().map(str::to_owned),
                p["pages"].as_array().map_or(0, Vec::len),
                p["empty"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn a_multi_page_g4_tiff_splits_at_its_two_covers() {
    let (a, b) = (cover_code(0xA11CE), cover_code(0xB0B));
    let pages = [
        scan::bitonal(&scan::text_page(1), 300),
        scan::bitonal(&scan::barcode_page(&a), 200),
        scan::bitonal(&scan::text_page(2), 300),
        scan::bitonal(&scan::barcode_page(&b), 200),
        scan::bitonal(&scan::text_page(3), 300),
    ];
    let (pages, packets) = inspect(&[("batch.tif", scan::tiff_g4(&pages, None))]);
    assert_eq!(pages.len(), 5, "{pages:?}");
    assert!(pages.iter().all(|p| p["content_type"] == "image/png"));
    assert_eq!(pages[1]["cover_code"], a.as_str(), "{}", pages[1]);
    assert_eq!(pages[3]["cover_code"], b.as_str(), "{}", pages[3]);
    assert_eq!(
        split(&packets),
        vec![(None, 1, false), (Some(a), 2, false), (Some(b), 2, false)]
    );
}

#[test]
fn a_scanner_pdf_splits_flags_empty_packets_and_blank_pages_and_reads_invoices() {
    let (a, b) = (cover_code(0xC0FFEE), cover_code(0xD00D));
    let degrade = |page: &image::GrayImage, dpi: u32, seed: u64| -> Vec<u8> {
        scan::degrade(
            page,
            &Degrade {
                dpi,
                skew_degrees: 0.8,
                noise: 6,
                jpeg_quality: 70,
            },
            seed,
        )
    };
    // An upside-down cover, straight after it a 150 dpi cover (so the first
    // packet is empty), an invoice with its VAT QR, a blank back side, and a
    // bitonal page.
    let cover_a = degrade(&scan::turn_upside_down(&scan::barcode_page(&a)), 200, 1);
    let cover_b = degrade(&scan::barcode_page(&b), 150, 2);
    let invoice = scan::qr_page(VAT_QR);
    let blank = image::GrayImage::from_pixel(1240, 1754, image::Luma([250]));
    let fax_page = scan::bitonal(&scan::text_page(4), 200);
    let pdf = scan::pdf(&[
        PdfImage::Jpeg(cover_a.clone()),
        PdfImage::Jpeg(cover_b),
        PdfImage::FlateGray(invoice),
        PdfImage::FlateGray(blank),
        PdfImage::G4(fax_page),
    ]);
    let (pages, packets) = inspect(&[("batch.pdf", pdf)]);
    assert_eq!(pages.len(), 5, "{pages:?}");
    assert_eq!(
        pages[0]["cover_code"],
        a.as_str(),
        "upside down: {}",
        pages[0]
    );
    assert_eq!(pages[0]["content_type"], "image/jpeg");
    assert_eq!(
        pages[0]["size"].as_u64(),
        Some(cover_a.len() as u64),
        "a JPEG page keeps its bytes"
    );
    assert_eq!(pages[1]["cover_code"], b.as_str(), "150 dpi: {}", pages[1]);
    assert!(
        pages[2]["cover_code"].is_null(),
        "a VAT QR is never a cover"
    );
    assert_eq!(pages[2]["content_type"], "image/png");
    let vat = &pages[2]["vat_invoice"];
    assert_eq!(vat["invoice_code"], "044031900111", "{}", pages[2]);
    assert_eq!(vat["invoice_number"], "12345678");
    assert_eq!(vat["amount"], "1234.50");
    assert_eq!(vat["date"], "2024-01-31");
    assert_eq!(pages[3]["blank"], true, "{}", pages[3]);
    assert!(pages.iter().filter(|p| p["blank"] == true).count() == 1);
    assert_eq!(
        split(&packets),
        vec![(Some(a), 1, true), (Some(b), 4, false)],
        "two covers in a row give an empty packet; blank pages stay"
    );
}

#[tokio::test]
async fn a_multi_page_tiff_dropped_while_the_agent_is_stopped_reaches_its_document() {
    let server = TestServer::start();
    let first = server.match_document("TIF-0001").await;
    let second = server.match_document("TIF-0002").await;
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();

    let cover_of = |doc: &Value| {
        let code = doc["cover_code"].as_str().unwrap().to_owned();
        scan::barcode_page(&code)
    };
    // A grey LZW TIFF while the agent runs ...
    let tiff = scan::tiff_gray(&[
        scan::text_page(1),
        image::imageops::resize(
            &cover_of(&first),
            1240,
            1754,
            image::imageops::FilterType::Triangle,
        ),
        scan::text_page(2),
    ]);
    agent.drop_file("first.tif", &tiff);
    let id1 = first["id"].as_i64().unwrap();
    server.wait_for_status(id1, "matched", WAIT).await;
    let (_, doc) = server.get(&format!("/documents/{id1}")).await;
    assert_eq!(doc["images"].as_array().map(Vec::len), Some(2), "{doc}");

    // ... and a G4 TIFF dropped while it is stopped, picked up on start.
    agent.kill();
    let g4 = scan::tiff_g4(
        &[
            scan::bitonal(&cover_of(&second), 200),
            scan::bitonal(&scan::text_page(3), 300),
            scan::bitonal(&scan::text_page(4), 300),
        ],
        None,
    );
    agent.drop_file("second.tif", &g4);
    agent.start();
    let id2 = second["id"].as_i64().unwrap();
    server.wait_for_status(id2, "matched", WAIT).await;
    let (_, doc) = server.get(&format!("/documents/{id2}")).await;
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 3, "{doc}");
    assert!(images.iter().all(|i| i["content_type"] == "image/png"));

    // The original multi-page files end in `done`, whole.
    let done = agent.done_dir().join("second.tif");
    eventually("the TIFF to move to done", WAIT, || async {
        done.exists().then_some(())
    })
    .await;
    assert_eq!(std::fs::read(&done).unwrap(), g4);
}

#[tokio::test]
async fn slow_writes_are_taken_once_complete_and_bombs_are_quarantined_when_polling() {
    let server = TestServer::start();
    let doc = server.match_document("SLOW-0001").await;
    let id = doc["id"].as_i64().unwrap();
    let mut agent = TestAgent::enroll(&server).await;
    // As on a network share: no change events, a listing every second.
    agent.configure("watch_mode", "poll".into());
    agent.configure("rescan_secs", 1.into());
    agent.start();

    // Bombs: tiny files declaring 50000 x 50000 pixels.
    agent.drop_file("bomb.png", &scan::png_bomb(50_000));
    let small = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
    agent.drop_file("bomb.tif", &scan::tiff_g4(&[small], Some((50_000, 50_000))));
    let quarantine = agent.quarantine_dir();
    eventually("both bombs quarantined", WAIT, || async {
        ["bomb.png", "bomb.tif"]
            .iter()
            .all(|n| quarantine.join(format!("{n}.reason.txt")).exists())
            .then_some(())
    })
    .await;
    let reason = std::fs::read_to_string(quarantine.join("bomb.tif.reason.txt")).unwrap();
    assert!(reason.contains("50000x50000"), "{reason}");

    // A cover written in place, a chunk at a time (each gap shorter than the
    // settle time), then a page; the agent must take the cover once, whole.
    let (_, cover_png) = server
        .get_bytes(&format!("/documents/{id}/cover.png"))
        .await;
    let cover = scan::jpeg(&scan::decode_gray(&cover_png), 75);
    let path = agent.inbox.join("slow_0001.jpg");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in cover.chunks(cover.len().div_ceil(12)) {
            file.write_all(chunk).unwrap();
            file.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    agent.drop_file("slow_0002.png", &scan::png(&scan::text_page(5)));
    server.wait_for_status(id, "matched", WAIT).await;
    let (_, doc) = server.get(&format!("/documents/{id}")).await;
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "taken once: {doc}");
    assert_eq!(images[0]["sha256"], sha256_hex(&cover), "taken whole");
    let status = agent.status();
    assert!(status.contains("quarantined files: 2"), "{status}");
}

#[tokio::test]
async fn two_covers_in_a_row_give_an_empty_packet_not_an_error() {
    let server = TestServer::start();
    let first = server.match_document("EMPTY-0001").await;
    let second = server.match_document("EMPTY-0002").await;
    let (id1, id2) = (
        first["id"].as_i64().unwrap(),
        second["id"].as_i64().unwrap(),
    );
    let status_before = server.status_of(id1).await;
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();

    // A duplex batch: cover 1 and its blank back, then straight cover 2 and a page.
    let cover = |doc: &Value| scan::barcode_page(doc["cover_code"].as_str().unwrap());
    let white = image::GrayImage::from_pixel(1240, 1754, image::Luma([255]));
    let batch = scan::tiff_g4(
        &[
            scan::bitonal(&cover(&first), 200),
            scan::bitonal(&white, 150),
            scan::bitonal(&cover(&second), 200),
            scan::bitonal(&scan::text_page(7), 300),
        ],
        None,
    );
    agent.drop_file("duplex.tif", &batch);
    server.wait_for_status(id2, "matched", WAIT).await;
    let (_, doc) = server.get(&format!("/documents/{id2}")).await;
    assert_eq!(doc["images"].as_array().map(Vec::len), Some(2), "{doc}");

    let empty = eventually("the empty packet", WAIT, || async {
        let (_, list) = server.get("/packets?state=empty").await;
        list["packets"].as_array().and_then(|p| p.first().cloned())
    })
    .await;
    assert_eq!(empty["cover_code"], first["cover_code"], "{empty}");
    assert_eq!(empty["page_count"], 2, "cover and blank back kept: {empty}");
    assert!(
        empty["reason"]
            .as_str()
            .unwrap_or("")
            .contains("empty packet"),
        "{empty}"
    );
    // Not an exception to fix by hand, and the document still waits for its pages.
    let (_, unmatched) = server.get("/packets?state=unmatched").await;
    assert_eq!(
        unmatched["packets"].as_array().map(Vec::len),
        Some(0),
        "{unmatched}"
    );
    assert_eq!(server.status_of(id1).await, status_before);
    let status = eventually("the desk to hear of the empty packet", WAIT, || async {
        let status = agent.status();
        status.contains("empty packet").then_some(status)
    })
    .await;
    assert!(
        status.contains("(empty: no pages after the cover)"),
        "{status}"
    );
}
