//! The scan desks' sessions, as far as the rest of the server names them.

/// Why the server ends a live session from outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// A newer connection of the same agent took over.
    Replaced,
    /// An administrator revoked the agent.
    Revoked,
}

/// Whether the desks of a site may see a document (name it on their console,
/// reprint its cover): any desk may receive the paper a match-mode document
/// still awaits; once paper came, only the sites whose desks sent it.
/// `Store::desk_documents` lists the part of these a desk is asked to scan.
pub fn site_sees(
    status: imc_shared::status::DocStatus,
    mode: imc_shared::status::ImageMode,
    scanned_at_site: bool,
) -> bool {
    use imc_shared::status::{DocStatus, ImageMode};
    (status == DocStatus::AwaitingImages && mode == ImageMode::Match) || scanned_at_site
}

#[cfg(test)]
mod tests {
    use super::site_sees;
    use imc_shared::status::{DocStatus, ImageMode};

    #[test]
    fn awaited_paper_is_open_to_every_desk_and_received_paper_to_its_site_only() {
        assert!(site_sees(
            DocStatus::AwaitingImages,
            ImageMode::Match,
            false
        ));
        assert!(!site_sees(
            DocStatus::AwaitingImages,
            ImageMode::Basic,
            false
        ));
        assert!(!site_sees(DocStatus::Rejected, ImageMode::Match, false));
        assert!(site_sees(DocStatus::Rejected, ImageMode::Match, true));
        assert!(site_sees(DocStatus::Matched, ImageMode::Match, true));
    }
}
