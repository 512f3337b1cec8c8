//! The forwarding rule: where a job should run, given what gossip says
//! about the peers (see docs/mesh.md).
//!
//! Gossip is a few hundred milliseconds to seconds stale, and several entry
//! nodes may decide at once, so the rule is built to tolerate it:
//! - it looks at only two random candidates and keeps the less loaded one
//!   ("the power of two choices"), so that entry nodes with the same stale
//!   view do not all pile onto the one peer that looked idle;
//! - it counts, for each peer, the jobs this node itself has handed it and
//!   not yet seen finish, which gossip may not show yet;
//! - it forwards only when the peer's expected wait is clearly shorter than
//!   ours (by [`SLACK`] and the forwarding cost), so equal nodes do not
//!   bounce work back and forth;
//! - the peer checks again with fresh figures and answers BUSY when it
//!   would be slower than the entry node expected (the request's
//!   `max_wait_s`), and the entry node then tries the other candidate or
//!   keeps the job.

use std::hash::{BuildHasher, Hasher};

/// How loaded a node is.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Load {
    /// Jobs waiting.
    pub queue_length: u64,
    /// Jobs running.
    pub busy: u64,
    /// Worker threads.
    pub workers: u64,
    /// Recent mean job time, seconds (0 before the first job).
    pub mean_job_s: f64,
}

impl Load {
    /// Seconds until a job sent now would be finished: its own run, plus its
    /// share of the jobs ahead of it once every worker is taken. A node that
    /// has not run a job yet is assumed to take `fallback_mean_s`.
    pub fn expected_s(&self, fallback_mean_s: f64) -> f64 {
        let mean = if self.mean_job_s > 0.0 {
            self.mean_job_s
        } else {
            fallback_mean_s
        };
        let workers = self.workers.max(1);
        let ahead = self.queue_length + self.busy;
        let waiting_for_a_worker = (ahead + 1).saturating_sub(workers);
        mean * (1.0 + waiting_for_a_worker as f64 / workers as f64)
    }

    /// This load with `extra` more jobs in the queue.
    fn with_queued(self, extra: u64) -> Load {
        Load {
            queue_length: self.queue_length + extra,
            ..self
        }
    }
}

/// A peer that could take the job, as this node sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    /// Its load according to gossip.
    pub load: Load,
    /// Jobs this node has forwarded to it that have not finished.
    pub in_flight_from_us: u64,
}

impl Candidate {
    /// Its load, counting the jobs we sent that gossip may not show yet:
    /// the larger of the two views, since our forwards are part of its load.
    pub fn effective_load(&self) -> Load {
        let seen = self.load.queue_length + self.load.busy;
        self.load
            .with_queued(self.in_flight_from_us.saturating_sub(seen))
    }
}

/// How much shorter a peer's expected time must be, as a fraction of it,
/// before a job is worth moving.
pub const SLACK: f64 = 0.25;

/// The assumed job time when no node has run a job yet, seconds.
const UNKNOWN_MEAN_S: f64 = 0.1;

/// Where a job should go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Decision {
    /// Run it here.
    Local,
    /// Hand it to `candidates[index]`; the peer should refuse it (BUSY) if
    /// it cannot finish it within `max_wait_s`.
    Forward {
        /// Index in the candidate list.
        index: usize,
        /// Our own expected time for the job.
        max_wait_s: f64,
    },
}

/// The two-choices rule: `local` is this node's load, `candidates` the live
/// peers able to run the job, `overhead_s` the cost of forwarding one job.
pub(crate) fn decide(local: Load, candidates: &[Candidate], overhead_s: f64) -> Decision {
    let Some((index, peer)) = pick_two(candidates, local.mean_job_s) else {
        return Decision::Local;
    };
    let fallback = fallback_mean(local, peer);
    let ours = local.expected_s(fallback);
    let theirs = peer.expected_s(fallback);
    if theirs * (1.0 + SLACK) + overhead_s < ours {
        Decision::Forward {
            index,
            max_wait_s: ours,
        }
    } else {
        Decision::Local
    }
}

/// The less loaded of two random candidates (for role routing and for
/// `--forwarding always`): an index into `candidates`.
pub(crate) fn least_loaded_of_two(candidates: &[Candidate], fallback_mean_s: f64) -> Option<usize> {
    pick_two(candidates, fallback_mean_s).map(|(i, _)| i)
}

fn pick_two(candidates: &[Candidate], fallback_mean_s: f64) -> Option<(usize, Load)> {
    let n = candidates.len();
    if n == 0 {
        return None;
    }
    let a = random_below(n);
    let b = if n == 1 {
        a
    } else {
        // A second, different candidate.
        (a + 1 + random_below(n - 1)) % n
    };
    let fallback = if fallback_mean_s > 0.0 {
        fallback_mean_s
    } else {
        UNKNOWN_MEAN_S
    };
    let (la, lb) = (
        candidates[a].effective_load(),
        candidates[b].effective_load(),
    );
    if lb.expected_s(fallback) < la.expected_s(fallback) {
        Some((b, lb))
    } else {
        Some((a, la))
    }
}

fn fallback_mean(local: Load, peer: Load) -> f64 {
    [local.mean_job_s, peer.mean_job_s]
        .into_iter()
        .find(|&m| m > 0.0)
        .unwrap_or(UNKNOWN_MEAN_S)
}

/// A random index below `n` (n > 0). The standard library's randomly keyed
/// hasher is random enough for choosing peers; a random-number crate
/// would add a dependency for two calls per job.
fn random_below(n: usize) -> usize {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(queue_length: u64, busy: u64, workers: u64, mean_job_s: f64) -> Load {
        Load {
            queue_length,
            busy,
            workers,
            mean_job_s,
        }
    }

    fn peer(l: Load) -> Candidate {
        Candidate {
            load: l,
            in_flight_from_us: 0,
        }
    }

    #[test]
    fn expected_time_counts_jobs_ahead_per_worker() {
        assert_eq!(load(0, 0, 1, 1.0).expected_s(9.0), 1.0);
        assert_eq!(load(0, 1, 1, 1.0).expected_s(9.0), 2.0);
        assert_eq!(load(3, 1, 1, 1.0).expected_s(9.0), 5.0);
        // Two workers, one free: no wait.
        assert_eq!(load(0, 1, 2, 1.0).expected_s(9.0), 1.0);
        assert_eq!(load(2, 2, 2, 1.0).expected_s(9.0), 2.5);
        // No job run yet: the fallback mean.
        assert_eq!(load(0, 0, 1, 0.0).expected_s(0.5), 0.5);
    }

    #[test]
    fn an_idle_node_keeps_its_job() {
        let idle = load(0, 0, 1, 0.05);
        assert_eq!(decide(idle, &[peer(idle)], 0.001), Decision::Local);
        assert_eq!(decide(idle, &[], 0.0), Decision::Local);
    }

    #[test]
    fn a_busy_node_forwards_to_an_idle_peer_with_its_own_time_as_limit() {
        let busy = load(1, 1, 1, 0.05);
        let idle = load(0, 0, 1, 0.05);
        match decide(busy, &[peer(idle)], 0.001) {
            Decision::Forward { index, max_wait_s } => {
                assert_eq!(index, 0);
                assert!((max_wait_s - busy.expected_s(0.05)).abs() < 1e-12);
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn equal_loads_do_not_move_jobs() {
        let l = load(4, 1, 1, 0.05);
        assert_eq!(decide(l, &[peer(l), peer(l)], 0.0), Decision::Local);
    }

    #[test]
    fn jobs_we_sent_count_until_gossip_shows_them() {
        let local = load(2, 1, 1, 0.05);
        let stale = Candidate {
            load: load(0, 0, 1, 0.05),
            in_flight_from_us: 3,
        };
        assert_eq!(stale.effective_load().queue_length, 3);
        assert_eq!(decide(local, &[stale], 0.0), Decision::Local);
        // Once gossip shows them, they are not counted twice.
        let fresh = Candidate {
            load: load(2, 1, 1, 0.05),
            in_flight_from_us: 3,
        };
        assert_eq!(fresh.effective_load().queue_length, 2);
    }

    #[test]
    fn of_two_candidates_the_less_loaded_wins() {
        let local = load(10, 1, 1, 0.05);
        let cands = [peer(load(6, 1, 1, 0.05)), peer(load(0, 1, 1, 0.05))];
        for _ in 0..20 {
            assert_eq!(
                decide(local, &cands, 0.0),
                Decision::Forward {
                    index: 1,
                    max_wait_s: local.expected_s(0.05)
                }
            );
            assert_eq!(least_loaded_of_two(&cands, 0.05), Some(1));
        }
    }

    #[test]
    fn random_choice_reaches_every_candidate() {
        let cands = vec![peer(load(0, 0, 1, 0.05)); 5];
        let mut seen = [false; 5];
        for _ in 0..500 {
            seen[least_loaded_of_two(&cands, 0.05).unwrap()] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }
}
