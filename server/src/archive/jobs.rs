//! The exports this replica runs for the API: one at a time (two writing
//! one destination would race for the same bag names), the last
//! [`KEPT`] kept for `GET /archive/exports/{id}`.

use super::export::Progress;
use imc_shared::api::{ExportJob, ExportState};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// Finished jobs remembered.
const KEPT: usize = 100;

#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<BTreeMap<u64, ExportJob>>,
}

/// Why a job did not start.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy(pub u64);

impl Jobs {
    /// Registers a running job, or names the one still running.
    pub fn start(&self, out: String) -> Result<ExportJob, Busy> {
        let mut jobs = self.lock();
        if let Some(running) = jobs.values().find(|j| j.state == ExportState::Running) {
            return Err(Busy(running.id));
        }
        let id = jobs.keys().next_back().map_or(1, |last| last + 1);
        let job = ExportJob {
            id,
            state: ExportState::Running,
            out,
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: None,
            documents: 0,
            bags: 0,
            unchanged: 0,
            deferred: 0,
            bytes: 0,
            error: None,
        };
        jobs.insert(id, job.clone());
        while jobs.len() > KEPT {
            jobs.pop_first();
        }
        Ok(job)
    }

    pub fn progress(&self, id: u64, progress: &Progress) {
        if let Some(job) = self.lock().get_mut(&id) {
            job.documents = progress.documents;
            job.bags = progress.bags;
            job.unchanged = progress.unchanged;
            job.deferred = progress.deferred;
            job.bytes = progress.bytes;
        }
    }

    pub fn finish(&self, id: u64, result: Result<Progress, String>) {
        if let Some(job) = self.lock().get_mut(&id) {
            job.finished_at =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            match result {
                Ok(_) => job.state = ExportState::Done,
                Err(error) => {
                    job.state = ExportState::Failed;
                    job.error = Some(error);
                }
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<ExportJob> {
        self.lock().get(&id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ExportJob>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_export_runs_at_a_time_and_its_end_is_kept() {
        let jobs = Jobs::default();
        let first = jobs.start("/a".into()).unwrap();
        assert_eq!(jobs.start("/a".into()), Err(Busy(first.id)));
        let progress = Progress {
            documents: 3,
            bags: 2,
            unchanged: 1,
            deferred: 0,
            bytes: 10,
        };
        jobs.progress(first.id, &progress);
        jobs.finish(first.id, Err("document AP-1 (id 7): disk full".into()));
        let seen = jobs.get(first.id).unwrap();
        assert_eq!((seen.state, seen.bags), (ExportState::Failed, 2));
        assert!(seen.error.unwrap().contains("AP-1"));
        let second = jobs.start("/a".into()).unwrap();
        assert_eq!(second.id, first.id + 1);
    }
}
