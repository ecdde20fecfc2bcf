//! The domain floor: plain types and rules that every other part of the
//! server names. Nothing here imports tokio, axum, a database crate, or any
//! module of this crate outside `domain` (checked by `layers_tests`).

mod audit;
pub mod credentials;
mod desk;
pub mod receipt;
pub mod scheme_rules;
mod staff;

pub use audit::{Actor, Decision};
pub use desk::{CloseReason, site_sees};
pub use staff::{Role, User};

/// Longest free text IMC keeps in a field (titles, reasons), in characters.
pub const MAX_TEXT_LEN: usize = 1024;
