//! Archive packages end to end: documents scanned or uploaded and signed
//! off on a running server, exported by `imc-server archive export`, checked
//! by the Library of Congress `bagit` validator, by `xmllint` against the
//! published XSD and by `imc-server archive verify`; tampering caught and
//! named; a rerun adds nothing; a new version lands beside the old; an
//! export killed midway completes on rerun with no duplicates.

use crate::harness::{TOKEN, TestAgent, TestServer, bin};
use crate::scan;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn imc_server(args: &[&str]) -> Output {
    Command::new(bin("imc-server")).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn export(data_dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "archive",
        "export",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    imc_server(&args)
}

fn verify(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["archive", "verify", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    imc_server(&args)
}

/// The complete bags in `out`, by name.
fn bags(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "imc-archive.txt" && n != "imc-archive.lock")
        .collect();
    names.sort();
    names
}

/// The `bagit` validator that `scripts/setup.sh` installs.
fn bagit_validates(bag: &Path) {
    let tools = std::env::var("IMC_TOOLS_DIR").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/imc-tools"),
        PathBuf::from,
    );
    let out = Command::new(tools.join("bagit-venv/bin/bagit.py"))
        .arg("--validate")
        .arg(bag)
        .output()
        .expect("bagit.py (installed by scripts/setup.sh)");
    assert!(out.status.success(), "bagit: {}", text(&out));
}

fn xsd_validates(xml: &Path) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/archive-document.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(xml)
        .output()
        .expect("xmllint (installed by scripts/setup.sh)");
    assert!(out.status.success(), "xmllint: {}", text(&out));
}

async fn upload(server: &TestServer, id: i64, bytes: Vec<u8>) {
    let r = server
        .client
        .post(server.url(&format!("/documents/{id}/images")))
        .bearer_auth(TOKEN)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

/// A basic-mode document (the scheme set here) made ready by one uploaded
/// page; its id.
async fn uploaded_document(server: &TestServer, doc_no: &str, page: Vec<u8>) -> i64 {
    server
        .put("/schemes/all-match", json!({"mode": "basic"}))
        .await;
    let (status, doc) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": doc_no, "doc_type": "x", "org": "HQ"}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    let id = doc["id"].as_i64().unwrap();
    upload(server, id, page).await;
    id
}

/// A small page, different for every seed.
fn small_page(seed: u32) -> Vec<u8> {
    let page = image::GrayImage::from_fn(120, 160, |x, y| {
        image::Luma([((x * 7 + y * 3 + seed * 13) % 251) as u8])
    });
    scan::png(&page)
}

#[tokio::test]
async fn signed_off_documents_export_as_bags_that_verify_and_tampering_is_named() {
    let server = TestServer::start();
    // A scanned packet: cover and two pages, matched, signed off.
    let doc = server.match_document("AR-2026-0001").await;
    let scanned = doc["id"].as_i64().unwrap();
    let mut agent = TestAgent::enroll(&server).await;
    agent.start();
    agent.drop_file("scan_0001.jpg", &server.cover_scan(&doc).await);
    agent.drop_file("scan_0002.jpg", &scan::jpeg(&scan::text_page(2), 80));
    agent.drop_file("scan_0003.png", &scan::png(&scan::text_page(3)));
    server.wait_for_status(scanned, "matched", WAIT).await;
    let (status, _) = server
        .post(&format!("/documents/{scanned}/sign-off"), json!({}))
        .await;
    assert_eq!(status, 200);
    // Uploaded straight onto a basic document (ready at once), with money.
    server
        .put("/schemes/all-match", json!({"mode": "basic"}))
        .await;
    // The amount as the JSON number the ERP sends, kept to the digit.
    let basic: Value = server
        .client
        .post(server.url("/documents"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(
            r#"{"source_system":"ERP","doc_no":"AR-2026-0002","doc_type":"invoice","org":"HQ",
                "amount":1280.50,"title":"差旅费 <Shanghai & Beijing>"}"#,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let basic = basic["id"].as_i64().unwrap();
    upload(&server, basic, small_page(1)).await;
    // Not signed off: not exported by default.
    let (_, waiting) = server
        .post(
            "/documents",
            json!({"source_system": "ERP", "doc_no": "AR-2026-0003", "doc_type": "x", "org": "HQ"}),
        )
        .await;
    assert_eq!(waiting["status"], "awaiting_images");

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("archive");
    // While the server runs.
    let run = export(&server.data_dir, &out, &[]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("2 bags written"), "{}", text(&run));
    let names = bags(&out);
    assert_eq!(
        names,
        [
            format!("AR-2026-0001.{scanned}.v1"),
            format!("AR-2026-0002.{basic}.v1")
        ]
    );
    for name in &names {
        let bag = out.join(name);
        bagit_validates(&bag);
        xsd_validates(&bag.join("data/document.xml"));
    }
    let scanned_bag = out.join(&names[0]);
    let record: Value =
        serde_json::from_slice(&std::fs::read(scanned_bag.join("data/document.json")).unwrap())
            .unwrap();
    assert_eq!(record["doc_no"], "AR-2026-0001");
    assert_eq!(record["decision"]["action"], "sign-off");
    let kinds: Vec<_> = record["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["cover", "attachment", "attachment"]);
    let (_, api) = server.get(&format!("/documents/{scanned}")).await;
    for (archived, live) in record["images"]
        .as_array()
        .unwrap()
        .iter()
        .zip(api["images"].as_array().unwrap())
    {
        assert_eq!(archived["sha256"], live["sha256"]);
        let file = scanned_bag.join(archived["file"].as_str().unwrap());
        assert_eq!(
            crate::harness::sha256_hex(&std::fs::read(file).unwrap()),
            live["sha256"].as_str().unwrap()
        );
    }
    let basic_record: Value = serde_json::from_slice(
        &std::fs::read(out.join(&names[1]).join("data/document.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(basic_record["amount"], "1280.50", "money is exact text");
    let info = std::fs::read_to_string(scanned_bag.join("bag-info.txt")).unwrap();
    assert!(info.contains("External-Identifier: AR-2026-0001"), "{info}");

    // A rerun writes nothing.
    let again = export(&server.data_dir, &out, &[]);
    assert!(text(&again).contains("0 bags written"), "{}", text(&again));
    assert_eq!(bags(&out), names);

    // The archivist's check, with each bag's key and with the published keys.
    let checked = verify(&out, &[]);
    assert!(checked.status.success(), "{}", text(&checked));
    let keys = imc_server(&[
        "archive",
        "public-key",
        "--data-dir",
        server.data_dir.to_str().unwrap(),
    ]);
    assert!(keys.status.success(), "{}", text(&keys));
    let key_file = tmp.path().join("archive-key.pub");
    std::fs::write(&key_file, &keys.stdout).unwrap();
    let checked = verify(&out, &["--key", key_file.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", text(&checked));
    let report = verify(&out, &["--json"]);
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["bags"], 2);

    // Tampering, each on its own copy, is caught and named.
    let copy = |what: &str| {
        let to = tmp.path().join(what).join(&names[0]);
        copy_dir(&scanned_bag, &to);
        to
    };
    let flipped = copy("flipped");
    let page = flipped.join("data/pages/0002.jpg");
    let mut bytes = std::fs::read(&page).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&page, bytes).unwrap();
    let deleted = copy("deleted");
    std::fs::remove_file(deleted.join("data/audit.jsonl")).unwrap();
    let resigned = copy("resigned");
    let foreign =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let foreign = ring::signature::Ed25519KeyPair::from_pkcs8(foreign.as_ref()).unwrap();
    let manifest = std::fs::read(resigned.join("tagmanifest-sha256.txt")).unwrap();
    use base64::Engine;
    std::fs::write(
        resigned.join("tagmanifest-sha256.txt.sig"),
        base64::engine::general_purpose::STANDARD.encode(foreign.sign(&manifest)),
    )
    .unwrap();
    for (bag, names_file) in [
        (&flipped, "data/pages/0002.jpg"),
        (&deleted, "data/audit.jsonl"),
        (&resigned, "tagmanifest-sha256.txt.sig"),
    ] {
        let out = verify(bag, &["--key", key_file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains(names_file),
            "{names_file} not named: {}",
            text(&out)
        );
    }

    // Revoked and signed again: a second version beside the first.
    for (action, body) in [
        ("unsign", json!({"reason": "amount differs"})),
        ("sign-off", json!({})),
    ] {
        let (status, answer) = server
            .post(&format!("/documents/{scanned}/{action}"), body)
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let third = export(&server.data_dir, &out, &[]);
    assert!(text(&third).contains("1 bags written"), "{}", text(&third));
    assert_eq!(bags(&out).len(), 3);
    assert!(out.join(format!("AR-2026-0001.{scanned}.v2")).is_dir());
    assert!(scanned_bag.is_dir(), "the first version stays");
    let checked = verify(&out, &[]);
    assert!(checked.status.success(), "{}", text(&checked));
}

#[tokio::test]
async fn bad_destinations_dates_and_statuses_are_refused_before_anything_is_written() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let inside = server.data_dir.join("archive");
    let run = export(&server.data_dir, &inside, &[]);
    assert!(!run.status.success());
    assert!(text(&run).contains("inside the data dir"), "{}", text(&run));
    assert!(!inside.exists());
    let foreign = tmp.path().join("photos");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("holiday.jpg"), b"jpeg").unwrap();
    let run = export(&server.data_dir, &foreign, &[]);
    assert!(text(&run).contains("not an IMC archive"), "{}", text(&run));
    // A data dir that is not one: refused, and nothing is written anywhere.
    let fresh = tmp.path().join("fresh");
    let run = export(&tmp.path().join("no-such-data"), &fresh, &[]);
    assert!(!run.status.success());
    assert!(text(&run).contains("no database"), "{}", text(&run));
    assert!(!fresh.exists(), "nothing written for a wrong data dir");
    assert!(
        !tmp.path().join("no-such-data").exists(),
        "nor in the wrong data dir"
    );
    for (args, says) in [
        (&["--from", "2026-02-30"][..], "--from \"2026-02-30\""),
        (&["--to", "yesterday"][..], "--to \"yesterday\""),
        (&["--status", "signed"][..], "unknown status \"signed\""),
    ] {
        let run = export(&server.data_dir, &fresh, args);
        assert!(!run.status.success());
        assert!(text(&run).contains(says), "{says}: {}", text(&run));
        assert!(!fresh.exists(), "nothing written for {args:?}");
    }

    // Bytes that cannot be read mid-export: the document is named, no bag
    // of it looks whole, and the next run picks up once they are back.
    let page = small_page(4);
    let lost = uploaded_document(&server, "LOST-1", page.clone()).await;
    let sha = crate::harness::sha256_hex(&page);
    let blob = server.data_dir.join("blobs").join(&sha[..2]).join(&sha);
    std::fs::remove_file(&blob).unwrap();
    let out = tmp.path().join("out");
    let run = export(&server.data_dir, &out, &[]);
    assert!(!run.status.success());
    assert!(text(&run).contains("LOST-1"), "{}", text(&run));
    assert!(
        bags(&out).iter().all(|n| n.starts_with('.')),
        "no whole bag: {:?}",
        bags(&out)
    );
    std::fs::write(&blob, &page).unwrap();
    let run = export(&server.data_dir, &out, &[]);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(bags(&out), [format!("LOST-1.{lost}.v1")]);
}

#[tokio::test]
async fn an_export_killed_midway_completes_on_rerun_without_duplicates() {
    // 400 calls in a few seconds: past the token's rate limit.
    let server = TestServer::start_with_env(
        "127.0.0.1:0",
        &[("IMC_RATE_PER_TOKEN", "0"), ("IMC_RATE_PER_IP", "0")],
    );
    let mut ids = Vec::new();
    for n in 0..200u32 {
        ids.push(uploaded_document(&server, &format!("KILL-{n:03}"), small_page(n)).await);
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("archive");
    let mut first = Command::new(bin("imc-server"))
        .args(["archive", "export", "--data-dir"])
        .arg(&server.data_dir)
        .arg("--out")
        .arg(&out)
        .spawn()
        .unwrap();
    crate::harness::eventually("the export to be under way", WAIT, || {
        let under_way = out.is_dir() && bags(&out).len() >= 20;
        async move { under_way.then_some(()) }
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let written_before = bags(&out).iter().filter(|n| !n.starts_with('.')).count();
    assert!(written_before < 200, "killed before the end");

    let rerun = export(&server.data_dir, &out, &[]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    let names = bags(&out);
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "no partial bag left"
    );
    let mut documents: Vec<i64> = names
        .iter()
        .map(|n| {
            assert!(n.ends_with(".v1"), "one version each: {n}");
            n.rsplit('.').nth(1).unwrap().parse().unwrap()
        })
        .collect();
    documents.sort();
    assert_eq!(documents, ids, "every document once");
    let checked = verify(&out, &[]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(text(&checked).contains("200 bags"), "{}", text(&checked));
}

#[tokio::test]
async fn the_api_runs_an_export_in_the_background_audited_and_counted() {
    let plain = TestServer::start();
    let (status, refused) = plain.post("/archive/exports", json!({})).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--archive-dir"),
        "{refused}"
    );
    drop(plain);

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("archive");
    let server = TestServer::start_with(
        "127.0.0.1:0",
        &["--archive-dir".into(), out.display().to_string()],
        reqwest::Client::new(),
    );
    uploaded_document(&server, "API-1", small_page(9)).await;
    let (status, bad) = server
        .post("/archive/exports", json!({"from": "2026-02-30"}))
        .await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("from")),
        "{bad}"
    );
    let (status, bad) = server
        .post("/archive/exports", json!({"status": "signed"}))
        .await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (400, Some("status")),
        "{bad}"
    );

    let (status, job) = server.post("/archive/exports", json!({})).await;
    assert_eq!(status, 202, "{job}");
    let job = finished(&server, &job).await;
    assert_eq!(
        (job["state"].as_str(), job["bags"].as_u64()),
        (Some("done"), Some(1)),
        "{job}"
    );
    assert_eq!(bags(&out).len(), 1);
    let checked = verify(&out, &[]);
    assert!(checked.status.success(), "{}", text(&checked));
    let (_, again) = server.post("/archive/exports", json!({})).await;
    let again = finished(&server, &again).await;
    assert_eq!(
        (again["bags"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(1)),
        "{again}"
    );

    let audited = crate::security::audit_actions(&server, "archive.export");
    assert_eq!(audited.len(), 4, "a start and an end each: {audited:?}");
    assert!(audited[1].1.contains("1 bags written"), "{audited:?}");
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("imc_archive_bags_total 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_scaled_out_installation_exports_into_a_bucket_prefix() {
    use crate::scale::{aws_env, fresh_blobs, fresh_database, migrate, replica_args, services};
    use futures_util::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let settings = services();
    let database = fresh_database(&settings).await;
    migrate(&database);
    let blobs = fresh_blobs(&settings, "archive-src");
    let env = aws_env(&settings);
    let server = TestServer::start_full(
        "127.0.0.1:0",
        &replica_args(&database, &blobs),
        &env,
        reqwest::Client::new(),
    );
    for n in 0..3u32 {
        uploaded_document(&server, &format!("S3-{n}"), small_page(n)).await;
    }
    let out = fresh_blobs(&settings, "archive-out");
    let key_file = server.data_dir.join("secrets.key");
    let run = || {
        Command::new(bin("imc-server"))
            .args([
                "archive",
                "export",
                "--database",
                &database,
                "--blobs",
                &blobs,
            ])
            .args(["--out", &out, "--key-file"])
            .arg(&key_file)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("3 bags written"), "{}", text(&first));

    // The bags, fetched from the bucket the way an archivist would.
    let url = url_parts(&out);
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&settings["AWS_ENDPOINT"])
        .with_region(&settings["AWS_REGION"])
        .with_access_key_id(&settings["AWS_ACCESS_KEY_ID"])
        .with_secret_access_key(&settings["AWS_SECRET_ACCESS_KEY"])
        .with_allow_http(true)
        .with_bucket_name(&url.0)
        .build()
        .unwrap();
    let prefix = object_store::path::Path::from(url.1.as_str());
    let objects: Vec<_> = bucket.list(Some(&prefix)).try_collect().await.unwrap();
    // A crash before a bag's signature went up: the next run rewrites it.
    let signature = objects
        .iter()
        .find(|o| o.location.as_ref().ends_with("tagmanifest-sha256.txt.sig"))
        .unwrap()
        .location
        .clone();
    bucket.delete(&signature).await.unwrap();
    let second = run();
    assert!(
        text(&second).contains("1 bags written"),
        "{}",
        text(&second)
    );
    assert!(
        text(&second).contains("2 already held"),
        "{}",
        text(&second)
    );

    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("archive");
    let objects: Vec<_> = bucket.list(Some(&prefix)).try_collect().await.unwrap();
    for object in &objects {
        let relative = object.location.as_ref()[prefix.as_ref().len() + 1..].to_owned();
        let bytes = bucket
            .get(&object.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let target = local.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
    let names = bags(&local);
    assert_eq!(names.len(), 3, "{names:?}");
    for name in &names {
        bagit_validates(&local.join(name));
    }
    let checked = verify(&local, &[]);
    assert!(checked.status.success(), "{}", text(&checked));
}

/// (bucket, prefix) of `s3://bucket/prefix`.
fn url_parts(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("s3://");
    let (bucket, prefix) = rest.split_once('/').unwrap();
    (bucket.to_owned(), prefix.to_owned())
}

async fn finished(server: &TestServer, job: &Value) -> Value {
    let path = format!("/archive/exports/{}", job["id"]);
    crate::harness::eventually("the export to end", WAIT, || async {
        let (_, job) = server.get(&path).await;
        (job["state"] != "running").then_some(job)
    })
    .await
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
