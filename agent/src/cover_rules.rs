//! What this desk knows of covers, as learned from its server: the patterns
//! that make a barcode a cover code, and the public keys that cover QRs are
//! signed with. Both are kept in the queue's meta table, so the desk reads
//! covers the same way after a restart with the server out of reach; before
//! the first connect, the keys come from the enrolment answer in the config.

use crate::config::AgentConfig;
use crate::queue::Queue;
use imc_shared::CoverPatterns;
use imc_shared::cover_keys::{CoverKey, CoverKeys};

/// Meta key of the cover patterns (JSON list of regular expressions).
pub const PATTERNS_KEY: &str = "cover_patterns";
/// Meta key of the cover keys (JSON list of [`CoverKey`]).
pub const KEYS_KEY: &str = "cover_keys";

/// The patterns the desk learned, or the default ones.
pub fn patterns(queue: &Queue) -> CoverPatterns {
    queue
        .meta(PATTERNS_KEY)
        .ok()
        .flatten()
        .and_then(|json| serde_json::from_str::<Vec<String>>(&json).ok())
        .and_then(|p| CoverPatterns::new(&p).ok())
        .unwrap_or_default()
}

/// The keys the desk learned on its last connect, else at enrolment.
pub fn keys(queue: &Queue, config: &AgentConfig) -> CoverKeys {
    let learned = queue
        .meta(KEYS_KEY)
        .ok()
        .flatten()
        .and_then(|json| serde_json::from_str::<Vec<CoverKey>>(&json).ok());
    let published = learned.unwrap_or_else(|| config.cover_keys.clone());
    let (keys, bad) = CoverKeys::new(&published);
    for why in bad {
        tracing::warn!("{why}");
    }
    keys
}
