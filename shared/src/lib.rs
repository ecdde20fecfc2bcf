//! Wire and domain types shared by the IMC agent and server.
//!
//! Layout:
//! - [`status`]: document status and image mode, the words of the API (docs/API.md).
//! - [`cover_code`]: how cover codes look, are issued and are recognised.
//! - [`cover_qr`]: the QR payload of an IMC cover (code, attachment count, signature).
//! - [`cover_keys`]: the server's public cover keys and checking a signature.
//! - [`api`]: JSON bodies of the HTTP API under `/api/v1`.
//! - [`protocol`]: the agent uplink spoken over WebSocket.
//! - [`money`]: money amounts as exact decimal text.
//! - [`text`]: what identifiers may hold, and how free text is tidied.
//! - [`vat`]: reading a VAT invoice's QR payload (duplicate-invoice guard).
//!
//! Only this crate knows the wire format. It holds no async runtime and no
//! storage: whatever is `Serialize` here is a contract with the outside.

pub mod api;
pub mod cover_code;
pub mod cover_keys;
pub mod cover_qr;
pub mod fuzzing;
pub mod money;
pub mod protocol;
pub mod status;
pub mod text;
pub mod vat;

pub use cover_code::{CoverCode, CoverPatterns};
pub use status::{DocStatus, ImageMode};
