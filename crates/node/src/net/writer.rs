//! A connection's outgoing side: one FIFO channel to one writer task, so a
//! client sees a request's events in the order they happened (ACCEPTED,
//! POSITION..., STARTED, then RESULT).
//!
//! Backpressure: every request holds one of `max_in_flight` permits and a
//! slot reserved in the channel for its terminal event from the moment it
//! is read; the permit comes back only when that event has been written
//! to the socket. A client that sends without reading therefore stops
//! being read from; nothing is buffered without bound. Progress events
//! use the channel's spare room and are dropped when it is full (the next
//! POSITION supersedes them).
//!
//! Memory: a request's bytes stay charged to the node's budget until its
//! answer is written, and the answer's payload is charged from the moment
//! it exists; both come back when the frame is on the wire or the
//! connection closes. The connection's unwritten result bytes are counted
//! ([`Unwritten`]) so that it reads no more requests while its client
//! is behind in reading; a write that does not finish within
//! `write_timeout` closes the connection.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ocellus_protocol::{Frame, Op};
use serde_json::{Map, Value};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::budget::{Charge, MemoryBudget};
use crate::call::{Answer, JobSink, OutstandingGuard, Progress};

/// Result bytes queued on one connection and not yet written.
#[derive(Debug, Default)]
pub(crate) struct Unwritten {
    bytes: AtomicU64,
    written: Notify,
}

impl Unwritten {
    /// Waits until fewer than `limit` bytes are waiting (at once when
    /// nothing is).
    pub async fn wait_below(&self, limit: u64) {
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let now = self.bytes.load(Ordering::Acquire);
            if now == 0 || now < limit {
                return;
            }
            written.await;
        }
    }

    fn add(self: &Arc<Self>, bytes: u64) -> UnwrittenGuard {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        UnwrittenGuard {
            unwritten: self.clone(),
            bytes,
        }
    }
}

/// Counts one answer's bytes as unwritten until dropped.
pub(crate) struct UnwrittenGuard {
    unwritten: Arc<Unwritten>,
    bytes: u64,
}

impl Drop for UnwrittenGuard {
    fn drop(&mut self) {
        self.unwritten.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        self.unwritten.written.notify_waiters();
    }
}

/// What is released once a request's answer is written (or dropped
/// unwritten with the connection).
pub(crate) struct Done {
    _permit: OwnedSemaphorePermit,
    _outstanding: OutstandingGuard,
    _request: Charge,
    _result: Charge,
    _unwritten: UnwrittenGuard,
}

/// Progress events that may wait for a slow reader before new ones are
/// dropped.
pub(crate) const PROGRESS_ROOM: usize = 64;

/// An encoded frame on its way to the socket: its head, then its payload
/// written from where it is (not copied into one buffer).
pub(crate) struct Outgoing {
    pub head: Vec<u8>,
    pub payload: Bytes,
    /// Released once the frame is written: the request is over.
    pub done: Option<Done>,
    /// Close the connection after writing this frame.
    pub close: bool,
}

impl Outgoing {
    /// A frame to send.
    pub fn frame(op: Op, request_id: u64, header: Map<String, Value>, payload: Bytes) -> Outgoing {
        let frame = Frame::new(op, request_id, header, payload);
        let mut head = Vec::new();
        frame.encode_head(&mut head);
        Outgoing {
            head,
            payload: frame.payload,
            done: None,
            close: false,
        }
    }
}

/// The terminal event of one request on this connection.
pub(crate) struct TcpAnswer {
    /// The channel slot reserved for it.
    pub slot: OwnedPermit<Outgoing>,
    pub permit: OwnedSemaphorePermit,
    pub outstanding: OutstandingGuard,
    /// The connection's request ids in flight, once this one is among
    /// them (it leaves them when answered). `None` for a request refused
    /// before (a duplicate id must not remove the original's entry).
    pub in_flight: Option<Arc<Mutex<HashSet<u64>>>>,
    /// The request's frame bytes, held against the budget.
    pub request: Charge,
    /// Where the answer's bytes are charged.
    pub budget: Arc<MemoryBudget>,
    /// The connection's unwritten bytes.
    pub unwritten: Arc<Unwritten>,
}

impl Answer for TcpAnswer {
    fn answer(
        self: Box<Self>,
        request_id: u64,
        op: Op,
        header: Map<String, Value>,
        payload: Bytes,
    ) {
        let this = *self;
        if let Some(set) = &this.in_flight {
            set.lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&request_id);
        }
        let bytes = payload.len() as u64;
        let mut out = Outgoing::frame(op, request_id, header, payload);
        out.done = Some(Done {
            _permit: this.permit,
            _outstanding: this.outstanding,
            _request: this.request,
            _result: this.budget.charge(bytes),
            _unwritten: this.unwritten.add(bytes),
        });
        // The slot was reserved when the request arrived: this never
        // blocks, and is a no-op when the writer is gone.
        this.slot.send(out);
    }
}

/// Where the queue sends a connection's progress events.
pub(crate) struct ProgressSink {
    pub tx: mpsc::Sender<Outgoing>,
}

impl JobSink for ProgressSink {
    fn progress(&self, request_id: u64, progress: Progress) {
        let (op, header) = progress.into_event();
        // A slow reader loses progress events, never results.
        let _ = self
            .tx
            .try_send(Outgoing::frame(op, request_id, header, Bytes::new()));
    }
}

/// Writes frames until the channel closes, a write takes longer than
/// `write_timeout` (the client stopped reading or left), or a frame asks
/// to close.
pub(crate) async fn write_loop(
    mut writer: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Outgoing>,
    write_timeout: Duration,
    answered: Arc<Notify>,
) {
    while let Some(out) = rx.recv().await {
        let write = async {
            writer.write_all(&out.head).await?;
            writer.write_all(&out.payload).await
        };
        match tokio::time::timeout(write_timeout, write).await {
            Ok(Ok(())) => {}
            _ => break,
        }
        if out.done.is_some() {
            drop(out.done);
            answered.notify_one();
        }
        if out.close {
            break;
        }
    }
    let _ = writer.shutdown().await;
}
