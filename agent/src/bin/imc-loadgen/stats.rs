//! Counters shared by agents and ERP clients while the run goes on, read by
//! the progress line; latencies are kept per task and merged at the end.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Error messages kept for the summary; the rest are only counted.
const ERROR_SAMPLES: usize = 20;

#[derive(Default)]
pub struct Live {
    pub pages_stored: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub status_calls: AtomicU64,
    pub status_throttled: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub status_errors: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Live {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn protocol_error(&self, message: String) {
        Live::add(&self.protocol_errors, 1);
        self.sample(message);
    }

    pub fn status_error(&self, message: String) {
        Live::add(&self.status_errors, 1);
        self.sample(message);
    }

    fn sample(&self, message: String) {
        if let Ok(mut samples) = self.samples.lock()
            && samples.len() < ERROR_SAMPLES
        {
            samples.push(message);
        }
    }

    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies(pub Vec<u64>);

impl Latencies {
    pub fn record(&mut self, elapsed: std::time::Duration) {
        self.0
            .push(elapsed.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// p50, p90, p99 and max in milliseconds (nearest rank); zeros when empty.
    pub fn summary(&mut self) -> Percentiles {
        self.0.sort_unstable();
        let at = |q: f64| -> f64 {
            if self.0.is_empty() {
                return 0.0;
            }
            let rank = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len());
            self.0[rank - 1] as f64 / 1000.0
        };
        Percentiles {
            count: self.0.len() as u64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut l = Latencies((1..=100).map(|ms| ms * 1000).collect());
        let p = l.summary();
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Latencies::default().summary().count, 0);
    }
}
