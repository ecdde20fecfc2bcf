//! The audit trail's hash chain, the same for both stores: what a row
//! holds, how its hash is computed, and the walk that checks a chain.
//!
//! Each row stores the previous row's hash and its own:
//! `hash = sha256(prev_hash || "\n" || canonical)`, where `canonical` is the
//! JSON array `[id, at, actor, document_id, action, from, to, reason]`. The
//! newest row's id and hash are also kept in `settings` (`audit.head`), so
//! deleting rows at the end is detected too, not only edits and gaps. The
//! chain detects tampering by anyone who does not recompute it; it is not a
//! signature.

use crate::domain::Actor;
use imc_shared::DocStatus;
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub struct NewEntry<'a> {
    pub actor: &'a Actor,
    pub document_id: Option<i64>,
    pub action: &'a str,
    pub from: Option<DocStatus>,
    pub to: Option<DocStatus>,
    pub reason: Option<&'a str>,
}

/// A stored row's chained fields, as read back for checking.
pub struct Fields {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub document_id: Option<i64>,
    pub action: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: Option<String>,
}

/// The fields a chain hash covers, borrowed; shared with the PostgreSQL store
/// so both backends chain identically.
pub struct ChainFields<'a> {
    pub id: i64,
    pub at: &'a str,
    pub actor: &'a str,
    pub document_id: Option<i64>,
    pub action: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub reason: Option<&'a str>,
}

pub fn chain_hash(prev: &str, f: &ChainFields<'_>) -> String {
    let canonical = serde_json::json!([
        f.id,
        f.at,
        f.actor,
        f.document_id,
        f.action,
        f.from,
        f.to,
        f.reason
    ]);
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// The hash of a stored row given the hash of the row before it.
pub fn row_hash(prev: &str, f: &Fields) -> String {
    chain_hash(
        prev,
        &ChainFields {
            id: f.id,
            at: &f.at,
            actor: &f.actor,
            document_id: f.document_id,
            action: &f.action,
            from: f.from.as_deref(),
            to: f.to.as_deref(),
            reason: f.reason.as_deref(),
        },
    )
}

/// A row's fields with its stored `prev_hash` and `hash`.
pub type ChainRow = (Fields, Option<String>, Option<String>);

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCheck {
    Intact { rows: u64 },
    Broken { row: i64, reason: String },
}

/// Where a chain that checked out ends: its last id, last hash and length.
pub struct ChainEnd {
    pub last: Option<i64>,
    pub hash: String,
    pub rows: u64,
}

/// Walks rows in id order; the first gap, broken link or edit is the answer.
pub fn walk(rows: impl IntoIterator<Item = ChainRow>) -> Result<ChainEnd, AuditCheck> {
    let mut prev = GENESIS.to_owned();
    let mut last: Option<i64> = None;
    let mut count = 0u64;
    for (f, stored_prev, stored_hash) in rows {
        let id = f.id;
        if let Some(last) = last
            && id != last + 1
        {
            return Err(AuditCheck::Broken {
                row: last + 1,
                reason: format!("row {} is missing (next row is {id})", last + 1),
            });
        }
        if stored_prev.as_deref() != Some(prev.as_str()) {
            return Err(AuditCheck::Broken {
                row: id,
                reason: "its prev_hash does not match the row before it".into(),
            });
        }
        let digest = row_hash(&prev, &f);
        if stored_hash.as_deref() != Some(digest.as_str()) {
            return Err(AuditCheck::Broken {
                row: id,
                reason: "its contents do not match its hash (edited)".into(),
            });
        }
        prev = digest;
        last = Some(id);
        count += 1;
    }
    Ok(ChainEnd {
        last,
        hash: prev,
        rows: count,
    })
}
