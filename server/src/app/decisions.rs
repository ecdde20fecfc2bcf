//! Decisions on a document, whoever takes them (an ERP through the API, or
//! staff on the sign-off desk), and telling the scan desks what became of
//! their paper.

use crate::domain::{Actor, Decision, MAX_TEXT_LEN};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Document;
use imc_shared::api::ReasonBody;
use imc_shared::text::clean_multiline_text;

/// A decision by anyone (an API caller, or staff on the sign-off desk): the
/// store applies the workflow's rules; a rejection is told to the desks.
pub async fn decide(
    state: &AppState,
    actor: &Actor,
    id: i64,
    decision: Decision,
) -> ApiResult<Document> {
    let message = match &decision {
        Decision::Reject { reason } => Some(format!("sign-off rejected the paper: {reason}")),
        _ => None,
    };
    let doc = state.store.decide(id, decision, actor).await?;
    if let Some(message) = message {
        tell_desks(state, doc.id, &doc.doc_no, "rejected", message).await;
    }
    Ok(doc)
}

pub fn reason(body: ReasonBody) -> ApiResult<String> {
    let reason = clean_multiline_text(&body.reason).trim().to_owned();
    if reason.is_empty() {
        return Err(ApiError::field("reason", "a reason is required"));
    }
    if reason.chars().count() > MAX_TEXT_LEN {
        return Err(ApiError::field(
            "reason",
            format!("reason is longer than {MAX_TEXT_LEN} characters"),
        ));
    }
    Ok(reason)
}

/// Tells every desk that sent paper for the document what became of it.
pub async fn tell_desks(
    state: &AppState,
    document_id: i64,
    doc_no: &str,
    kind: &str,
    message: String,
) {
    let packets = match state.store.packets_of_document(document_id).await {
        Ok(packets) => packets,
        Err(e) => {
            tracing::warn!(document = document_id, error = %e, "could not look up the desks to tell");
            return;
        }
    };
    for (packet_id, agent_id) in packets {
        state.desks.notify(
            &agent_id,
            imc_shared::protocol::DeskNotice {
                packet_id,
                kind: kind.to_owned(),
                document_id: Some(document_id),
                doc_no: Some(doc_no.to_owned()),
                message: message.clone(),
            },
        );
    }
}
