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

use bytes::Bytes;
use ocellus_protocol::message::to_header;
use ocellus_protocol::{Decoded, ErrorCode, ErrorEvent, Frame, Op, PROTOCOL_VERSION, decode_frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{Notify, Semaphore, mpsc};
use tracing::{debug, warn};

use super::writer::{Outgoing, PROGRESS_ROOM, ProgressSink, TcpAnswer, write_loop};
use crate::access::audit::{AuditLine, Audited};
use crate::access::{Session, auth, rules};
use crate::call::{Answer, Caller, Incoming, Responder, error};
use crate::state::State;

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
    let writer_task = tokio::spawn(write_loop(writer, rx, cfg.idle_timeout, answered.clone()));
    let conn = Conn {
        permits: Arc::new(Semaphore::new(cfg.max_in_flight)),
        out: tx.clone(),
        answered,
        caller: Caller {
            sink: Arc::new(ProgressSink { tx }),
            cancelled: Arc::new(AtomicBool::new(false)),
        },
        in_flight: Arc::new(Mutex::new(HashSet::new())),
        state: state.clone(),
        session: Mutex::new(Session::Anonymous),
        peer,
    };
    let reason = conn.read_loop(&mut reader).await;
    debug!(?peer, reason, "connection ends");
    // The client is gone (or we closed on it): drop its waiting jobs and
    // discard the results of running ones.
    conn.caller.cancelled.store(true, Ordering::Release);
    state.queue.purge_cancelled();
    drop(conn);
    let _ = writer_task.await;
}

/// A connection's reading side.
struct Conn {
    state: Arc<State>,
    permits: Arc<Semaphore>,
    out: mpsc::Sender<Outgoing>,
    /// Signalled by the writer each time a request's last event is written.
    answered: Arc<Notify>,
    caller: Caller,
    in_flight: Arc<Mutex<HashSet<u64>>>,
    /// What the connection has proved (AUTH).
    session: Mutex<Session>,
    /// The client's address.
    peer: Option<SocketAddr>,
}

impl Conn {
    /// Reads and handles frames; returns why it stopped: "eof" (client
    /// left), "closed" (we closed after an ERROR), or a read error.
    async fn read_loop(&self, reader: &mut (impl AsyncRead + Unpin)) -> &'static str {
        let cfg = &self.state.config;
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut frame_deadline: Option<tokio::time::Instant> = None;
        let mut idle_since = tokio::time::Instant::now();
        loop {
            match decode_frame(&buf, &cfg.frame_limits) {
                Ok(Decoded::Frame(frame, used)) => {
                    buf.drain(..used);
                    frame_deadline = None;
                    self.handle(frame).await;
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
            if !buf.is_empty() && frame_deadline.is_none() {
                frame_deadline = Some(tokio::time::Instant::now() + cfg.frame_timeout);
            }
            let in_flight = self.permits.available_permits() < cfg.max_in_flight;
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
                _ = tokio::time::sleep_until(deadline) => {
                    if frame_deadline.is_some() {
                        self.close_with(error(ErrorCode::Timeout, format!(
                            "incomplete frame: not received within {} s", cfg.frame_timeout.as_secs()
                        ))).await;
                        return "closed";
                    }
                    if self.permits.available_permits() < cfg.max_in_flight {
                        continue; // work in flight: not idle
                    }
                    self.close_with(error(ErrorCode::Timeout, format!(
                        "idle connection: nothing received for {} s", cfg.idle_timeout.as_secs()
                    ))).await;
                    return "closed";
                }
            };
            match n {
                Ok(0) => return "eof",
                Ok(_) => idle_since = tokio::time::Instant::now(),
                Err(_) => return "read error",
            }
        }
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
    async fn handle(&self, frame: Frame) {
        // Backpressure: wait for a free slot before taking on more work.
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let Ok(slot) = self.out.clone().reserve_owned().await else {
            return; // the writer is gone
        };
        let mut answer = TcpAnswer {
            slot,
            permit,
            outstanding: self.state.outstanding.track(),
            in_flight: None,
        };
        let id = frame.request_id;
        let refuse = |answer: TcpAnswer, e: ErrorEvent| {
            Responder::new(id, Box::new(answer)).error(e);
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
            return match answered.reply {
                Ok(header) => responder.result(header, Bytes::new()),
                Err(e) => responder.error(e),
            };
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
        crate::request::handle(&self.state, request, &self.caller, responder);
    }
}
