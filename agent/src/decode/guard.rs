//! Panic containment around third-party decoders.
//!
//! rxing and rqrr index into pixel buffers with arithmetic derived from
//! detected geometry; on hostile or odd scans that has historically panicked.
//! A scan agent must survive any page, so every decoder call goes through here.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into `None`. Captured state is only read by the
/// decoders or rebuilt per call, so observing it after an unwind is harmless.
pub(super) fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}
