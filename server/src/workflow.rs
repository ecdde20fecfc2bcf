//! The document lifecycle of DESIGN.md, in one place.
//!
//! Every status change goes through these two functions; the store applies
//! their answer inside the transaction that changes the document.

use crate::store::Decision;
use imc_shared::{DocStatus, ImageMode};

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

/// What attaching images (a scanned packet, or an upload) does to a document.
pub fn on_images(mode: ImageMode, current: DocStatus, scanned: bool) -> Option<Attach> {
    use DocStatus::*;
    match (mode, current) {
        (_, Cancelled) => None,
        (ImageMode::Match, AwaitingImages) if scanned => Some(Attach::Append(Matched)),
        // A supplement: more paper for a document waiting for sign-off.
        (ImageMode::Match, Matched) if scanned => Some(Attach::Append(Matched)),
        // A rescan after a rejection replaces what was rejected.
        (ImageMode::Match, Rejected) if scanned => Some(Attach::Replace(Matched)),
        (ImageMode::Match, _) => None,
        (ImageMode::Basic | ImageMode::Sync, AwaitingImages | Ready) => Some(Attach::Append(Ready)),
        (ImageMode::Basic | ImageMode::Sync, _) => None,
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
            on_images(ImageMode::Basic, AwaitingImages, false),
            Some(Attach::Append(Ready))
        );
    }

    #[test]
    fn scanned_packets() {
        let m = ImageMode::Match;
        assert_eq!(
            on_images(m, AwaitingImages, true),
            Some(Attach::Append(Matched))
        );
        assert_eq!(on_images(m, Rejected, true), Some(Attach::Replace(Matched)));
        assert_eq!(on_images(m, Ready, true), None);
        assert_eq!(on_images(m, Cancelled, true), None);
        assert_eq!(on_images(m, AwaitingImages, false), None);
    }
}
