//! The ingest line: files handed out by the watcher, prepared several at a
//! time and committed strictly one after another in scan order.
//!
//! A file that fails for a passing reason (see [`crate::ingest`] for which
//! errors those are) stays at its place and is prepared again after a
//! backoff; the files behind it wait, prepared or not, because a page
//! committed ahead of an earlier cover would join the wrong packet. A file
//! that fails for good is not a failure here: ingest turns it into a
//! quarantine, which commits like any other file. Pure: the caller runs the
//! preparations and passes the time in, so the simulation can drive it.

use crate::watch::Candidate;
use std::collections::VecDeque;
use std::time::Duration;

/// Queue meta key holding which file the line waits for and why, for
/// `imc-agent status`.
pub const BLOCKED_KEY: &str = "blocked";

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Short enough that a desk whose spool just drained goes on within seconds;
/// the checks that fail for a full spool or an unreadable file are cheap.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

enum State<P> {
    /// Not started yet, or due for another try at `retry_at`.
    Waiting {
        retry_at: Duration,
    },
    Preparing,
    Prepared(P),
}

struct Slot<P> {
    id: u64,
    candidate: Candidate,
    state: State<P>,
    failures: u32,
}

/// Why the head of the line has not committed yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocked {
    pub candidate: Candidate,
    pub reason: String,
    pub failures: u32,
}

pub struct ScanLine<P> {
    slots: VecDeque<Slot<P>>,
    next_id: u64,
    /// Files prepared ahead of the head at most (bounds spooled-but-uncommitted work).
    window: usize,
    blocked: Option<Blocked>,
}

impl<P> ScanLine<P> {
    pub fn new(window: usize) -> ScanLine<P> {
        ScanLine {
            slots: VecDeque::new(),
            next_id: 0,
            window: window.max(1),
            blocked: None,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// True while the line takes more files from the watcher.
    pub fn has_room(&self) -> bool {
        self.slots.len() < self.window
    }

    /// Joins the end of the line.
    pub fn push(&mut self, candidate: Candidate) {
        self.next_id += 1;
        self.slots.push_back(Slot {
            id: self.next_id,
            candidate,
            state: State::Waiting {
                retry_at: Duration::ZERO,
            },
            failures: 0,
        });
    }

    /// Files whose preparation should start now; they are marked as preparing.
    pub fn start(&mut self, now: Duration) -> Vec<(u64, Candidate)> {
        let mut started = Vec::new();
        for slot in &mut self.slots {
            if let State::Waiting { retry_at } = slot.state
                && retry_at <= now
            {
                slot.state = State::Preparing;
                started.push((slot.id, slot.candidate.clone()));
            }
        }
        started
    }

    /// A preparation finished.
    pub fn prepared(&mut self, id: u64, prepared: P) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.id == id) {
            slot.state = State::Prepared(prepared);
        }
    }

    /// A preparation or a commit failed for a passing reason: the file keeps
    /// its place and is prepared again after a backoff.
    pub fn failed(&mut self, id: u64, reason: String, now: Duration) {
        let is_head = self.slots.front().is_some_and(|s| s.id == id);
        let Some(slot) = self.slots.iter_mut().find(|s| s.id == id) else {
            return;
        };
        slot.failures = slot.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1u32 << (slot.failures - 1).min(16))
            .min(MAX_BACKOFF);
        slot.state = State::Waiting {
            retry_at: now + backoff,
        };
        if is_head {
            self.blocked = Some(Blocked {
                candidate: slot.candidate.clone(),
                reason,
                failures: slot.failures,
            });
        }
    }

    /// The head of the line, once prepared: it is committed next. The caller
    /// reports a passing commit failure with [`ScanLine::retry_head`].
    pub fn take_head(&mut self) -> Option<(u64, Candidate, P)> {
        if !matches!(self.slots.front()?.state, State::Prepared(_)) {
            return None;
        }
        let slot = self.slots.front_mut()?;
        let state = std::mem::replace(
            &mut slot.state,
            State::Waiting {
                retry_at: Duration::ZERO,
            },
        );
        let State::Prepared(prepared) = state else {
            return None;
        };
        Some((slot.id, slot.candidate.clone(), prepared))
    }

    /// The head committed: the next file moves up. Returns the file.
    pub fn committed(&mut self) -> Option<Candidate> {
        self.blocked = None;
        self.slots.pop_front().map(|s| s.candidate)
    }

    /// The head's commit failed for a passing reason.
    pub fn retry_head(&mut self, reason: String, now: Duration) {
        if let Some(id) = self.slots.front().map(|s| s.id) {
            self.failed(id, reason, now);
        }
    }

    /// When the next retry falls due, if any file waits for one.
    pub fn next_retry(&self) -> Option<Duration> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                State::Waiting { retry_at } if s.failures > 0 => Some(retry_at),
                _ => None,
            })
            .min()
    }

    /// What holds the line up, while its head is failing.
    pub fn blocked(&self) -> Option<&Blocked> {
        self.blocked.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::FileKey;
    use std::path::PathBuf;

    fn candidate(name: &str) -> Candidate {
        Candidate {
            watch_dir: PathBuf::from("/in"),
            key: FileKey {
                path: PathBuf::from("/in").join(name),
                size: 1,
                mtime_ns: 1,
            },
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_failing_file_holds_the_files_behind_it_until_it_passes() {
        let mut line = ScanLine::new(4);
        for name in ["cover.jpg", "p1.jpg", "p2.jpg"] {
            line.push(candidate(name));
        }
        let started = line.start(ms(0));
        assert_eq!(started.len(), 3);
        let (cover, p1, p2) = (started[0].0, started[1].0, started[2].0);
        line.prepared(p1, "p1");
        line.prepared(p2, "p2");
        line.failed(cover, "spool full".into(), ms(0));
        assert!(line.take_head().is_none(), "p1 must not pass the cover");
        assert_eq!(
            line.blocked().map(|b| b.reason.as_str()),
            Some("spool full")
        );
        assert!(line.start(ms(100)).is_empty(), "backing off");
        assert_eq!(line.next_retry(), Some(ms(250)));
        let again = line.start(ms(250));
        assert_eq!(again, vec![(cover, candidate("cover.jpg"))]);
        line.prepared(cover, "cover");
        let mut committed = Vec::new();
        while let Some((_, _, p)) = line.take_head() {
            committed.push(p);
            line.committed();
        }
        assert_eq!(committed, ["cover", "p1", "p2"]);
        assert!(line.blocked().is_none() && line.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        let mut line: ScanLine<()> = ScanLine::new(1);
        line.push(candidate("a.jpg"));
        let mut now = ms(0);
        let mut waits = Vec::new();
        for _ in 0..10 {
            let (id, _) = line.start(now)[0].clone();
            line.failed(id, "busy".into(), now);
            let next = line.next_retry().unwrap();
            waits.push((next - now).as_millis());
            now = next;
        }
        assert_eq!(waits[..4], [250, 500, 1000, 2000]);
        assert_eq!(*waits.last().unwrap(), 5_000);
    }

    #[test]
    fn a_commit_failure_puts_the_head_back_to_be_prepared_again() {
        let mut line = ScanLine::new(2);
        line.push(candidate("a.jpg"));
        line.push(candidate("b.jpg"));
        let ids: Vec<u64> = line.start(ms(0)).into_iter().map(|(id, _)| id).collect();
        line.prepared(ids[0], 'a');
        line.prepared(ids[1], 'b');
        let (_, head, _) = line.take_head().unwrap();
        assert_eq!(head, candidate("a.jpg"));
        line.retry_head("queue busy".into(), ms(10));
        assert!(line.take_head().is_none(), "b waits for a");
        assert_eq!(line.start(ms(260)).len(), 1);
    }
}
