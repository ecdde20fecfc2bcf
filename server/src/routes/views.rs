//! Store rows turned into the wire types of `imc_shared::api`.

use crate::store::{AuditRow, Delivery, Document, Image, InvoiceConflict, Packet};
use imc_shared::api::{
    AttachmentCheck, AuditEntry, DocumentConflict, DocumentView, ImageView, PacketPageView,
    PacketView, StatusView, WebhookDelivery,
};

pub fn cover_url(id: i64) -> String {
    format!("/api/v1/documents/{id}/cover.png")
}

pub fn image(image: Image) -> ImageView {
    ImageView {
        url: format!("/api/v1/images/{}", image.id),
        id: image.id,
        sha256: image.sha256,
        page_no: image.page_no,
        content_type: image.content_type,
        size: image.size,
        blank: image.blank,
        barcodes: image.barcodes,
        purged: image.purged,
    }
}

pub fn document(
    doc: Document,
    images: Vec<Image>,
    conflicts: Vec<InvoiceConflict>,
    attachment_check: Option<AttachmentCheck>,
) -> DocumentView {
    DocumentView {
        cover_url: cover_url(doc.id),
        id: doc.id,
        source_system: doc.source_system,
        doc_no: doc.doc_no,
        doc_type: doc.doc_type,
        org: doc.org,
        cover_code: doc.cover_code,
        title: doc.title,
        amount: doc.amount,
        submitter: doc.submitter,
        attachment_count: doc.attachment_count,
        attachment_check,
        metadata: doc.metadata,
        mode: doc.mode,
        ready: doc.status.is_ready(),
        status: doc.status,
        reject_reason: doc.reject_reason,
        created_at: doc.created_at,
        updated_at: doc.updated_at,
        images: images.into_iter().map(image).collect(),
        conflicts: conflicts
            .into_iter()
            .map(|c| DocumentConflict {
                kind: "duplicate_invoice".to_owned(),
                invoice_code: c.invoice_code,
                invoice_number: c.invoice_number,
                other_document_id: c.other_document_id,
            })
            .collect(),
    }
}

pub fn audit(row: AuditRow) -> AuditEntry {
    AuditEntry {
        id: row.id,
        at: row.at,
        actor: row.actor,
        action: row.action,
        from_status: row.from_status,
        to_status: row.to_status,
        reason: row.reason,
    }
}

pub fn delivery(d: Delivery) -> WebhookDelivery {
    WebhookDelivery {
        event_id: d.event_id,
        attempt: d.attempt,
        at: d.at,
        url: d.url,
        http_status: d.http_status,
        error: d.error,
        delivered: d.delivered,
    }
}

pub fn status(doc: &Document) -> StatusView {
    StatusView {
        id: doc.id,
        doc_no: doc.doc_no.clone(),
        status: doc.status,
        ready: doc.status.is_ready(),
        image_count: doc.image_count,
        updated_at: doc.updated_at.clone(),
    }
}

pub fn packet(packet: Packet) -> PacketView {
    PacketView {
        id: packet.id.to_string(),
        state: packet.state,
        cover_code: packet.cover_code,
        agent_id: packet.agent_id,
        site: packet.site,
        page_count: packet
            .sealed_page_count
            .unwrap_or(packet.pages.len() as u32),
        document_id: packet.document_id,
        reason: packet.reason,
        created_at: packet.created_at,
        pages: packet
            .pages
            .into_iter()
            .map(|p| PacketPageView {
                page_index: p.page_index,
                sha256: p.sha256,
                size: p.size,
                content_type: p.content_type,
                source_name: p.source_name,
                blank: p.blank,
            })
            .collect(),
    }
}

/// Raw bytes: an image, a PDF page or a cover sheet.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);
