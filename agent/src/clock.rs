//! The agent's monotonic clock: time since the agent started. Ordering and
//! sealing decisions take time as a parameter (the pure parts in
//! `watch::settle`, `scan_line` and `sealing`), so the simulation can pass
//! its own; this is the one the running agent passes. A wall-clock step
//! moves none of it.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }
}
