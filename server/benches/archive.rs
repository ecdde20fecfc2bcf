//! Archive export: 1,000 signed-off documents of 5 pages each exported as
//! bags, against copying the same page bytes with an fsync per file (what
//! any export that makes each page durable pays at least), in the same run
//! on the same disk; and the process's resident memory as documents grow.
//!
//! Run: `cargo bench -p imc-server --bench archive` (release build).
//! `IMC_ARCHIVE_BENCH_DOCS` changes the document count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use imc_server::archive::destination::Destination;
use imc_server::archive::export::{Sources, export};
use imc_server::archive::folder::Folder;
use imc_server::cover_keys::CoverSigner;
use imc_server::domain::Actor;
use imc_server::store::{ArchiveFilter, Created, NewDocument, NewImage, SqliteStore, Store};
use imc_shared::DocStatus;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

const PAGES: usize = 5;
/// About a 200 dpi greyscale JPEG of an A4 page.
const PAGE_BYTES: usize = 60_000;

fn page(document: usize, page: usize) -> Vec<u8> {
    // A JPEG signature, then bytes that differ for every page (no two
    // pages share a blob) and do not compress.
    let mut state = (document * 31 + page * 7 + 1) as u64;
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..PAGE_BYTES).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }));
    bytes
}

/// The process's resident memory now, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let documents: usize = std::env::var("IMC_ARCHIVE_BENCH_DOCS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let store = SqliteStore::open(&data.join("imc.sqlite3")).unwrap();
        let blobs = imc_server::blobs::open(&data.join("blobs").display().to_string()).unwrap();
        let actor = Actor("bench".into());
        let started = Instant::now();
        let mut shas = Vec::new();
        for d in 0..documents {
            let created = store
                .create_document(
                    NewDocument {
                        source_system: "ERP".into(),
                        doc_no: format!("AP-{d:06}"),
                        doc_type: "expense".into(),
                        org: "HQ".into(),
                        cover_code: format!("IMC{d:010}"),
                        title: None,
                        amount: Some("1280.50".into()),
                        submitter: None,
                        attachment_count: None,
                        metadata: None,
                    },
                    &actor,
                )
                .await
                .unwrap();
            let Created::New(doc) = created else {
                panic!("a new document")
            };
            // No scheme: basic mode, ready with its first upload.
            for p in 0..PAGES {
                let bytes = page(d, p);
                let size = bytes.len() as u64;
                let sha256 = blobs.put(bytes).await.unwrap();
                shas.push(sha256.clone());
                store
                    .add_image(
                        doc.id,
                        NewImage {
                            sha256,
                            size,
                            content_type: "image/jpeg".into(),
                            source: None,
                        },
                        &actor,
                    )
                    .await
                    .unwrap();
            }
        }
        println!(
            "setup: {documents} documents, {} pages in {:.1} s",
            shas.len(),
            started.elapsed().as_secs_f64()
        );
        let payload = (shas.len() * (PAGE_BYTES + 4)) as f64 / 1e6;

        // Baseline: the same page bytes read from the blob store and
        // written to a folder, one fsync a file.
        let copies = dir.path().join("copies");
        std::fs::create_dir_all(&copies).unwrap();
        let started = Instant::now();
        for (n, sha) in shas.iter().enumerate() {
            let bytes = blobs.get(sha).await.unwrap();
            let mut file = std::fs::File::create(copies.join(format!("{n}.jpg"))).unwrap();
            file.write_all(&bytes).unwrap();
            file.sync_all().unwrap();
        }
        let copy_secs = started.elapsed().as_secs_f64();
        println!(
            "copy with fsync: {payload:.0} MB in {copy_secs:.2} s = {:.1} MB/s",
            payload / copy_secs
        );

        let secrets = Arc::new(imc_server::secrets::Keyring::load(&data).unwrap());
        let signer = CoverSigner::new(secrets);
        let keys = signer.ensure(&store).await.unwrap();
        let out = dir.path().join("archive");
        let folder: Arc<dyn Destination> = Arc::new(Folder::open(&out, Some(&data)).unwrap());
        let filter = ArchiveFilter {
            status: DocStatus::Ready,
            source_system: None,
            created_from: None,
            created_before: None,
        };
        let sources = Sources {
            store: &store,
            blobs: &*blobs,
            keys: &keys,
        };
        let rss_before = rss_mib();
        let mut rss_at = Vec::new();
        let started = Instant::now();
        let done = export(&sources, &folder, &filter, |p| {
            if (p.documents as usize).is_multiple_of((documents / 4).max(1)) {
                rss_at.push((p.documents, rss_mib()));
            }
        })
        .await
        .unwrap();
        let export_secs = started.elapsed().as_secs_f64();
        assert_eq!(done.bags as usize, documents);
        println!(
            "export: {} bags, {:.0} MB written ({payload:.0} MB of pages) in {export_secs:.2} s = \
             {:.1} MB/s of pages, {:.0} documents/s",
            done.bags,
            done.bytes as f64 / 1e6,
            payload / export_secs,
            documents as f64 / export_secs
        );
        println!(
            "export speed / copy speed: {:.2} (target at least 0.5)",
            copy_secs / export_secs
        );
        let rss: Vec<String> = rss_at
            .iter()
            .map(|(docs, mib)| format!("{docs} docs {mib:.1} MiB"))
            .collect();
        println!(
            "resident memory: before {rss_before:.1} MiB; {}",
            rss.join(", ")
        );
    });
}
