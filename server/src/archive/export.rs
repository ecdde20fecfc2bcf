//! The export: every document the filter takes that the destination does
//! not hold in its current version becomes a bag. A few documents' pages
//! are in memory at a time ([`WRITING`] being written, one being read), so
//! memory stays flat however many documents there are; a failure names the
//! document and leaves no bag looking whole.

use super::bag;
use super::destination::Destination;
use super::folder::Held;
use super::package::{self, Facts};
use super::xml;
use crate::blobs::BlobStore;
use crate::cover_keys::Loaded;
use crate::store::{ArchiveFilter, Document, Store};
use anyhow::{Context, anyhow};
use base64::Engine;
use chrono::Utc;
use std::sync::Arc;

/// Documents read from the store at a time.
const PAGE: u32 = 100;

/// How far an export has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Documents the filter took so far.
    pub documents: u64,
    /// Bags written (new documents and new versions).
    pub bags: u64,
    /// Documents whose current version the destination already held.
    pub unchanged: u64,
    /// Documents that changed while their facts were read: left for the next run.
    pub deferred: u64,
    /// Bytes written into bags.
    pub bytes: u64,
}

/// What an export needs: where the documents, the bytes and the key are.
pub struct Sources<'a> {
    pub store: &'a dyn Store,
    pub blobs: &'a dyn BlobStore,
    pub keys: &'a Loaded,
}

pub async fn export(
    sources: &Sources<'_>,
    destination: &Arc<dyn Destination>,
    filter: &ArchiveFilter,
    mut on_progress: impl FnMut(&Progress),
) -> anyhow::Result<Progress> {
    let mut progress = Progress::default();
    // Bags being written, oldest first: fsync (or upload) waits overlap
    // across bags, while at most WRITING documents' pages are in memory.
    let mut writing = Writing::new();
    let result = run(
        sources,
        destination,
        filter,
        &mut writing,
        &mut progress,
        &mut on_progress,
    )
    .await;
    // Whatever happened, no write outlives the export: a bag still being
    // written when another export cleans up would be torn.
    while let Some((write, _)) = writing.pop_front() {
        let _ = write.await;
    }
    destination.release().await;
    result.map(|()| progress)
}

async fn run(
    sources: &Sources<'_>,
    destination: &Arc<dyn Destination>,
    filter: &ArchiveFilter,
    writing: &mut Writing,
    progress: &mut Progress,
    on_progress: &mut impl FnMut(&Progress),
) -> anyhow::Result<()> {
    let mut held = destination.held().await?;
    let mut after = 0;
    loop {
        let documents = sources
            .store
            .documents_to_archive(filter, after, PAGE)
            .await
            .context("reading the documents to export")?;
        let Some(last) = documents.last() else {
            break;
        };
        after = last.id;
        for document in documents {
            let named = naming(&document);
            let prepared = prepare(sources, &held, filter, document)
                .await
                .map_err(&named)?;
            let bag = match prepared {
                Prepared::Bag(bag) => bag,
                Prepared::Held | Prepared::Changed => {
                    progress.documents += 1;
                    if matches!(prepared, Prepared::Held) {
                        progress.unchanged += 1;
                    } else {
                        progress.deferred += 1;
                    }
                    on_progress(progress);
                    continue;
                }
            };
            held.add(bag.id, bag.version, bag.digest.clone());
            let destination = Arc::clone(destination);
            let write =
                tokio::spawn(async move { destination.write_bag(bag.name, bag.files).await });
            writing.push_back((write, named));
            if writing.len() >= WRITING {
                finish_oldest(writing, progress).await?;
                on_progress(progress);
            }
        }
    }
    while !writing.is_empty() {
        finish_oldest(writing, progress).await?;
        on_progress(progress);
    }
    Ok(())
}

/// Puts the document's name on an error.
fn naming(document: &Document) -> Naming {
    let (id, doc_no) = (document.id, document.doc_no.clone());
    Box::new(move |e: anyhow::Error| e.context(format!("exporting document {doc_no} (id {id})")))
}

type Naming = Box<dyn Fn(anyhow::Error) -> anyhow::Error + Send>;

/// Bags written at once.
const WRITING: usize = 4;

type Writing = std::collections::VecDeque<(tokio::task::JoinHandle<anyhow::Result<u64>>, Naming)>;

async fn finish_oldest(writing: &mut Writing, progress: &mut Progress) -> anyhow::Result<()> {
    let Some((write, named)) = writing.pop_front() else {
        return Ok(());
    };
    let bytes = write
        .await
        .map_err(|e| named(anyhow!("the writing task failed: {e}")))?
        .map_err(&named)?;
    progress.documents += 1;
    progress.bags += 1;
    progress.bytes += bytes;
    Ok(())
}

/// What became of a document on its way to a bag.
enum Prepared {
    /// The destination holds its current version.
    Held,
    /// It changed while its facts were read.
    Changed,
    Bag(Bag),
}

/// A bag ready to be written.
struct Bag {
    id: i64,
    name: String,
    version: u32,
    digest: String,
    files: Vec<(String, Vec<u8>)>,
}

/// The document's bag, unless the destination holds its current version
/// or the document changed while its facts were read (the next run takes
/// it as it is then).
async fn prepare(
    sources: &Sources<'_>,
    held: &Held,
    filter: &ArchiveFilter,
    document: Document,
) -> anyhow::Result<Prepared> {
    let store = sources.store;
    let id = document.id;
    let facts = Facts {
        images: store.images(id).await?,
        audit: store.document_audit(id).await?,
        conflicts: store.document_conflicts(id).await?,
        attachment_check: store.attachment_check(&document).await?,
        document,
    };
    // The facts are read one after another: they describe one state of the
    // document only if it did not change meanwhile.
    let now = store.document(id).await?;
    let unchanged = now.as_ref().is_some_and(|d| {
        d.updated_at == facts.document.updated_at
            && d.status == facts.document.status
            && d.image_count == facts.document.image_count
    });
    if !unchanged || facts.document.status != filter.status {
        tracing::info!(
            document = id,
            "changed during the export; left for the next run"
        );
        return Ok(Prepared::Changed);
    }
    let record = package::record(&facts);
    let record_json = serde_json::to_vec_pretty(&record)?;
    let audit = package::audit_lines(&facts.audit);
    let digest = package::version_digest(&record, &audit)?;
    if held.holds(id, &digest) {
        return Ok(Prepared::Held);
    }
    let version = held.next_version(id);
    let mut payload = Vec::new();
    for image in &record.images {
        let Some(file) = &image.file else { continue };
        let bytes = sources.blobs.get(&image.sha256).await.map_err(|e| {
            anyhow!(
                "page {} (blob {}) cannot be read: {e}",
                image.page_no,
                image.sha256
            )
        })?;
        // Never archive bytes other than those received.
        if bag::sha256_hex(&bytes) != image.sha256 {
            anyhow::bail!(
                "page {}: the stored bytes do not match their SHA-256 {}",
                image.page_no,
                image.sha256
            );
        }
        payload.push((file.clone(), bytes));
    }
    payload.push((bag::DOCUMENT_JSON.to_owned(), record_json));
    payload.push((
        bag::DOCUMENT_XML.to_owned(),
        xml::render(&record).into_bytes(),
    ));
    payload.push((
        bag::AUDIT_JSONL.to_owned(),
        package::audit_jsonl(&audit)?.into_bytes(),
    ));

    let now = Utc::now();
    let (public_key, _) = sources
        .keys
        .sign_detached(b"", now)
        .ok_or_else(|| anyhow!("no signing key opens with this server's secrets key"))?;
    let head = store
        .audit_head()
        .await?
        .map(|(id, hash)| format!("{id} {hash}"))
        .unwrap_or_default();
    let description = record
        .title
        .clone()
        .unwrap_or_else(|| format!("{} {}", record.doc_type, record.doc_no));
    let info = [
        ("Source-Organization", record.org.clone()),
        ("Bagging-Date", now.format("%Y-%m-%d").to_string()),
        ("External-Identifier", record.doc_no.clone()),
        ("External-Description", description),
        (
            "Bag-Software-Agent",
            format!("imc-server {}", env!("CARGO_PKG_VERSION")),
        ),
        ("IMC-Version", env!("CARGO_PKG_VERSION").to_owned()),
        ("IMC-Document-Id", id.to_string()),
        ("IMC-Document-Version", version.to_string()),
        ("IMC-Version-Digest", digest.clone()),
        (
            "IMC-Signing-Key",
            base64::engine::general_purpose::STANDARD.encode(&public_key),
        ),
        (
            "IMC-Signing-Key-Fingerprint",
            bag::key_fingerprint(&public_key),
        ),
        ("IMC-Audit-Chain-Head", head),
    ];
    let files = bag::assemble(payload, &info, |tag_manifest| {
        sources
            .keys
            .sign_detached(tag_manifest, now)
            .map(|(_, signature)| signature)
            .ok_or_else(|| anyhow!("no signing key"))
    })?;
    Ok(Prepared::Bag(Bag {
        id,
        name: bag::bag_name(&record.doc_no, id, version),
        version,
        digest,
        files,
    }))
}
