//! The job queue: bounded, shared by all clients, and fair between them.
//!
//! Each client (the key it authenticated with, else its IP address: see
//! [`ClientId`]) has its own line of waiting jobs, and the workers take
//! the next job from each client in turn (round-robin): a client that
//! queues many jobs waits behind its own, not in front of everyone else.
//! A client whose line was empty joins at the front of the turn (it has
//! had nothing in this one), so a client sending one job at a time waits
//! only for a worker to be free.
//!
//! Invariants: at most `capacity` jobs wait in all, and at most
//! `per_client` of one client; a waiting job is told its position
//! whenever it changes (and at every heartbeat), and the position is
//! truthful: the number of jobs that will start before it, under this
//! order, plus one. (With one client the order is first come first served
//! and positions only decrease; a new client's arrival can move later
//! jobs of others back, by at most one per turn ahead of them.) A job
//! whose caller has gone is never started. The queue knows nothing of
//! where jobs come from (connections, peers) or where they may go: it
//! holds `W` and reports through [`JobSink`]. Workers are OS threads (the
//! work is CPU-bound and uses rayon inside) that block on a condition
//! variable until a job is ready.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ocellus_protocol::message::{Accepted, Position};

use crate::call::{JobSink, Progress};

pub(crate) use crate::call::ClientId;

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
    /// This client has as many jobs waiting as one client may.
    ClientFull {
        /// The client's jobs waiting.
        queued: u64,
        /// What one client may have waiting.
        per_client: u64,
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
    /// Jobs that started but whose client had gone: stopped at a
    /// checkpoint or their result discarded (neither done nor failed).
    pub jobs_cancelled: u64,
    /// Recent average run time of a job, seconds.
    pub mean_job_s: f64,
    /// Clients with jobs waiting.
    pub clients_waiting: u64,
}

struct State<W> {
    /// Each client's waiting jobs, oldest first; only clients with some.
    lines: HashMap<ClientId, VecDeque<QueuedJob<W>>>,
    /// The clients of `lines`, in the order they are served next.
    ring: VecDeque<ClientId>,
    waiting: usize,
    running: Vec<u64>,
    next_job: u64,
    stats: QueueStats,
    shutting_down: bool,
}

impl<W> State<W> {
    fn update_counts(&mut self) {
        self.stats.queue_length = self.waiting as u64;
        self.stats.clients_waiting = self.ring.len() as u64;
        self.stats.busy = self.running.len() as u64;
    }

    /// The next job in serving order (skipping cancelled ones), taken out.
    fn take_next(&mut self) -> Option<QueuedJob<W>> {
        while let Some(client) = self.ring.pop_front() {
            let Some(line) = self.lines.get_mut(&client) else {
                continue;
            };
            let Some(job) = line.pop_front() else {
                self.lines.remove(&client);
                continue;
            };
            self.waiting -= 1;
            let more = !line.is_empty();
            if !more {
                self.lines.remove(&client);
            }
            if job.cancelled.load(Ordering::Acquire) {
                // Not served: the client keeps its turn.
                if more {
                    self.ring.push_front(client);
                }
                continue;
            }
            if more {
                self.ring.push_back(client);
            }
            return Some(job);
        }
        None
    }

    /// Position of the job at index `k` of the line of the client at
    /// index `r` of the ring, given every line's length in ring order:
    /// in each turn before its own, every client with jobs left runs one;
    /// in its own turn, the clients before it in the ring do.
    fn position(lengths: &[usize], r: usize, k: usize) -> u64 {
        let earlier_turns: usize = lengths.iter().map(|&l| l.min(k)).sum();
        let this_turn = lengths[..r].iter().filter(|&&l| l > k).count();
        (earlier_turns + this_turn + 1) as u64
    }

    fn lengths(&self) -> Vec<usize> {
        self.ring
            .iter()
            .map(|c| self.lines.get(c).map_or(0, VecDeque::len))
            .collect()
    }
}

/// The shared queue. `W` is the job payload the workers execute.
pub struct JobQueue<W> {
    state: Mutex<State<W>>,
    ready: Condvar,
    capacity: usize,
    per_client: usize,
    workers: usize,
}

/// Weight of the newest job time in the moving average.
const EWMA_WEIGHT: f64 = 0.2;

impl<W> JobQueue<W> {
    /// A queue holding at most `capacity` waiting jobs, any number of them
    /// from one client, served by `workers` workers (used for the wait
    /// estimate).
    #[cfg(test)]
    pub fn new(capacity: usize, workers: usize) -> Self {
        Self::with_client_cap(capacity, capacity, workers)
    }

    /// A queue holding at most `capacity` waiting jobs, at most
    /// `per_client` of them from one client.
    pub fn with_client_cap(capacity: usize, per_client: usize, workers: usize) -> Self {
        JobQueue {
            state: Mutex::new(State {
                lines: HashMap::new(),
                ring: VecDeque::new(),
                waiting: 0,
                running: Vec::new(),
                next_job: 1,
                stats: QueueStats::default(),
                shutting_down: false,
            }),
            ready: Condvar::new(),
            capacity,
            per_client: per_client.max(1),
            workers: workers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // A worker that panicked while holding the lock leaves consistent
        // data (every update completes before anything can fail), so go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a job at the back of its client's line and tells it ACCEPTED
    /// with its position; gives the work back when the queue refuses it.
    pub fn push(
        &self,
        client: &ClientId,
        request_id: u64,
        cancelled: Arc<AtomicBool>,
        sink: Arc<dyn JobSink>,
        work: W,
    ) -> Result<u64, (Rejected, W)> {
        let mut s = self.lock();
        if s.shutting_down {
            return Err((Rejected::ShuttingDown, work));
        }
        if s.waiting >= self.capacity {
            let full = Rejected::Full {
                queue_length: s.waiting as u64,
                capacity: self.capacity as u64,
            };
            return Err((full, work));
        }
        let queued = s.lines.get(client).map_or(0, VecDeque::len);
        if queued >= self.per_client {
            let full = Rejected::ClientFull {
                queued: queued as u64,
                per_client: self.per_client as u64,
            };
            return Err((full, work));
        }
        let job = s.next_job;
        s.next_job += 1;
        if queued == 0 {
            // A client with nothing waiting has had no job in this turn:
            // its job is the next to start (a client that sends one job
            // at a time waits for one free worker, never behind the
            // clients that keep lines).
            s.ring.push_front(client.clone());
        }
        let lengths = {
            let mut l = s.lengths();
            let r = s.ring.iter().position(|c| c == client).unwrap_or(0);
            if let Some(len) = l.get_mut(r) {
                *len = queued + 1;
            }
            (l, r)
        };
        let position = State::<W>::position(&lengths.0, lengths.1, queued);
        s.waiting += 1;
        sink.progress(
            request_id,
            Progress::Accepted(Accepted {
                job,
                position,
                queue_length: s.waiting as u64,
            }),
        );
        s.lines
            .entry(client.clone())
            .or_default()
            .push_back(QueuedJob {
                job,
                request_id,
                cancelled,
                sink,
                task: work,
                queued: Instant::now(),
                last_position: position,
            });
        s.update_counts();
        // Another client's later jobs may now come after this one.
        self.announce_positions(&mut s, false);
        drop(s);
        self.ready.notify_one();
        Ok(job)
    }

    /// Blocks until a job is ready and returns it (marked running), or
    /// `None` once the queue is shutting down and empty.
    pub fn pop(&self) -> Option<QueuedJob<W>> {
        let mut s = self.lock();
        loop {
            if let Some(job) = s.take_next() {
                s.running.push(job.job);
                s.update_counts();
                job.sink
                    .progress(job.request_id, Progress::Started { job: job.job });
                self.announce_positions(&mut s, false);
                return Some(job);
            }
            s.update_counts();
            if s.shutting_down {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Records that a job no longer needs its worker (it ran for
    /// `elapsed`). Its outcome is counted apart, by [`count`](Self::count)
    /// or [`count_cancelled`](Self::count_cancelled), once it is known (a
    /// forwarded job's is known only when the peer answers).
    pub fn release(&self, job: u64, elapsed: Duration) {
        let mut s = self.lock();
        s.running.retain(|&j| j != job);
        s.update_counts();
        let t = elapsed.as_secs_f64();
        s.stats.mean_job_s = if s.stats.mean_job_s == 0.0 {
            t
        } else {
            (1.0 - EWMA_WEIGHT) * s.stats.mean_job_s + EWMA_WEIGHT * t
        };
    }

    /// Counts a started job whose client had gone before it ended.
    pub fn count_cancelled(&self) {
        self.lock().stats.jobs_cancelled += 1;
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
        let before = s.waiting;
        let mut removed = 0;
        for line in s.lines.values_mut() {
            let len = line.len();
            line.retain(|j| !j.cancelled.load(Ordering::Acquire));
            removed += len - line.len();
        }
        if removed == 0 {
            return;
        }
        s.waiting = before - removed;
        s.lines.retain(|_, line| !line.is_empty());
        let lines = std::mem::take(&mut s.lines);
        s.ring.retain(|c| lines.contains_key(c));
        s.lines = lines;
        s.update_counts();
        self.announce_positions(&mut s, false);
    }

    /// Sends every waiting job its position: all of them (`heartbeat`), or
    /// only those whose position changed.
    pub fn heartbeat(&self) {
        let mut s = self.lock();
        self.announce_positions(&mut s, true);
    }

    fn announce_positions(&self, s: &mut State<W>, all: bool) {
        let queue_length = s.waiting as u64;
        let processing = s.running.clone();
        let mean = s.stats.mean_job_s;
        let workers = self.workers as f64;
        let lengths = s.lengths();
        let State { lines, ring, .. } = s;
        for (r, client) in ring.iter().enumerate() {
            let Some(line) = lines.get_mut(client) else {
                continue;
            };
            for (k, job) in line.iter_mut().enumerate() {
                let position = State::<W>::position(&lengths, r, k);
                if !all && position == job.last_position {
                    continue;
                }
                job.last_position = position;
                // Jobs ahead of us, plus the ones running, shared by the workers.
                let eta_s =
                    mean * (position as f64 - 1.0 + processing.len() as f64) / workers + mean;
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
    }

    /// Stops accepting jobs; returns the waiting ones in serving order
    /// (for the caller to answer) and wakes the workers so that they exit
    /// when idle.
    pub fn shut_down(&self) -> Vec<QueuedJob<W>> {
        let mut s = self.lock();
        s.shutting_down = true;
        let mut drained = Vec::with_capacity(s.waiting);
        while let Some(client) = s.ring.pop_front() {
            let Some(line) = s.lines.get_mut(&client) else {
                continue;
            };
            if let Some(job) = line.pop_front() {
                drained.push(job);
            }
            if line.is_empty() {
                s.lines.remove(&client);
            } else {
                s.ring.push_back(client);
            }
        }
        s.lines.clear();
        s.waiting = 0;
        s.update_counts();
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

    fn me() -> ClientId {
        ClientId::from("ip:127.0.0.1")
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
            q.push(&me(), id, Arc::default(), rec.clone(), id).unwrap();
        }
        assert_eq!(
            q.push(&me(), 4, Arc::default(), rec.clone(), 4),
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
        q.release(first.job, Duration::from_millis(10));
        q.count(true);
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
        q.push(&me(), 1, gone.clone(), rec.clone(), "a").unwrap();
        q.push(&me(), 2, gone.clone(), rec.clone(), "b").unwrap();
        q.push(&me(), 3, Arc::default(), rec.clone(), "c").unwrap();
        gone.store(true, Ordering::Release);
        q.purge_cancelled();
        assert_eq!(positions(&rec, 3), vec![3, 1]);
        assert_eq!(q.pop().unwrap().task, "c");
    }

    #[test]
    fn shutdown_drains_and_releases_workers() {
        let q = Arc::new(JobQueue::new(10, 1));
        let rec = Arc::new(Recorder::default());
        q.push(&me(), 1, Arc::default(), rec.clone(), 1).unwrap();
        let drained = q.shut_down();
        assert_eq!(drained.len(), 1);
        assert_eq!(
            q.push(&me(), 2, Arc::default(), rec, 2),
            Err((Rejected::ShuttingDown, 2))
        );
        let worker = {
            let q = q.clone();
            std::thread::spawn(move || q.pop().is_none())
        };
        assert!(worker.join().unwrap());
    }

    #[test]
    fn clients_are_served_in_turn_and_positions_count_the_turns() {
        let q = JobQueue::with_client_cap(100, 10, 1);
        let rec = Arc::new(Recorder::default());
        let (a, b) = (ClientId::from("ip:10.0.0.1"), ClientId::from("ip:10.0.0.2"));
        // A floods first: ids 1..=5; then B sends one job, id 100.
        for id in 1..=5 {
            q.push(&a, id, Arc::default(), rec.clone(), ("a", id))
                .unwrap();
        }
        q.push(&b, 100, Arc::default(), rec.clone(), ("b", 100))
            .unwrap();
        // B's job runs first, not sixth, and was told so.
        assert_eq!(positions(&rec, 100), vec![1]);
        // A's jobs moved back by one.
        assert_eq!(positions(&rec, 3), vec![3, 4]);
        let order: Vec<u64> = std::iter::from_fn(|| {
            let s = q.stats();
            (s.queue_length > 0).then(|| q.pop().unwrap().task.1)
        })
        .collect();
        assert_eq!(order, vec![100, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn one_client_over_its_cap_is_refused_others_are_not() {
        let q = JobQueue::with_client_cap(100, 2, 1);
        let rec = Arc::new(Recorder::default());
        let (a, b) = (ClientId::from("key:a"), ClientId::from("key:b"));
        q.push(&a, 1, Arc::default(), rec.clone(), 1).unwrap();
        q.push(&a, 2, Arc::default(), rec.clone(), 2).unwrap();
        assert_eq!(
            q.push(&a, 3, Arc::default(), rec.clone(), 3),
            Err((
                Rejected::ClientFull {
                    queued: 2,
                    per_client: 2
                },
                3
            ))
        );
        q.push(&b, 4, Arc::default(), rec.clone(), 4).unwrap();
        assert_eq!(q.stats().clients_waiting, 2);
        // B had nothing waiting: it goes first.
        assert_eq!(q.pop().unwrap().task, 4);
        assert_eq!(q.pop().unwrap().task, 1);
        // A has room again.
        q.push(&a, 5, Arc::default(), rec.clone(), 5).unwrap();
        let rest: Vec<i32> = (0..2).map(|_| q.pop().unwrap().task).collect();
        assert_eq!(rest, vec![2, 5]);
    }

    #[test]
    fn positions_are_what_really_happens() {
        // Three clients with uneven lines: every job's last position before
        // it started equals one plus the jobs started after that report.
        let q = JobQueue::with_client_cap(100, 100, 1);
        let rec = Arc::new(Recorder::default());
        let clients: Vec<ClientId> = ["x", "y", "z"].iter().map(|c| ClientId::from(*c)).collect();
        let mut id = 0;
        for (c, n) in [(0usize, 4u64), (1, 1), (2, 3), (0, 2), (1, 2)] {
            for _ in 0..n {
                id += 1;
                q.push(&clients[c], id, Arc::default(), rec.clone(), id)
                    .unwrap();
            }
        }
        // Snapshot of the positions now, then the real order.
        let told: Vec<(u64, u64)> = (1..=id)
            .map(|i| (i, *positions(&rec, i).last().unwrap()))
            .collect();
        let order: Vec<u64> = (0..id).map(|_| q.pop().unwrap().task).collect();
        for (i, position) in told {
            let ran_at = order.iter().position(|&j| j == i).unwrap() as u64 + 1;
            assert_eq!(position, ran_at, "job {i}: told {position}, ran {ran_at}th");
        }
    }
}
