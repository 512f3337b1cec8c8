//! The job queue: bounded, first come first served, shared by all clients.
//!
//! Invariants: at most `capacity` jobs wait; a waiting job is told its
//! position whenever it changes (and at every heartbeat), and positions
//! only decrease; a job whose caller has gone is never started. The queue
//! knows nothing of where jobs come from (connections, peers) or where
//! they may go: it holds `W` and reports through [`JobSink`]. Workers are
//! OS threads (the work is CPU-bound and uses rayon inside) that block on
//! a condition variable until a job is ready.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ocellus_protocol::message::{Accepted, Position};

use crate::call::{JobSink, Progress};

/// A unit of work with the caller it came from.
pub struct QueuedJob<W> {
    /// Node-wide job number, in arrival order.
    pub job: u64,
    /// The client's request id.
    pub request_id: u64,
    /// Set when the client has gone: the job is skipped or its result dropped.
    pub cancelled: Arc<AtomicBool>,
    /// Where progress goes.
    pub sink: Arc<dyn JobSink>,
    /// The queued item (the node's `Task`).
    pub task: W,
    /// When it entered the queue (its wait is measured from here).
    pub queued: Instant,
    last_position: u64,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The queue is at capacity.
    Full {
        /// Jobs waiting.
        queue_length: u64,
        /// Capacity.
        capacity: u64,
    },
    /// The node is shutting down.
    ShuttingDown,
}

/// Counters for STATUS.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStats {
    /// Jobs waiting.
    pub queue_length: u64,
    /// Jobs running.
    pub busy: u64,
    /// Jobs finished successfully.
    pub jobs_done: u64,
    /// Jobs that ended in an error.
    pub jobs_failed: u64,
    /// Recent average run time of a job, seconds.
    pub mean_job_s: f64,
}

struct State<W> {
    waiting: VecDeque<QueuedJob<W>>,
    running: Vec<u64>,
    next_job: u64,
    stats: QueueStats,
    shutting_down: bool,
}

/// The shared queue. `W` is the job payload the workers execute.
pub struct JobQueue<W> {
    state: Mutex<State<W>>,
    ready: Condvar,
    capacity: usize,
    workers: usize,
}

/// Weight of the newest job time in the moving average.
const EWMA_WEIGHT: f64 = 0.2;

impl<W> JobQueue<W> {
    /// A queue holding at most `capacity` waiting jobs, served by `workers`
    /// workers (used for the wait estimate).
    pub fn new(capacity: usize, workers: usize) -> Self {
        JobQueue {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                running: Vec::new(),
                next_job: 1,
                stats: QueueStats::default(),
                shutting_down: false,
            }),
            ready: Condvar::new(),
            capacity,
            workers: workers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // A worker that panicked while holding the lock leaves consistent
        // data (every update is a single push/pop), so go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a job at the back and tells it ACCEPTED with its position; gives
    /// the work back when the queue refuses it.
    pub fn push(
        &self,
        request_id: u64,
        cancelled: Arc<AtomicBool>,
        sink: Arc<dyn JobSink>,
        work: W,
    ) -> Result<u64, (Rejected, W)> {
        let mut s = self.lock();
        if s.shutting_down {
            return Err((Rejected::ShuttingDown, work));
        }
        if s.waiting.len() >= self.capacity {
            let full = Rejected::Full {
                queue_length: s.waiting.len() as u64,
                capacity: self.capacity as u64,
            };
            return Err((full, work));
        }
        let job = s.next_job;
        s.next_job += 1;
        let position = s.waiting.len() as u64 + 1;
        sink.progress(
            request_id,
            Progress::Accepted(Accepted {
                job,
                position,
                queue_length: position,
            }),
        );
        s.waiting.push_back(QueuedJob {
            job,
            request_id,
            cancelled,
            sink,
            task: work,
            queued: Instant::now(),
            last_position: position,
        });
        s.stats.queue_length = s.waiting.len() as u64;
        drop(s);
        self.ready.notify_one();
        Ok(job)
    }

    /// Blocks until a job is ready and returns it (marked running), or
    /// `None` once the queue is shutting down and empty.
    pub fn pop(&self) -> Option<QueuedJob<W>> {
        let mut s = self.lock();
        loop {
            while let Some(job) = s.waiting.pop_front() {
                if job.cancelled.load(Ordering::Acquire) {
                    continue;
                }
                s.running.push(job.job);
                s.stats.busy = s.running.len() as u64;
                s.stats.queue_length = s.waiting.len() as u64;
                job.sink
                    .progress(job.request_id, Progress::Started { job: job.job });
                self.announce_positions(&mut s, false);
                return Some(job);
            }
            if s.shutting_down {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Records the end of a running job.
    pub fn finish(&self, job: u64, ok: bool, elapsed: Duration) {
        self.release(job, elapsed);
        self.count(ok);
    }

    /// Records that a job no longer needs its worker (it ran for
    /// `elapsed`), without counting its outcome yet: the rest of it is a
    /// wait elsewhere, and [`count`](Self::count) follows.
    pub fn release(&self, job: u64, elapsed: Duration) {
        let mut s = self.lock();
        s.running.retain(|&j| j != job);
        s.stats.busy = s.running.len() as u64;
        let t = elapsed.as_secs_f64();
        s.stats.mean_job_s = if s.stats.mean_job_s == 0.0 {
            t
        } else {
            (1.0 - EWMA_WEIGHT) * s.stats.mean_job_s + EWMA_WEIGHT * t
        };
    }

    /// Counts a job's outcome.
    pub fn count(&self, ok: bool) {
        let mut s = self.lock();
        if ok {
            s.stats.jobs_done += 1;
        } else {
            s.stats.jobs_failed += 1;
        }
    }

    /// Removes the waiting jobs whose client has gone; the others learn
    /// their new positions.
    pub fn purge_cancelled(&self) {
        let mut s = self.lock();
        let before = s.waiting.len();
        s.waiting.retain(|j| !j.cancelled.load(Ordering::Acquire));
        if s.waiting.len() != before {
            s.stats.queue_length = s.waiting.len() as u64;
            self.announce_positions(&mut s, false);
        }
    }

    /// Sends every waiting job its position: all of them (`heartbeat`), or
    /// only those whose position changed.
    pub fn heartbeat(&self) {
        let mut s = self.lock();
        self.announce_positions(&mut s, true);
    }

    fn announce_positions(&self, s: &mut State<W>, all: bool) {
        let queue_length = s.waiting.len() as u64;
        let processing = s.running.clone();
        let mean = s.stats.mean_job_s;
        let workers = self.workers as f64;
        for (i, job) in s.waiting.iter_mut().enumerate() {
            let position = i as u64 + 1;
            if !all && position == job.last_position {
                continue;
            }
            job.last_position = position;
            // Jobs ahead of us, plus the ones running, shared by the workers.
            let eta_s = mean * (position as f64 - 1.0 + processing.len() as f64) / workers + mean;
            job.sink.progress(
                job.request_id,
                Progress::Position(Position {
                    position,
                    queue_length,
                    processing: processing.clone(),
                    eta_s,
                }),
            );
        }
    }

    /// Stops accepting jobs; returns the waiting ones (for the caller to
    /// answer) and wakes the workers so that they exit when idle.
    pub fn shut_down(&self) -> Vec<QueuedJob<W>> {
        let mut s = self.lock();
        s.shutting_down = true;
        let drained: Vec<_> = s.waiting.drain(..).collect();
        s.stats.queue_length = 0;
        drop(s);
        self.ready.notify_all();
        drained
    }

    /// Current counters.
    pub fn stats(&self) -> QueueStats {
        self.lock().stats
    }

    /// Whether [`shut_down`](Self::shut_down) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.lock().shutting_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, Progress)>>);

    impl JobSink for Recorder {
        fn progress(&self, request_id: u64, progress: Progress) {
            self.0.lock().unwrap().push((request_id, progress));
        }
    }

    fn positions(r: &Recorder, id: u64) -> Vec<u64> {
        r.0.lock()
            .unwrap()
            .iter()
            .filter(|(rid, _)| *rid == id)
            .filter_map(|(_, p)| match p {
                Progress::Accepted(a) => Some(a.position),
                Progress::Position(p) => Some(p.position),
                Progress::Started { .. } | Progress::Relayed { .. } => None,
            })
            .collect()
    }

    #[test]
    fn fifo_positions_only_decrease_and_bounded() {
        let q = JobQueue::new(3, 1);
        let rec = Arc::new(Recorder::default());
        for id in 1..=3 {
            q.push(id, Arc::default(), rec.clone(), id).unwrap();
        }
        assert_eq!(
            q.push(4, Arc::default(), rec.clone(), 4),
            Err((
                Rejected::Full {
                    queue_length: 3,
                    capacity: 3
                },
                4
            ))
        );
        let first = q.pop().unwrap();
        assert_eq!(first.task, 1);
        q.finish(first.job, true, Duration::from_millis(10));
        assert_eq!(q.pop().unwrap().task, 2);
        assert_eq!(positions(&rec, 3), vec![3, 2, 1]);
        assert_eq!(q.stats().jobs_done, 1);
        assert_eq!(q.stats().busy, 1);
    }

    #[test]
    fn cancelled_jobs_are_skipped_and_others_move_up() {
        let q = JobQueue::new(10, 2);
        let rec = Arc::new(Recorder::default());
        let gone = Arc::new(AtomicBool::new(false));
        q.push(1, gone.clone(), rec.clone(), "a").unwrap();
        q.push(2, gone.clone(), rec.clone(), "b").unwrap();
        q.push(3, Arc::default(), rec.clone(), "c").unwrap();
        gone.store(true, Ordering::Release);
        q.purge_cancelled();
        assert_eq!(positions(&rec, 3), vec![3, 1]);
        assert_eq!(q.pop().unwrap().task, "c");
    }

    #[test]
    fn shutdown_drains_and_releases_workers() {
        let q = Arc::new(JobQueue::new(10, 1));
        let rec = Arc::new(Recorder::default());
        q.push(1, Arc::default(), rec.clone(), 1).unwrap();
        let drained = q.shut_down();
        assert_eq!(drained.len(), 1);
        assert_eq!(
            q.push(2, Arc::default(), rec, 2),
            Err((Rejected::ShuttingDown, 2))
        );
        let worker = {
            let q = q.clone();
            std::thread::spawn(move || q.pop().is_none())
        };
        assert!(worker.join().unwrap());
    }
}
