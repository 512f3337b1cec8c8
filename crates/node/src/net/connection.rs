//! One client connection: a reader that turns frames into requests, and a
//! writer ([`super::writer`]) that sends their events back.
//!
//! The reader checks what belongs to the connection, not to an operation:
//! the protocol version, that the op is a request, and that the request id
//! is not already in flight here. Everything else is
//! [`crate::request::handle`]'s.
//!
//! Who may send what is [`crate::access`]'s: the reader answers AUTH,
//! keeps the connection's session, and asks [`crate::access::rules`]
//! about every other request before it goes further.
//!
//! The connection is a pair of stream halves, plain TCP or TLS alike:
//! nothing here knows which.
//!
//! Two clocks: a frame whose first byte has arrived must be complete within
//! `frame_timeout` (however slowly the bytes trickle in: slow-loris
//! clients), and a connection with nothing in flight must not stay silent
//! longer than `idle_timeout` after its last request was answered.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use ocellus_protocol::message::to_header;
use ocellus_protocol::{
    Decoded, ErrorCode, ErrorEvent, Frame, Op, PROTOCOL_VERSION, declared_length, take_frame,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::writer::{Outgoing, PROGRESS_ROOM, ProgressSink, TcpAnswer, Unwritten, write_loop};
use crate::access::audit::{AuditLine, Audited};
use crate::access::{Session, auth, rules};
use crate::budget::Charge;
use crate::call::{Answer, Caller, Incoming, Responder, error};
use crate::exec::ClientId;
use crate::state::State;

/// Most bytes read into a frame between two budget reservations: the
/// node holds at most this much more than it has accounted for, per
/// connection.
const READ_CHUNK: usize = 1 << 20;

/// What is read while no frame length is known yet (a frame's fixed
/// part, or the first bytes of the next frames).
const HEAD_CHUNK: usize = 16 * 1024;

/// Serves one connection, read from `reader` and written to `writer`,
/// until the client leaves or is closed.
pub(crate) async fn serve<R, W>(
    mut reader: R,
    writer: W,
    peer: Option<std::net::SocketAddr>,
    state: Arc<State>,
) where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let cfg = &state.config;
    // Room for every in-flight request's terminal event, one closing
    // ERROR, and progress events.
    let (tx, rx) = mpsc::channel(cfg.max_in_flight + 1 + PROGRESS_ROOM);
    let answered = Arc::new(Notify::new());
    let unwritten = Arc::new(Unwritten::default());
    let mut writer_task = tokio::spawn(write_loop(writer, rx, cfg.write_timeout, answered.clone()));
    let conn = Conn {
        permits: Arc::new(Semaphore::new(cfg.max_in_flight)),
        out: tx.clone(),
        answered,
        unwritten,
        caller: Caller {
            sink: Arc::new(ProgressSink { tx }),
            cancelled: Arc::new(AtomicBool::new(false)),
            client: ClientId::from("-"),
        },
        in_flight: Arc::new(Mutex::new(HashSet::new())),
        state: state.clone(),
        session: Mutex::new(Session::Anonymous),
        peer,
    };
    let reason = conn.read_loop(&mut reader, &mut writer_task).await;
    debug!(?peer, reason, "connection ends");
    if reason != "eof" {
        // The client is gone (or we closed on it): drop its waiting jobs
        // and stop its running ones at their next checkpoint.
        conn.caller.cancelled.store(true, Ordering::Release);
        state.queue.purge_cancelled();
    }
    drop(conn);
    // (When the read loop ended because the writer did, its handle has
    // been polled to completion already.)
    if !writer_task.is_finished() {
        let _ = writer_task.await;
    }
}

/// A connection's reading side.
struct Conn {
    state: Arc<State>,
    permits: Arc<Semaphore>,
    out: mpsc::Sender<Outgoing>,
    /// Signalled by the writer each time a request's last event is written.
    answered: Arc<Notify>,
    /// Result bytes waiting to be written on this connection.
    unwritten: Arc<Unwritten>,
    caller: Caller,
    in_flight: Arc<Mutex<HashSet<u64>>>,
    /// What the connection has proved (AUTH).
    session: Mutex<Session>,
    /// The client's address.
    peer: Option<SocketAddr>,
}

impl Conn {
    fn has_in_flight(&self) -> bool {
        self.permits.available_permits() < self.state.config.max_in_flight
    }

    /// Reads and handles frames; returns why it stopped: "eof" (the
    /// client sent everything it will and every request was answered),
    /// "closed" (we closed after an ERROR), "writer" (the client stopped
    /// reading or left), or a read error.
    async fn read_loop(
        &self,
        reader: &mut (impl AsyncRead + Unpin),
        writer: &mut JoinHandle<()>,
    ) -> &'static str {
        let cfg = &self.state.config;
        let budget = &self.state.budget;
        let mut buf = BytesMut::new();
        // What `buf` holds against the memory budget.
        let mut held: Charge = budget.empty();
        let mut frame_deadline: Option<tokio::time::Instant> = None;
        let mut idle_since = tokio::time::Instant::now();
        loop {
            match take_frame(&mut buf, &cfg.frame_limits) {
                Ok(Decoded::Frame(frame, used)) => {
                    // The frame's bytes now belong to its request.
                    let charge = held.split(used as u64);
                    held.shrink_to(buf.capacity() as u64);
                    frame_deadline = None;
                    if !self.handle(frame, charge).await {
                        return "writer";
                    }
                    continue;
                }
                Ok(Decoded::NeedMore(_)) => {}
                Err(_) if crate::tls::is_client_hello(&buf) => {
                    // Nothing a TLS client could read: just close.
                    warn!(
                        "a TLS ClientHello on this plain-text port: closing (serve with --tls-cert and --tls-key, or connect without --tls)"
                    );
                    return "closed";
                }
                Err(e) => {
                    warn!(error = %e, "closing connection");
                    self.state.metrics.decode_rejected(e.code());
                    self.close_with(error(e.code(), e.to_string())).await;
                    return "closed";
                }
            }
            let declared = declared_length(&buf);
            if let Some(length) = declared
                && length as u64 > budget.limit()
            {
                self.state.metrics.decode_rejected(ErrorCode::FrameTooLarge);
                self.close_with(error(
                    ErrorCode::FrameTooLarge,
                    format!(
                        "a frame of {length} bytes is larger than the node's memory budget of {} bytes (--memory-budget)",
                        budget.limit()
                    ),
                ))
                .await;
                return "closed";
            }
            // Room for the next read, held against the budget first: when
            // the budget is spent, this waits (the client is not read).
            let want = match declared {
                Some(length) if length > buf.len() => {
                    buf.len() + (length - buf.len()).min(READ_CHUNK)
                }
                _ => buf.len() + HEAD_CHUNK,
            };
            if (held.bytes() as usize) < want {
                let more = (want - held.bytes() as usize) as u64;
                tokio::select! {
                    _ = held.grow(more) => {}
                    _ = &mut *writer => return "writer",
                }
                if frame_deadline.is_some() {
                    // The node kept the client waiting, not the other way.
                    frame_deadline = Some(tokio::time::Instant::now() + cfg.frame_timeout);
                }
            }
            if buf.capacity() < want {
                buf.reserve(want - buf.len());
            }
            if buf.capacity() as u64 > held.bytes() {
                held.force(buf.capacity() as u64 - held.bytes());
            }
            if !buf.is_empty() && frame_deadline.is_none() {
                frame_deadline = Some(tokio::time::Instant::now() + cfg.frame_timeout);
            }
            let in_flight = self.has_in_flight();
            if in_flight {
                idle_since = tokio::time::Instant::now();
            }
            let deadline = match frame_deadline {
                Some(d) => d,
                None if in_flight => tokio::time::Instant::now() + cfg.idle_timeout,
                None => idle_since + cfg.idle_timeout,
            };
            let n = tokio::select! {
                read = reader.read_buf(&mut buf) => read,
                // A request was answered: re-evaluate the idle clock.
                _ = self.answered.notified(), if in_flight => continue,
                // The client stopped reading, or left.
                _ = &mut *writer => return "writer",
                _ = tokio::time::sleep_until(deadline) => {
                    if frame_deadline.is_some() {
                        self.close_with(error(ErrorCode::Timeout, format!(
                            "incomplete frame: not received within {} s", cfg.frame_timeout.as_secs()
                        ))).await;
                        return "closed";
                    }
                    if self.has_in_flight() {
                        continue; // work in flight: not idle
                    }
                    self.close_with(error(ErrorCode::Timeout, format!(
                        "idle connection: nothing received for {} s", cfg.idle_timeout.as_secs()
                    ))).await;
                    return "closed";
                }
            };
            match n {
                Ok(0) => return self.half_closed(buf.is_empty(), writer).await,
                Ok(_) => idle_since = tokio::time::Instant::now(),
                Err(_) => return "read error",
            }
        }
    }

    /// The client shut down its sending side: it still gets the answer of
    /// every request it sent (a half-close means "no more requests"),
    /// then the connection closes. Gives up when the writer does (the
    /// client had really gone).
    async fn half_closed(&self, clean: bool, writer: &mut JoinHandle<()>) -> &'static str {
        if !clean {
            debug!("connection half-closed in the middle of a frame");
        }
        while self.has_in_flight() {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if !self.has_in_flight() {
                break;
            }
            tokio::select! {
                _ = answered => {}
                _ = &mut *writer => return "writer",
            }
        }
        "eof"
    }
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a connection-level ERROR (request id 0) and closes.
    async fn close_with(&self, e: ErrorEvent) {
        let mut out = Outgoing::frame(Op::Error, 0, to_header(&e), Bytes::new());
        out.close = true;
        let _ = self.out.send(out).await;
    }

    /// One frame: the connection's checks, then the request's handling.
    /// Returns false when the writer is gone (the client left).
    async fn handle(&self, frame: Frame, charge: Charge) -> bool {
        // Backpressure: wait for a free slot, and for this connection's
        // unwritten results to fit its share, before taking on more work.
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        let share = self.state.config.frame_limits.max_frame as u64;
        self.unwritten.wait_below(share).await;
        let Ok(slot) = self.out.clone().reserve_owned().await else {
            return false; // the writer is gone
        };
        let mut answer = TcpAnswer {
            slot,
            permit,
            outstanding: self.state.outstanding.track(),
            in_flight: None,
            request: charge,
            budget: self.state.budget.clone(),
            unwritten: self.unwritten.clone(),
        };
        let id = frame.request_id;
        let refuse = |answer: TcpAnswer, e: ErrorEvent| {
            Responder::new(id, Box::new(answer)).error(e);
            true
        };
        if frame.version != PROTOCOL_VERSION {
            let message = format!(
                "protocol version {} is not supported (this node speaks {PROTOCOL_VERSION})",
                frame.version
            );
            return refuse(answer, error(ErrorCode::UnsupportedVersion, message));
        }
        let op = match Op::from_code(frame.op) {
            Some(op) if op.is_request() => op,
            _ => {
                let message = format!("unknown operation code {}", frame.op);
                return refuse(answer, error(ErrorCode::UnknownOp, message));
            }
        };
        let fresh = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
        if !fresh {
            let message = format!("request id {id} is already in flight on this connection");
            return refuse(answer, error(ErrorCode::DuplicateRequestId, message));
        }
        answer.in_flight = Some(self.in_flight.clone());
        let access = &self.state.access;
        let session = self.session().clone();
        if op == Op::Auth {
            let answered = auth::answer(
                access,
                &self.state.node_id,
                session,
                &frame.header,
                self.peer,
            )
            .await;
            *self.session() = answered.session;
            let responder = Responder::new(id, Box::new(answer));
            match answered.reply {
                Ok(header) => responder.result(header, Bytes::new()),
                Err(e) => responder.error(e),
            }
            return true;
        }
        let request = Incoming {
            op,
            request_id: id,
            header: frame.header,
            payload: frame.payload,
        };
        let keyring = access.keyring();
        if let Err(e) = rules::authorize(
            &session,
            op,
            request.is_peer_form(),
            keyring.as_deref(),
            access.fully_open(),
        ) {
            return refuse(answer, e);
        }
        let caller = Caller {
            client: session.client_id(self.peer),
            ..self.caller.clone()
        };
        let client = self.peer.map_or_else(|| "-".to_string(), |a| a.to_string());
        let boxed: Box<dyn Answer> =
            match AuditLine::of(op, &request.header, session.principal(), client) {
                Some(line) => Box::new(Audited {
                    inner: Box::new(answer),
                    line,
                }),
                None => Box::new(answer),
            };
        let responder = Responder::new(id, boxed);
        crate::request::handle(&self.state, request, &caller, responder);
        true
    }
}
