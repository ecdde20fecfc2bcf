//! Which files in an inbox are settled and may be handed out, in scan order.
//!
//! Pure: it is told what each listing found and when that listing started
//! (a monotonic time), so the simulation can drive it with its own listings
//! and clock. The rule: a file is handed out only from a listing that
//! started after the file settled (its size and mtime unchanged for the
//! settle time) and that found no older file still unsettled or locked. A
//! file renamed into the inbox before such a listing started is therefore
//! always seen before any newer file passes it; an older file that is not
//! ready holds the newer ones back for as long as it takes, because letting
//! them pass would put their pages into the wrong packet.

use crate::queue::FileKey;
use crate::scan_order::scan_cmp;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bounds the memory spent on files seen but not yet handed out.
pub const MAX_PENDING: usize = 100_000;

/// A file ready to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub watch_dir: PathBuf,
    pub key: FileKey,
}

/// A regular file a listing found, with its size and mtime.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
}

/// Names a scanner uses while it is still writing, or that are not scans.
pub fn ignored(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with('~')
        || name.ends_with('~')
        || [
            ".tmp",
            ".part",
            ".partial",
            ".crdownload",
            ".filepart",
            ".reason.txt",
            ".db",
            ".ini",
        ]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

struct Pending {
    watch_dir: PathBuf,
    size: u64,
    mtime_ns: i64,
    /// Start of the first listing that saw this version of the file.
    since: Duration,
}

/// What one listing changed.
#[derive(Debug, Default)]
pub struct Listed {
    /// A file new to this inbox, or changed, was seen: the inbox is not quiet.
    pub saw_new: bool,
    /// Files handed out, in scan order.
    pub ready: Vec<Candidate>,
}

pub struct Settler {
    settle: Duration,
    pending: HashMap<PathBuf, Pending>,
    /// File versions handed out, by path: not handed out again while they
    /// stay unchanged (queued files wait in the inbox until delivered).
    taken: HashMap<PathBuf, (u64, i64)>,
}

impl Settler {
    pub fn new(settle: Duration) -> Settler {
        Settler {
            settle,
            pending: HashMap::new(),
            taken: HashMap::new(),
        }
    }

    /// Takes what a listing of `dir` found; `started` is when the listing
    /// began. `opens` tells whether a settled file can be opened for reading
    /// (Windows scanners hold a file exclusively while writing it).
    pub fn listing(
        &mut self,
        dir: &Path,
        started: Duration,
        entries: Vec<Entry>,
        opens: &mut dyn FnMut(&Path) -> bool,
    ) -> Listed {
        let present: HashSet<&Path> = entries.iter().map(|e| e.path.as_path()).collect();
        let in_dir = |p: &Path| p.parent() == Some(dir);
        self.taken
            .retain(|path, _| !in_dir(path) || present.contains(path.as_path()));
        self.pending
            .retain(|path, p| p.watch_dir != dir || present.contains(path.as_path()));
        let mut listed = Listed::default();
        for entry in entries {
            if ignored(&entry.path) {
                continue;
            }
            let version = (entry.size, entry.mtime_ns);
            if self.taken.get(&entry.path) == Some(&version) {
                continue;
            }
            self.taken.remove(&entry.path);
            let room = self.pending.len() < MAX_PENDING;
            match self.pending.get_mut(&entry.path) {
                Some(p) if (p.size, p.mtime_ns) == version => {}
                Some(p) => {
                    (p.size, p.mtime_ns, p.since) = (entry.size, entry.mtime_ns, started);
                    listed.saw_new = true;
                }
                None if room => {
                    self.pending.insert(
                        entry.path,
                        Pending {
                            watch_dir: dir.to_path_buf(),
                            size: entry.size,
                            mtime_ns: entry.mtime_ns,
                            since: started,
                        },
                    );
                    listed.saw_new = true;
                }
                None => {}
            }
        }
        let mut order: Vec<(i64, PathBuf, Duration)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.watch_dir == dir)
            .map(|(path, p)| (p.mtime_ns, path.clone(), p.since))
            .collect();
        order.sort_by(|a, b| scan_cmp((a.0, &a.1), (b.0, &b.1)));
        for (_, path, since) in order {
            if started < since + self.settle || !opens(&path) {
                break;
            }
            let Some(p) = self.pending.remove(&path) else {
                break;
            };
            self.taken.insert(path.clone(), (p.size, p.mtime_ns));
            listed.ready.push(Candidate {
                watch_dir: p.watch_dir,
                key: FileKey {
                    path,
                    size: p.size,
                    mtime_ns: p.mtime_ns,
                },
            });
        }
        listed
    }

    /// Files of `dir` seen but not handed out yet.
    pub fn waiting(&self, dir: &Path) -> usize {
        self.pending.values().filter(|p| p.watch_dir == dir).count()
    }

    /// True when a listing of `dir` started at `now` could settle a file.
    pub fn worth_listing(&self, dir: &Path, now: Duration) -> bool {
        self.pending
            .values()
            .any(|p| p.watch_dir == dir && now >= p.since + self.settle)
    }

    /// Forgets a file handed out that ingest skipped (it vanished or changed
    /// while being read), so the next listing looks at it afresh.
    pub fn release(&mut self, path: &Path) {
        self.taken.remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(500);

    fn entry(name: &str, mtime_ns: i64) -> Entry {
        Entry {
            path: Path::new("/in").join(name),
            size: 10,
            mtime_ns,
        }
    }

    fn names(listed: &Listed) -> Vec<String> {
        listed
            .ready
            .iter()
            .map(|c| {
                c.key
                    .path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn scanner_temp_names_are_ignored() {
        for name in [
            "scan.tmp",
            ".hidden.jpg",
            "~scan.jpg",
            "scan.jpg~",
            "x.PART",
            "x.pdf.crdownload",
            "a.jpg.reason.txt",
        ] {
            assert!(ignored(Path::new(name)), "{name}");
        }
        for name in ["scan_0001.jpg", "batch.TIF", "fax.pdf"] {
            assert!(!ignored(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn equal_mtimes_go_in_natural_name_order() {
        let mut s = Settler::new(SETTLE);
        let dir = Path::new("/in");
        let files: Vec<Entry> = (1..=12)
            .rev()
            .map(|i| entry(&format!("scan_{i}.jpg"), 7))
            .collect();
        s.listing(dir, ms(0), files.clone(), &mut |_| true);
        let listed = s.listing(dir, ms(600), files, &mut |_| true);
        let expected: Vec<String> = (1..=12).map(|i| format!("scan_{i}.jpg")).collect();
        assert_eq!(names(&listed), expected);
    }

    #[test]
    fn a_file_settles_only_in_a_listing_that_started_after_it_settled() {
        let mut s = Settler::new(SETTLE);
        let dir = Path::new("/in");
        // b is seen; a (older) is renamed in while the second listing runs and is missed.
        assert!(
            s.listing(dir, ms(0), vec![entry("b.jpg", 20)], &mut |_| true)
                .saw_new
        );
        let second = s.listing(dir, ms(400), vec![entry("b.jpg", 20)], &mut |_| true);
        assert!(
            second.ready.is_empty(),
            "that listing began before b settled"
        );
        // The next listing, begun after b settled, sees a: a waits, so b waits too.
        let third = s.listing(
            dir,
            ms(700),
            vec![entry("a.jpg", 10), entry("b.jpg", 20)],
            &mut |_| true,
        );
        assert!(third.saw_new);
        assert!(third.ready.is_empty(), "{:?}", names(&third));
        let fourth = s.listing(
            dir,
            ms(1300),
            vec![entry("a.jpg", 10), entry("b.jpg", 20)],
            &mut |_| true,
        );
        assert_eq!(names(&fourth), ["a.jpg", "b.jpg"]);
    }

    #[test]
    fn a_locked_older_file_holds_back_the_newer_ones() {
        let mut s = Settler::new(SETTLE);
        let dir = Path::new("/in");
        let files = vec![entry("cover.jpg", 10), entry("page.jpg", 20)];
        s.listing(dir, ms(0), files.clone(), &mut |_| true);
        let locked = |p: &Path| !p.ends_with("cover.jpg");
        let listed = s.listing(dir, ms(60_000), files.clone(), &mut { locked });
        assert!(listed.ready.is_empty(), "nothing may pass a locked cover");
        assert_eq!(s.waiting(dir), 2);
        let listed = s.listing(dir, ms(61_000), files, &mut |_| true);
        assert_eq!(names(&listed), ["cover.jpg", "page.jpg"]);
        assert_eq!(s.waiting(dir), 0);
    }

    #[test]
    fn a_changed_file_starts_settling_again_and_taken_files_are_not_handed_out_twice() {
        let mut s = Settler::new(SETTLE);
        let dir = Path::new("/in");
        s.listing(dir, ms(0), vec![entry("a.jpg", 10)], &mut |_| true);
        assert_eq!(
            names(&s.listing(dir, ms(600), vec![entry("a.jpg", 10)], &mut |_| true)),
            ["a.jpg"]
        );
        assert!(
            s.listing(dir, ms(1200), vec![entry("a.jpg", 10)], &mut |_| true)
                .ready
                .is_empty()
        );
        // Rewritten: a new version, settled afresh.
        let rewritten = Entry {
            size: 11,
            ..entry("a.jpg", 10)
        };
        let listed = s.listing(dir, ms(1300), vec![rewritten.clone()], &mut |_| true);
        assert!(listed.saw_new && listed.ready.is_empty());
        assert_eq!(
            names(&s.listing(dir, ms(1900), vec![rewritten], &mut |_| true)),
            ["a.jpg"]
        );
    }
}
