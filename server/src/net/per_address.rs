//! Connections open at once per client address: one address (a slow-header
//! or slow-body flood) can hold at most its share of the server's connection
//! slots, so callers at other addresses always find one free.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts open connections by address; a [`Held`] gives its place back
/// when dropped.
#[derive(Debug, Clone)]
pub struct PerAddress {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection of an address.
#[derive(Debug)]
pub struct Held {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    pub fn new(limit: usize) -> PerAddress {
        PerAddress {
            limit,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `address`, or `None` when the
    /// address already holds its limit.
    pub fn admit(&self, address: IpAddr) -> Option<Held> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Held {
            address,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            // Forget idle addresses, so the map is as large as the open set.
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_and_others_are_not_affected() {
        let limits = PerAddress::new(2);
        let crowded: IpAddr = [127, 0, 0, 5].into();
        let other: IpAddr = [127, 0, 0, 1].into();
        let first = limits.admit(crowded);
        let second = limits.admit(crowded);
        assert!(first.is_some() && second.is_some());
        assert!(limits.admit(crowded).is_none());
        assert!(limits.admit(other).is_some());
        drop(first);
        assert!(
            limits.admit(crowded).is_some(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn the_map_forgets_addresses_with_nothing_open() {
        let limits = PerAddress::new(4);
        for n in 0..100u8 {
            drop(limits.admit([10, 0, 0, n].into()));
        }
        assert!(limits.open.lock().unwrap().is_empty());
    }
}
