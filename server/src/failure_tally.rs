//! Anonymous auth failures, audited in bounded volume.
//!
//! Each (address, cause) gets one audit row of its own in a minute: the
//! first failure, with its detail. The rest of that minute are counted, and
//! one summary row with the count is written when the minute is over. So a
//! flood from one address adds two rows a minute, and a flood from many is
//! bounded by [`MAX_KEYS`]: past it, new addresses share one key. Failures
//! by a known caller (a token lacking a scope, an agent with a wrong
//! certificate) are audited one by one as before; this is only for callers
//! nobody has identified.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// (address, cause) pairs counted at once; more addresses share one key.
pub const MAX_KEYS: usize = 10_000;

/// Whose failure: an address, or every address past [`MAX_KEYS`].
pub type Source = Option<IpAddr>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub source: Source,
    pub cause: &'static str,
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// Failures after the first, which had its own row.
    pub more: u64,
}

impl Summary {
    pub fn actor(&self) -> String {
        match self.source {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:(many addresses)".to_owned(),
        }
    }

    pub fn what(&self) -> String {
        let at = chrono::DateTime::from_timestamp(i64::try_from(self.minute * 60).unwrap_or(0), 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        format!(
            "{} more of: {} (in the minute from {at}; counted, not itemised)",
            self.more, self.cause
        )
    }
}

struct Entry {
    minute: u64,
    more: u64,
}

#[derive(Default)]
pub struct FailureTally {
    entries: Mutex<HashMap<(Source, &'static str), Entry>>,
}

/// What the caller should write for one failure.
#[derive(Debug, PartialEq, Eq)]
pub struct Noted {
    /// This failure's own row: the first of its minute.
    pub itemise: bool,
    /// A finished earlier minute of the same key, to write now.
    pub summary: Option<Summary>,
}

impl FailureTally {
    pub fn note(&self, address: Option<IpAddr>, cause: &'static str, minute: u64) -> Noted {
        let Ok(mut entries) = self.entries.lock() else {
            return Noted {
                itemise: true,
                summary: None,
            };
        };
        let key = if entries.contains_key(&(address, cause)) || entries.len() < MAX_KEYS {
            (address, cause)
        } else {
            (None, cause)
        };
        match entries.get_mut(&key) {
            Some(entry) if entry.minute == minute => {
                entry.more = entry.more.saturating_add(1);
                Noted {
                    itemise: false,
                    summary: None,
                }
            }
            Some(entry) => {
                let summary = (entry.more > 0).then_some(Summary {
                    source: key.0,
                    cause,
                    minute: entry.minute,
                    more: entry.more,
                });
                *entry = Entry { minute, more: 0 };
                Noted {
                    itemise: true,
                    summary,
                }
            }
            None => {
                entries.insert(key, Entry { minute, more: 0 });
                Noted {
                    itemise: true,
                    summary: None,
                }
            }
        }
    }

    /// Summaries of every minute before `minute`, which are then forgotten
    /// (called once a minute, and at shutdown with the minute after).
    pub fn due(&self, minute: u64) -> Vec<Summary> {
        let Ok(mut entries) = self.entries.lock() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        entries.retain(|(source, cause), entry| {
            if entry.minute >= minute {
                return true;
            }
            if entry.more > 0 {
                due.push(Summary {
                    source: *source,
                    cause,
                    minute: entry.minute,
                    more: entry.more,
                });
            }
            false
        });
        due
    }
}

pub fn current_minute() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp() / 60).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD_CODE: &str = "enrolment with an unknown code";

    fn ip(last: u8) -> Source {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_flood_from_one_address_is_one_row_and_one_count_a_minute() {
        let tally = FailureTally::default();
        let first = tally.note(ip(2), BAD_CODE, 100);
        assert!(first.itemise && first.summary.is_none());
        for _ in 0..1999 {
            assert_eq!(
                tally.note(ip(2), BAD_CODE, 100),
                Noted {
                    itemise: false,
                    summary: None
                }
            );
        }
        // Another address is its own row.
        assert!(tally.note(ip(3), BAD_CODE, 100).itemise);
        // The next minute's first failure brings the last minute's count.
        let next = tally.note(ip(2), BAD_CODE, 101);
        assert!(next.itemise);
        assert_eq!(next.summary.map(|s| s.more), Some(1999));
        assert!(tally.note(ip(2), BAD_CODE, 101).summary.is_none());
        let due = tally.due(102);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!((due[0].source, due[0].more), (ip(2), 1));
        assert!(tally.due(103).is_empty(), "written once");
    }

    #[test]
    fn past_the_key_limit_new_addresses_share_one_key() {
        let tally = FailureTally::default();
        let mut itemised = 0;
        for n in 0..(MAX_KEYS as u128 + 500) {
            let address = Some(IpAddr::from(std::net::Ipv6Addr::from(n + 1)));
            itemised += usize::from(tally.note(address, BAD_CODE, 7).itemise);
        }
        assert_eq!(itemised, MAX_KEYS + 1);
        let due = tally.due(8);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].source, due[0].more), (None, 499));
    }
}
