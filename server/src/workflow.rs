//! The document lifecycle (docs/API.md, "Status"), in one place.
//!
//! Every status change goes through these two functions; the store applies
//! their answer inside the transaction that changes the document.

use crate::domain::Decision;
use imc_shared::api::AttachMode;
use imc_shared::{DocStatus, ImageMode};

/// The final states whose image bytes retention may purge: approval has gone
/// on (`ready`) or the business withdrew the document (`cancelled`). Every
/// other status is still in progress (a rejected document waits for a rescan).
pub const FINAL_FOR_RETENTION: [DocStatus; 2] = [DocStatus::Ready, DocStatus::Cancelled];

/// The final states as the stores keep them (status names).
pub fn final_for_retention() -> Vec<String> {
    FINAL_FOR_RETENTION
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect()
}

/// The status a decision leads to, or `None` when it is not allowed now.
pub fn after_decision(
    mode: ImageMode,
    current: DocStatus,
    decision: &Decision,
) -> Option<DocStatus> {
    use DocStatus::*;
    match (decision, current) {
        (Decision::Cancel { .. }, Cancelled) => None,
        (Decision::Cancel { .. }, _) => Some(Cancelled),
        _ if mode != ImageMode::Match => None,
        (Decision::SignOff, Matched) => Some(Ready),
        (Decision::Reject { .. }, Matched) => Some(Rejected),
        (Decision::Unsign { .. }, Ready) => Some(Matched),
        _ => None,
    }
}

/// How a document takes a new set of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Add the pages after the ones it has.
    Append(DocStatus),
    /// A rescan: the new pages replace the current ones (kept, marked replaced).
    Replace(DocStatus),
}

/// Where a set of images comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The capture API (basic mode, or sync mode pushed by another system).
    Upload,
    /// A scanned packet; `mode` is what the matcher asked for, if anything.
    Packet(Option<AttachMode>),
}

/// What attaching images (a scanned packet, or an upload) does to a document.
pub fn on_images(mode: ImageMode, current: DocStatus, via: Via) -> Option<Attach> {
    use DocStatus::*;
    let Via::Packet(asked) = via else {
        return match (mode, current) {
            (ImageMode::Basic | ImageMode::Sync, AwaitingImages | Ready) => {
                Some(Attach::Append(Ready))
            }
            _ => None,
        };
    };
    if mode != ImageMode::Match {
        return None;
    }
    match (current, asked) {
        (AwaitingImages, _) => Some(Attach::Append(Matched)),
        // A supplement: more paper for a document waiting for sign-off or
        // rejected for missing pages; a rescan replaces what was there.
        (Matched | Rejected, Some(AttachMode::Supplement)) => Some(Attach::Append(Matched)),
        (Matched | Rejected, Some(AttachMode::Rescan)) => Some(Attach::Replace(Matched)),
        // Unspecified: a rejected document was rejected for its pages, so new
        // paper replaces them; a matched one gains pages.
        (Matched, None) => Some(Attach::Append(Matched)),
        (Rejected, None) => Some(Attach::Replace(Matched)),
        (Ready | Cancelled, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DocStatus::*;

    #[test]
    fn match_mode_decisions() {
        let m = ImageMode::Match;
        let reject = Decision::Reject {
            reason: "blurred".into(),
        };
        let unsign = Decision::Unsign {
            reason: "wrong".into(),
        };
        let table = [
            (Matched, Decision::SignOff, Some(Ready)),
            (AwaitingImages, Decision::SignOff, None),
            (Ready, Decision::SignOff, None),
            (Matched, reject.clone(), Some(Rejected)),
            (Rejected, reject, None),
            (Ready, unsign.clone(), Some(Matched)),
            (Matched, unsign, None),
            (Ready, Decision::Cancel { reason: None }, Some(Cancelled)),
            (Cancelled, Decision::Cancel { reason: None }, None),
        ];
        for (from, decision, to) in table {
            assert_eq!(
                after_decision(m, from, &decision),
                to,
                "{from} {decision:?}"
            );
        }
    }

    #[test]
    fn basic_mode_has_no_sign_off() {
        assert_eq!(
            after_decision(ImageMode::Basic, Ready, &Decision::SignOff),
            None
        );
        assert_eq!(
            on_images(ImageMode::Basic, AwaitingImages, Via::Upload),
            Some(Attach::Append(Ready))
        );
        for mode in [ImageMode::Basic, ImageMode::Sync] {
            assert_eq!(
                on_images(mode, Ready, Via::Upload),
                Some(Attach::Append(Ready))
            );
            assert_eq!(on_images(mode, Cancelled, Via::Upload), None);
            assert_eq!(on_images(mode, AwaitingImages, Via::Packet(None)), None);
        }
    }

    #[test]
    fn scanned_packets() {
        use AttachMode::*;
        let m = ImageMode::Match;
        let table = [
            (AwaitingImages, None, Some(Attach::Append(Matched))),
            (AwaitingImages, Some(Rescan), Some(Attach::Append(Matched))),
            (Matched, None, Some(Attach::Append(Matched))),
            (Matched, Some(Supplement), Some(Attach::Append(Matched))),
            (Matched, Some(Rescan), Some(Attach::Replace(Matched))),
            (Rejected, None, Some(Attach::Replace(Matched))),
            (Rejected, Some(Rescan), Some(Attach::Replace(Matched))),
            (Rejected, Some(Supplement), Some(Attach::Append(Matched))),
            (Ready, None, None),
            (Ready, Some(Supplement), None),
            (Cancelled, None, None),
            (Cancelled, Some(Rescan), None),
        ];
        for (from, asked, want) in table {
            assert_eq!(
                on_images(m, from, Via::Packet(asked)),
                want,
                "{from} {asked:?}"
            );
        }
        assert_eq!(on_images(m, AwaitingImages, Via::Upload), None);
    }
}
