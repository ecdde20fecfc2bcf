//! Hostile callers: rate limits (429), oversize bodies (413), and damaged,
//! truncated or bomb images and PDFs, each refused with a clear JSON error
//! while the server stays healthy and stores nothing.

use crate::harness::{TOKEN, TestServer};
use crate::scan;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn over_the_rate_limit_is_429_json_and_health_is_unaffected() {
    let server = TestServer::start_with(
        "127.0.0.1:0",
        &["--rate-per-token".into(), "2".into()],
        reqwest::Client::new(),
    );
    let mut limited = None;
    for _ in 0..20 {
        let r = server
            .client
            .get(server.url("/settings"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let r = limited.expect("20 quick calls at 2/s must hit the limit");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");

    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(server.get("/settings").await.0, 200, "the limit refills");
}

async fn upload(server: &TestServer, id: i64, bytes: Vec<u8>) -> (u16, Value) {
    let r = server
        .client
        .post(server.url(&format!("/documents/{id}/images")))
        .bearer_auth(TOKEN)
        // A lying Content-Type changes nothing: the bytes decide.
        .header("content-type", "image/jpeg")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn pdf_of(page: &image::GrayImage) -> Vec<u8> {
    scan::pdf(&[scan::PdfImage::Jpeg(scan::jpeg(page, 70))])
}

#[tokio::test]
async fn damaged_truncated_and_bomb_files_are_refused_and_nothing_is_stored() {
    let server = TestServer::start();
    let (status, doc) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "HOSTILE-1", "doc_type": "x", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    let id = doc["id"].as_i64().unwrap();

    let page = scan::text_page(3);
    let jpeg = scan::jpeg(&page, 70);
    let png = scan::png(&page);
    let pdf = pdf_of(&page);
    let mut damaged_png = png.clone();
    let middle = damaged_png.len() / 2;
    damaged_png[middle..middle + 64].fill(0xAB);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated JPEG",
            jpeg[..jpeg.len() / 2].to_vec(),
            "truncated",
        ),
        ("truncated PNG", png[..png.len() / 2].to_vec(), "damaged"),
        ("damaged PNG", damaged_png, "damaged"),
        ("PNG bomb", scan::png_bomb(60_000), "damaged or too large"),
        ("truncated PDF", pdf[..pdf.len() / 3].to_vec(), "PDF"),
        ("PDF header only", b"%PDF-1.7\n%%EOF\n".to_vec(), "PDF"),
        (
            "text named .jpg",
            b"GIF89a not really".to_vec(),
            "not one of the accepted types",
        ),
    ];
    for (what, bytes, says) in cases {
        let (status, body) = upload(&server, id, bytes).await;
        assert_eq!(status, 400, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {message}");
    }
    let (_, st) = server.get(&format!("/documents/{id}/status")).await;
    assert_eq!(st["image_count"], 0, "nothing stored: {st}");
    let blobs = walk_files(&server.data_dir.join("blobs"));
    assert_eq!(blobs, 0, "no blob written for a refused upload");

    // Still healthy, and a good file is accepted.
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let (status, body) = upload(&server, id, pdf).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["content_type"], "application/pdf", "{body}");
}

#[tokio::test]
async fn an_oversize_json_body_is_413_json() {
    let server = TestServer::start();
    let huge = format!(
        "{{\"source_system\": \"ERP\", \"doc_no\": \"X\", \"doc_type\": \"x\", \"org\": \"{}\"}}",
        "a".repeat(65 * 1024 * 1024)
    );
    let r = server
        .client
        .post(server.url("/documents"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    // The refused connection is closed unread; a new one is served.
    let after = reqwest::Client::new()
        .get(server.url("/settings"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
}

fn walk_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { walk_files(&path) } else { 1 }
        })
        .sum()
}

/// Slowloris: connections that send their headers a byte at a time, or
/// stop half-way, are dropped after the header timeout, and the server keeps
/// answering everyone else meanwhile.
#[tokio::test]
async fn slow_header_senders_are_dropped_and_others_still_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    const TIMEOUT: Duration = Duration::from_secs(1);
    let server = TestServer::start_with_env("127.0.0.1:0", &[("IMC_HEADER_TIMEOUT_SECS", "1")]);
    let addr = server.base.trim_start_matches("http://").to_owned();

    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut dribblers = Vec::new();
    for _ in 0..8 {
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        // Half a request line, then nothing: never finishes its headers.
        tcp.write_all(&request[..10]).await.unwrap();
        dribblers.push(tcp);
    }
    // One more sends a byte every 100 ms, never the blank line that ends the headers.
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let trickled = tokio::spawn(async move {
        for byte in request.iter().cycle() {
            if trickle.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        panic!("a header sent a byte at a time was never cut off");
    });

    // While they hang on, a normal client is served.
    let (status, _) = server.get("/settings").await;
    assert_eq!(status, 200);

    // Each stalled connection is closed by the server (EOF or reset) soon
    // after the timeout, with a 408 at most.
    for mut tcp in dribblers {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(TIMEOUT * 10, tcp.read_to_end(&mut answer))
            .await
            .expect("the server closes a stalled connection");
        if read.is_ok() && !answer.is_empty() {
            let text = String::from_utf8_lossy(&answer);
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        }
    }
    let cut_after = trickled.await.unwrap();
    assert!(
        cut_after >= TIMEOUT && cut_after < TIMEOUT * 10,
        "cut off after {cut_after:?}"
    );
    let (status, _) = server.get("/settings").await;
    assert_eq!(status, 200, "still serving after the slow clients");
}
