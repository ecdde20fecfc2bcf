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
