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

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ocellus_protocol::{Frame, Op};
use serde_json::{Map, Value};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::call::{Answer, JobSink, OutstandingGuard, Progress};

/// Progress events that may wait for a slow reader before new ones are
/// dropped.
pub(crate) const PROGRESS_ROOM: usize = 64;

/// An encoded frame on its way to the socket: its head, then its payload
/// written from where it is (not copied into one buffer).
pub(crate) struct Outgoing {
    pub head: Vec<u8>,
    pub payload: Bytes,
    /// Released once the frame is written: the request is over.
    pub done: Option<(OwnedSemaphorePermit, OutstandingGuard)>,
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
        let mut out = Outgoing::frame(op, request_id, header, payload);
        out.done = Some((this.permit, this.outstanding));
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
