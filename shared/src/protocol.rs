//! The agent uplink: what an agent and the server say over one WebSocket.
//!
//! Control messages are JSON text frames ([`AgentMessage`], [`ServerMessage`]);
//! page bytes travel in binary frames ([`Chunk`]). The agent authenticates on
//! the HTTP upgrade (`Authorization: Bearer`), so no frame is read from an
//! unknown caller. For each page the agent sends an [`PageOffer`]; the server
//! answers [`ServerMessage::Stored`] at once when it already has the page, or
//! [`ServerMessage::Resume`] with the offset to send from. When the bytes are
//! complete and their SHA-256 matches, the server fsyncs and commits, and only
//! then answers `Stored`: the agent may forget a page only after that.

pub use crate::cover_keys::CoverKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Bumped on any change an older peer would misread. Version 2 added the
/// window (`Welcome::window_pages`, `window_bytes`) and `ProtocolError::permanent`;
/// version 3 [`ServerMessage::CoverKeys`], sent only to agents that speak it.
pub const PROTOCOL_VERSION: u32 = 3;
/// The oldest agent protocol the server still serves (a version 1 agent sends
/// one page at a time and does not read the new fields).
pub const MIN_PROTOCOL_VERSION: u32 = 1;
/// Path of the agent WebSocket on the server.
pub const UPLINK_PATH: &str = "/api/v1/agent/uplink";
/// Largest page payload carried by one binary frame.
pub const MAX_CHUNK_BYTES: usize = 256 * 1024;
/// Largest page accepted at all.
pub const MAX_PAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest text frame either side accepts.
pub const MAX_TEXT_FRAME_BYTES: usize = 64 * 1024;
/// Pages one connection may have offered and not yet acknowledged.
pub const WINDOW_PAGES: u32 = 32;
/// Bytes of pages one connection may have offered and not yet acknowledged
/// (a single larger page is still sent, alone).
pub const WINDOW_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello(Hello),
    Offer(PageOffer),
    /// The packet is closed: it holds exactly `page_count` pages.
    Seal(PacketSeal),
    /// What the desk looks like, for the server's agent overview.
    Report(AgentReport),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub agent_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageOffer {
    /// Chosen by the agent when the page is queued; never reused.
    pub capture_id: Uuid,
    pub packet_id: Uuid,
    /// Position in the packet, from 0 (the cover, when there is one).
    pub page_index: u32,
    /// The packet's cover code, on every page of the packet.
    #[serde(default)]
    pub cover_code: Option<String>,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    /// Where the page came from on the desk, for people, never for storage keys.
    pub source_name: String,
    #[serde(default)]
    pub barcodes: Vec<BarcodeInfo>,
    #[serde(default)]
    pub blank: bool,
    /// The packet's place in this agent's scan order (see `PacketSeal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarcodeInfo {
    pub format: String,
    pub text: String,
    #[serde(default)]
    pub orientation: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketSeal {
    pub packet_id: Uuid,
    #[serde(default)]
    pub cover_code: Option<String>,
    pub page_count: u32,
    /// The packet holds nothing but its cover sheet (and blank backs): the
    /// next cover came straight after it. Recorded as empty, never matched.
    #[serde(default)]
    pub empty: bool,
    /// The packet's place in this agent's scan order: larger for paper
    /// scanned later, the same on every offer and seal of the packet. The
    /// server attaches one agent's packets waiting for the same cover code
    /// in this order rather than in the order their bytes arrived. Absent
    /// from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_seq: Option<u64>,
    /// Why the packet's first page, which looked like a cover, was not taken
    /// as one (its QR signature failed); starts with
    /// [`crate::cover_qr::SIGNATURE_INVALID`]. The packet stays unmatched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_problem: Option<String>,
    /// A packet without a cover that the clerk chose, on the desk's
    /// console, as the rescan of this rejected document: if it matches
    /// nothing else, its pages replace that document's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescan_of: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    pub queue_pages: u64,
    pub queue_bytes: u64,
    pub quarantined: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome(Welcome),
    /// Send the page's bytes from `offset`.
    Resume {
        capture_id: Uuid,
        offset: u64,
    },
    /// The page is durably stored; the agent may let it go.
    Stored {
        capture_id: Uuid,
    },
    /// The seal is durably recorded.
    Sealed {
        packet_id: Uuid,
    },
    /// What became of a sealed packet, for the clerk at the desk.
    PacketOutcome(PacketOutcome),
    /// Later news about a packet sent earlier (sign-off rejected it, its
    /// document arrived), for the clerk at the desk.
    Notice(DeskNotice),
    /// The request could not be served; `capture_id` names the page when it is about one.
    Error(ProtocolError),
    /// The cover keys changed (a rotation) while the agent was connected:
    /// every key a cover may be signed with, old and new.
    CoverKeys {
        keys: Vec<CoverKey>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskNotice {
    pub packet_id: Uuid,
    /// `rejected` (sign-off sent the paper back) or `matched` (late binding).
    pub kind: String,
    #[serde(default)]
    pub document_id: Option<i64>,
    #[serde(default)]
    pub doc_no: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u32,
    pub agent_id: String,
    pub site: String,
    /// Regular expressions that make a barcode a cover code.
    pub cover_patterns: Vec<String>,
    pub max_chunk_bytes: u64,
    /// Pages the agent may have in flight (offered, not yet `stored`); 0 from
    /// a version 1 server, which means one.
    #[serde(default)]
    pub window_pages: u32,
    /// Bytes the agent may have in flight.
    #[serde(default)]
    pub window_bytes: u64,
    /// The public keys cover QRs are signed with, for checking them offline.
    #[serde(default)]
    pub cover_keys: Vec<CoverKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketOutcome {
    pub packet_id: Uuid,
    pub matched: bool,
    #[serde(default)]
    pub document_id: Option<i64>,
    #[serde(default)]
    pub doc_no: Option<String>,
    pub message: String,
    /// What the clerk should look at although the packet matched (a VAT
    /// invoice already on another live document).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolError {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub capture_id: Option<Uuid>,
    /// Names the packet when the error answers a seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_id: Option<Uuid>,
    /// A fatal error ends the connection; otherwise only the named page failed.
    #[serde(default)]
    pub fatal: bool,
    /// Offering the same page again cannot succeed (it breaks a limit or
    /// contradicts what is stored): the agent sets it aside instead of retrying.
    #[serde(default)]
    pub permanent: bool,
}

/// One binary frame of page bytes: `capture_id(16) offset(8, BE) crc32(4, BE) data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk<'a> {
    pub capture_id: Uuid,
    pub offset: u64,
    pub data: &'a [u8],
}

/// Bytes before a chunk's data: capture id, offset, CRC-32.
pub const CHUNK_HEADER: usize = 16 + 8 + 4;

/// What precedes a chunk's data; the server reads it before the data arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHead {
    pub capture_id: Uuid,
    pub offset: u64,
    pub crc32: u32,
}

impl ChunkHead {
    pub fn parse(head: &[u8; CHUNK_HEADER]) -> ChunkHead {
        let mut id = [0u8; 16];
        id.copy_from_slice(&head[..16]);
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&head[16..24]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&head[24..28]);
        ChunkHead {
            capture_id: Uuid::from_bytes(id),
            offset: u64::from_be_bytes(offset),
            crc32: u32::from_be_bytes(crc),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk frame of {0} bytes is shorter than its header")]
    Truncated(usize),
    #[error("chunk of {0} bytes exceeds the limit of {MAX_CHUNK_BYTES}")]
    TooLarge(usize),
    #[error("chunk checksum mismatch")]
    Checksum,
}

impl<'a> Chunk<'a> {
    pub fn encode(&self) -> Vec<u8> {
        let mut frame = Vec::with_capacity(CHUNK_HEADER + self.data.len());
        frame.extend_from_slice(self.capture_id.as_bytes());
        frame.extend_from_slice(&self.offset.to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(self.data).to_be_bytes());
        frame.extend_from_slice(self.data);
        frame
    }

    pub fn decode(frame: &'a [u8]) -> Result<Chunk<'a>, ChunkError> {
        let Some((head, data)) = frame.split_first_chunk::<CHUNK_HEADER>() else {
            return Err(ChunkError::Truncated(frame.len()));
        };
        if data.len() > MAX_CHUNK_BYTES {
            return Err(ChunkError::TooLarge(data.len()));
        }
        let head = ChunkHead::parse(head);
        if crc32fast::hash(data) != head.crc32 {
            return Err(ChunkError::Checksum);
        }
        Ok(Chunk {
            capture_id: head.capture_id,
            offset: head.offset,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trips_and_rejects_damage() {
        let id = Uuid::new_v4();
        let data = b"page bytes".to_vec();
        let frame = Chunk {
            capture_id: id,
            offset: 4096,
            data: &data,
        }
        .encode();
        let chunk = Chunk::decode(&frame).unwrap();
        assert_eq!(
            (chunk.capture_id, chunk.offset, chunk.data),
            (id, 4096, &data[..])
        );

        let mut damaged = frame.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(Chunk::decode(&damaged), Err(ChunkError::Checksum));
        assert_eq!(Chunk::decode(&frame[..10]), Err(ChunkError::Truncated(10)));
    }

    #[test]
    fn messages_are_tagged_json() {
        let msg = AgentMessage::Seal(PacketSeal {
            packet_id: Uuid::nil(),
            cover_code: None,
            page_count: 3,
            empty: false,
            packet_seq: None,
            cover_problem: None,
            rescan_of: None,
        });
        let json = serde_json::to_string(&msg).unwrap();
        assert!(json.contains("\"type\":\"seal\""), "{json}");
        let back: AgentMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg);
    }
}
