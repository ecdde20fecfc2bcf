//! After the run: every page the server acknowledged must be on its
//! document, byte-identical by SHA-256, read back through the API.

use crate::agent::PacketSent;
use crate::api::Api;
use std::collections::HashMap;

#[derive(Debug, Default, serde::Serialize)]
pub struct Verified {
    pub documents: u64,
    /// The run's documents, so a script can look at them afterwards.
    pub document_ids: Vec<i64>,
    pub pages_verified: u64,
    pub pages_lost: u64,
    pub packets_unmatched: u64,
    pub problems: Vec<String>,
}

pub async fn verify(api: &Api, packets: &[PacketSent]) -> anyhow::Result<Verified> {
    let mut verified = Verified::default();
    for packet in packets {
        verified.documents += 1;
        verified.document_ids.push(packet.document_id);
        if packet.matched != Some(true) {
            verified.packets_unmatched += 1;
        }
        let images = api.images(packet.document_id).await?;
        let mut on_document: HashMap<&str, u64> = HashMap::new();
        for image in &images.images {
            *on_document.entry(image.sha256.as_str()).or_default() += 1;
        }
        for sha in &packet.stored {
            match on_document.get_mut(sha.as_str()) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    verified.pages_verified += 1;
                }
                _ => {
                    verified.pages_lost += 1;
                    if verified.problems.len() < 20 {
                        verified.problems.push(format!(
                            "document {} (id {}) lacks acknowledged page {sha}",
                            packet.doc_no, packet.document_id
                        ));
                    }
                }
            }
        }
    }
    Ok(verified)
}
