//! Fuzz target bodies, shared by `fuzz/` (cargo-fuzz) and the regression
//! tests that replay the committed inputs under `fuzz/regressions/`.
//! Each takes arbitrary bytes and panics only when an invariant breaks.

use crate::cover_code::{CoverCode, CoverPatterns};
use crate::protocol::{AgentMessage, Chunk, ServerMessage};

/// The uplink's binary chunk frame and JSON messages: decoding never panics,
/// and a frame that decodes re-encodes to the same bytes.
pub fn protocol_frame(data: &[u8]) {
    if let Ok(chunk) = Chunk::decode(data) {
        assert_eq!(
            chunk.encode(),
            data,
            "a decoded chunk re-encodes to its frame"
        );
    }
    let _ = serde_json::from_slice::<AgentMessage>(data);
    let _ = serde_json::from_slice::<ServerMessage>(data);
}

/// Cover code recognition: the first line is a pattern (as an administrator
/// would configure), the rest a scanned barcode text.
pub fn cover_code(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pattern, scanned) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = CoverCode::is_valid_issued(scanned);
    if let Ok(patterns) = CoverPatterns::new(&[pattern]) {
        let _ = patterns.is_cover(scanned);
    }
    let default = CoverPatterns::default();
    let _ = default.is_cover(scanned);
    // Every issued code is valid and recognised by the default pattern.
    let mut random = [0u8; 8];
    for (slot, byte) in random.iter_mut().zip(data) {
        *slot = *byte;
    }
    let issued = CoverCode::issue(u64::from_le_bytes(random));
    assert!(CoverCode::is_valid_issued(issued.as_str()), "{issued:?}");
    assert!(default.is_cover(issued.as_str()), "{issued:?}");
}

/// Every file under `fuzz/regressions/<target>/`, for replay in the normal suite.
#[doc(hidden)]
pub fn regression_inputs(target: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    inputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_frame_regressions() {
        for (path, bytes) in regression_inputs("protocol_frame") {
            eprintln!("{}", path.display());
            protocol_frame(&bytes);
        }
    }

    #[test]
    fn cover_code_regressions() {
        for (path, bytes) in regression_inputs("cover_code") {
            eprintln!("{}", path.display());
            cover_code(&bytes);
        }
    }
}
