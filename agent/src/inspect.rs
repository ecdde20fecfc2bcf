//! `imc-agent inspect FILE...`: what the agent would make of files, as JSON
//! lines, uploading nothing.

use crate::ingest;
use imc_shared::CoverPatterns;
use imc_shared::cover_keys::CoverKeys;
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// Prints one line per page and one per packet in the split; returns how many files failed.
pub fn inspect(
    files: &[impl AsRef<Path>],
    patterns: &CoverPatterns,
    keys: &CoverKeys,
    out: &mut impl Write,
) -> std::io::Result<usize> {
    let mut failed = 0;
    // Packets run across files, in the order given, as they would in an inbox.
    // Per packet: cover, pages, and whether any page after the cover has content.
    let mut packets: Vec<(Option<String>, Vec<String>, bool)> = Vec::new();
    for file in files {
        let file = file.as_ref();
        let name = file.display().to_string();
        let started = std::time::Instant::now();
        let analyzed = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                ingest::analyze(bytes, patterns, keys, true).map_err(|e| e.to_string())
            });
        let analyzed = match analyzed {
            Ok(a) => a,
            Err(error) => {
                failed += 1;
                writeln!(
                    out,
                    "{}",
                    json!({"type": "error", "file": name, "error": error})
                )?;
                continue;
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0 / analyzed.len().max(1) as f64;
        for a in analyzed {
            let r = &a.report;
            let page_ref = format!("{name}#{}", r.index + 1);
            match &r.cover_code {
                Some(code) => packets.push((Some(code.clone()), vec![page_ref], false)),
                // A refused cover starts a packet of its own, which matches nothing.
                None if r.cover_problem.is_some() => packets.push((None, vec![page_ref], true)),
                None => match packets.last_mut() {
                    Some((_, pages, content)) => {
                        pages.push(page_ref);
                        *content |= !r.blank;
                    }
                    None => packets.push((None, vec![page_ref], true)),
                },
            }
            let line = json!({
                "type": "page",
                "file": name,
                "page": r.index,
                "width": r.width,
                "height": r.height,
                "content_type": r.content_type,
                "size": r.size,
                "dpi": r.dpi.map(|d| [d.x, d.y]),
                "barcodes": r.barcodes.iter().map(|b| json!({"format": b.format, "text": b.text, "orientation": b.orientation})).collect::<Vec<_>>(),
                "cover_code": r.cover_code,
                "attachment_count": r.declared,
                "attachment_count_problem": r.count_problem,
                "cover_problem": r.cover_problem,
                "blank": r.blank,
                "vat_invoice": r.vat_invoice.as_ref().map(|v| json!({
                    "invoice_type": v.invoice_type,
                    "invoice_code": v.invoice_code,
                    "invoice_number": v.invoice_number,
                    "amount": v.amount,
                    "date": v.date,
                    "check_code": v.check_code,
                })),
                "ms": (ms * 10.0).round() / 10.0,
            });
            writeln!(out, "{line}")?;
        }
    }
    for (i, (cover, pages, content)) in packets.iter().enumerate() {
        let line = json!({
            "type": "packet",
            "packet": i,
            "cover_code": cover,
            "pages": pages,
            // Two covers in a row: the first packet holds only its cover (and
            // its blank back, in a duplex scan), as the queue decides.
            "empty": cover.is_some() && !content,
        });
        writeln!(out, "{line}")?;
    }
    Ok(failed)
}
