//! Jobs over HTTP: a request submitted with `POST /v1/jobs/{op}` is
//! answered `202` at once with an id; its progress is a Server-Sent
//! Events stream (`GET /v1/jobs/{id}/events`), its result is fetched once
//! (`GET /v1/jobs/{id}/result`), and `DELETE /v1/jobs/{id}` withdraws it.
//!
//! Invariants: the table is bounded in count ([`MAX_JOBS`]) and in time (a
//! finished job is kept [`KEEP_FINISHED`], then forgotten; a job whose
//! result was fetched, expired or was evicted answers `410 gone`, for as
//! long as its id is remembered among the last [`REMEMBER_GONE`]); a job is
//! visible only to the key that submitted it (on a node with keys); a
//! client that leaves the event stream does not cancel the job.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocellus_protocol::Op;

use super::bridge::JobLog;

/// Jobs kept at most (waiting, running and finished): beyond, the oldest
/// finished one is forgotten, and with none finished a new job is BUSY.
pub(crate) const MAX_JOBS: usize = 1024;
/// How long a finished job's result is kept for the client to fetch.
pub(crate) const KEEP_FINISHED: Duration = Duration::from_secs(600);
/// Ids of forgotten jobs remembered (to answer 410 rather than 404).
const REMEMBER_GONE: usize = 4096;

/// One submitted job.
pub(crate) struct Job {
    /// Its id (random: not guessable from another's).
    pub id: String,
    /// What it does.
    pub op: Op,
    /// Who submitted it (the key's name; `-` on a node without keys).
    pub owner: String,
    /// Its events and answer.
    pub log: Arc<JobLog>,
    /// Set once the result has been fetched.
    pub taken: Mutex<bool>,
}

impl Job {
    fn finished_at(&self) -> Option<Instant> {
        self.log.answered_at()
    }
}

/// Why a job id answers nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Never known here (or forgotten long ago).
    Unknown,
    /// Fetched, expired or evicted.
    Gone,
}

/// The jobs of a node's HTTP side.
#[derive(Default)]
pub(crate) struct JobTable {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    jobs: HashMap<String, Arc<Job>>,
    order: VecDeque<String>,
    gone: VecDeque<String>,
}

impl Table {
    fn forget(&mut self, id: &str) {
        if self.jobs.remove(id).is_some() {
            self.order.retain(|o| o != id);
            self.gone.push_back(id.to_string());
            while self.gone.len() > REMEMBER_GONE {
                self.gone.pop_front();
            }
        }
    }

    /// Forgets finished jobs older than [`KEEP_FINISHED`], and taken ones.
    fn sweep(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .jobs
            .values()
            .filter(|j| {
                *j.taken.lock().unwrap_or_else(|p| p.into_inner())
                    || j.finished_at()
                        .is_some_and(|t| now.saturating_duration_since(t) > KEEP_FINISHED)
            })
            .map(|j| j.id.clone())
            .collect();
        for id in stale {
            self.forget(&id);
        }
    }
}

fn new_id() -> String {
    let mut bytes = [0u8; 12];
    // The OS's randomness; without it (never seen), a time-based id.
    if getrandom::fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(&t.to_le_bytes()[..12]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl JobTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a job; `None` when the table is full of unfinished jobs.
    pub fn insert(&self, op: Op, owner: String, log: Arc<JobLog>) -> Option<Arc<Job>> {
        let mut table = self.lock();
        table.sweep(Instant::now());
        if table.jobs.len() >= MAX_JOBS {
            let oldest_finished = table
                .order
                .iter()
                .find(|id| {
                    table
                        .jobs
                        .get(*id)
                        .is_some_and(|j| j.log.finished().is_some())
                })
                .cloned();
            match oldest_finished {
                Some(id) => table.forget(&id),
                None => return None,
            }
        }
        let job = Arc::new(Job {
            id: new_id(),
            op,
            owner,
            log,
            taken: Mutex::new(false),
        });
        table.order.push_back(job.id.clone());
        table.jobs.insert(job.id.clone(), job.clone());
        Some(job)
    }

    /// The job `id`, if `owner` may see it.
    pub fn get(&self, id: &str, owner: &str) -> Result<Arc<Job>, Missing> {
        let mut table = self.lock();
        table.sweep(Instant::now());
        match table.jobs.get(id) {
            Some(job) if job.owner == owner => Ok(job.clone()),
            Some(_) => Err(Missing::Unknown),
            None if table.gone.iter().any(|g| g == id) => Err(Missing::Gone),
            None => Err(Missing::Unknown),
        }
    }

    /// Forgets job `id` (its result was fetched, or it was cancelled).
    pub fn remove(&self, id: &str) {
        self.lock().forget(id);
    }

    /// Jobs held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::bridge::Reply;

    fn finished_log() -> Arc<JobLog> {
        let log = JobLog::new();
        log.finish(Reply {
            op: Op::Result,
            header: Default::default(),
            payload: Default::default(),
        });
        log
    }

    #[test]
    fn jobs_are_owned_bounded_and_remembered_when_gone() {
        let table = JobTable::default();
        let job = table
            .insert(Op::Filter, "ada".into(), JobLog::new())
            .unwrap();
        assert!(table.get(&job.id, "ada").is_ok());
        // Another key does not see it at all.
        assert_eq!(table.get(&job.id, "bob").err(), Some(Missing::Unknown));
        assert_eq!(table.get("nope", "ada").err(), Some(Missing::Unknown));
        table.remove(&job.id);
        assert_eq!(table.get(&job.id, "ada").err(), Some(Missing::Gone));

        // Full of unfinished jobs: refused; a finished one makes room.
        let table = JobTable::default();
        for _ in 0..MAX_JOBS - 1 {
            table.insert(Op::Filter, "-".into(), JobLog::new()).unwrap();
        }
        let done = table
            .insert(Op::Filter, "-".into(), finished_log())
            .unwrap();
        assert_eq!(table.len(), MAX_JOBS);
        let newer = table.insert(Op::Filter, "-".into(), JobLog::new());
        assert!(newer.is_some(), "the finished job is evicted");
        assert_eq!(table.get(&done.id, "-").err(), Some(Missing::Gone));
        assert!(
            table
                .insert(Op::Filter, "-".into(), JobLog::new())
                .is_none()
        );
    }

    #[test]
    fn ids_are_random_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }
}
