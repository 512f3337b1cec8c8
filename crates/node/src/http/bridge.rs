//! The HTTP side of [`crate::call`]: a request an HTTP route built goes
//! through the same [`crate::request::handle`] as a TCP frame, with a
//! [`Caller`] whose progress lands in a [`JobLog`] and a responder whose
//! answer lands there too.
//!
//! Invariants: a request is counted in [`crate::call::Outstanding`] until
//! its answer reaches the log (shutdown waits for it, as for TCP); the log
//! records events in the order the node emitted them, the terminal one
//! last, and never more than one terminal event.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use ocellus_protocol::{Op, field};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::access::Session;
use crate::access::audit::{AuditLine, Audited};
use crate::call::{Answer, Caller, Incoming, JobSink, OutstandingGuard, Progress, Responder};
use crate::state::State;

/// Request ids of HTTP requests: unique per node (they share the queue
/// with no connection of their own).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A request's terminal event as the node sent it.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    /// RESULT, ERROR or BUSY.
    pub op: Op,
    pub header: Map<String, Value>,
    pub payload: Bytes,
}

/// What happened to one request, in order; shared by the node's side (it
/// writes) and the HTTP side (it reads, and waits for more).
#[derive(Default)]
pub(crate) struct JobLog {
    inner: Mutex<LogInner>,
    changed: Notify,
    /// Set when the caller has gone or cancelled.
    pub cancelled: Arc<AtomicBool>,
}

#[derive(Default)]
struct LogInner {
    progress: Vec<Progress>,
    reply: Option<Reply>,
    created: Option<Instant>,
    started: Option<Instant>,
    answered: Option<Instant>,
    /// The result's bytes, held against the node's memory budget for as
    /// long as the log keeps them (until the job is dropped from the
    /// table).
    held: Option<crate::budget::Charge>,
}

/// A snapshot of a log from event `from` on.
pub(crate) struct Snapshot {
    /// Progress events from `from` on.
    pub progress: Vec<Progress>,
    /// Index after the last of them.
    pub next: usize,
    /// The terminal event, once there.
    pub reply: Option<Reply>,
}

/// How long a request waited in the queue and ran, in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timing {
    pub queue_ms: u64,
    pub run_ms: u64,
}

impl JobLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new, empty log.
    pub fn new() -> Arc<JobLog> {
        let log = JobLog::default();
        log.lock().created = Some(Instant::now());
        Arc::new(log)
    }

    /// Events from index `from` on.
    pub fn snapshot(&self, from: usize) -> Snapshot {
        let inner = self.lock();
        let from = from.min(inner.progress.len());
        Snapshot {
            progress: inner.progress[from..].to_vec(),
            next: inner.progress.len(),
            reply: inner.reply.clone(),
        }
    }

    /// Waits until something is added after index `seen` (or the answer
    /// arrives); returns at once if it already has been.
    pub async fn changed_after(&self, seen: usize) {
        loop {
            let notified = self.changed.notified();
            {
                let inner = self.lock();
                if inner.progress.len() > seen || inner.reply.is_some() {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Waits for the terminal event.
    pub async fn reply(&self) -> Reply {
        loop {
            let notified = self.changed.notified();
            if let Some(r) = self.lock().reply.clone() {
                return r;
            }
            notified.await;
        }
    }

    /// The terminal event, if there.
    pub fn finished(&self) -> Option<Reply> {
        self.lock().reply.clone()
    }

    /// When the terminal event arrived.
    pub fn answered_at(&self) -> Option<Instant> {
        self.lock().answered
    }

    /// Whether the node accepted the request into its queue (or a peer's).
    pub fn was_accepted(&self) -> bool {
        !self.lock().progress.is_empty()
    }

    /// Time in the queue and running (so far).
    pub fn timing(&self) -> Timing {
        let inner = self.lock();
        let (Some(created), end) = (inner.created, inner.answered.unwrap_or_else(Instant::now))
        else {
            return Timing::default();
        };
        let started = inner.started.unwrap_or(end);
        Timing {
            queue_ms: started.saturating_duration_since(created).as_millis() as u64,
            run_ms: end.saturating_duration_since(started).as_millis() as u64,
        }
    }

    /// Records a terminal event, unless one is there already (a cancelled
    /// job's late answer is dropped).
    pub fn finish(&self, reply: Reply) {
        {
            let mut inner = self.lock();
            if inner.reply.is_some() {
                return;
            }
            inner.answered = Some(Instant::now());
            inner.reply = Some(reply);
        }
        self.changed.notify_waiters();
    }
}

impl JobSink for JobLog {
    fn progress(&self, _request_id: u64, progress: Progress) {
        {
            let mut inner = self.lock();
            if inner.reply.is_some() {
                return;
            }
            let started = match &progress {
                Progress::Started { .. } => true,
                Progress::Relayed { op, .. } => *op == Op::Started,
                _ => false,
            };
            if started && inner.started.is_none() {
                inner.started = Some(Instant::now());
            }
            // Keep the log bounded: a heartbeat supersedes the previous
            // position (only the latest matters to a late reader).
            if let (Some(Progress::Position(_)), Progress::Position(_)) =
                (inner.progress.last(), &progress)
            {
                inner.progress.pop();
            }
            inner.progress.push(progress);
        }
        self.changed.notify_waiters();
    }
}

/// The responder's side: puts the answer in the log.
struct LogAnswer {
    log: Arc<JobLog>,
    _outstanding: OutstandingGuard,
    /// The request's body, held against the memory budget until answered.
    _request: crate::budget::Charge,
    budget: Arc<crate::budget::MemoryBudget>,
}

impl Answer for LogAnswer {
    fn answer(
        self: Box<Self>,
        _request_id: u64,
        op: Op,
        header: Map<String, Value>,
        payload: Bytes,
    ) {
        let held = self.budget.charge(payload.len() as u64);
        self.log.lock().held = Some(held);
        self.log.finish(Reply {
            op,
            header,
            payload,
        });
    }
}

/// A request as an HTTP route built it: op, header (without `images`) and
/// images.
pub(crate) struct Built {
    pub op: Op,
    pub header: Map<String, Value>,
    pub images: Vec<Bytes>,
    /// The body's bytes as received, already held against the budget.
    pub held: Option<crate::budget::Charge>,
}

impl Built {
    /// A request with no images.
    pub fn bare(op: Op, header: Map<String, Value>) -> Built {
        Built {
            op,
            header,
            images: Vec::new(),
            held: None,
        }
    }
}

/// Hands `built` to the node as `session` from `client`; its events and
/// answer go to the returned log.
pub(crate) fn dispatch(
    state: &Arc<State>,
    built: Built,
    session: &Session,
    client: Option<SocketAddr>,
) -> Arc<JobLog> {
    let log = JobLog::new();
    let request_id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let Built {
        op,
        mut header,
        images,
        held,
    } = built;
    if !images.is_empty() {
        let lengths: Vec<u64> = images.iter().map(|i| i.len() as u64).collect();
        header.insert(field::IMAGES.into(), Value::from(lengths));
    }
    let payload: Bytes = match images.len() {
        0 => Bytes::new(),
        1 => images.into_iter().next().unwrap_or_default(),
        _ => images.concat().into(),
    };
    // The request holds its payload's bytes from now on: the body's charge
    // when it came with one (trimmed of what was not an image), topped up
    // for a payload joined from several parts.
    let mut held = held.unwrap_or_else(|| state.budget.empty());
    held.shrink_to(payload.len() as u64);
    held.force((payload.len() as u64).saturating_sub(held.bytes()));
    let request = Incoming {
        op,
        request_id,
        header,
        payload,
    };
    let answer: Box<dyn Answer> = Box::new(LogAnswer {
        log: log.clone(),
        _outstanding: state.outstanding.track(),
        _request: held,
        budget: state.budget.clone(),
    });
    let client_id = session.client_id(client);
    let client = client.map_or_else(|| "-".to_string(), |a| a.to_string());
    let answer: Box<dyn Answer> =
        match AuditLine::of(op, &request.header, session.principal(), client) {
            Some(line) => Box::new(Audited {
                inner: answer,
                line,
            }),
            None => answer,
        };
    let caller = Caller {
        sink: log.clone(),
        cancelled: log.cancelled.clone(),
        client: client_id,
    };
    crate::request::handle(state, request, &caller, Responder::new(request_id, answer));
    log
}

/// Withdraws a request: its waiting job leaves the queue, a running one's
/// result is discarded.
pub(crate) fn cancel(state: &State, log: &JobLog) {
    log.cancelled.store(true, Ordering::Release);
    state.queue.purge_cancelled();
}

/// Cancels its request when dropped unless disarmed: a synchronous route
/// whose client went away (axum drops the handler's future) withdraws
/// its job, as a closed TCP connection does.
pub(crate) struct CancelOnDrop {
    pub state: Arc<State>,
    pub log: Arc<JobLog>,
    pub armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed && self.log.finished().is_none() {
            cancel(&self.state, &self.log);
        }
    }
}
