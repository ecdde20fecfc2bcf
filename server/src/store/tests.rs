//! One conformance suite for every `Store` backend: each case runs unchanged
//! against SQLite (a file in a temp dir) and PostgreSQL (a fresh schema in
//! the test cluster `scripts/services.sh` starts). Cases that only a shared
//! database can show (claims across replicas) are at the end.

use super::*;
use crate::test_services;
use imc_shared::api::TokenScope;
use imc_shared::protocol::BarcodeInfo;
use std::sync::Arc;

/// A backend under test, and what must live (or be removed) with it.
struct Fixture {
    store: Arc<dyn Store>,
    /// The same store as the sign-off desk sees it.
    desk: Arc<dyn crate::web::store::WebStore>,
    changes: Box<dyn Fn() -> tokio::sync::broadcast::Receiver<Change> + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL schema to drop when the case passed.
    schema: Option<String>,
}

impl Fixture {
    async fn finish(self) {
        if let Some(schema) = self.schema {
            admin_sql(&format!("DROP SCHEMA {schema} CASCADE")).await;
        }
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("imc.sqlite3")).unwrap();
    let announcer = store.clone();
    Fixture {
        store: Arc::new(store.clone()),
        desk: Arc::new(store),
        changes: Box::new(move || announcer.changes()),
        _dir: Some(dir),
        schema: None,
    }
}

async fn admin_sql(sql: &str) {
    let url = test_services::setting("IMC_TEST_DATABASE_URL");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}; run scripts/services.sh"));
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

/// A pool (a replica's view) on one schema of the test database.
fn pg_store(schema: &str) -> PgStore {
    let url = test_services::setting("IMC_TEST_DATABASE_URL");
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.options(format!("-c search_path={schema}"));
    PgStore::with_config(config).unwrap()
}

async fn postgres() -> Fixture {
    let schema = format!("t_{}", Uuid::new_v4().simple());
    admin_sql(&format!("CREATE SCHEMA {schema}")).await;
    let store = pg_store(&schema);
    assert_eq!(
        store.migrate().await.unwrap(),
        (1..=crate::store::postgres::migrate::latest()).collect::<Vec<_>>()
    );
    let announcer = store.clone();
    Fixture {
        store: Arc::new(store.clone()),
        desk: Arc::new(store),
        changes: Box::new(move || announcer.changes()),
        _dir: None,
        schema: Some(schema),
    }
}

fn actor() -> Actor {
    Actor("test".into())
}

fn agent() -> Agent {
    Agent {
        id: "agent-1".into(),
        site: "hq".into(),
        name: "desk".into(),
    }
}

fn new_doc(doc_no: &str) -> NewDocument {
    NewDocument {
        source_system: "ERP".into(),
        doc_no: doc_no.into(),
        doc_type: "expense".into(),
        org: "HQ".into(),
        cover_code: format!("IMC-TEST-{doc_no}"),
        title: None,
        amount: None,
        submitter: None,
        attachment_count: None,
        metadata: None,
    }
}

async fn match_mode(store: &dyn Store) {
    store
        .put_scheme(
            Scheme {
                name: "all".into(),
                org: None,
                doc_type: None,
                mode: ImageMode::Match,
                rules: None,
            },
            &actor(),
        )
        .await
        .unwrap();
}

async fn doc(store: &dyn Store, doc_no: &str) -> i64 {
    match store
        .create_document(new_doc(doc_no), &actor())
        .await
        .unwrap()
    {
        Created::New(d) | Created::Existing(d) => d.id,
    }
}

fn page(packet_id: Uuid, index: u32, cover: Option<&str>, qr: Option<&str>) -> StoredPage {
    StoredPage {
        capture_id: Uuid::new_v4(),
        packet_id,
        page_index: index,
        cover_code: cover.map(str::to_owned),
        sha256: format!("{index:02x}").repeat(32),
        size: 100 + u64::from(index),
        content_type: "image/png".into(),
        source_name: format!("scan-{index}.png"),
        barcodes: qr
            .map(|text| BarcodeInfo {
                format: "qr_code".into(),
                text: text.into(),
                orientation: 0,
            })
            .into_iter()
            .collect(),
        blank: false,
        packet_seq: None,
    }
}

/// A coverless one-page packet whose page carries `qr`, matched to `document_id`.
async fn scanned(store: &dyn Store, document_id: i64, qr: &str) {
    let packet_id = Uuid::new_v4();
    store
        .record_page(&agent(), page(packet_id, 0, None, Some(qr)))
        .await
        .unwrap();
    store
        .seal_packet(&agent(), sealing(packet_id, None, 1, false, None))
        .await
        .unwrap();
    store
        .match_packet(packet_id, document_id, None, &actor())
        .await
        .unwrap();
}

async fn a_duplicate_invoice_flags_both_live_documents(store: &dyn Store) {
    match_mode(store).await;
    let (a, b, c) = (
        doc(store, "A").await,
        doc(store, "B").await,
        doc(store, "C").await,
    );
    let qr = "01,10,044031900111,12345678,100.00,20240105,12345678901234567890,ABCD,";
    scanned(store, a, qr).await;
    scanned(store, c, "01,10,044031900111,87654321,9.00,20240106,,").await;
    assert_eq!(store.document_conflicts(a).await.unwrap(), vec![]);

    scanned(store, b, qr).await;
    let conflict = |other| InvoiceConflict {
        invoice_code: "044031900111".into(),
        invoice_number: "12345678".into(),
        other_document_id: other,
    };
    assert_eq!(
        store.document_conflicts(a).await.unwrap(),
        vec![conflict(b)]
    );
    assert_eq!(
        store.document_conflicts(b).await.unwrap(),
        vec![conflict(a)]
    );
    assert_eq!(store.document_conflicts(c).await.unwrap(), vec![]);

    // A rescan of B without the invoice clears the flag on both.
    let reject = Decision::Reject {
        reason: "dup".into(),
    };
    store.decide(b, reject, &actor()).await.unwrap();
    scanned(store, b, "not an invoice").await;
    assert_eq!(store.document_conflicts(a).await.unwrap(), vec![]);
    scanned(store, b, qr).await;
    assert_eq!(
        store.document_conflicts(a).await.unwrap(),
        vec![conflict(b)]
    );

    // A cancelled document no longer counts.
    let cancel = Decision::Cancel { reason: None };
    store.decide(b, cancel, &actor()).await.unwrap();
    assert_eq!(store.document_conflicts(a).await.unwrap(), vec![]);
    assert_eq!(store.document_conflicts(b).await.unwrap(), vec![]);
}

async fn tokens_and_enrollment_codes_are_spent_once(store: &dyn Store) {
    let created = store
        .add_api_token(
            NewApiToken {
                name: "erp".into(),
                scopes: vec![TokenScope::Status, TokenScope::Read],
                source_systems: Some(vec!["SAP".into()]),
                token_hash: "hash-1".into(),
            },
            &actor(),
        )
        .await
        .unwrap();
    let token = store.api_token_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!(
        (
            token.id,
            token.name.as_str(),
            token.scopes.as_slice(),
            token.source_systems.as_deref()
        ),
        (
            created.id,
            "erp",
            &[TokenScope::Status, TokenScope::Read][..],
            Some(&["SAP".to_owned()][..])
        )
    );
    assert!(store.api_token_by_hash("hash-2").await.unwrap().is_none());

    // Rotation: the new secret works, the old one until its overlap ends.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let rotated = store
        .rotate_api_token(created.id, "hash-1b", &past, &actor())
        .await
        .unwrap();
    assert_ne!(rotated.id, created.id);
    assert_eq!(rotated.scopes, created.scopes);
    assert!(store.api_token_by_hash("hash-1").await.unwrap().is_none());
    assert!(store.api_token_by_hash("hash-1b").await.unwrap().is_some());
    let again = store
        .rotate_api_token(created.id, "hash-1c", &past, &actor())
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let revoked = store.revoke_api_token(rotated.id, &actor()).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.api_token_by_hash("hash-1b").await.unwrap().is_none());
    assert_eq!(store.api_tokens().await.unwrap().len(), 2);
    store
        .audit_event(
            &Actor("ip:10.0.0.9".into()),
            "auth.failure",
            "bad bearer token",
        )
        .await
        .unwrap();

    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    store
        .add_enrollment_code("branch-7", "code-1", &tomorrow, &actor())
        .await
        .unwrap();
    let agent = store
        .enroll_agent("code-1", "agent-7", "desk 7", "agent-token", Some("1.0"))
        .await
        .unwrap();
    assert_eq!(
        (agent.site.as_str(), agent.name.as_str()),
        ("branch-7", "desk 7")
    );
    let again = store
        .enroll_agent("code-1", "agent-8", "desk 8", "agent-token-8", None)
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    let found = store
        .agent_by_token_hash("agent-token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "agent-7");
    store.agent_seen("agent-7", None).await.unwrap();

    let expired = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    store
        .add_enrollment_code("branch-7", "code-2", &expired, &actor())
        .await
        .unwrap();
    let late = store
        .enroll_agent("code-2", "agent-9", "desk 9", "agent-token-9", None)
        .await;
    assert!(matches!(late, Err(StoreError::NotFound(_))), "{late:?}");
}

async fn a_document_is_created_once(store: &dyn Store) {
    let first = store
        .create_document(new_doc("D-1"), &actor())
        .await
        .unwrap();
    let Created::New(first) = first else {
        panic!("expected a new document")
    };
    assert_eq!(first.status, DocStatus::AwaitingImages);
    assert_eq!(first.mode, ImageMode::Basic);
    let second = store
        .create_document(new_doc("D-1"), &actor())
        .await
        .unwrap();
    assert!(matches!(second, Created::Existing(d) if d.id == first.id));

    let mut stolen = new_doc("D-2");
    stolen.cover_code = first.cover_code.clone();
    let taken = store.create_document(stolen, &actor()).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    let other = doc(store, "D-3").await;
    let by_ids = store
        .documents_by_ids(&[other, first.id, 999_999])
        .await
        .unwrap();
    assert_eq!(
        by_ids.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![first.id, other]
    );
    let by_nos = store
        .documents_by_doc_nos(&["D-3".into(), "D-1".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(by_nos.len(), 2);
    let by_codes = store
        .documents_by_cover_codes(&[first.cover_code.clone(), "IMCNOSUCH".into()])
        .await
        .unwrap();
    assert_eq!(
        by_codes.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    assert_eq!(store.documents_by_doc_no("D-3").await.unwrap()[0].id, other);
    assert!(store.document(999_999).await.unwrap().is_none());
    let audit = store.document_audit(first.id).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "document.create");
    assert_eq!(audit[0].to_status, Some(DocStatus::AwaitingImages));
}

async fn uploaded_images_move_a_basic_document(store: &dyn Store) {
    let id = doc(store, "U-1").await;
    let image = store
        .add_image(
            id,
            NewImage {
                sha256: "ab".repeat(32),
                size: 42,
                content_type: "image/jpeg".into(),
                source: None,
            },
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!((image.page_no, image.size), (1, 42));
    let doc = store.document(id).await.unwrap().unwrap();
    assert_eq!(doc.image_count, 1);
    assert_ne!(doc.status, DocStatus::AwaitingImages);
    assert_eq!(store.images(id).await.unwrap().len(), 1);
    assert_eq!(
        store.image(image.id).await.unwrap().unwrap().sha256,
        "ab".repeat(32)
    );
    let refused = store.decide(id, Decision::SignOff, &actor()).await;
    assert!(
        matches!(refused, Err(StoreError::InvalidTransition { .. })),
        "{refused:?}"
    );
}

async fn packets_match_by_cover_and_bind_late(store: &dyn Store) {
    match_mode(store).await;
    let early = doc(store, "P-1").await;
    // A packet for a document that exists: matched when complete.
    let packet = Uuid::new_v4();
    let cover = Some("IMC-TEST-P-1");
    let first = page(packet, 0, cover, None);
    let open = store.record_page(&agent(), first.clone()).await.unwrap();
    assert_eq!(open, PacketResolution::Open);
    assert!(
        store
            .page_stored(first.capture_id, "agent-1")
            .await
            .unwrap()
    );
    let sealed = store
        .seal_packet(
            &agent(),
            sealing(packet, cover.map(str::to_owned), 2, false, None),
        )
        .await
        .unwrap();
    assert_eq!(sealed, PacketResolution::Open);
    let matched = store
        .record_page(&agent(), page(packet, 1, cover, None))
        .await
        .unwrap();
    let want = PacketResolution::Matched {
        document_id: early,
        doc_no: "P-1".into(),
    };
    assert_eq!(matched, want);
    // Re-offers and re-seals after a crash report the same fate, store nothing.
    assert_eq!(store.record_page(&agent(), first).await.unwrap(), want);
    let resealed = store
        .seal_packet(
            &agent(),
            sealing(packet, cover.map(str::to_owned), 2, false, None),
        )
        .await;
    assert_eq!(resealed.unwrap(), want);
    assert_eq!(store.images(early).await.unwrap().len(), 2);
    assert_eq!(
        store.document(early).await.unwrap().unwrap().status,
        DocStatus::Matched
    );
    let miscount = store
        .seal_packet(
            &agent(),
            sealing(packet, cover.map(str::to_owned), 3, false, None),
        )
        .await;
    assert!(
        matches!(miscount, Err(StoreError::Conflict(_))),
        "{miscount:?}"
    );
    let clash = store
        .record_page(&agent(), page(packet, 1, cover, None))
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    assert_eq!(
        store.packet_page_blob(packet, 1).await.unwrap(),
        Some(PageBlob {
            sha256: "01".repeat(32),
            content_type: "image/png".to_owned(),
            purged: None
        })
    );
    assert_eq!(
        store.packets_of_document(early).await.unwrap(),
        vec![(packet, "agent-1".to_owned())]
    );

    // Paper before its document: waits unmatched, attaches on creation.
    let waiting = Uuid::new_v4();
    let late_cover = Some("IMC-TEST-P-2");
    store
        .record_page(&agent(), page(waiting, 0, late_cover, None))
        .await
        .unwrap();
    let unmatched = store
        .seal_packet(
            &agent(),
            sealing(waiting, late_cover.map(str::to_owned), 1, false, None),
        )
        .await
        .unwrap();
    assert!(matches!(unmatched, PacketResolution::Unmatched { .. }));
    let listed = store
        .packets(Some(PacketState::Unmatched), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].pages.len()), (waiting, 1));
    let late = doc(store, "P-2").await;
    let bound = store.document(late).await.unwrap().unwrap();
    assert_eq!((bound.status, bound.image_count), (DocStatus::Matched, 1));
    assert!(
        store
            .packets(Some(PacketState::Unmatched), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.packets(None, 10).await.unwrap().len(), 2);

    // Someone else's packet id is refused.
    let intruder = Agent {
        id: "agent-2".into(),
        ..agent()
    };
    let refused = store
        .record_page(&intruder, page(packet, 5, cover, None))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
}

/// A declared count is kept, read back, and checked against the non-blank
/// pages after the cover once a packet is attached; the status change's
/// webhook event carries the check.
async fn declared_attachments_are_checked_against_the_scanned_pages(store: &dyn Store) {
    match_mode(store).await;
    store
        .put_webhook("ERP", "http://127.0.0.1:9/hook", "secret", &actor())
        .await
        .unwrap();
    let mut declared = new_doc("A-1");
    declared.attachment_count = Some(3);
    let Created::New(created) = store
        .create_document(declared.clone(), &actor())
        .await
        .unwrap()
    else {
        panic!("not new")
    };
    assert_eq!(created.attachment_count, Some(3));
    // Nothing attached yet: no check.
    assert_eq!(store.attachment_check(&created).await.unwrap(), None);
    // The same key again: the same document, count unchanged.
    declared.attachment_count = Some(9);
    let Created::Existing(again) = store.create_document(declared, &actor()).await.unwrap() else {
        panic!("not existing")
    };
    assert_eq!((again.id, again.attachment_count), (created.id, Some(3)));

    // Cover, two sheets, a blank back.
    let cover = created.cover_code.clone();
    let packet_id = Uuid::new_v4();
    for index in 0..4 {
        let mut p = page(packet_id, index, Some(&cover), None);
        p.blank = index == 3;
        store.record_page(&agent(), p).await.unwrap();
    }
    let matched = store
        .seal_packet(&agent(), sealing(packet_id, Some(cover), 4, false, None))
        .await
        .unwrap();
    assert!(
        matches!(matched, PacketResolution::Matched { .. }),
        "{matched:?}"
    );
    let attached = store.document(created.id).await.unwrap().unwrap();
    let check = store.attachment_check(&attached).await.unwrap().unwrap();
    assert_eq!(
        (check.declared, check.scanned, check.verdict),
        (3, 2, imc_shared::api::AttachmentVerdict::Missing)
    );
    let due = store.due_webhooks(&now(), 10).await.unwrap();
    let event: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
    assert_eq!(event["new_status"], "matched");
    assert_eq!(
        event["attachment_check"],
        serde_json::json!({"declared": 3, "scanned": 2, "verdict": "missing"})
    );

    // Without a declared count there is no check, pages or not.
    let plain = doc(store, "A-2").await;
    scanned(store, plain, "no invoice").await;
    let plain = store.document(plain).await.unwrap().unwrap();
    assert_eq!(plain.attachment_count, None);
    assert_eq!(store.attachment_check(&plain).await.unwrap(), None);
}

async fn decisions_fill_the_outbox_and_the_audit_trail(store: &dyn Store) {
    match_mode(store).await;
    store
        .put_webhook("ERP", "http://127.0.0.1:9/hook", "secret", &actor())
        .await
        .unwrap();
    let id = doc(store, "W-1").await;
    scanned(store, id, "no invoice").await;
    let ready = store.decide(id, Decision::SignOff, &actor()).await.unwrap();
    assert_eq!(ready.status, DocStatus::Ready);
    let twice = store.decide(id, Decision::SignOff, &actor()).await;
    assert!(
        matches!(
            twice,
            Err(StoreError::InvalidTransition {
                current: DocStatus::Ready,
                ..
            })
        ),
        "{twice:?}"
    );

    // Two events are queued; only the older one of the document is due.
    let due = store.due_webhooks(&now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let event: serde_json::Value = serde_json::from_str(&due[0].body).unwrap();
    assert_eq!(event["new_status"], "matched");
    assert_eq!(
        (due[0].url.as_str(), due[0].secret.as_str()),
        ("http://127.0.0.1:9/hook", "secret")
    );
    let failed = DeliveryOutcome {
        url: due[0].url.clone(),
        http_status: Some(500),
        error: Some("HTTP 500".into()),
        delivered: false,
        retry_at: Some(now()),
    };
    store.record_delivery(due[0].id, failed).await.unwrap();
    let retry = store.due_webhooks(&now(), 10).await.unwrap();
    assert_eq!((retry[0].id, retry[0].attempts), (due[0].id, 1));
    let delivered = DeliveryOutcome {
        url: due[0].url.clone(),
        http_status: Some(200),
        error: None,
        delivered: true,
        retry_at: None,
    };
    store.record_delivery(due[0].id, delivered).await.unwrap();
    let next = store.due_webhooks(&now(), 10).await.unwrap();
    assert_eq!(next.len(), 1);
    let event: serde_json::Value = serde_json::from_str(&next[0].body).unwrap();
    assert_eq!(event["new_status"], "ready");
    let log = store.webhook_deliveries(id).await.unwrap();
    assert_eq!(
        log.iter()
            .map(|d| (d.attempt, d.http_status, d.delivered))
            .collect::<Vec<_>>(),
        vec![(1, Some(500), false), (2, Some(200), true)]
    );
    let missing = store
        .record_delivery(
            999_999,
            DeliveryOutcome {
                url: String::new(),
                http_status: None,
                error: None,
                delivered: true,
                retry_at: None,
            },
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    let rows = store.document_audit(id).await.unwrap();
    // The receipt names each page the packet brought, with its bytes' hash.
    let receipt = rows
        .iter()
        .find(|r| r.action == crate::domain::receipt::RECEIVE_ACTION)
        .and_then(|r| r.reason.as_deref())
        .and_then(crate::domain::receipt::parse_receipt)
        .expect("a receipt row");
    let images = store.images(id).await.unwrap();
    assert_eq!(
        receipt
            .iter()
            .map(|p| (p.page_no, p.sha256.clone()))
            .collect::<Vec<_>>(),
        images
            .iter()
            .map(|i| (i.page_no, i.sha256.clone()))
            .collect::<Vec<_>>()
    );
    let trail: Vec<_> = rows
        .into_iter()
        .map(|r| (r.action, r.from_status, r.to_status))
        .collect();
    assert_eq!(
        trail,
        vec![
            (
                "document.create".into(),
                None,
                Some(DocStatus::AwaitingImages)
            ),
            (
                "packet.match".into(),
                Some(DocStatus::AwaitingImages),
                Some(DocStatus::Matched)
            ),
            ("images.receive".into(), None, None),
            (
                "sign-off".into(),
                Some(DocStatus::Matched),
                Some(DocStatus::Ready)
            ),
        ]
    );
}

async fn settings_merge_and_validate(store: &dyn Store) {
    let defaults = store.settings().await.unwrap();
    let patch = SettingsPatch {
        retention_days: Some(defaults.retention_days + 1),
        ..SettingsPatch::default()
    };
    let next = store.update_settings(patch, &actor()).await.unwrap();
    assert_eq!(next.retention_days, defaults.retention_days + 1);
    assert_eq!(next.cover_code_patterns, defaults.cover_code_patterns);
    let bad = SettingsPatch {
        cover_code_patterns: Some(vec![]),
        ..SettingsPatch::default()
    };
    let refused = store.update_settings(bad, &actor()).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    let patterns = vec!["^X-[0-9]+$".to_owned()];
    let patch = SettingsPatch {
        cover_code_patterns: Some(patterns.clone()),
        ..SettingsPatch::default()
    };
    store.update_settings(patch, &actor()).await.unwrap();
    assert_eq!(store.cover_patterns().await.unwrap(), patterns);
    let stored = store.settings().await.unwrap();
    assert_eq!(stored.retention_days, defaults.retention_days + 1);
}

/// Pages of one packet arriving at once on many connections (a desk that
/// reconnected to two replicas): stored once, matched once.
async fn racing_pages_resolve_a_packet_once(store: &dyn Store, store_arc: Arc<dyn Store>) {
    match_mode(store).await;
    let id = doc(store, "R-1").await;
    let packet = Uuid::new_v4();
    let cover = Some("IMC-TEST-R-1");
    let pages: Vec<StoredPage> = (0..8).map(|i| page(packet, i, cover, None)).collect();
    let mut tasks = Vec::new();
    for p in pages.iter().cloned().chain(pages.iter().cloned()) {
        let store = Arc::clone(&store_arc);
        tasks.push(tokio::spawn(
            async move { store.record_page(&agent(), p).await },
        ));
    }
    for _ in 0..3 {
        let store = Arc::clone(&store_arc);
        tasks.push(tokio::spawn(async move {
            store
                .seal_packet(
                    &agent(),
                    sealing(packet, cover.map(str::to_owned), 8, false, None),
                )
                .await
        }));
    }
    let mut matched = 0;
    for task in tasks {
        if let PacketResolution::Matched { document_id, .. } = task.await.unwrap().unwrap() {
            assert_eq!(document_id, id);
            matched += 1;
        }
    }
    assert!(matched >= 1);
    let images = store.images(id).await.unwrap();
    assert_eq!(
        images.iter().map(|i| i.page_no).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    let trail = store.document_audit(id).await.unwrap();
    assert_eq!(
        trail.iter().filter(|r| r.action == "packet.match").count(),
        1
    );
}

/// The same document created by several ERP calls at once: one wins, all
/// answer with it.
async fn racing_creates_make_one_document(store: &dyn Store, store_arc: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store_arc);
            tokio::spawn(async move { store.create_document(new_doc("C-1"), &actor()).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut new = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Created::New(d) => {
                new += 1;
                ids.push(d.id)
            }
            Created::Existing(d) => ids.push(d.id),
        }
    }
    assert_eq!(new, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(store.documents_by_doc_no("C-1").await.unwrap().len(), 1);
}

/// A packet completing while its document is created (on another replica):
/// the paper ends up on the document either way, once.
async fn paper_racing_its_document_binds_once(store: &dyn Store, store_arc: Arc<dyn Store>) {
    match_mode(store).await;
    for round in 0..40 {
        let doc_no = format!("L-{round}");
        let cover = format!("IMC-TEST-{doc_no}");
        let packet = Uuid::new_v4();
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (store, p) = (Arc::clone(&store_arc), page(packet, i, Some(&cover), None));
            tasks.push(tokio::spawn(async move {
                store.record_page(&agent(), p).await.map(drop)
            }));
        }
        let (seal_store, seal_cover) = (Arc::clone(&store_arc), cover.clone());
        tasks.push(tokio::spawn(async move {
            seal_store
                .seal_packet(&agent(), sealing(packet, Some(seal_cover), 3, false, None))
                .await
                .map(drop)
        }));
        let creator = Arc::clone(&store_arc);
        tasks.push(tokio::spawn(async move {
            creator
                .create_document(new_doc(&doc_no), &actor())
                .await
                .map(drop)
        }));
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let id = store
            .documents_by_doc_no(&format!("L-{round}"))
            .await
            .unwrap()[0]
            .id;
        let bound = store.document(id).await.unwrap().unwrap();
        assert_eq!(
            (bound.status, bound.image_count),
            (DocStatus::Matched, 3),
            "round {round}"
        );
        assert_eq!(store.packets_of_document(id).await.unwrap().len(), 1);
    }
}

/// Group commit: one call records pages from several agents; each page
/// succeeds or fails on its own and the batch's good pages all stay in.
async fn a_batch_of_pages_is_recorded_page_by_page(store: &dyn Store) {
    match_mode(store).await;
    let document_id = doc(store, "B-1").await;
    let cover = "IMC-TEST-B-1";
    let packet_id = Uuid::new_v4();
    let other = Agent {
        id: "agent-2".into(),
        site: "branch".into(),
        name: "desk 2".into(),
    };
    assert_eq!(
        store
            .seal_packet(
                &agent(),
                sealing(packet_id, Some(cover.into()), 2, false, None)
            )
            .await
            .unwrap(),
        PacketResolution::Open
    );
    assert!(
        !store
            .packet_has_pages(packet_id, &agent().id)
            .await
            .unwrap(),
        "sealed before any page: the uplink refuses such a seal from a desk"
    );
    let first = page(packet_id, 0, Some(cover), None);
    let second = page(packet_id, 1, Some(cover), None);
    let same_index = page(packet_id, 0, Some(cover), None);
    let intruder = page(packet_id, 1, Some(cover), None);
    let elsewhere = page(Uuid::new_v4(), 0, None, None);
    let results = store
        .record_pages(vec![
            (agent(), first.clone()),
            (agent(), same_index.clone()),
            (other.clone(), intruder.clone()),
            (other.clone(), elsewhere.clone()),
            (agent(), second.clone()),
            (agent(), first.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 6);
    assert!(
        store
            .packet_has_pages(packet_id, &agent().id)
            .await
            .unwrap()
    );
    assert!(!store.packet_has_pages(packet_id, &other.id).await.unwrap());
    let matched = PacketResolution::Matched {
        document_id,
        doc_no: "B-1".into(),
    };
    assert_eq!(results[0].as_ref().unwrap(), &PacketResolution::Open);
    assert!(
        matches!(results[1], Err(StoreError::Conflict(_))),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(StoreError::Conflict(_))),
        "{:?}",
        results[2]
    );
    assert_eq!(results[3].as_ref().unwrap(), &PacketResolution::Open);
    assert_eq!(results[4].as_ref().unwrap(), &matched);
    // The same page again (a retry) is answered with the packet's fate.
    assert_eq!(results[5].as_ref().unwrap(), &matched);
    for (stored, by, p) in [
        (true, "agent-1", &first),
        (false, "agent-1", &same_index),
        (false, "agent-2", &intruder),
        (true, "agent-2", &elsewhere),
        (true, "agent-1", &second),
        // Only the agent whose packet holds a page sees it stored.
        (false, "agent-1", &elsewhere),
        (false, "agent-2", &first),
    ] {
        assert_eq!(store.page_stored(p.capture_id, by).await.unwrap(), stored);
    }
    assert_eq!(store.images(document_id).await.unwrap().len(), 2);
    assert!(store.record_pages(Vec::new()).await.unwrap().is_empty());
}

/// Administrators list desks and revoke one for good; a revoked desk's token
/// stops working and it leaves the metrics.
async fn agents_are_listed_and_revoked_once(store: &dyn Store) {
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for (code, id, name) in [("c-1", "agent-a", "desk a"), ("c-2", "agent-b", "desk b")] {
        store
            .add_enrollment_code("branch-3", code, &tomorrow, &actor())
            .await
            .unwrap();
        store
            .enroll_agent(code, id, name, &format!("token-{id}"), Some("2.0"))
            .await
            .unwrap();
    }
    let report = imc_shared::protocol::AgentReport {
        queue_pages: 7,
        queue_bytes: 7_000,
        quarantined: 1,
    };
    store.agent_seen("agent-a", Some(report)).await.unwrap();
    let listed = store.agents().await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["agent-a", "agent-b"]
    );
    let a = &listed[0];
    assert_eq!(
        (
            a.site.as_str(),
            a.version.as_deref(),
            a.queue_pages,
            a.queue_bytes,
            a.quarantined
        ),
        ("branch-3", Some("2.0"), Some(7), Some(7_000), Some(1))
    );
    assert!(a.last_seen_at.is_some() && a.revoked_at.is_none());
    assert!(listed[1].last_seen_at.is_none() && listed[1].queue_pages.is_none());
    assert!(store.agent_active("agent-a").await.unwrap());

    let revoked = store.revoke_agent("agent-a", &actor()).await.unwrap();
    let at = revoked.revoked_at.clone().expect("revoked");
    assert!(!store.agent_active("agent-a").await.unwrap());
    assert!(store.agent_active("agent-b").await.unwrap());
    assert!(
        store
            .agent_by_token_hash("token-agent-a")
            .await
            .unwrap()
            .is_none()
    );
    let again = store.revoke_agent("agent-a", &actor()).await.unwrap();
    assert_eq!(
        again.revoked_at,
        Some(at),
        "revoking twice keeps the first time"
    );
    assert!(matches!(
        store.revoke_agent("agent-z", &actor()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.agent_active("agent-z").await.unwrap());
    let ops = store.ops_snapshot().await.unwrap();
    assert_eq!(
        ops.agents.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["agent-b"]
    );
}

/// The totals `/metrics` shows, counted from what is stored.
async fn the_ops_snapshot_counts_what_is_stored(store: &dyn Store) {
    let empty = store.ops_snapshot().await.unwrap();
    assert_eq!(
        (empty.pages, empty.page_bytes, empty.webhooks_pending),
        (0, 0, 0)
    );
    assert_eq!(empty.webhook_oldest_pending_secs, 0.0);
    match_mode(store).await;
    store
        .put_webhook("ERP", "http://127.0.0.1:9/hook", "secret", &actor())
        .await
        .unwrap();
    let matched = doc(store, "M-1").await;
    scanned(store, matched, "no invoice").await;
    let cancelled = doc(store, "M-2").await;
    store
        .decide(cancelled, Decision::Cancel { reason: None }, &actor())
        .await
        .unwrap();
    doc(store, "M-3").await;
    let waiting = Uuid::new_v4();
    store
        .record_page(&agent(), page(waiting, 0, None, None))
        .await
        .unwrap();
    store
        .record_page(&agent(), page(waiting, 1, None, None))
        .await
        .unwrap();

    let ops = store.ops_snapshot().await.unwrap();
    assert_eq!(ops.pages, 3);
    assert_eq!(ops.page_bytes, 100 + 100 + 101);
    let sorted = |mut v: Vec<(String, u64)>| {
        v.sort();
        v
    };
    let statuses = sorted(ops.documents_by_status);
    assert_eq!(statuses.iter().map(|(_, n)| n).sum::<u64>(), 3);
    assert!(statuses.contains(&("cancelled".into(), 1)), "{statuses:?}");
    assert_eq!(
        sorted(ops.packets_by_state),
        [("matched".to_owned(), 1), ("open".to_owned(), 1)]
    );
    assert!(ops.webhooks_pending >= 1);
    assert!(ops.webhook_oldest_pending_secs >= 0.0);
}

async fn a_packet_sealed_with_no_pages_is_empty_not_matched(store: &dyn Store) {
    let id = doc(store, "E-1").await;
    let before = store.document(id).await.unwrap().map(|d| d.status);
    let cover = store.document(id).await.unwrap().unwrap().cover_code;
    let packet_id = Uuid::new_v4();
    let resolution = store
        .seal_packet(
            &agent(),
            sealing(packet_id, Some(cover.clone()), 0, false, None),
        )
        .await
        .unwrap();
    assert!(
        matches!(&resolution, PacketResolution::Unmatched { reason } if reason.contains("empty packet")),
        "{resolution:?}"
    );
    let empty = store.packets(Some(PacketState::Empty), 10).await.unwrap();
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].id, packet_id);
    let unmatched = store.packets(Some(PacketState::Unmatched), 10).await;
    assert_eq!(unmatched.unwrap().len(), 0);
    assert_eq!(
        store.document(id).await.unwrap().map(|d| d.status),
        before,
        "still waiting"
    );
    // Sealing again is idempotent.
    store
        .seal_packet(&agent(), sealing(packet_id, Some(cover), 0, false, None))
        .await
        .unwrap();
    let empty = store.packets(Some(PacketState::Empty), 10).await.unwrap();
    assert_eq!(empty.len(), 1);
}

/// Staff users are unique by name; sessions end at their expiry.
async fn desk_users_and_sessions(fixture: &Fixture) {
    use crate::web::store::{NewUser, Role};
    let desk = &*fixture.desk;
    let new = || NewUser {
        name: "wang".into(),
        role: Role::SignOff,
        site: None,
        password_hash: "h".into(),
    };
    let user = desk.add_user(new(), &actor()).await.unwrap();
    let again = desk.add_user(new(), &actor()).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(desk.users().await.unwrap().len(), 1);
    assert_eq!(
        desk.user_by_name("wang").await.unwrap().map(|u| u.id),
        Some(user.id)
    );
    desk.create_session("s1", user.id, "c1", "2026-06-01T00:00:00.000Z")
        .await
        .unwrap();
    let live = desk
        .session("s1", "2026-05-31T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(live.unwrap().csrf_token, "c1");
    let late = desk
        .session("s1", "2026-06-02T00:00:00.000Z")
        .await
        .unwrap();
    assert!(late.is_none());
    desk.delete_session("s1").await.unwrap();
    let gone = desk
        .session("s1", "2026-05-31T00:00:00.000Z")
        .await
        .unwrap();
    assert!(gone.is_none());
}

/// Disabling a user ends their sessions and hides them from login; the last
/// enabled administrator stays; a new password ends the old sessions too.
async fn desk_users_disabled_and_new_passwords(fixture: &Fixture) {
    use crate::web::store::{NewUser, Role};
    let desk = &*fixture.desk;
    let add = |name: &str, role: Role| NewUser {
        name: name.into(),
        role,
        site: None,
        password_hash: format!("hash-of-{name}"),
    };
    let li = desk
        .add_user(add("li", Role::SignOff), &actor())
        .await
        .unwrap();
    let root = desk
        .add_user(add("root", Role::Admin), &actor())
        .await
        .unwrap();
    let live = |token: &'static str| async move {
        desk.session(token, "2026-05-31T00:00:00.000Z")
            .await
            .unwrap()
            .is_some()
    };
    desk.create_session("li-1", li.id, "c", "2026-06-01T00:00:00.000Z")
        .await
        .unwrap();
    desk.create_session("root-1", root.id, "c", "2026-06-01T00:00:00.000Z")
        .await
        .unwrap();

    desk.set_user_disabled("li", true, &actor()).await.unwrap();
    assert!(!live("li-1").await, "a disabled user's session must end");
    assert!(live("root-1").await, "other users' sessions stay");
    assert!(desk.user_by_name("li").await.unwrap().is_none());
    assert_eq!(desk.users().await.unwrap().len(), 1);
    let disabled: Vec<String> = desk
        .disabled_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(disabled, ["li"]);
    // Again is a no-op, not an error; a disabled user gets no new password.
    desk.set_user_disabled("li", true, &actor()).await.unwrap();
    let refused = desk.set_user_password("li", "new", &actor()).await;
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    desk.set_user_disabled("li", false, &actor()).await.unwrap();
    assert_eq!(
        desk.user_by_name("li")
            .await
            .unwrap()
            .map(|u| u.password_hash),
        Some("hash-of-li".into())
    );

    let last = desk.set_user_disabled("root", true, &actor()).await;
    assert!(matches!(last, Err(StoreError::Conflict(_))), "{last:?}");
    assert!(live("root-1").await, "a refused disable changes nothing");
    let nobody = desk.set_user_disabled("nobody", true, &actor()).await;
    assert!(matches!(nobody, Err(StoreError::NotFound(_))), "{nobody:?}");

    desk.set_user_password("root", "hash-2", &actor())
        .await
        .unwrap();
    assert!(
        !live("root-1").await,
        "a new password ends the old sessions"
    );
    assert_eq!(
        desk.user_by_name("root")
            .await
            .unwrap()
            .map(|u| u.password_hash),
        Some("hash-2".into())
    );
    // With a second administrator the first may go.
    desk.add_user(add("admin2", Role::Admin), &actor())
        .await
        .unwrap();
    desk.set_user_disabled("root", true, &actor())
        .await
        .unwrap();
}

/// The queue lists matched documents oldest first, filtered and counted;
/// search takes `%` and `_` literally.
async fn desk_queue_and_search(fixture: &Fixture) {
    use crate::web::store::QueueFilter;
    let (store, desk) = (&*fixture.store, &*fixture.desk);
    match_mode(store).await;
    let first = doc(store, "Q_1%").await;
    let second = doc(store, "Q-2").await;
    let waiting = doc(store, "Q-3").await;
    scanned(store, first, "a").await;
    scanned(store, second, "b").await;
    let all = desk.queue(QueueFilter::default(), 0, 10).await.unwrap();
    let ids: Vec<i64> = all.rows.iter().map(|r| r.document.id).collect();
    assert_eq!(ids, [first, second]);
    assert_eq!((all.total, all.filtered), (2, 2));
    assert_eq!(all.by_site, [("hq".to_owned(), 2)]);
    assert_eq!(all.rows[0].site.as_deref(), Some("hq"));
    let elsewhere = QueueFilter {
        site: Some("bj".into()),
        org: None,
        doc_type: None,
        within: None,
    };
    let none = desk.queue(elsewhere.clone(), 0, 10).await.unwrap();
    assert_eq!((none.total, none.filtered), (2, 0));
    let any = QueueFilter::default();
    assert_eq!(
        desk.next_in_queue(any.clone(), first).await.unwrap(),
        Some(second)
    );
    assert_eq!(
        desk.next_in_queue(any.clone(), second).await.unwrap(),
        Some(first)
    );
    assert_eq!(desk.next_in_queue(any, waiting).await.unwrap(), Some(first));
    assert_eq!(desk.next_in_queue(elsewhere, first).await.unwrap(), None);
    let found = desk.search_documents("Q_1%", 10, None).await.unwrap();
    assert_eq!(found.iter().map(|d| d.id).collect::<Vec<_>>(), [first]);
    assert!(
        desk.search_documents("Q%", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(desk.search_documents("Q", 10, None).await.unwrap().len(), 3);
    let packets = store.packets_of_document(first).await.unwrap();
    let packet = desk.packet(packets[0].0).await.unwrap().unwrap();
    assert_eq!((packet.document_id, packet.pages.len()), (Some(first), 1));
    // A clerk's scope holds whatever the filters ask, counts included.
    let at = |site: &str| QueueFilter {
        within: Some(site.into()),
        ..QueueFilter::default()
    };
    let mine = desk.queue(at("hq"), 0, 10).await.unwrap();
    assert_eq!((mine.total, mine.filtered), (2, 2));
    let theirs = desk.queue(at("bj"), 0, 10).await.unwrap();
    assert_eq!((theirs.total, theirs.rows.len()), (0, 0));
    assert!(theirs.by_site.is_empty() && theirs.by_org.is_empty());
    assert_eq!(desk.next_in_queue(at("bj"), first).await.unwrap(), None);
    let visible = desk
        .documents_at_site(vec![first, second, waiting], "hq".into())
        .await
        .unwrap();
    assert_eq!(visible, [first, second]);
    let found = desk.search_documents("Q", 10, Some("bj".into())).await;
    assert!(found.unwrap().is_empty());
    let matched = desk
        .packets_at(PacketState::Matched, Some("hq".into()), 10)
        .await
        .unwrap();
    assert_eq!(matched.len(), 2);
    let elsewhere = desk
        .packets_at(PacketState::Matched, Some("bj".into()), 10)
        .await
        .unwrap();
    assert!(elsewhere.is_empty());
}

/// An agent cannot add pages to, seal, or hear the outcome of another
/// agent's packet, not even by replaying a page id it knows.
async fn an_agent_touches_only_its_own_packets(store: &dyn Store) {
    let packet_id = Uuid::new_v4();
    let first = page(packet_id, 0, None, None);
    store.record_page(&agent(), first.clone()).await.unwrap();
    let intruder = Agent {
        id: "agent-2".into(),
        site: "branch".into(),
        name: "other desk".into(),
    };
    let replay = store.record_page(&intruder, first).await;
    assert!(matches!(replay, Err(StoreError::Conflict(_))), "{replay:?}");
    let added = store
        .record_page(&intruder, page(packet_id, 1, None, None))
        .await;
    assert!(matches!(added, Err(StoreError::Conflict(_))), "{added:?}");
    let sealed = store
        .seal_packet(&intruder, sealing(packet_id, None, 1, false, None))
        .await;
    assert!(matches!(sealed, Err(StoreError::Conflict(_))), "{sealed:?}");
}

/// A committed change is announced; a refused one is not.
async fn committed_changes_are_announced(fixture: &Fixture) {
    use std::time::Duration;
    let store = &*fixture.store;
    match_mode(store).await;
    let toggled = doc(store, "C-1").await;
    let refused = doc(store, "C-2").await;
    scanned(store, toggled, "c").await;
    scanned(store, refused, "d").await;
    let mut changes = (fixture.changes)();
    let mut signed = false;
    let mut toggle = || {
        signed = !signed;
        if signed {
            Decision::SignOff
        } else {
            Decision::Unsign {
                reason: "again".into(),
            }
        }
    };
    // PostgreSQL's listener connects in the background and may miss what
    // commits before its LISTEN: toggle until a change is heard.
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            store.decide(toggled, toggle(), &actor()).await.unwrap();
            let heard = tokio::time::timeout(Duration::from_millis(500), changes.recv()).await;
            if let Ok(change) = heard {
                assert!(change.unwrap().documents.contains(&toggled));
                return;
            }
        }
    })
    .await
    .expect("the listener hears committed changes");
    // Let the announcements of earlier toggles arrive and go.
    while let Ok(change) = tokio::time::timeout(Duration::from_millis(500), changes.recv()).await {
        assert_eq!(change.unwrap().documents, [toggled]);
    }
    // A refused decision writes nothing, so nothing is announced: the next
    // announcement is the committed one that follows it.
    let unsign = Decision::Unsign {
        reason: "never signed".into(),
    };
    let refusal = store.decide(refused, unsign, &actor()).await;
    assert!(refusal.is_err(), "{refusal:?}");
    store.decide(toggled, toggle(), &actor()).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("the committed decision was announced")
        .unwrap();
    assert_eq!(next.documents, [toggled]);
}

// ── Retention of image bytes (crate::retention) ──

/// A real blob folder for the retention cases.
fn blob_folder() -> (tempfile::TempDir, Arc<dyn crate::blobs::BlobStore>) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = crate::blobs::FolderBlobs::open(&dir.path().join("blobs")).unwrap();
    (dir, Arc::new(blobs))
}

/// A page of `packet_id` holding `bytes` (already in the blob store).
fn page_of(packet_id: Uuid, index: u32, bytes: &[u8]) -> StoredPage {
    StoredPage {
        sha256: crate::blobs::sha256_hex(bytes),
        size: bytes.len() as u64,
        ..page(packet_id, index, None, None)
    }
}

/// A coverless packet of these bytes, stored and matched to `document_id`.
async fn scanned_bytes(
    store: &dyn Store,
    blobs: &dyn crate::blobs::BlobStore,
    document_id: i64,
    pages: &[&[u8]],
) -> Uuid {
    let packet_id = Uuid::new_v4();
    for (i, bytes) in pages.iter().enumerate() {
        blobs.put(bytes.to_vec()).await.unwrap();
        store
            .record_page(&agent(), page_of(packet_id, i as u32, bytes))
            .await
            .unwrap();
    }
    store
        .seal_packet(
            &agent(),
            sealing(packet_id, None, pages.len() as u32, false, None),
        )
        .await
        .unwrap();
    store
        .match_packet(packet_id, document_id, None, &actor())
        .await
        .unwrap();
    packet_id
}

async fn retention_purges_final_documents_and_keeps_shared_bytes(store: &dyn Store) {
    let (_dir, blobs) = blob_folder();
    match_mode(store).await;
    let (own, shared, other) = (
        b"bytes only the signed-off document has".as_slice(),
        b"bytes a document in progress shares".as_slice(),
        b"bytes of a rejected document".as_slice(),
    );
    let signed = doc(store, "P-1").await;
    let signed_packet = scanned_bytes(store, &*blobs, signed, &[own, shared]).await;
    let in_progress = doc(store, "P-2").await;
    scanned_bytes(store, &*blobs, in_progress, &[shared]).await;
    let rejected = doc(store, "P-3").await;
    scanned_bytes(store, &*blobs, rejected, &[other]).await;
    let cancelled = doc(store, "P-4").await;
    let before_decisions = now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .decide(signed, Decision::SignOff, &actor())
        .await
        .unwrap();
    let reason = || Decision::Reject {
        reason: "blurred".into(),
    };
    store.decide(rejected, reason(), &actor()).await.unwrap();
    store
        .decide(cancelled, Decision::Cancel { reason: None }, &actor())
        .await
        .unwrap();

    // Final, but not for long enough: nothing.
    let early = store
        .purge_images(&before_decisions, "retention test", 10)
        .await
        .unwrap();
    assert!(early.is_empty(), "{early:?}");

    let cutoff = now();
    let purged = store
        .purge_images(&cutoff, "retention test", 10)
        .await
        .unwrap();
    // The cancelled document has no images: nothing to purge there.
    assert_eq!(
        purged,
        vec![PurgedDocument {
            document_id: signed,
            images: 2,
            pages: 2
        }]
    );
    let images = store.images(signed).await.unwrap();
    assert_eq!(images.len(), 2, "the rows stay");
    for image in &images {
        let purged = image.purged.as_ref().expect("marked purged");
        assert_eq!(purged.reason, "retention test");
        assert!(purged.at >= cutoff, "{} < {cutoff}", purged.at);
        assert_eq!(
            store.image(image.id).await.unwrap().unwrap().purged,
            image.purged
        );
    }
    assert_eq!(
        images[0].sha256,
        crate::blobs::sha256_hex(own),
        "SHA-256 kept"
    );
    let page = store
        .packet_page_blob(signed_packet, 0)
        .await
        .unwrap()
        .unwrap();
    assert!(page.purged.is_some(), "the packet's pages too");
    for kept in [in_progress, rejected] {
        let images = store.images(kept).await.unwrap();
        assert!(
            images.iter().all(|i| i.purged.is_none()),
            "{kept} is in progress"
        );
    }
    let doc_after = store.document(signed).await.unwrap().unwrap();
    assert_eq!(doc_after.status, DocStatus::Ready);
    let audit = store.document_audit(signed).await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.action, PURGE_ACTION);
    assert_eq!(last.actor, "server:retention");
    assert!(last.reason.as_deref().unwrap().contains("retention test"));

    // Purging again finds nothing.
    assert!(
        store
            .purge_images(&now(), "again", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let ops = store.ops_snapshot().await.unwrap();
    assert_eq!(ops.images_purged, 2);
    // Only the signed-off document's own bytes: the shared ones are live.
    assert_eq!(ops.blob_deletions_pending, 1);

    // Within the grace period nothing is deleted.
    let sweep = store
        .sweep_blobs(&before_decisions, 10, Arc::clone(&blobs))
        .await
        .unwrap();
    assert_eq!(sweep, Sweep::default());
    assert!(
        blobs
            .contains(&crate::blobs::sha256_hex(own))
            .await
            .unwrap()
    );

    let sweep = store
        .sweep_blobs(&now(), 10, Arc::clone(&blobs))
        .await
        .unwrap();
    assert_eq!(sweep.deleted, vec![crate::blobs::sha256_hex(own)]);
    assert_eq!(sweep.error, None);
    assert!(
        !blobs
            .contains(&crate::blobs::sha256_hex(own))
            .await
            .unwrap()
    );
    for live in [shared, other] {
        assert!(blobs.get(&crate::blobs::sha256_hex(live)).await.unwrap() == live);
    }
    assert_eq!(
        store.ops_snapshot().await.unwrap().blob_deletions_pending,
        0
    );
}

/// A blob store whose deletions take a while, to widen the window in which
/// an upload of the same bytes races the sweep.
struct SlowDeletes(Arc<dyn crate::blobs::BlobStore>);

/// A seal as an agent sends it, without a cover problem.
fn sealing(
    packet_id: Uuid,
    cover_code: Option<String>,
    page_count: u32,
    empty: bool,
    packet_seq: Option<u64>,
) -> imc_shared::protocol::PacketSeal {
    imc_shared::protocol::PacketSeal {
        packet_id,
        cover_code,
        page_count,
        empty,
        packet_seq,
        cover_problem: None,
        rescan_of: None,
    }
}

#[async_trait::async_trait]
impl crate::blobs::BlobStore for SlowDeletes {
    async fn contains(&self, sha256: &str) -> Result<bool, crate::blobs::BlobError> {
        self.0.contains(sha256).await
    }
    async fn get(&self, sha256: &str) -> Result<Vec<u8>, crate::blobs::BlobError> {
        self.0.get(sha256).await
    }
    async fn put(&self, bytes: Vec<u8>) -> Result<String, crate::blobs::BlobError> {
        self.0.put(bytes).await
    }
    async fn put_files(
        &self,
        files: Vec<(std::path::PathBuf, String)>,
    ) -> Vec<Result<(), crate::blobs::BlobError>> {
        self.0.put_files(files).await
    }
    async fn delete(&self, sha256: &str) -> Result<(), crate::blobs::BlobError> {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        self.0.delete(sha256).await
    }
}

/// A page with the same bytes arrives for a new document (through the group
/// commit, as from a desk) while the old document's bytes are being purged
/// and swept: whichever comes first, the new document keeps its bytes.
async fn a_page_racing_the_purge_of_its_bytes_keeps_them(
    store: &dyn Store,
    store_arc: Arc<dyn Store>,
) {
    let (dir, folder) = blob_folder();
    let blobs: Arc<dyn crate::blobs::BlobStore> = Arc::new(SlowDeletes(folder));
    let committer = crate::commit::Committer::start(Arc::clone(&store_arc), Arc::clone(&blobs));
    match_mode(store).await;
    for (round, head_start_ms) in [0u64, 40, 100, 400].into_iter().enumerate() {
        let bytes = format!("round {round}: the same scanned page twice").into_bytes();
        let sha = crate::blobs::sha256_hex(&bytes);
        let old = doc(store, &format!("OLD-{round}")).await;
        scanned_bytes(store, &*blobs, old, &[&bytes]).await;
        store
            .decide(old, Decision::SignOff, &actor())
            .await
            .unwrap();
        let purged = store.purge_images(&now(), "race", 10).await.unwrap();
        assert_eq!(purged.len(), 1);

        // The sweep starts deleting; the desk's page arrives meanwhile.
        let sweeper = {
            let (store, blobs) = (Arc::clone(&store_arc), Arc::clone(&blobs));
            tokio::spawn(async move { store.sweep_blobs(&now(), 10, blobs).await.unwrap() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(head_start_ms)).await;
        let partial = dir.path().join(format!("upload-{round}.part"));
        std::fs::write(&partial, &bytes).unwrap();
        let packet = Uuid::new_v4();
        let answer = committer
            .commit(agent(), page_of(packet, 0, &bytes), Some(partial))
            .await
            .await
            .unwrap();
        assert!(answer.is_ok(), "round {round}: {answer:?}");
        let sweep = sweeper.await.unwrap();
        assert_eq!(sweep.error, None);

        // Whatever the order, the new page's bytes are there, and stay.
        assert!(
            blobs.get(&sha).await.unwrap() == bytes,
            "round {round}: the new page lost its bytes"
        );
        let later = store
            .sweep_blobs(&now(), 10, Arc::clone(&blobs))
            .await
            .unwrap();
        assert!(later.deleted.is_empty(), "round {round}: {later:?}");
        assert!(blobs.contains(&sha).await.unwrap());
        let new = doc(store, &format!("NEW-{round}")).await;
        store
            .seal_packet(&agent(), sealing(packet, None, 1, false, None))
            .await
            .unwrap();
        store
            .match_packet(packet, new, None, &actor())
            .await
            .unwrap();
        let images = store.images(new).await.unwrap();
        assert_eq!(images[0].sha256, sha);
        assert!(images[0].purged.is_none());
    }

    // A page offered with bytes the store held (so not uploaded) whose bytes
    // were swept before its commit fails, to be offered again, never stored
    // naming missing bytes.
    let bytes = b"deleted before the commit".to_vec();
    let old = doc(store, "OLD-X").await;
    scanned_bytes(store, &*blobs, old, &[&bytes]).await;
    store
        .decide(old, Decision::SignOff, &actor())
        .await
        .unwrap();
    store.purge_images(&now(), "race", 10).await.unwrap();
    let swept = store
        .sweep_blobs(&now(), 10, Arc::clone(&blobs))
        .await
        .unwrap();
    assert_eq!(swept.deleted, vec![crate::blobs::sha256_hex(&bytes)]);
    let packet = Uuid::new_v4();
    let answer = committer
        .commit(agent(), page_of(packet, 0, &bytes), None)
        .await
        .await
        .unwrap();
    assert!(
        matches!(answer, Err(crate::commit::CommitFailure::Failed(_))),
        "{answer:?}"
    );
    assert!(store.packet_page_blob(packet, 0).await.unwrap().is_none());
}

/// Paper scanned in one order can reach the server in another (one packet's
/// pages held back by retries): one desk's packets waiting for the same
/// cover code attach in the desk's order, not in the order they arrived.
async fn waiting_packets_attach_in_the_desks_order(store: &dyn Store) {
    match_mode(store).await;
    let cover = "IMC-TEST-S-1";
    // Arrival and ids both put the later scan first: only the sequence can
    // put it second.
    let (scanned_first, scanned_second) = (Uuid::from_u128(u128::MAX), Uuid::from_u128(1));
    for (packet_id, seq, byte) in [(scanned_second, 8, 0xbb), (scanned_first, 7, 0xaa)] {
        let stored = StoredPage {
            sha256: format!("{byte:02x}").repeat(32),
            packet_seq: Some(seq),
            ..page(packet_id, 0, Some(cover), None)
        };
        store.record_page(&agent(), stored).await.unwrap();
        let sealed = store
            .seal_packet(
                &agent(),
                sealing(packet_id, Some(cover.into()), 1, false, Some(seq)),
            )
            .await
            .unwrap();
        assert!(
            matches!(sealed, PacketResolution::Unmatched { .. }),
            "{sealed:?}"
        );
        // Distinct arrival times.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let id = doc(store, "S-1").await;
    let images = store.images(id).await.unwrap();
    let order: Vec<&str> = images.iter().map(|i| &i.sha256[..2]).collect();
    assert_eq!(order, ["aa", "bb"], "images in the desk's scan order");
}

/// Which site's desks delivered a blob: they may claim it by hash (uplink).
async fn bytes_count_as_held_only_by_the_site_that_sent_them(store: &dyn Store) {
    let sent = page(Uuid::new_v4(), 0, None, None);
    store.record_page(&agent(), sent.clone()).await.unwrap();
    assert!(store.site_holds_blob("hq", &sent.sha256).await.unwrap());
    assert!(!store.site_holds_blob("branch", &sent.sha256).await.unwrap());
    let unknown = "ff".repeat(32);
    assert!(!store.site_holds_blob("hq", &unknown).await.unwrap());
}

#[test]
fn late_binding_orders_each_desk_by_its_sequence_and_keeps_arrival_otherwise() {
    let waiting = |id: &str, agent: &str, desk_seq: Option<i64>| WaitingPacket {
        id: id.into(),
        agent_id: agent.into(),
        desk_seq,
    };
    // In arrival order: desk a's packet 3 came before its packet 1, desk b's
    // 9 before its 2; a packet from before desk a was upgraded has none.
    let order = late_binding_order(vec![
        waiting("a3", "a", Some(3)),
        waiting("b9", "b", Some(9)),
        waiting("a-old", "a", None),
        waiting("a1", "a", Some(1)),
        waiting("b2", "b", Some(2)),
    ]);
    assert_eq!(order, ["a1", "b2", "a-old", "a3", "b9"]);
    assert!(late_binding_order(Vec::new()).is_empty());
}

/// The store keeps what `crate::secrets` sealed; a legacy plain secret is
/// sealed in place at start, a wrong key refuses to start, a rotation
/// re-seals everything and old keys still open old values.
async fn webhook_secrets_are_stored_sealed(store: &dyn Store) {
    use crate::secrets::{self, Keyring};
    const PLAIN: &str = "legacy-plain-secret-0123";
    let keys = Keyring::of(&[[7; 32]]);
    // An installation from before sealing: the plain text in the column.
    store
        .put_webhook("ERP", "http://127.0.0.1:9/hook", PLAIN, &actor())
        .await
        .unwrap();
    let sealed_b = keys.seal("other-secret-0123456789").unwrap();
    store
        .put_webhook("B", "http://127.0.0.1:9/b", &sealed_b, &actor())
        .await
        .unwrap();
    assert_eq!(secrets::upgrade(store, &keys).await.unwrap(), 1);
    assert_eq!(secrets::upgrade(store, &keys).await.unwrap(), 0);
    let raw = store.webhook_secrets().await.unwrap();
    assert_eq!(raw.len(), 2);
    for (source, text) in &raw {
        assert!(text.starts_with("v1:"), "{source}: {text}");
        assert!(
            !text.contains(PLAIN) && !text.contains("other-secret"),
            "{text}"
        );
    }
    assert_eq!(raw[0].1, sealed_b, "a sealed value is left alone");
    assert_eq!(keys.open(&raw[1].1).unwrap(), PLAIN);

    // What delivery gets is the sealed text, which opens to the secret.
    match_mode(store).await;
    let id = doc(store, "S-1").await;
    scanned(store, id, "no invoice").await;
    store.decide(id, Decision::SignOff, &actor()).await.unwrap();
    let due = store.due_webhooks(&now(), 10).await.unwrap();
    assert!(!due.is_empty());
    for item in &due {
        assert!(item.secret.starts_with("v1:"), "{}", item.secret);
        assert_eq!(keys.open(&item.secret).unwrap(), PLAIN);
    }

    // Started with another key: refused, naming the cause.
    let wrong = Keyring::of(&[[8; 32]]);
    let refused = secrets::upgrade(store, &wrong).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("cannot be opened"),
        "{refused:#}"
    );

    // Rotation: a new current key, the old one kept for opening.
    let rotated = Keyring::of(&[[8; 32], [7; 32]]);
    assert_eq!(secrets::reseal(store, &rotated).await.unwrap(), 2);
    assert_eq!(secrets::reseal(store, &rotated).await.unwrap(), 0);
    let raw = store.webhook_secrets().await.unwrap();
    assert_eq!(wrong.open(&raw[1].1).unwrap(), PLAIN);
    assert!(keys.open(&raw[1].1).is_err());
}

macro_rules! desk_cases {
    ($backend:ident: $($case:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture = super::super::$backend().await;
                    super::super::$case(&fixture).await;
                    fixture.finish().await;
                }
            )+
        }
    };
}

mod desk {
    desk_cases!(sqlite: desk_users_and_sessions, desk_users_disabled_and_new_passwords,
        desk_queue_and_search, committed_changes_are_announced);
    desk_cases!(postgres: desk_users_and_sessions, desk_users_disabled_and_new_passwords,
        desk_queue_and_search, committed_changes_are_announced);
}

/// A packet whose first page the desk refused as a cover (its QR signature
/// failed) stays unmatched with the desk's reason, even when a document has
/// the code the sheet showed; the cover keys are one row, set once and then
/// only by compare and swap.
async fn a_refused_cover_matches_nothing_and_cover_keys_swap_once(store: &dyn Store) {
    match_mode(store).await;
    let id = doc(store, "SIG-1").await;
    let code = store.document(id).await.unwrap().unwrap().cover_code;
    let packet_id = Uuid::new_v4();
    for i in 0..2 {
        store
            .record_page(&agent(), page(packet_id, i, None, None))
            .await
            .unwrap();
    }
    let why = format!("cover_signature_invalid: the QR of cover {code} does not verify");
    let seal = imc_shared::protocol::PacketSeal {
        cover_problem: Some(why.clone()),
        ..sealing(packet_id, None, 2, false, None)
    };
    let resolution = store.seal_packet(&agent(), seal).await.unwrap();
    assert_eq!(
        resolution,
        PacketResolution::Unmatched {
            reason: why.clone()
        }
    );
    let listed = store
        .packets(Some(PacketState::Unmatched), 10)
        .await
        .unwrap();
    assert_eq!(listed[0].reason.as_deref(), Some(why.as_str()));
    assert_eq!(store.images(id).await.unwrap().len(), 0);

    let key = crate::cover_keys::SETTING;
    assert_eq!(store.setting_text(key).await.unwrap(), None);
    assert!(
        store
            .replace_setting_text(key, None, "[1]".into())
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_setting_text(key, None, "[2]".into())
            .await
            .unwrap(),
        "made once"
    );
    assert!(
        !store
            .replace_setting_text(key, Some("[3]".into()), "[4]".into())
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_setting_text(key, Some("[1]".into()), "[5]".into())
            .await
            .unwrap()
    );
    assert_eq!(
        store.setting_text(key).await.unwrap().as_deref(),
        Some("[5]")
    );
    let settings = store.settings().await.unwrap();
    assert!(
        !format!("{settings:?}").contains("[5]"),
        "never shown in settings"
    );
}

async fn the_archive_takes_documents_by_status_source_and_day(store: &dyn Store) {
    match_mode(store).await;
    let signed = doc(store, "AR-1").await;
    scanned(store, signed, "no invoice").await;
    store
        .decide(signed, Decision::SignOff, &actor())
        .await
        .unwrap();
    let waiting = doc(store, "AR-2").await;
    let mut other = new_doc("AR-3");
    other.source_system = "HR".into();
    let Created::New(other) = store.create_document(other, &actor()).await.unwrap() else {
        panic!("new");
    };
    store
        .decide(other.id, Decision::Cancel { reason: None }, &actor())
        .await
        .unwrap();
    let filter = |status, source: Option<&str>| ArchiveFilter {
        status,
        source_system: source.map(str::to_owned),
        created_from: None,
        created_before: None,
    };
    let ids = |docs: Vec<Document>| docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let ready = filter(DocStatus::Ready, None);
    assert_eq!(
        ids(store.documents_to_archive(&ready, 0, 10).await.unwrap()),
        [signed]
    );
    assert_eq!(
        ids(store
            .documents_to_archive(&ready, signed, 10)
            .await
            .unwrap()),
        [] as [i64; 0]
    );
    let awaiting = filter(DocStatus::AwaitingImages, Some("ERP"));
    assert_eq!(
        ids(store.documents_to_archive(&awaiting, 0, 10).await.unwrap()),
        [waiting]
    );
    let cancelled = filter(DocStatus::Cancelled, Some("ERP"));
    assert!(
        store
            .documents_to_archive(&cancelled, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let today = now()[..10].to_owned();
    let days = |from: &str, before: &str| ArchiveFilter {
        created_from: Some(from.to_owned()),
        created_before: Some(before.to_owned()),
        ..filter(DocStatus::Ready, None)
    };
    assert_eq!(
        ids(store
            .documents_to_archive(&days(&today, "9999-12-31"), 0, 10)
            .await
            .unwrap()),
        [signed]
    );
    assert!(
        store
            .documents_to_archive(&days("2000-01-01", &today), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The excerpt's rows carry their chain hashes, linked to the head.
    let rows = store.document_audit(signed).await.unwrap();
    for row in &rows {
        assert_eq!(row.hash.len(), 64, "{row:?}");
        assert_eq!(row.prev_hash.len(), 64, "{row:?}");
    }
    let (head_id, head_hash) = store.audit_head().await.unwrap().expect("a head");
    assert!(head_id >= rows.last().unwrap().id);
    assert_eq!(head_hash.len(), 64);
}

macro_rules! conformance {
    ($backend:ident: $($case:ident),+ ; racing: $($race:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture = super::$backend().await;
                    super::$case(&*fixture.store).await;
                    fixture.finish().await;
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $race() {
                    let fixture = super::$backend().await;
                    super::$race(&*fixture.store, std::sync::Arc::clone(&fixture.store)).await;
                    fixture.finish().await;
                }
            )+
        }
    };
}

conformance!(sqlite: a_duplicate_invoice_flags_both_live_documents,
    tokens_and_enrollment_codes_are_spent_once, a_document_is_created_once,
    uploaded_images_move_a_basic_document, packets_match_by_cover_and_bind_late,
    decisions_fill_the_outbox_and_the_audit_trail, settings_merge_and_validate,
    a_batch_of_pages_is_recorded_page_by_page, agents_are_listed_and_revoked_once,
    the_ops_snapshot_counts_what_is_stored, a_packet_sealed_with_no_pages_is_empty_not_matched,
    retention_purges_final_documents_and_keeps_shared_bytes, an_agent_touches_only_its_own_packets,
    waiting_packets_attach_in_the_desks_order, bytes_count_as_held_only_by_the_site_that_sent_them,
    declared_attachments_are_checked_against_the_scanned_pages, webhook_secrets_are_stored_sealed,
    a_refused_cover_matches_nothing_and_cover_keys_swap_once,
    the_archive_takes_documents_by_status_source_and_day;
    racing: racing_pages_resolve_a_packet_once, racing_creates_make_one_document,
    paper_racing_its_document_binds_once, a_page_racing_the_purge_of_its_bytes_keeps_them);
conformance!(postgres: a_duplicate_invoice_flags_both_live_documents,
    tokens_and_enrollment_codes_are_spent_once, a_document_is_created_once,
    uploaded_images_move_a_basic_document, packets_match_by_cover_and_bind_late,
    decisions_fill_the_outbox_and_the_audit_trail, settings_merge_and_validate,
    a_batch_of_pages_is_recorded_page_by_page, agents_are_listed_and_revoked_once,
    the_ops_snapshot_counts_what_is_stored, a_packet_sealed_with_no_pages_is_empty_not_matched,
    retention_purges_final_documents_and_keeps_shared_bytes, an_agent_touches_only_its_own_packets,
    waiting_packets_attach_in_the_desks_order, bytes_count_as_held_only_by_the_site_that_sent_them,
    declared_attachments_are_checked_against_the_scanned_pages, webhook_secrets_are_stored_sealed,
    a_refused_cover_matches_nothing_and_cover_keys_swap_once,
    the_archive_takes_documents_by_status_source_and_day;
    racing: racing_pages_resolve_a_packet_once, racing_creates_make_one_document,
    paper_racing_its_document_binds_once, a_page_racing_the_purge_of_its_bytes_keeps_them);

/// Two replicas' delivery tasks polling at once never take the same event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_claim_each_webhook_event_once() {
    let fixture = postgres().await;
    let schema = fixture.schema.clone().unwrap();
    let store = &*fixture.store;
    store
        .put_webhook("ERP", "http://127.0.0.1:9/hook", "secret", &actor())
        .await
        .unwrap();
    for i in 0..12 {
        let id = doc(store, &format!("Q-{i}")).await;
        store
            .decide(id, Decision::Cancel { reason: None }, &actor())
            .await
            .unwrap();
    }
    let replicas = [pg_store(&schema), pg_store(&schema)];
    let claims: Vec<_> = replicas
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.due_webhooks(&now(), 8).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for claim in claims {
        seen.extend(claim.await.unwrap().into_iter().map(|item| item.id));
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        seen.len(),
        "an event was claimed twice: {seen:?}"
    );
    assert_eq!(seen.len(), 12);
    // Claimed events are not due again until their lease lapses.
    assert!(store.due_webhooks(&now(), 20).await.unwrap().is_empty());
    fixture.finish().await;
}

/// Migrations apply once and a second run (another replica) finds nothing to do.
#[tokio::test]
async fn migrations_are_versioned_and_run_once() {
    let fixture = postgres().await;
    let unmigrated = format!("t_{}", Uuid::new_v4().simple());
    admin_sql(&format!("CREATE SCHEMA {unmigrated}")).await;
    let empty = pg_store(&unmigrated).check_schema().await;
    assert!(matches!(empty, Err(StoreError::Conflict(_))), "{empty:?}");
    admin_sql(&format!("DROP SCHEMA {unmigrated} CASCADE")).await;
    let schema = fixture.schema.clone().unwrap();
    let again = pg_store(&schema);
    assert_eq!(again.migrate().await.unwrap(), Vec::<i32>::new());
    again.check_schema().await.unwrap();
    // A binary older than the database refuses it rather than guess.
    admin_sql(&format!(
        "INSERT INTO {schema}.schema_migrations VALUES (99, 'future', '2030-01-01T00:00:00.000Z')"
    ))
    .await;
    assert!(matches!(
        again.check_schema().await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(again.migrate().await, Err(StoreError::Corrupt(_))));
    fixture.finish().await;
}

/// The audit chain on PostgreSQL: appended from many connections, verified
/// whole, and an edit or a lost newest row is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_chain_holds_across_connections_and_shows_tampering() {
    let fixture = postgres().await;
    let schema = fixture.schema.clone().unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = pg_store(&schema);
            tokio::spawn(async move { doc(&store, &format!("A-{i}")).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let store = pg_store(&schema);
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditCheck::Intact { rows: 10 }
    );
    admin_sql(&format!(
        "UPDATE {schema}.audit SET reason = 'x' WHERE id = 4"
    ))
    .await;
    assert!(matches!(
        store.verify_audit().await.unwrap(),
        AuditCheck::Broken { row: 4, .. }
    ));
    admin_sql(&format!(
        "UPDATE {schema}.audit SET reason = NULL WHERE id = 4"
    ))
    .await;
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditCheck::Intact { rows: 10 }
    );
    admin_sql(&format!("DELETE FROM {schema}.audit WHERE id = 10")).await;
    assert!(matches!(
        store.verify_audit().await.unwrap(),
        AuditCheck::Broken { row: 10, .. }
    ));
    fixture.finish().await;
}

/// Shared partial uploads: two replicas appending at once extend the held
/// bytes only from where they end, a partial of other bytes is not handed
/// out, two sweepers at once remove each stale partial once, and a page
/// already stored gets no partial again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_partial_uploads_safely() {
    use crate::partials::{PartialKey, SharedPartials};
    let fixture = postgres().await;
    let schema = fixture.schema.clone().unwrap();
    let (a, b) = (pg_store(&schema), pg_store(&schema));
    let id = Uuid::new_v4();
    let key = PartialKey {
        capture_id: id,
        agent_id: "ag-1",
        sha256: "ab",
        size: 10,
    };
    assert!(a.load(&key).await.unwrap().is_empty());
    // Both try to write bytes 0..4; exactly one part lands.
    let (x, y) = tokio::join!(a.save(&key, 0, b"0123"), b.save(&key, 0, b"0123"));
    assert_eq!((x.unwrap(), y.unwrap()), (4, 4));
    // Not where the held bytes end: nothing changes.
    assert_eq!(b.save(&key, 6, b"67").await.unwrap(), 4);
    assert_eq!(b.save(&key, 4, b"45").await.unwrap(), 6);
    assert_eq!(a.load(&key).await.unwrap(), b"012345");
    let other = PartialKey {
        sha256: "cd",
        ..key.clone()
    };
    assert!(b.load(&other).await.unwrap().is_empty());
    assert!(b.save(&other, 6, b"67").await.is_err());

    let stale = Uuid::new_v4();
    let stale_key = PartialKey {
        capture_id: stale,
        ..key.clone()
    };
    a.save(&stale_key, 0, b"0").await.unwrap();
    admin_sql(&format!(
        "UPDATE {schema}.upload_partials SET touched_at = now() - interval '2 hours' \
         WHERE capture_id = '{stale}'"
    ))
    .await;
    let ttl = std::time::Duration::from_secs(3600);
    let (x, y) = tokio::join!(a.sweep(ttl), b.sweep(ttl));
    assert_eq!(x.unwrap() + y.unwrap(), 1);
    assert!(a.load(&stale_key).await.unwrap().is_empty());
    assert_eq!(a.load(&key).await.unwrap().len(), 6);
    a.forget(id).await.unwrap();
    assert!(b.load(&key).await.unwrap().is_empty());

    // A page already stored gets no partial again (an older session winding
    // down after the replica that took over stored it).
    let stored = page(Uuid::new_v4(), 0, None, None);
    a.record_page(&agent(), stored.clone()).await.unwrap();
    let late = PartialKey {
        capture_id: stored.capture_id,
        ..key.clone()
    };
    assert_eq!(b.save(&late, 0, b"0123").await.unwrap(), 0);
    assert!(a.load(&late).await.unwrap().is_empty());
    fixture.finish().await;
}

/// Replicas as deployed: PostgreSQL and an S3 store (Garage). Two replicas
/// purge and then sweep at once: each document is purged once, each blob is
/// deleted once, from the bucket, and bytes a document in progress shares stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_purge_and_sweep_an_object_store_once() {
    let fixture = postgres().await;
    let schema = fixture.schema.clone().unwrap();
    let store = &*fixture.store;
    let url = format!(
        "{}/test-{}",
        test_services::setting("IMC_TEST_S3_URL").trim_end_matches('/'),
        Uuid::new_v4()
    );
    let blobs: Arc<dyn crate::blobs::BlobStore> =
        Arc::new(crate::blobs::ObjectBlobs::s3(&url, test_services::s3_builder()).unwrap());
    match_mode(store).await;
    let shared = b"shared with a document in progress".to_vec();
    let mut own = Vec::new();
    for i in 0..6 {
        let bytes = format!("page {i} of a signed-off document").into_bytes();
        let id = doc(store, &format!("S-{i}")).await;
        scanned_bytes(store, &*blobs, id, &[&bytes, &shared]).await;
        store.decide(id, Decision::SignOff, &actor()).await.unwrap();
        own.push(bytes);
    }
    let in_progress = doc(store, "S-open").await;
    scanned_bytes(store, &*blobs, in_progress, &[&shared]).await;
    let replicas = [pg_store(&schema), pg_store(&schema)];
    let purges: Vec<_> = replicas
        .iter()
        .map(|r| {
            let r = r.clone();
            tokio::spawn(async move { r.purge_images(&now(), "replicas", 100).await.unwrap() })
        })
        .collect();
    let mut purged = Vec::new();
    for purge in purges {
        purged.extend(purge.await.unwrap().into_iter().map(|p| p.document_id));
    }
    purged.sort();
    let before = purged.len();
    purged.dedup();
    assert_eq!((before, purged.len()), (6, 6), "each document purged once");
    for id in purged {
        let purges = store
            .document_audit(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|row| row.action == PURGE_ACTION)
            .count();
        assert_eq!(purges, 1);
    }
    let sweeps: Vec<_> = replicas
        .iter()
        .map(|r| {
            let (r, blobs) = (r.clone(), Arc::clone(&blobs));
            tokio::spawn(async move { r.sweep_blobs(&now(), 100, blobs).await.unwrap() })
        })
        .collect();
    let mut deleted = Vec::new();
    for sweep in sweeps {
        let sweep = sweep.await.unwrap();
        assert_eq!(sweep.error, None);
        deleted.extend(sweep.deleted);
    }
    deleted.sort();
    let mut expected: Vec<String> = own.iter().map(|b| crate::blobs::sha256_hex(b)).collect();
    expected.sort();
    assert_eq!(deleted, expected, "each blob deleted by one replica");
    for bytes in &own {
        let sha = crate::blobs::sha256_hex(bytes);
        assert!(
            !blobs.contains(&sha).await.unwrap(),
            "{sha} still in the bucket"
        );
    }
    assert!(blobs.get(&crate::blobs::sha256_hex(&shared)).await.unwrap() == shared);
    fixture.finish().await;
}
