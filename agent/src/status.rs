//! `imc-agent status`: what the desk's queue and link look like, as text.

use crate::config::AgentConfig;
use crate::queue::Queue;
use std::fmt::Write;

pub fn render(config: &AgentConfig) -> anyhow::Result<String> {
    let data_dir = config.data_dir()?;
    let queue = Queue::open(&data_dir)?;
    let mut out = String::new();
    writeln!(out, "agent {} at site {}", config.agent_id, config.site)?;
    writeln!(out, "server {}", config.server_url)?;
    let link = queue
        .meta(crate::uplink::LINK_STATE_KEY)?
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok());
    match link {
        Some(link) => writeln!(
            out,
            "link: {} ({}) since {}",
            link["state"].as_str().unwrap_or("?"),
            link["detail"].as_str().unwrap_or(""),
            link["at"].as_str().unwrap_or("?")
        )?,
        None => writeln!(out, "link: never connected")?,
    }
    let stats = queue.stats()?;
    writeln!(
        out,
        "queue: {} pages, {} bytes waiting",
        stats.pages, stats.bytes
    )?;
    if let Some(progress) = queue
        .meta(crate::uplink::BACKLOG_KEY)?
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
    {
        let eta = progress["eta_secs"]
            .as_u64()
            .map(|secs| format!(", about {} min left", secs.div_ceil(60).max(1)))
            .unwrap_or_default();
        writeln!(
            out,
            "backlog draining: {} of {} pages sent ({} waiting{eta}, as of {})",
            progress["sent"],
            progress["total"],
            progress["waiting"],
            progress["at"].as_str().unwrap_or("?")
        )?;
    }
    let room = config.room();
    let free = crate::room::free_bytes(queue.spool_dir()).map_or_else(
        || "unknown".to_owned(),
        |b| format!("{} MiB", b / (1024 * 1024)),
    );
    writeln!(
        out,
        "spool: {} of {} MiB used; disk: {free} free (keeps {} MiB)",
        (stats.bytes + stats.failed_bytes) / (1024 * 1024),
        room.max_spool_bytes / (1024 * 1024),
        room.min_free_bytes / (1024 * 1024)
    )?;
    if let Some(why) = queue.meta(crate::room::ROOM_KEY)? {
        writeln!(out, "WARNING: {why}")?;
    }
    if let Some(why) = queue.meta(crate::scan_line::BLOCKED_KEY)? {
        writeln!(out, "WAITING: {why}")?;
    }
    writeln!(
        out,
        "watching: {}",
        config
            .watch
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    let keys = crate::cover_rules::keys(&queue, config);
    match keys.is_empty() {
        true => writeln!(
            out,
            "cover keys: none yet (covers are not checked until the desk connects)"
        )?,
        false => writeln!(out, "cover keys: {}", keys.ids().join(", "))?,
    }
    writeln!(out, "recent packets:")?;
    for p in queue.recent_packets(10)? {
        let fate = match (p.matched, &p.outcome) {
            _ if p.seal_failure.is_some() => format!(
                "FAILED: the server refused its seal: {}",
                p.seal_failure.as_deref().unwrap_or_default()
            ),
            (_, Some(message)) => message.clone(),
            _ if p.pages_failed > 0 => format!(
                "held: {} page(s) refused by the server (see failed pages)",
                p.pages_failed
            ),
            _ if !p.sealed => "open (more pages may follow)".to_owned(),
            _ if p.pages_stored < p.pages => "sending".to_owned(),
            _ => "sent, waiting for the server".to_owned(),
        };
        let cover = match (&p.cover_code, &p.cover_problem) {
            (Some(code), _) => code.clone(),
            (None, Some(why)) => format!("REFUSED ({why})"),
            (None, None) => "(none)".to_owned(),
        };
        writeln!(
            out,
            "  {} cover {} pages {}/{} sent{}{}: {}",
            p.created_at,
            cover,
            p.pages_stored,
            p.pages,
            if p.empty {
                " (empty: no pages after the cover)"
            } else {
                ""
            },
            count_check(&p),
            fate
        )?;
    }
    if stats.failed_packets > 0 {
        writeln!(
            out,
            "failed packets: {} (seal refused by the server, see recent packets)",
            stats.failed_packets
        )?;
    }
    writeln!(out, "failed pages: {}", stats.failed)?;
    for f in queue.failed_pages(20)? {
        writeln!(
            out,
            "  {} {} (kept at {}): {}",
            f.at, f.source_name, f.spool_path, f.reason
        )?;
    }
    let quarantined = queue.quarantined(20)?;
    writeln!(out, "quarantined files: {}", stats.quarantined)?;
    for q in quarantined {
        writeln!(out, "  {} {}: {}", q.at, q.path, q.reason)?;
    }
    Ok(out)
}

/// The declared attachment count against the pages scanned, for one packet.
fn count_check(p: &crate::queue::PacketSummary) -> String {
    match (p.declared, &p.count_note) {
        (_, Some(why)) => format!(" (count on the cover not read: {why})"),
        (Some(declared), None) if p.scanned < declared && p.sealed => format!(
            " (SHORT: {declared} declared, {} scanned, {} missing)",
            p.scanned,
            declared - p.scanned
        ),
        (Some(declared), None) if p.scanned > declared => format!(
            " (OVER: {declared} declared, {} scanned, {} extra)",
            p.scanned,
            p.scanned - declared
        ),
        (Some(declared), None) => format!(" ({} of {declared} declared)", p.scanned),
        (None, None) => String::new(),
    }
}
