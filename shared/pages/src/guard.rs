//! Panic containment around third-party decoders.
//!
//! rxing, rqrr and the image decoders index into buffers with arithmetic
//! derived from what they read; on hostile or odd scans that has panicked.
//! A scan agent must survive any page, so every such call goes through
//! [`guarded`]. A contained panic is logged at debug level instead of the
//! default hook's dump on stderr, which would look like a crash to whoever
//! watches the desk; every other panic still reaches the default hook.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// How many `guarded` calls this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, turning a panic into `None`. Captured state is only read by the
/// decoders or rebuilt per call, so observing it after an unwind is harmless.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    quiet_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    result.ok()
}

fn quiet_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) > 0 {
                tracing::debug!(panic = %info, "a decoder panicked on this input; contained");
            } else {
                default(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_is_contained_and_the_depth_restored() {
        assert_eq!(guarded(|| 7), Some(7));
        let contained: Option<()> = guarded(|| panic!("decoder bug"));
        assert_eq!(contained, None);
        assert_eq!(guarded(|| guarded(|| 1)), Some(Some(1)));
        assert_eq!(DEPTH.with(Cell::get), 0);
    }
}
