//! What the console shows, read from the queue in one go: the desk's
//! health, the packet being scanned, recent packets and their fate, and
//! quarantined files. The page renders this JSON as it arrives.

use crate::config::AgentConfig;
use crate::queue::{CachedDocument, PacketSummary, Queue, QueueResult};
use serde::Serialize;
use std::collections::HashMap;

/// Packets the console lists, newest first.
pub const RECENT_PACKETS: u32 = 500;
const QUARANTINED: u32 = 50;
const DISK_STEP: u64 = 64 * 1024 * 1024;

#[derive(Debug, Serialize, PartialEq)]
pub struct ConsoleView {
    pub agent_id: String,
    pub site: String,
    pub server_url: String,
    pub link: Link,
    pub queue: QueueHealth,
    pub watching: Vec<Watched>,
    /// The newest packet still open (pages may follow), if any.
    pub now_scanning: Option<PacketView>,
    pub packets: Vec<PacketView>,
    pub quarantined: Vec<QuarantinedView>,
    /// Documents awaiting paper or a rescan, as last fetched from the server.
    pub pending: Vec<CachedDocument>,
    pub pending_fetched_at: Option<String>,
    /// The rejected document the next packet without a cover goes to.
    pub rescan_next: Option<ChosenRescan>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ChosenRescan {
    pub id: i64,
    pub doc_no: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Link {
    /// `connected`, `disconnected`, `refused` or `never`.
    pub state: String,
    pub detail: String,
    /// When the link entered this state (RFC 3339).
    pub since: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct QueueHealth {
    pub pages_waiting: u64,
    pub bytes_waiting: u64,
    pub spool_used_bytes: u64,
    pub spool_max_bytes: u64,
    pub disk_free_bytes: Option<u64>,
    pub disk_keep_bytes: u64,
    /// Why new scans wait in the inbox (spool or disk full), if they do.
    pub room_warning: Option<String>,
    /// Why the scan line is held (a file failed and is retried), if it is.
    pub scan_line_waiting: Option<String>,
    pub failed_pages: u64,
    /// A long backlog draining: about how long until it is sent, at the pace so far.
    pub backlog_eta_secs: Option<u64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Watched {
    pub dir: String,
    pub last_file_at: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct PacketView {
    pub id: String,
    pub created_at: String,
    pub cover_code: Option<String>,
    /// Why the first page was refused as a cover.
    pub cover_problem: Option<String>,
    /// The document its cover names: from the server's answer, else the
    /// desk's cached copy.
    pub document: Option<DocumentName>,
    pub pages: u32,
    pub pages_sent: u32,
    /// Pages after the cover that are not blank.
    pub scanned: u32,
    pub blanks: u32,
    pub declared: Option<u32>,
    pub count_note: Option<String>,
    /// `short`, `over` or `complete` against the declared count.
    pub count: Option<&'static str>,
    /// One of: `open`, `sending`, `sent`, `matched`, `waiting` (its
    /// document is not known yet), `no_cover`, `empty`, `rejected`,
    /// `failed`, `held`.
    pub state: &'static str,
    /// The server's words about it, or why it failed.
    pub message: Option<String>,
    /// The rejected document the clerk chose it for (no cover of its own).
    pub rescan_of: Option<String>,
    /// What to look at although it matched (a duplicate invoice).
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct DocumentName {
    pub id: Option<i64>,
    pub doc_no: String,
    pub title: Option<String>,
    pub submitter: Option<String>,
    /// Exact decimal text.
    pub amount: Option<String>,
    pub attachment_count: Option<u32>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct QuarantinedView {
    pub id: i64,
    pub path: String,
    pub reason: String,
    pub at: String,
}

pub fn read(config: &AgentConfig, queue: &Queue) -> QueueResult<ConsoleView> {
    let summaries = queue.recent_packets(RECENT_PACKETS)?;
    let codes: Vec<&str> = summaries
        .iter()
        .filter_map(|p| p.cover_code.as_deref())
        .collect();
    let cached: HashMap<String, CachedDocument> = queue
        .desk_documents_by_cover(&codes)?
        .into_iter()
        .map(|d| (d.cover_code.clone(), d))
        .collect();
    let packets: Vec<PacketView> = summaries
        .iter()
        .map(|p| packet_view(p, p.cover_code.as_ref().and_then(|c| cached.get(c))))
        .collect();
    let now_scanning = summaries.iter().position(|p| !p.sealed).map(|i| {
        packet_view(
            &summaries[i],
            summaries[i].cover_code.as_ref().and_then(|c| cached.get(c)),
        )
    });
    let stats = queue.stats()?;
    let room = config.room();
    let arrivals: HashMap<String, String> = queue.last_arrivals()?.into_iter().collect();
    Ok(ConsoleView {
        agent_id: config.agent_id.clone(),
        site: config.site.clone(),
        server_url: config.server_url.clone(),
        link: link(queue)?,
        queue: QueueHealth {
            pages_waiting: stats.pages,
            bytes_waiting: stats.bytes,
            spool_used_bytes: stats.bytes + stats.failed_bytes,
            spool_max_bytes: room.max_spool_bytes,
            // To 64 MiB: other programs' writes must not make an idle page redraw.
            disk_free_bytes: crate::room::free_bytes(queue.spool_dir())
                .map(|b| b / DISK_STEP * DISK_STEP),
            disk_keep_bytes: room.min_free_bytes,
            room_warning: queue.meta(crate::room::ROOM_KEY)?,
            scan_line_waiting: queue.meta(crate::scan_line::BLOCKED_KEY)?,
            failed_pages: stats.failed,
            backlog_eta_secs: queue
                .meta(crate::uplink::BACKLOG_KEY)?
                .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
                .and_then(|progress| progress["eta_secs"].as_u64()),
        },
        watching: config
            .watch
            .iter()
            .map(|dir| {
                let dir = dir.display().to_string();
                Watched {
                    last_file_at: arrivals.get(&dir).cloned(),
                    dir,
                }
            })
            .collect(),
        now_scanning,
        packets,
        quarantined: queue
            .quarantined(QUARANTINED)?
            .into_iter()
            .map(|q| QuarantinedView {
                id: q.id,
                path: q.path,
                reason: q.reason,
                at: q.at,
            })
            .collect(),
        pending: queue.desk_documents()?,
        pending_fetched_at: queue.meta(crate::queue::DESK_DOCUMENTS_FETCHED)?,
        rescan_next: queue
            .chosen_rescan()?
            .map(|(id, doc_no)| ChosenRescan { id, doc_no }),
    })
}

fn link(queue: &Queue) -> QueueResult<Link> {
    let stored = queue
        .meta(crate::uplink::LINK_STATE_KEY)?
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok());
    Ok(match stored {
        Some(link) => Link {
            state: link["state"].as_str().unwrap_or("disconnected").to_owned(),
            detail: link["detail"].as_str().unwrap_or_default().to_owned(),
            since: link["at"].as_str().map(str::to_owned),
        },
        None => Link {
            state: "never".to_owned(),
            detail: String::new(),
            since: None,
        },
    })
}

/// The packet as the clerk should read it: one state, the first that applies.
fn packet_view(p: &PacketSummary, cached: Option<&CachedDocument>) -> PacketView {
    let state = match p.fate.as_deref() {
        _ if p.seal_failure.is_some() => "failed",
        _ if p.pages_failed > 0 => "held",
        Some("rejected") => "rejected",
        Some("matched") => "matched",
        _ if !p.sealed => "open",
        _ if p.empty => "empty",
        Some(_) if p.cover_code.is_none() => "no_cover",
        Some(_) => "waiting",
        // Before any fate: an older agent recorded only the match flag.
        None if p.matched == Some(true) => "matched",
        None if p.matched == Some(false) && p.cover_code.is_none() => "no_cover",
        None if p.matched == Some(false) => "waiting",
        None if p.pages_stored < p.pages => "sending",
        None => "sent",
    };
    let message = p
        .seal_failure
        .clone()
        .or_else(|| p.outcome.clone())
        .or_else(|| p.cover_problem.clone());
    let doc_no = p.doc_no.as_ref().or(p.rescan_doc_no.as_ref());
    let document = match (doc_no, cached) {
        (_, Some(doc)) => Some(DocumentName {
            id: p.document_id.or(Some(doc.id)),
            doc_no: doc_no.cloned().unwrap_or_else(|| doc.doc_no.clone()),
            title: doc.title.clone(),
            submitter: doc.submitter.clone(),
            amount: doc.amount.clone(),
            attachment_count: doc.attachment_count,
        }),
        (Some(doc_no), None) => Some(DocumentName {
            id: p.document_id,
            doc_no: doc_no.clone(),
            title: None,
            submitter: None,
            amount: None,
            attachment_count: None,
        }),
        (None, None) => None,
    };
    let declared = p.declared.or(cached.and_then(|d| d.attachment_count));
    let count = match declared {
        Some(d) if p.scanned > d => Some("over"),
        Some(d) if p.scanned < d && p.sealed => Some("short"),
        Some(d) if p.scanned == d => Some("complete"),
        _ => None,
    };
    PacketView {
        id: p.id.clone(),
        created_at: p.created_at.clone(),
        cover_code: p.cover_code.clone(),
        cover_problem: p.cover_problem.clone(),
        document,
        pages: p.pages,
        pages_sent: p.pages_stored,
        scanned: p.scanned,
        blanks: p.blanks,
        declared,
        count_note: p.count_note.clone(),
        count,
        state,
        message,
        rescan_of: p.rescan_doc_no.clone(),
        warnings: p
            .warnings
            .as_deref()
            .map(|w| w.lines().map(str::to_owned).collect())
            .unwrap_or_default(),
    }
}
