//! Room on the desk: the spool is bounded, and a disk nearly full stops new
//! scans from being taken (they wait in the inbox, and are taken once there is
//! room) instead of failing half way through a spool write.
//!
//! The checks do not depend on the size of the file at hand, so every file
//! waits alike and scan order holds; a file may overshoot the spool limit by
//! its own size (≤ 256 MiB).

use std::path::Path;

/// Queue meta key holding why scans are waiting, for `imc-agent status`.
pub const ROOM_KEY: &str = "room";

#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub max_spool_bytes: u64,
    pub min_free_bytes: u64,
}

const MIB: u64 = 1024 * 1024;

impl Room {
    /// Why no more pages may be spooled now, if so.
    pub fn check(&self, spool_dir: &Path, spooled_bytes: u64) -> Result<(), String> {
        if spooled_bytes >= self.max_spool_bytes {
            return Err(format!(
                "spool full: {} MiB of pages wait for the server, the limit is {} MiB (max_spool_mb); \
                 new scans wait in the inbox",
                spooled_bytes / MIB,
                self.max_spool_bytes / MIB
            ));
        }
        if let Some(free) = free_bytes(spool_dir)
            && free < self.min_free_bytes
        {
            return Err(format!(
                "disk nearly full: {} MiB free on {}, the agent keeps {} MiB free (min_free_disk_mb); \
                 new scans wait in the inbox",
                free / MIB,
                spool_dir.display(),
                self.min_free_bytes / MIB
            ));
        }
        Ok(())
    }
}

/// Bytes an unprivileged writer may still use on the file system holding
/// `dir`; `None` where that cannot be asked.
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_spool_or_a_nearly_full_disk_stops_new_scans() {
        let dir = tempfile::tempdir().unwrap();
        let roomy = Room {
            max_spool_bytes: 10 * MIB,
            min_free_bytes: 0,
        };
        assert!(roomy.check(dir.path(), 9 * MIB).is_ok());
        let why = roomy.check(dir.path(), 10 * MIB).unwrap_err();
        assert!(why.starts_with("spool full: 10 MiB"), "{why}");
        #[cfg(unix)]
        {
            let free = free_bytes(dir.path()).unwrap();
            assert!(free > 0);
            let greedy = Room {
                max_spool_bytes: u64::MAX,
                min_free_bytes: free.saturating_add(1024 * MIB),
            };
            let why = greedy.check(dir.path(), 0).unwrap_err();
            assert!(why.starts_with("disk nearly full"), "{why}");
        }
    }
}
