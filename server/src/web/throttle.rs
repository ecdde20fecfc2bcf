//! Failed logins slow guessing down without letting a stranger lock anyone
//! out: failures are counted per (address, user name) and per address, and
//! past a few free tries each further one costs a doubling wait, up to
//! [`MAX_WAIT`]. Failures from one address never slow the same name down
//! from another, so the owner of an account can always log in from their
//! own computer.
//!
//! In memory (a restart forgets it) and bounded: when a table is full, the
//! longest-quiet entries go first; it never forgets every entry at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one name from one address before waits begin.
pub const FREE_PER_NAME: u32 = 3;
/// Failures from one address, over all names, before waits begin.
pub const FREE_PER_ADDRESS: u32 = 20;
/// The longest wait; also how long a quiet record is kept.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
const MAX_ENTRIES: usize = 50_000;

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

impl Record {
    /// When the next try is allowed, for a record that allows `free` tries.
    fn next_try(&self, free: u32) -> Instant {
        let over = self.failures.saturating_sub(free);
        if over == 0 {
            return self.last;
        }
        let wait = Duration::from_secs(1u64 << over.min(16)).min(MAX_WAIT);
        self.last + wait
    }
}

struct Table<K> {
    records: HashMap<K, Record>,
    free: u32,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Table {
            records: HashMap::new(),
            free,
        }
    }

    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let record = self.records.get(key)?;
        if now.saturating_duration_since(record.last) >= MAX_WAIT {
            return None;
        }
        let until = record.next_try(self.free);
        (until > now).then(|| until - now)
    }

    fn failed(&mut self, key: K, now: Instant) {
        if !self.records.contains_key(&key) && self.records.len() >= MAX_ENTRIES {
            self.records
                .retain(|_, r| now.saturating_duration_since(r.last) < MAX_WAIT);
            if self.records.len() >= MAX_ENTRIES {
                self.evict_quietest(MAX_ENTRIES / 10);
            }
        }
        let record = self.records.entry(key).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(record.last) >= MAX_WAIT {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last = now;
    }

    /// Drops the `count` entries quiet longest: a flood of new keys pushes
    /// out old, idle ones, never the whole table.
    fn evict_quietest(&mut self, count: usize) {
        let count = count.min(self.records.len());
        if count == 0 {
            return;
        }
        let mut by_age: Vec<(Instant, K)> = self
            .records
            .iter()
            .map(|(key, record)| (record.last, key.clone()))
            .collect();
        by_age.select_nth_unstable_by_key(count - 1, |(last, _)| *last);
        for (_, key) in by_age.into_iter().take(count) {
            self.records.remove(&key);
        }
    }
}

/// Failures per (address, name), and per address.
type Tables = (Table<(IpAddr, String)>, Table<IpAddr>);

pub struct LoginThrottle {
    tables: Mutex<Tables>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            tables: Mutex::new((Table::new(FREE_PER_NAME), Table::new(FREE_PER_ADDRESS))),
        }
    }
}

impl LoginThrottle {
    /// How long `address` must wait before trying `name` again, if at all.
    pub fn wait(&self, address: IpAddr, name: &str, now: Instant) -> Option<Duration> {
        let Ok(tables) = self.tables.lock() else {
            return None;
        };
        let (by_name, by_address) = &*tables;
        let pair = by_name.wait(&(address, name.to_owned()), now);
        let all = by_address.wait(&address, now);
        pair.max(all)
    }

    pub fn failed(&self, address: IpAddr, name: &str, now: Instant) {
        if let Ok(mut tables) = self.tables.lock() {
            let (by_name, by_address) = &mut *tables;
            by_name.failed((address, name.to_owned()), now);
            by_address.failed(address, now);
        }
    }

    /// The right password from `address` forgets that pair's failures (the
    /// address's own count still decays with time).
    pub fn succeeded(&self, address: IpAddr, name: &str) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.0.records.remove(&(address, name.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn waits_grow_after_the_free_tries_and_end() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_PER_NAME {
            assert_eq!(throttle.wait(ip(2), "wang", start), None);
            throttle.failed(ip(2), "wang", start);
        }
        assert_eq!(throttle.wait(ip(2), "wang", start), None);
        throttle.failed(ip(2), "wang", start);
        assert_eq!(
            throttle.wait(ip(2), "wang", start),
            Some(Duration::from_secs(2))
        );
        throttle.failed(ip(2), "wang", start);
        assert_eq!(
            throttle.wait(ip(2), "wang", start),
            Some(Duration::from_secs(4))
        );
        for _ in 0..30 {
            throttle.failed(ip(2), "wang", start);
        }
        assert_eq!(throttle.wait(ip(2), "wang", start), Some(MAX_WAIT));
        assert_eq!(throttle.wait(ip(2), "wang", start + MAX_WAIT), None);
        throttle.succeeded(ip(2), "wang");
        assert_eq!(
            throttle.wait(ip(2), "wang", start),
            throttle.wait(ip(2), "li", start),
            "only the address's own count remains"
        );
    }

    #[test]
    fn failures_from_one_address_never_slow_another() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..1000 {
            throttle.failed(ip(2), "admin", start);
        }
        assert!(throttle.wait(ip(2), "admin", start).is_some());
        assert_eq!(throttle.wait(ip(1), "admin", start), None);
    }

    #[test]
    fn one_address_spraying_names_is_slowed_too() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for n in 0..FREE_PER_ADDRESS + 1 {
            throttle.failed(ip(3), &format!("user{n}"), start);
        }
        assert!(throttle.wait(ip(3), "someone-new", start).is_some());
    }

    #[test]
    fn a_full_table_drops_the_quietest_and_keeps_fresh_waits() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..10 {
            throttle.failed(ip(2), "admin", start + Duration::from_secs(60));
        }
        // A spray of names from many addresses, all before the one above.
        for n in 0..(MAX_ENTRIES as u32 + 100) {
            let address = IpAddr::from(std::net::Ipv6Addr::from(u128::from(n) + 1));
            throttle.failed(address, "x", start);
        }
        let tables = throttle.tables.lock().unwrap();
        assert!(tables.0.records.len() <= MAX_ENTRIES);
        assert!(tables.0.records.len() >= MAX_ENTRIES * 8 / 10);
        drop(tables);
        assert!(
            throttle
                .wait(ip(2), "admin", start + Duration::from_secs(61))
                .is_some(),
            "a spray never clears a recent wait"
        );
    }
}
