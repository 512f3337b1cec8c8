//! The worker threads: each takes the next job from the queue, runs it and
//! answers.
//!
//! Invariant: a worker thread is held only by CPU work. A job whose rest
//! is a wait on another node ([`Ran::Remote`]) hands that wait to the
//! async runtime and the worker takes the next job; the job's recorded run
//! time (which feeds `mean_job_s`, and so the forwarding rule) is the CPU
//! part alone; the run time in the metrics is start to result, the wait
//! included, which is what its caller sees.

use std::sync::Arc;
use std::time::Instant;

use ocellus_protocol::field;
use tracing::{info, warn};

use super::{Cancel, JobQueue, Output, Ran, Task};
use crate::call::Responder;
use crate::metrics::Metrics;
use crate::roles::Roles;

/// What the workers share.
pub(crate) struct Workers {
    pub queue: Arc<JobQueue<Task>>,
    pub roles: Arc<Roles>,
    /// Put in every RESULT: where the job ran.
    pub node_id: String,
    /// Where waits on other nodes run.
    pub runtime: tokio::runtime::Handle,
    /// Where queue waits and run times go.
    pub metrics: Arc<Metrics>,
}

/// Starts `n` worker threads.
pub(crate) fn spawn(
    n: usize,
    workers: Arc<Workers>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..n)
        .map(|i| {
            let w = workers.clone();
            std::thread::Builder::new()
                .name(format!("ocellus-worker-{i}"))
                .spawn(move || run(&w))
        })
        .collect()
}

/// Runs jobs until the queue shuts down.
///
/// A job that starts while others wait runs on this worker's own
/// one-thread pool: the other workers are about to take the other cores,
/// and splitting every image across all cores as well would only add
/// contention and band overlaps (measured: about 10 % fewer images/s under
/// load). A job that starts with nothing waiting may use every core, so a
/// lone large image still finishes sooner.
fn run(w: &Workers) {
    let alone = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "ocellus-worker-pool".to_string())
        .build()
        .map_err(|e| warn!(error = %e, "no single-thread pool; jobs will share the global one"))
        .ok();
    while let Some(job) = w.queue.pop() {
        let started = Instant::now();
        let op = job.task.request.op;
        w.metrics
            .job_started(op, started.saturating_duration_since(job.queued));
        let Task {
            work, responder, ..
        } = job.task;
        let description = work.describe();
        let others_waiting = w.queue.stats().queue_length > 0;
        let cancel = Cancel::new(job.cancelled.clone());
        let ran = match &alone {
            Some(pool) if others_waiting => pool.install(|| work.run(&w.roles, &cancel)),
            _ => work.run(&w.roles, &cancel),
        };
        let elapsed = started.elapsed();
        let ms = elapsed.as_millis() as u64;
        let gone = || job.cancelled.load(std::sync::atomic::Ordering::Acquire);
        match ran {
            Ran::Done(result) => {
                w.queue.release(job.job, elapsed);
                w.metrics.job_ran(op, elapsed);
                if gone() {
                    w.queue.count_cancelled();
                    w.metrics.job_cancelled();
                    info!(job = job.job, %description, ms, "stopped or discarded: client gone");
                    continue;
                }
                w.queue.count(result.is_ok());
                answer(&w.node_id, job.job, &description, ms, result, responder);
            }
            Ran::Remote(rest) => {
                w.queue.release(job.job, elapsed);
                let queue = w.queue.clone();
                let node_id = w.node_id.clone();
                let cancelled = job.cancelled.clone();
                let number = job.job;
                let metrics = w.metrics.clone();
                w.runtime.spawn(async move {
                    let result = rest.await;
                    metrics.job_ran(op, started.elapsed());
                    if cancelled.load(std::sync::atomic::Ordering::Acquire) {
                        queue.count_cancelled();
                        metrics.job_cancelled();
                        info!(job = number, %description, "result discarded: client gone");
                        return;
                    }
                    queue.count(result.is_ok());
                    answer(&node_id, number, &description, ms, result, responder);
                });
            }
        }
    }
}

fn answer(
    node_id: &str,
    job: u64,
    description: &str,
    ms: u64,
    result: Result<Output, ocellus_protocol::ErrorEvent>,
    responder: Responder,
) {
    match result {
        Ok(mut out) => {
            info!(job, %description, ms, bytes = out.payload.len(), "done");
            // Where it ran: the entry node of a mesh passes it on as is.
            out.header.insert(field::NODE_ID.into(), node_id.into());
            responder.result(out.header, out.payload);
        }
        Err(e) => {
            info!(job, %description, code = %e.code, "failed");
            responder.error(e);
        }
    }
}
