//! The messages the server answers a desk with: errors, refusals, the
//! outcome of a commit and of a packet.

use super::*;

pub(super) fn error(
    code: &str,
    message: impl Into<String>,
    capture_id: Option<Uuid>,
    fatal: bool,
) -> ServerMessage {
    ServerMessage::Error(ProtocolError {
        code: code.to_owned(),
        message: message.into(),
        capture_id,
        packet_id: None,
        fatal,
        permanent: false,
    })
}

/// A page the server will never take as offered: the agent sets it aside.
pub(super) fn refusal(code: &str, message: impl Into<String>, capture_id: Uuid) -> ServerMessage {
    ServerMessage::Error(ProtocolError {
        code: code.to_owned(),
        message: message.into(),
        capture_id: Some(capture_id),
        packet_id: None,
        fatal: false,
        permanent: true,
    })
}

/// A seal the server could not record: `permanent` when sending it again
/// cannot succeed (it contradicts what is stored or breaks a limit).
pub(super) fn seal_error(
    code: &str,
    message: impl Into<String>,
    packet_id: Uuid,
    permanent: bool,
) -> ServerMessage {
    ServerMessage::Error(ProtocolError {
        code: code.to_owned(),
        message: message.into(),
        capture_id: None,
        packet_id: Some(packet_id),
        fatal: false,
        permanent,
    })
}

pub(super) async fn send(link: &mut AgentLink, msg: &ServerMessage) -> anyhow::Result<()> {
    let json = serde_json::to_string(msg).context("encoding server message")?;
    link.send_text(&json).await.context("sending to agent")
}

/// The answer to a page the group commit is done with.
pub(super) fn committed(
    id: Uuid,
    packet_id: Uuid,
    answer: Result<CommitResult, RecvError>,
) -> Vec<ServerMessage> {
    match answer {
        Ok(Ok(resolution)) => {
            let mut replies = vec![ServerMessage::Stored { capture_id: id }];
            replies.extend(outcome(packet_id, resolution));
            replies
        }
        Ok(Err(CommitFailure::Conflict(msg))) => vec![refusal("conflict", msg, id)],
        Ok(Err(CommitFailure::Failed(msg))) => vec![error("store_failed", msg, Some(id), false)],
        Err(_) => vec![error(
            "store_failed",
            "the commit task ended before the page was stored",
            Some(id),
            false,
        )],
    }
}

pub(super) fn outcome(packet_id: Uuid, resolution: PacketResolution) -> Option<ServerMessage> {
    let outcome = match resolution {
        PacketResolution::Open => return None,
        PacketResolution::Matched {
            document_id,
            doc_no,
        } => PacketOutcome {
            packet_id,
            matched: true,
            document_id: Some(document_id),
            message: format!("matched to document {doc_no}"),
            doc_no: Some(doc_no),
            warnings: Vec::new(),
        },
        PacketResolution::Unmatched { reason } => PacketOutcome {
            packet_id,
            matched: false,
            document_id: None,
            doc_no: None,
            message: reason,
            warnings: Vec::new(),
        },
    };
    Some(ServerMessage::PacketOutcome(outcome))
}
