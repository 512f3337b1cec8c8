//! Running jobs: the bounded queue ([`queue`]) and the worker threads
//! ([`worker`]) that take jobs from it.
//!
//! A job is anything that implements [`Work`]: each operation's module in
//! `crate::request` defines its own. This module knows nothing of
//! operations, connections or peers; it runs work and answers through the
//! job's [`Responder`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
pub(crate) use ocellus_imaging::Cancel;
use ocellus_protocol::ErrorEvent;
use serde_json::{Map, Value};

use crate::call::{Incoming, Responder};
use crate::roles::Roles;

pub(crate) mod queue;
pub(crate) mod worker;

pub(crate) use crate::call::cancelled;
pub(crate) use queue::{ClientId, JobQueue, QueueStats, QueuedJob, Rejected};

/// A successful result: header and payload of the RESULT event.
pub(crate) struct Output {
    pub header: Map<String, Value>,
    pub payload: Bytes,
}

impl Output {
    /// A RESULT with this typed header and no payload.
    pub fn header<T: serde::Serialize>(value: &T) -> Output {
        Output {
            header: ocellus_protocol::message::to_header(value),
            payload: Bytes::new(),
        }
    }
}

/// What is left of a job after its CPU part: a wait on another node (the
/// recognition node), done without holding a worker thread.
pub(crate) type Remote = Pin<Box<dyn Future<Output = Result<Output, ErrorEvent>> + Send>>;

/// How running a job ended on the worker.
pub(crate) enum Ran {
    /// Finished.
    Done(Result<Output, ErrorEvent>),
    /// The rest is a wait on another node; the worker is free again.
    Remote(Remote),
}

impl From<Result<Output, ErrorEvent>> for Ran {
    fn from(r: Result<Output, ErrorEvent>) -> Ran {
        Ran::Done(r)
    }
}

impl From<crate::roles::link::Call<Output>> for Ran {
    fn from(call: crate::roles::link::Call<Output>) -> Ran {
        match call {
            crate::roles::link::Call::Ready(r) => Ran::Done(r),
            crate::roles::link::Call::Remote(rest) => Ran::Remote(rest),
        }
    }
}

/// A job's work, parsed and checked from its request.
pub(crate) trait Work: Send {
    /// A short description for the log.
    fn describe(&self) -> String;

    /// Runs the CPU part on the current (worker) thread, stopping at the
    /// next checkpoint once `cancel` is raised (its client has gone or
    /// withdrew the request: the answer is then discarded, so any error
    /// will do).
    fn run(self: Box<Self>, roles: &Roles, cancel: &Cancel) -> Ran;
}

/// A job as the queue holds it: the work, the request it came from (to
/// hand it to a peer as it arrived, if this node leaves first), and whom
/// to answer.
pub(crate) struct Task {
    pub work: Box<dyn Work>,
    pub request: Incoming,
    pub responder: Responder,
}
