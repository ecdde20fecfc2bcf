//! Whether a sealed packet matches its document, and why not: the decision
//! tree and its reasons, computed here from the facts a store read and
//! applied by both backends (`store/*/packets.rs::resolve`).
//!
//! The steps follow what a backend has to read: the packet row first
//! ([`settled`], [`complete`], [`cover_to_look_up`]), then the document its
//! cover names ([`no_document`], [`attach_to`]).

use crate::workflow::{self, Attach, Via};
use imc_shared::{DocStatus, ImageMode};

/// A packet decided before: its answer does not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Matched { document_id: i64 },
    Unmatched { reason: String },
}

/// The packet row's `state`, `document_id` and `reason`, if they settle it.
pub fn settled(state: &str, document_id: Option<i64>, reason: Option<&str>) -> Option<Settled> {
    match (state, document_id) {
        ("matched", Some(document_id)) => Some(Settled::Matched { document_id }),
        ("unmatched" | "empty", _) => Some(Settled::Unmatched {
            reason: reason.unwrap_or_default().to_owned(),
        }),
        _ => None,
    }
}

/// Whether every page the seal declared is stored: `Ok(false)` while pages
/// are missing, an error (a contradiction, never retried) when there are more.
pub fn complete(packet: &str, sealed: u32, stored: u64) -> Result<bool, String> {
    match stored.cmp(&u64::from(sealed)) {
        std::cmp::Ordering::Less => Ok(false),
        std::cmp::Ordering::Equal => Ok(true),
        std::cmp::Ordering::Greater => Err(format!(
            "packet {packet} has {stored} pages but was sealed with {sealed}"
        )),
    }
}

/// A complete packet that attaches to nothing, and the state it is left in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unattached {
    /// `empty` or `unmatched`, as the packet row keeps it.
    pub state: &'static str,
    pub reason: String,
}

impl Unattached {
    fn unmatched(reason: String) -> Unattached {
        Unattached {
            state: "unmatched",
            reason,
        }
    }
}

/// The cover code to look a complete packet's document up by, or why it
/// has none: an empty packet, or pages with no (valid) cover before them.
pub fn cover_to_look_up<'a>(
    empty: bool,
    cover: Option<&'a str>,
    cover_problem: Option<&str>,
) -> Result<&'a str, Unattached> {
    if empty {
        // Nothing to attach: the document keeps waiting for its pages.
        let reason = match cover {
            Some(code) => format!(
                "empty packet: cover {code} had no pages after it (the next cover followed straight away)"
            ),
            None => "empty packet: no pages".to_owned(),
        };
        return Err(Unattached {
            state: "empty",
            reason,
        });
    }
    cover.ok_or_else(|| {
        // What the desk said of the page that looked like a cover (its QR
        // signature failed), or no cover at all.
        Unattached::unmatched(
            cover_problem
                .unwrap_or("no cover sheet before these pages")
                .to_owned(),
        )
    })
}

/// The document a cover code names, as far as matching needs it.
pub struct CoveredDocument<'a> {
    pub doc_no: &'a str,
    pub mode: ImageMode,
    pub status: DocStatus,
}

/// A cover code no document has yet: the packet waits for it (late binding).
pub fn no_document(cover: &str) -> Unattached {
    Unattached::unmatched(format!("cover code {cover} names no document yet"))
}

/// How the packet attaches to the document its cover names, or why not.
pub fn attach_to(doc: CoveredDocument<'_>) -> Result<Attach, Unattached> {
    workflow::on_images(doc.mode, doc.status, Via::Packet(None)).ok_or_else(|| {
        Unattached::unmatched(format!(
            "document {} is {} and takes no scanned pages",
            doc.doc_no, doc.status
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decided_packet_keeps_its_answer() {
        assert_eq!(
            settled("matched", Some(7), None),
            Some(Settled::Matched { document_id: 7 })
        );
        assert_eq!(
            settled("empty", None, Some("empty packet: no pages")),
            Some(Settled::Unmatched {
                reason: "empty packet: no pages".into()
            })
        );
        assert_eq!(settled("open", None, None), None);
        assert_eq!(settled("matched", None, None), None);
    }

    #[test]
    fn a_packet_is_complete_when_every_sealed_page_is_stored() {
        assert_eq!(complete("p", 3, 2), Ok(false));
        assert_eq!(complete("p", 3, 3), Ok(true));
        assert!(
            complete("p", 3, 4)
                .unwrap_err()
                .contains("4 pages but was sealed with 3")
        );
    }

    #[test]
    fn empty_and_coverless_packets_say_why() {
        let empty = cover_to_look_up(true, Some("IMC1"), None).unwrap_err();
        assert_eq!(empty.state, "empty");
        assert!(empty.reason.contains("cover IMC1 had no pages"));
        let coverless = cover_to_look_up(false, None, None).unwrap_err();
        assert_eq!(
            coverless,
            Unattached::unmatched("no cover sheet before these pages".into())
        );
        let forged =
            cover_to_look_up(false, None, Some("cover_signature_invalid: ...")).unwrap_err();
        assert_eq!(forged.reason, "cover_signature_invalid: ...");
        assert_eq!(cover_to_look_up(false, Some("IMC1"), None), Ok("IMC1"));
    }

    #[test]
    fn a_cover_attaches_to_a_waiting_document_only() {
        assert_eq!(
            no_document("IMC1").reason,
            "cover code IMC1 names no document yet"
        );
        let waiting = CoveredDocument {
            doc_no: "A-1",
            mode: ImageMode::Match,
            status: DocStatus::AwaitingImages,
        };
        assert_eq!(attach_to(waiting), Ok(Attach::Append(DocStatus::Matched)));
        let signed = CoveredDocument {
            doc_no: "A-1",
            mode: ImageMode::Match,
            status: DocStatus::Ready,
        };
        assert!(
            attach_to(signed)
                .unwrap_err()
                .reason
                .contains("takes no scanned pages")
        );
    }
}
