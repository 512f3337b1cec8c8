//! One request's life, whatever transport brought it: the request as it
//! arrived ([`Incoming`]), the caller it came from ([`Caller`]: where its
//! progress goes, whether it is still there), and its one answer
//! ([`Responder`]).
//!
//! Invariants:
//! - a request is answered exactly once, by type: [`Responder`]'s methods
//!   take `self`, and a responder dropped without answering (a bug, or a
//!   worker that died) answers ERROR `internal`;
//! - an [`ErrorEvent`] becomes a wire ERROR in one place only,
//!   [`Responder::error`];
//! - the request is kept once: [`Incoming`] owns its header and shares its
//!   payload ([`Bytes`]); the parsed job borrows slices of the same bytes,
//!   and a request handed to a peer travels as these original bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use ocellus_protocol::message::{Accepted, Busy, Position, Started, to_header};
use ocellus_protocol::{ErrorCode, ErrorEvent, Op, field};
use serde_json::{Map, Value};

/// Whom a job is queued for (fair turns, per-client caps): `key:NAME`
/// when the client authenticated with a key, `peer:ID` for a node of the
/// cluster, else `ip:ADDRESS`.
pub(crate) type ClientId = Arc<str>;

/// A request as it arrived.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// What it asks for.
    pub op: Op,
    /// The caller's id for it.
    pub request_id: u64,
    /// Its JSON header.
    pub header: Map<String, Value>,
    /// Its images, back to back.
    pub payload: Bytes,
}

impl Incoming {
    /// Whether it came from a peer that forwarded it (it carries `via`).
    pub fn is_forwarded(&self) -> bool {
        self.header.contains_key(field::VIA)
    }

    /// Whether it is the node-to-node form of ENROLL / RECOGNIZE (face
    /// crops from a detection node).
    pub fn has_crops(&self) -> bool {
        self.header.contains_key(field::CROPS)
    }

    /// Whether it uses a form only peers may send: crops (with their
    /// descriptors), `via` or `max_wait_s`.
    pub fn is_peer_form(&self) -> bool {
        [field::CROPS, field::VIA, field::MAX_WAIT_S]
            .iter()
            .any(|f| self.header.contains_key(*f))
    }
}

/// Something a waiting or running job is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Entered the queue.
    Accepted(Accepted),
    /// Position changed, or heartbeat.
    Position(Position),
    /// Left the queue; a worker runs it now.
    Started {
        /// The job number.
        job: u64,
    },
    /// An event of a job that runs on a peer, passed on as it came (with
    /// the peer's `node_id` and `node_addr` added).
    Relayed {
        /// ACCEPTED, POSITION or STARTED.
        op: Op,
        /// The peer's header.
        header: Map<String, Value>,
    },
}

impl Progress {
    /// The event it is on the wire: its op and header.
    pub fn into_event(self) -> (Op, Map<String, Value>) {
        match self {
            Progress::Accepted(a) => (Op::Accepted, to_header(&a)),
            Progress::Position(p) => (Op::Position, to_header(&p)),
            Progress::Started { job } => (Op::Started, to_header(&Started { job })),
            Progress::Relayed { op, header } => (op, header),
        }
    }
}

/// Where a caller's progress events go. Implementations must not block:
/// the queue calls it under its lock.
pub trait JobSink: Send + Sync {
    /// Delivers a progress event (may be dropped if the caller reads
    /// slowly: the next one supersedes it).
    fn progress(&self, request_id: u64, progress: Progress);
}

/// The caller a request came from: a connection, or a test.
#[derive(Clone)]
pub(crate) struct Caller {
    /// Where its progress events go.
    pub sink: Arc<dyn JobSink>,
    /// Set when it has gone: its waiting jobs are dropped and results of
    /// running ones discarded.
    pub cancelled: Arc<AtomicBool>,
    /// Whom its jobs are queued for (fair turns, per-client caps).
    pub client: ClientId,
}

impl Caller {
    /// Whether the caller has gone.
    pub fn is_gone(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// Delivers a request's terminal event: the transport's side of a
/// [`Responder`]. Called at most once, and must not block.
pub(crate) trait Answer: Send {
    /// Sends `op` (RESULT, ERROR or BUSY) with this header and payload.
    fn answer(self: Box<Self>, request_id: u64, op: Op, header: Map<String, Value>, payload: Bytes);
}

/// Sends the one terminal event of a request.
pub(crate) struct Responder {
    request_id: u64,
    answer: Option<Box<dyn Answer>>,
}

impl Responder {
    /// A responder for `request_id` that answers through `answer`.
    pub fn new(request_id: u64, answer: Box<dyn Answer>) -> Responder {
        Responder {
            request_id,
            answer: Some(answer),
        }
    }

    /// The request id it answers.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The same responder with its answer wrapped by `wrap` (which sees
    /// the answer first, e.g. to count it, and must pass it on).
    pub fn wrap(mut self, wrap: impl FnOnce(Box<dyn Answer>) -> Box<dyn Answer>) -> Responder {
        let request_id = self.request_id;
        match self.answer.take() {
            Some(inner) => Responder::new(request_id, wrap(inner)),
            // Already answered: nothing left to wrap.
            None => self,
        }
    }

    /// Sends `op` (RESULT, ERROR or BUSY) with this header and payload.
    pub fn send(mut self, op: Op, header: Map<String, Value>, payload: impl Into<Bytes>) {
        if let Some(a) = self.answer.take() {
            a.answer(self.request_id, op, header, payload.into());
        }
    }

    /// Sends a RESULT.
    pub fn result(self, header: Map<String, Value>, payload: impl Into<Bytes>) {
        self.send(Op::Result, header, payload);
    }

    /// Sends an ERROR: the one place a typed error becomes a wire event.
    pub fn error(self, e: impl Into<ErrorEvent>) {
        self.send(Op::Error, to_header(&e.into()), Bytes::new());
    }

    /// Sends BUSY.
    pub fn busy(self, queue_length: u64, capacity: u64) {
        let busy = Busy {
            queue_length,
            capacity,
            reason: None,
        };
        self.send(Op::Busy, to_header(&busy), Bytes::new());
    }

    /// Sends BUSY because this client has `queued` jobs waiting, as many
    /// as one client may.
    pub fn busy_client(self, queued: u64, per_client: u64) {
        let busy = Busy {
            queue_length: queued,
            capacity: per_client,
            reason: Some("client".into()),
        };
        self.send(Op::Busy, to_header(&busy), Bytes::new());
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(a) = self.answer.take() {
            let e = ErrorEvent::new(ErrorCode::Internal, "the job ended without a result");
            a.answer(self.request_id, Op::Error, to_header(&e), Bytes::new());
        }
    }
}

/// Requests a node has received and not yet finished answering (their
/// terminal event is not yet written): at shutdown the node waits for
/// this to reach zero.
#[derive(Debug, Default)]
pub(crate) struct Outstanding(std::sync::atomic::AtomicU64);

impl Outstanding {
    /// Counts a request until the guard drops.
    pub fn track(self: &Arc<Self>) -> OutstandingGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        OutstandingGuard(self.clone())
    }

    /// Whether every request has been answered.
    pub fn is_zero(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

/// One outstanding request; dropped once its answer is written.
#[derive(Debug)]
pub(crate) struct OutstandingGuard(Arc<Outstanding>);

impl Drop for OutstandingGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The error a job gives up with at a cancellation checkpoint (nobody
/// reads it: its caller has gone).
pub(crate) fn cancelled() -> ErrorEvent {
    ErrorEvent::new(ErrorCode::Internal, "cancelled: the client has gone")
}

/// Shorthand for the errors of this crate.
pub(crate) fn error(code: ErrorCode, message: impl Into<String>) -> ErrorEvent {
    ErrorEvent::new(code, message)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A caller and responders that record what they are sent, to drive
    //! requests without a socket.

    use std::sync::Mutex;

    use super::*;

    /// One recorded event.
    #[derive(Clone, Debug)]
    pub struct Recorded {
        pub request_id: u64,
        pub op: Op,
        pub header: Map<String, Value>,
        pub payload: Bytes,
    }

    /// Records progress and answers, in order.
    #[derive(Default)]
    pub struct Recorder {
        pub events: Mutex<Vec<Recorded>>,
        pub notify: tokio::sync::Notify,
    }

    impl Recorder {
        pub fn events(&self) -> Vec<Recorded> {
            self.events.lock().unwrap().clone()
        }

        /// Waits until request `id` has its terminal event; returns it.
        pub async fn terminal(&self, id: u64) -> Recorded {
            loop {
                let notified = self.notify.notified();
                if let Some(e) = self
                    .events()
                    .into_iter()
                    .find(|e| e.request_id == id && e.op.is_terminal())
                {
                    return e;
                }
                notified.await;
            }
        }

        fn push(&self, r: Recorded) {
            self.events.lock().unwrap().push(r);
            self.notify.notify_waiters();
        }
    }

    impl JobSink for Recorder {
        fn progress(&self, request_id: u64, progress: Progress) {
            let (op, header) = progress.into_event();
            self.push(Recorded {
                request_id,
                op,
                header,
                payload: Bytes::new(),
            });
        }
    }

    struct RecordAnswer(Arc<Recorder>);

    impl Answer for RecordAnswer {
        fn answer(
            self: Box<Self>,
            request_id: u64,
            op: Op,
            header: Map<String, Value>,
            payload: Bytes,
        ) {
            self.0.push(Recorded {
                request_id,
                op,
                header,
                payload,
            });
        }
    }

    /// A caller whose events go to `recorder`.
    pub fn caller(recorder: &Arc<Recorder>) -> Caller {
        Caller {
            sink: recorder.clone(),
            cancelled: Arc::default(),
            client: ClientId::from("ip:127.0.0.1"),
        }
    }

    /// A responder whose answer goes to `recorder`.
    pub fn responder(recorder: &Arc<Recorder>, request_id: u64) -> Responder {
        Responder::new(request_id, Box::new(RecordAnswer(recorder.clone())))
    }
}
