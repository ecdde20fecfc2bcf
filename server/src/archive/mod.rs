//! Archive packages: signed-off documents exported as self-verifying BagIt
//! bags (docs/ARCHIVE.md), and the check an archivist runs on them.
//!
//! - [`bag`]: the BagIt format, as text (no file system).
//! - [`record`]: what `data/document.json` and `data/audit.jsonl` hold.
//! - [`verify`]: the four checks on bags in a folder, with nothing but the
//!   bags and a public key.

pub mod bag;
pub mod bucket;
pub mod destination;
pub mod export;
pub mod filter;
pub mod folder;
pub mod jobs;
pub mod package;
pub mod record;
pub mod verify;
pub mod xml;
