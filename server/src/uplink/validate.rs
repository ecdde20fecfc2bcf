//! Checks on what a desk sends before anything is stored: offers, seals,
//! reports, and whether a page's bytes are of the type it was offered as.

use super::*;

pub(super) fn validate_seal(seal: &PacketSeal) -> Result<(), String> {
    if seal.page_count > MAX_PACKET_PAGES {
        return Err(format!(
            "page_count {} is beyond {MAX_PACKET_PAGES}",
            seal.page_count
        ));
    }
    if seal.cover_code.as_ref().is_some_and(|c| c.len() > 128) {
        return Err("cover_code too long".into());
    }
    check_packet_seq(seal.packet_seq)
}

/// The database keeps a desk's counters as signed 64-bit integers.
pub(super) fn check_report(report: &AgentReport) -> Result<(), String> {
    for (name, value) in [
        ("queue_pages", report.queue_pages),
        ("queue_bytes", report.queue_bytes),
        ("quarantined", report.quarantined),
    ] {
        if i64::try_from(value).is_err() {
            return Err(format!("report {name} {value} is beyond {}", i64::MAX));
        }
    }
    Ok(())
}

/// Bytes whose format (from their first bytes) is not the offered content
/// type would be served and decoded as something they are not.
pub(super) fn head_matches_type(bytes: &[u8], content_type: &str) -> Result<(), String> {
    match sniff_content_type(bytes) {
        Some(found) if found == content_type => Ok(()),
        Some(found) => Err(format!(
            "the bytes are {found}, not the offered {content_type}"
        )),
        None => Err(format!(
            "the bytes are not {content_type} (nor any accepted type)"
        )),
    }
}

/// [`head_matches_type`] on a page's partial file: only its first bytes are read.
pub(super) fn bytes_match_type(path: &Path, content_type: &str) -> Result<(), String> {
    // Enough for every signature `sniff_content_type` knows (WebP's is 12 bytes).
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    std::fs::File::open(path)
        .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut head))
        .map_err(|e| format!("could not read the page back ({}): {e}", path.display()))?;
    head_matches_type(&head, content_type)
}

pub(super) const SNIFF_BYTES: usize = 64;

/// The database keeps a desk's packet sequence as a signed 64-bit integer.
pub(super) fn check_packet_seq(packet_seq: Option<u64>) -> Result<(), String> {
    match packet_seq {
        Some(seq) if i64::try_from(seq).is_err() => {
            Err(format!("packet_seq {seq} is beyond {}", i64::MAX))
        }
        _ => Ok(()),
    }
}

pub(super) fn validate_offer(offer: &PageOffer, max_page_bytes: u64) -> Result<(), String> {
    let limit = max_page_bytes.min(MAX_PAGE_BYTES);
    if offer.size == 0 || offer.size > limit {
        return Err(format!(
            "page size {} is outside 1..={limit} bytes",
            offer.size
        ));
    }
    if !is_sha256_hex(&offer.sha256) {
        return Err("sha256 must be 64 lowercase hex digits".into());
    }
    if !SNIFFABLE.contains(&offer.content_type.as_str()) {
        return Err(format!(
            "content type {:?} is not accepted",
            offer.content_type
        ));
    }
    if offer.page_index > MAX_PACKET_PAGES {
        return Err("page_index is implausibly large".into());
    }
    if offer.cover_code.as_ref().is_some_and(|c| c.len() > 128) || offer.source_name.len() > 1024 {
        return Err("cover_code or source_name too long".into());
    }
    if offer.barcodes.len() > 64 || offer.barcodes.iter().any(|b| b.text.len() > 4096) {
        return Err("too many or too long barcodes".into());
    }
    check_packet_seq(offer.packet_seq)
}
