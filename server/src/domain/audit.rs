//! Who acts, and the decisions taken on a document.

/// Who did something, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

/// A decision taken by sign-off staff or an ERP on a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    SignOff,
    Reject { reason: String },
    Unsign { reason: String },
    Cancel { reason: Option<String> },
}

impl Decision {
    pub fn name(&self) -> &'static str {
        match self {
            Decision::SignOff => "sign-off",
            Decision::Reject { .. } => "reject",
            Decision::Unsign { .. } => "unsign",
            Decision::Cancel { .. } => "cancel",
        }
    }
}
