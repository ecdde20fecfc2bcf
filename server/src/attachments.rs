//! The attachment check (附件张数): a document's declared count against the
//! paper scanned for it. Pure: both store backends read the scanned pages and
//! hand them here, so the rule lives in one place.

use imc_shared::api::{AttachmentCheck, AttachmentVerdict};

/// One page a document holds from a scanned packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedPage {
    /// The page's place in its packet.
    pub page_index: u32,
    pub blank: bool,
    /// The packet began with a cover sheet (its page 0).
    pub packet_has_cover: bool,
}

impl ScannedPage {
    /// An attached sheet: not the cover, not a blank (e.g. a duplex back).
    fn counts(&self) -> bool {
        let is_cover = self.packet_has_cover && self.page_index == 0;
        !self.blank && !is_cover
    }
}

/// The check, or `None` when nothing was declared or no scanned packet is
/// attached (`pages` empty: images uploaded through the API are not paper).
/// `pages` are the document's current pages from every packet it holds, so
/// a supplement (补扫) adds to the count and a rescan replaces it.
pub fn check(declared: Option<u32>, pages: &[ScannedPage]) -> Option<AttachmentCheck> {
    let declared = declared?;
    if pages.is_empty() {
        return None;
    }
    let scanned = pages.iter().filter(|p| p.counts()).count();
    // More pages than u32 holds cannot be attached; saturate rather than fail.
    let scanned = u32::try_from(scanned).unwrap_or(u32::MAX);
    let verdict = match scanned.cmp(&declared) {
        std::cmp::Ordering::Equal => AttachmentVerdict::Ok,
        std::cmp::Ordering::Less => AttachmentVerdict::Missing,
        std::cmp::Ordering::Greater => AttachmentVerdict::Extra,
    };
    Some(AttachmentCheck {
        declared,
        scanned,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(has_cover: bool, blanks: &[bool]) -> Vec<ScannedPage> {
        blanks
            .iter()
            .enumerate()
            .map(|(i, &blank)| ScannedPage {
                page_index: i as u32,
                blank,
                packet_has_cover: has_cover,
            })
            .collect()
    }

    fn verdict(declared: u32, pages: &[ScannedPage]) -> (u32, AttachmentVerdict) {
        let c = check(Some(declared), pages).unwrap();
        assert_eq!(c.declared, declared);
        (c.scanned, c.verdict)
    }

    #[test]
    fn the_cover_is_not_an_attachment() {
        let pages = packet(true, &[false, false, false]);
        assert_eq!(verdict(2, &pages), (2, AttachmentVerdict::Ok));
        assert_eq!(verdict(3, &pages), (2, AttachmentVerdict::Missing));
        assert_eq!(verdict(1, &pages), (2, AttachmentVerdict::Extra));
    }

    #[test]
    fn blank_pages_are_not_counted() {
        // Cover, two sheets, a blank back.
        let pages = packet(true, &[false, false, false, true]);
        assert_eq!(verdict(2, &pages), (2, AttachmentVerdict::Ok));
        // A blank cover back and a blank between sheets.
        let pages = packet(true, &[false, true, false, true, false]);
        assert_eq!(verdict(2, &pages), (2, AttachmentVerdict::Ok));
    }

    #[test]
    fn a_coverless_packet_counts_its_first_page() {
        let pages = packet(false, &[false, false]);
        assert_eq!(verdict(2, &pages), (2, AttachmentVerdict::Ok));
    }

    #[test]
    fn pages_of_several_packets_add_up() {
        // A supplement: a second packet with its own cover.
        let mut pages = packet(true, &[false, false]);
        pages.extend(packet(true, &[false, false, true]));
        assert_eq!(verdict(3, &pages), (2, AttachmentVerdict::Missing));
        assert_eq!(verdict(2, &pages), (2, AttachmentVerdict::Ok));
    }

    #[test]
    fn zero_declared_and_only_blanks_is_ok() {
        let pages = packet(true, &[false, true]);
        assert_eq!(verdict(0, &pages), (0, AttachmentVerdict::Ok));
        let pages = packet(true, &[false, false]);
        assert_eq!(verdict(0, &pages), (1, AttachmentVerdict::Extra));
    }

    #[test]
    fn absent_without_a_count_or_a_packet() {
        assert_eq!(check(None, &packet(true, &[false, false])), None);
        assert_eq!(check(Some(3), &[]), None);
    }
}
