//! Failed logins slow guessing down: after `MAX_FAILURES` wrong passwords for
//! one user name within `WINDOW`, that name is refused until the window ends.
//!
//! In memory (a restart forgets it) and bounded: when it tracks too many
//! names, the oldest entries go first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_NAMES: usize = 10_000;

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    /// Whether `name` may try a password at `now`.
    pub fn allowed(&self, name: &str, now: Instant) -> bool {
        let Ok(failures) = self.failures.lock() else {
            return true;
        };
        match failures.get(name) {
            Some((count, first)) => *count < MAX_FAILURES || now.duration_since(*first) >= WINDOW,
            None => true,
        }
    }

    pub fn failed(&self, name: &str, now: Instant) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_NAMES {
            failures.retain(|_, (_, first)| now.duration_since(*first) < WINDOW);
            if failures.len() >= MAX_NAMES {
                failures.clear();
            }
        }
        let entry = failures.entry(name.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, name: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_repeated_failures_until_the_window_ends() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(throttle.allowed("wang", start));
            throttle.failed("wang", start);
        }
        assert!(!throttle.allowed("wang", start + Duration::from_secs(60)));
        assert!(throttle.allowed("li", start));
        assert!(throttle.allowed("wang", start + WINDOW));
        throttle.succeeded("wang");
        assert!(throttle.allowed("wang", start));
    }
}
