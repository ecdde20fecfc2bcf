//! When an inbox's open packet may be closed for quiet.
//!
//! A packet closes when the next cover is committed (the queue does that) or
//! after `seal_after` of quiet. Quiet is counted on a monotonic clock from
//! the last file *seen* in the inbox (not from the last commit, which a slow
//! split or an antivirus scan delays), and never runs out while a file of the
//! inbox is seen but not handed out, waits between watcher and ingest, or is
//! being prepared or retried: its pages may still belong to the open packet.
//! A packet that holds the attachment count its cover declares closes after
//! the shorter `grace` instead, so the match need not wait out the quiet (a
//! trailing blank back still joins it), and at once when that back is in. A wall-clock step changes nothing
//! here. Pure: times are passed in.

use crate::queue::Completion;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Inbox {
    last_seen: Duration,
    /// Seen by the watcher, not handed out yet.
    waiting: usize,
    /// Handed to ingest and not finished (committed, quarantined or skipped).
    in_line: usize,
    /// Closed for quiet since the last file was seen: nothing left to close.
    closed: bool,
    /// How near the open packet is to its declared count.
    complete: Completion,
}

pub struct Sealing {
    seal_after: Duration,
    grace: Duration,
    inboxes: HashMap<PathBuf, Inbox>,
}

impl Sealing {
    /// Every inbox starts quiet from `now`: a packet left open by a previous
    /// run closes `seal_after` after the start unless more pages come.
    pub fn new(seal_after: Duration, grace: Duration, dirs: &[PathBuf], now: Duration) -> Sealing {
        let inboxes = dirs
            .iter()
            .map(|d| {
                let inbox = Inbox {
                    last_seen: now,
                    waiting: 0,
                    in_line: 0,
                    closed: false,
                    complete: Completion::Open,
                };
                (d.clone(), inbox)
            })
            .collect();
        Sealing {
            seal_after,
            grace: grace.min(seal_after),
            inboxes,
        }
    }

    fn inbox(&mut self, dir: &Path) -> &mut Inbox {
        self.inboxes
            .entry(dir.to_path_buf())
            .or_insert_with(|| Inbox {
                last_seen: Duration::ZERO,
                waiting: 0,
                in_line: 0,
                closed: false,
                complete: Completion::Open,
            })
    }

    /// After a listing of `dir`: whether it saw a new file, how many files
    /// wait in the watcher, and how many it handed to ingest.
    pub fn listed(
        &mut self,
        dir: &Path,
        now: Duration,
        saw_new: bool,
        waiting: usize,
        handed: usize,
    ) {
        let inbox = self.inbox(dir);
        if saw_new {
            inbox.last_seen = inbox.last_seen.max(now);
            inbox.closed = false;
        }
        inbox.waiting = waiting;
        inbox.in_line += handed;
    }

    /// A file handed out is done with: committed, quarantined or skipped.
    pub fn finished(&mut self, dir: &Path) {
        let inbox = self.inbox(dir);
        inbox.in_line = inbox.in_line.saturating_sub(1);
    }

    /// After a commit: whether the inbox's open packet now holds the count
    /// its cover declares.
    pub fn progress(&mut self, dir: &Path, completion: Completion) {
        self.inbox(dir).complete = completion;
    }

    /// Inboxes quiet for `seal_after` (or `grace`, once the open packet holds
    /// its declared count) with nothing in hand: their open packet is to be
    /// closed now. Each is returned once per quiet spell.
    pub fn due(&mut self, now: Duration) -> Vec<PathBuf> {
        let mut due = Vec::new();
        for (dir, inbox) in &mut self.inboxes {
            let wait = match inbox.complete {
                Completion::Open => self.seal_after,
                Completion::AfterGrace => self.grace,
                Completion::Now => Duration::ZERO,
            };
            let quiet = now.saturating_sub(inbox.last_seen) >= wait;
            if quiet && !inbox.closed && inbox.waiting == 0 && inbox.in_line == 0 {
                inbox.closed = true;
                inbox.complete = Completion::Open;
                due.push(dir.clone());
            }
        }
        due.sort();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn quiet_counts_from_the_last_file_seen_and_waits_for_files_in_hand() {
        let dir = PathBuf::from("/in");
        let mut sealing = Sealing::new(s(5), s(1), std::slice::from_ref(&dir), s(0));
        sealing.listed(&dir, s(1), true, 0, 1); // a cover, handed out
        sealing.finished(&dir);
        sealing.listed(&dir, s(2), true, 0, 1); // a long TIFF, still splitting at 30 s
        assert!(
            sealing.due(s(30)).is_empty(),
            "never while a file is prepared"
        );
        sealing.finished(&dir);
        assert_eq!(sealing.due(s(30)), std::slice::from_ref(&dir));
        assert!(sealing.due(s(40)).is_empty(), "once per quiet spell");
        sealing.listed(&dir, s(41), true, 1, 0); // seen, still settling
        assert!(sealing.due(s(60)).is_empty());
        sealing.listed(&dir, s(61), false, 0, 1);
        sealing.finished(&dir);
        assert_eq!(sealing.due(s(61)), [dir]);
    }

    #[test]
    fn a_restart_counts_quiet_from_the_start() {
        let dir = PathBuf::from("/in");
        let mut sealing = Sealing::new(s(5), s(1), std::slice::from_ref(&dir), s(100));
        assert!(sealing.due(s(104)).is_empty());
        assert_eq!(sealing.due(s(105)), [dir]);
    }

    #[test]
    fn a_packet_holding_its_declared_count_closes_after_the_grace() {
        let dir = PathBuf::from("/in");
        let mut sealing = Sealing::new(s(5), s(1), std::slice::from_ref(&dir), s(0));
        sealing.listed(&dir, s(10), true, 0, 2); // cover (2 declared) and one page
        sealing.finished(&dir);
        sealing.progress(&dir, Completion::Open);
        sealing.finished(&dir);
        assert!(
            sealing.due(s(12)).is_empty(),
            "one of two: the quiet applies"
        );
        sealing.listed(&dir, s(12), true, 0, 1); // the second page
        sealing.finished(&dir);
        sealing.progress(&dir, Completion::AfterGrace);
        assert!(sealing.due(s(12)).is_empty(), "room for a blank back");
        assert_eq!(sealing.due(s(13)), std::slice::from_ref(&dir));
        // With its blank back in, nothing is left to wait for.
        sealing.listed(&dir, s(20), true, 0, 1);
        sealing.finished(&dir);
        sealing.progress(&dir, Completion::Now);
        assert_eq!(sealing.due(s(20)), std::slice::from_ref(&dir));
    }
}
