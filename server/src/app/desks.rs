//! What a scan desk may see and ask for, by its site: the agent's console
//! routes (`routes::scan_desk`) and the uplink (a packet the clerk chose to
//! rescan onto a rejected document) both come here.

use crate::domain::{Actor, site_sees};
use crate::state::AppState;
use crate::store::{Agent, Document, StoreResult};
use imc_shared::api::AttachMode;
use imc_shared::status::DocStatus;
use uuid::Uuid;

/// Whether a desk of `site` sent a packet that this document holds.
async fn scanned_at(state: &AppState, doc: &Document, site: &str) -> StoreResult<bool> {
    let senders = state.store.packets_of_document(doc.id).await?;
    if senders.is_empty() {
        return Ok(false);
    }
    let agents = state.store.agents().await?;
    Ok(senders
        .iter()
        .any(|(_, sender)| agents.iter().any(|a| &a.id == sender && a.site == site)))
}

/// Whether the desks of `site` may see `doc` (see [`site_sees`]).
pub async fn visible(state: &AppState, doc: &Document, site: &str) -> StoreResult<bool> {
    Ok(site_sees(doc.status, doc.mode, false) || scanned_at(state, doc, site).await?)
}

/// Attaches a packet without a cover, which the clerk chose on the console
/// as the rescan of `document_id`, in place of that document's pages.
/// `Err` says why not (the packet then stays in the exception queue, and
/// the refusal is in the audit trail for whoever attaches it by hand).
pub async fn attach_rescan(
    state: &AppState,
    agent: &Agent,
    packet_id: Uuid,
    document_id: i64,
) -> anyhow::Result<Result<Document, String>> {
    let actor = Actor(format!("agent:{}", agent.id));
    let chosen = match state.store.document(document_id).await? {
        Some(doc) if doc.status == DocStatus::Rejected => {
            scanned_at(state, &doc, &agent.site).await?
        }
        _ => false,
    };
    let why = if chosen {
        match state
            .store
            .match_packet(packet_id, document_id, Some(AttachMode::Rescan), &actor)
            .await
        {
            Ok(doc) => return Ok(Ok(doc)),
            Err(crate::store::StoreError::Conflict(why)) => why,
            Err(e) => return Err(e.into()),
        }
    } else {
        format!("document {document_id} is not awaiting a rescan at this desk's site")
    };
    let what = format!("packet {packet_id} as the rescan of document {document_id}: {why}");
    state
        .store
        .audit_event(&actor, "packet.rescan_refused", &what)
        .await?;
    Ok(Err(why))
}
