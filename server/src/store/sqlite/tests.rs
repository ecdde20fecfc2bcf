//! Store-level checks of what the HTTP tests cannot easily reach: the
//! duplicate-invoice guard needs page barcodes, which only agents send.

use super::*;
use imc_shared::protocol::BarcodeInfo;

fn agent() -> Agent {
    Agent {
        id: "agent-1".into(),
        site: "hq".into(),
        name: "desk".into(),
    }
}

async fn doc(store: &SqliteStore, doc_no: &str) -> StoreResult<i64> {
    let created = store
        .create_document(
            NewDocument {
                source_system: "ERP".into(),
                doc_no: doc_no.into(),
                doc_type: "expense".into(),
                org: "HQ".into(),
                cover_code: format!("IMC-TEST-{doc_no}"),
                title: None,
                amount: None,
                submitter: None,
                metadata: None,
            },
            &Actor("test".into()),
        )
        .await?;
    Ok(match created {
        Created::New(d) | Created::Existing(d) => d.id,
    })
}

/// A coverless one-page packet whose page carries `qr`, matched to `document_id`.
async fn scanned(store: &SqliteStore, document_id: i64, qr: &str) -> StoreResult<()> {
    let packet_id = Uuid::new_v4();
    let page = StoredPage {
        capture_id: Uuid::new_v4(),
        packet_id,
        page_index: 0,
        cover_code: None,
        sha256: "00".repeat(32),
        size: 1,
        content_type: "image/png".into(),
        source_name: "scan.png".into(),
        barcodes: vec![BarcodeInfo {
            format: "qr_code".into(),
            text: qr.into(),
            orientation: 0,
        }],
        blank: false,
    };
    store.record_page(&agent(), page).await?;
    store
        .seal_packet(&agent(), packet_id, None, 1, false)
        .await?;
    store
        .match_packet(packet_id, document_id, None, &Actor("test".into()))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_duplicate_invoice_flags_both_live_documents() -> StoreResult<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Task(e.to_string()))?;
    let store = SqliteStore::open(&dir.path().join("imc.sqlite3"))?;
    store
        .put_scheme(
            Scheme {
                name: "all".into(),
                org: None,
                doc_type: None,
                mode: ImageMode::Match,
                rules: None,
            },
            &Actor("test".into()),
        )
        .await?;
    let (a, b, c) = (
        doc(&store, "A").await?,
        doc(&store, "B").await?,
        doc(&store, "C").await?,
    );
    let qr = "01,10,044031900111,12345678,100.00,20240105,12345678901234567890,ABCD,";
    scanned(&store, a, qr).await?;
    scanned(&store, c, "01,10,044031900111,87654321,9.00,20240106,,").await?;
    assert_eq!(store.document_conflicts(a).await?, vec![]);

    scanned(&store, b, qr).await?;
    let conflict = |other| InvoiceConflict {
        invoice_code: "044031900111".into(),
        invoice_number: "12345678".into(),
        other_document_id: other,
    };
    assert_eq!(store.document_conflicts(a).await?, vec![conflict(b)]);
    assert_eq!(store.document_conflicts(b).await?, vec![conflict(a)]);
    assert_eq!(store.document_conflicts(c).await?, vec![]);

    // A rescan of B without the invoice clears the flag on both.
    store
        .decide(
            b,
            Decision::Reject {
                reason: "dup".into(),
            },
            &Actor("test".into()),
        )
        .await?;
    scanned(&store, b, "not an invoice").await?;
    assert_eq!(store.document_conflicts(a).await?, vec![]);
    scanned(&store, b, qr).await?;
    assert_eq!(store.document_conflicts(a).await?, vec![conflict(b)]);

    // A cancelled document no longer counts.
    store
        .decide(b, Decision::Cancel { reason: None }, &Actor("test".into()))
        .await?;
    assert_eq!(store.document_conflicts(a).await?, vec![]);
    assert_eq!(store.document_conflicts(b).await?, vec![]);
    Ok(())
}

#[tokio::test]
async fn a_packet_sealed_with_no_pages_is_empty_not_matched() -> StoreResult<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Task(e.to_string()))?;
    let store = SqliteStore::open(&dir.path().join("imc.sqlite3"))?;
    let id = doc(&store, "E-1").await?;
    let before = store.document(id).await?.map(|d| d.status);
    let packet_id = Uuid::new_v4();
    let resolution = store
        .seal_packet(&agent(), packet_id, Some("IMC-TEST-E-1".into()), 0, false)
        .await?;
    assert!(
        matches!(&resolution, PacketResolution::Unmatched { reason } if reason.contains("empty packet")),
        "{resolution:?}"
    );
    let empty = store.packets(Some(PacketState::Empty), 10).await?;
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].id, packet_id);
    assert_eq!(
        store.packets(Some(PacketState::Unmatched), 10).await?.len(),
        0
    );
    assert_eq!(
        store.document(id).await?.map(|d| d.status),
        before,
        "still waiting"
    );
    // Sealing again is idempotent.
    store
        .seal_packet(&agent(), packet_id, Some("IMC-TEST-E-1".into()), 0, false)
        .await?;
    assert_eq!(store.packets(Some(PacketState::Empty), 10).await?.len(), 1);
    Ok(())
}

/// An agent cannot add pages to, seal, or hear the outcome of another
/// agent's packet, not even by replaying a page id it knows.
#[tokio::test]
async fn an_agent_touches_only_its_own_packets() -> StoreResult<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Task(e.to_string()))?;
    let store = SqliteStore::open(&dir.path().join("imc.sqlite3"))?;
    let packet_id = Uuid::new_v4();
    let page = StoredPage {
        capture_id: Uuid::new_v4(),
        packet_id,
        page_index: 0,
        cover_code: None,
        sha256: "00".repeat(32),
        size: 1,
        content_type: "image/png".into(),
        source_name: "scan.png".into(),
        barcodes: Vec::new(),
        blank: false,
    };
    store.record_page(&agent(), page.clone()).await?;
    let intruder = Agent {
        id: "agent-2".into(),
        site: "branch".into(),
        name: "other desk".into(),
    };
    let replay = store.record_page(&intruder, page.clone()).await;
    assert!(matches!(replay, Err(StoreError::Conflict(_))), "{replay:?}");
    let mut next = page;
    next.capture_id = Uuid::new_v4();
    next.page_index = 1;
    let added = store.record_page(&intruder, next).await;
    assert!(matches!(added, Err(StoreError::Conflict(_))), "{added:?}");
    let sealed = store
        .seal_packet(&intruder, packet_id, None, 1, false)
        .await;
    assert!(matches!(sealed, Err(StoreError::Conflict(_))), "{sealed:?}");
    Ok(())
}
