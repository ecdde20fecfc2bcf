//! The use cases both HTTP surfaces (the API under `routes/` and the
//! sign-off desk under `web/`) call, so that neither calls the other's
//! handlers: a rule about deciding, enrolling or revoking is written once.

pub mod agents;
pub mod archive;
pub mod decisions;
pub mod desks;
