//! The Ocellus client: many requests at once over one connection to a
//! node, each with its own stream of events.
//!
//! It owns the client side of a connection and nothing else: it knows the
//! protocol (`ocellus-protocol`) and tokio, and must not depend on the
//! node, the algorithms or the CLI. Both the CLI and the node's links to
//! peers and to a recognition node use it.
//!
//! Invariant: every request gets each of its events once, in the order the
//! node sent them, and learns (its stream ends) when the connection closes;
//! a request sent on a closed connection fails at once.
//!
//! Modules: `call` (a request to send, and the requests that carry
//! images), `retry` ([`Client::call`]: one request followed to its answer,
//! BUSY retried, the queue news typed).

#![warn(missing_docs)]

mod call;
mod retry;

pub use call::Call;
pub use retry::{Progress, Retry};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ocellus_protocol::message::from_header;
use ocellus_protocol::{
    Decoded, ErrorCode, ErrorEvent, Frame, FrameError, FrameLimits, Op, StatusReport, decode_frame,
};
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

/// One event about a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Event code (ACCEPTED, POSITION, STARTED, RESULT, ERROR, BUSY).
    pub op: Op,
    /// Its JSON header.
    pub header: Map<String, Value>,
    /// Its payload (a RESULT's images).
    pub payload: Bytes,
}

impl Event {
    /// Whether this is the request's last event.
    pub fn is_terminal(&self) -> bool {
        self.op.is_terminal()
    }

    /// The error, if this is an ERROR event.
    pub fn as_error(&self) -> Option<ErrorEvent> {
        (self.op == Op::Error).then(|| {
            from_header(&self.header)
                .unwrap_or_else(|_| ErrorEvent::new(ErrorCode::Internal, "unreadable ERROR event"))
        })
    }
}

/// Why a request could not be completed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Network failure.
    #[error("connection to {addr} failed: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The connection broke.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not valid frames.
    #[error("invalid data from the server: {0}")]
    Protocol(#[from] FrameError),
    /// The server answered with an ERROR.
    #[error("{} ({})", .0.message, .0.code)]
    Server(ErrorEvent),
    /// The connection closed before the request's last event.
    #[error("the server closed the connection before answering")]
    Closed,
    /// The server's answer did not have the expected form.
    #[error("unexpected answer from the server: {0}")]
    Unexpected(String),
    /// The server answered BUSY to every attempt ([`Client::call`]).
    #[error("server still busy after {attempts} tries")]
    StillBusy {
        /// How many times the request was sent.
        attempts: u32,
    },
}

/// Open requests by id; `None` once the connection has closed.
type Routes = Arc<Mutex<Option<HashMap<u64, mpsc::UnboundedSender<Event>>>>>;

/// A connection to a node.
pub struct Client {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    routes: Routes,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

/// The events of one request, in order.
pub struct Request {
    /// The request id on the wire.
    pub id: u64,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Request {
    /// The next event, or `None` when the connection closed.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Waits for the terminal event, ignoring progress.
    pub async fn finish(mut self) -> Result<Event, ClientError> {
        while let Some(event) = self.next().await {
            if let Some(e) = event.as_error() {
                return Err(ClientError::Server(e));
            }
            if event.is_terminal() {
                return Ok(event);
            }
        }
        Err(ClientError::Closed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Connects to `addr` (host:port).
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (mut read, write) = stream.into_split();
        let routes: Routes = Arc::new(Mutex::new(Some(HashMap::new())));
        let reader_routes = routes.clone();
        let reader = tokio::spawn(async move {
            let limits = FrameLimits {
                max_frame: usize::MAX >> 1,
                max_header: 1 << 24,
            };
            let mut buf = Vec::with_capacity(64 * 1024);
            loop {
                match decode_frame(&buf, &limits) {
                    Ok(Decoded::Frame(frame, used)) => {
                        buf.drain(..used);
                        dispatch(&reader_routes, frame);
                        continue;
                    }
                    Ok(Decoded::NeedMore(_)) => {}
                    Err(_) => break,
                }
                match read.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            // Every open request learns that nothing more will come, and
            // new requests fail at once.
            lock(&reader_routes).take();
        });
        Ok(Client {
            writer: tokio::sync::Mutex::new(write),
            routes,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    /// Sends a request and returns the stream of its events.
    pub async fn request(
        &self,
        op: Op,
        header: Map<String, Value>,
        payload: impl Into<Bytes>,
    ) -> Result<Request, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        match lock(&self.routes).as_mut() {
            Some(routes) => routes.insert(id, tx),
            None => return Err(ClientError::Closed),
        };
        let bytes = Frame::new(op, id, header, payload).to_bytes();
        let mut w = self.writer.lock().await;
        if let Err(e) = w.write_all(&bytes).await {
            if let Some(routes) = lock(&self.routes).as_mut() {
                routes.remove(&id);
            }
            return Err(e.into());
        }
        Ok(Request { id, events: rx })
    }

    /// Whether the connection has closed (new requests would fail).
    pub fn is_closed(&self) -> bool {
        lock(&self.routes).is_none()
    }

    /// Asks the node for its STATUS.
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        let event = self
            .request(Op::Status, Map::new(), Bytes::new())
            .await?
            .finish()
            .await?;
        from_header(&event.header).map_err(|e| ClientError::Unexpected(e.to_string()))
    }

    /// Sends `call` once and returns the stream of its events.
    pub async fn send(&self, call: &Call) -> Result<Request, ClientError> {
        self.request(call.op, call.header.clone(), call.payload.clone())
            .await
    }

    /// Sends a request that carries images: their lengths go in the
    /// header's `images` field and their bytes, back to back, in the payload.
    pub async fn request_images(
        &self,
        op: Op,
        header: Map<String, Value>,
        images: &[Vec<u8>],
    ) -> Result<Request, ClientError> {
        self.send(&Call::with_images(op, header, images)).await
    }

    /// Sends one image to be filtered; returns the request's events.
    pub async fn filter(
        &self,
        image: Vec<u8>,
        ops: &str,
        format: Option<&str>,
        quality: Option<u8>,
    ) -> Result<Request, ClientError> {
        self.send(&Call::filter(image, ops, format, quality)).await
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn dispatch(routes: &Routes, frame: Frame) {
    let Some(op) = Op::from_code(frame.op) else {
        return;
    };
    let event = Event {
        op,
        header: frame.header,
        payload: frame.payload,
    };
    let mut guard = lock(routes);
    let Some(routes) = guard.as_mut() else { return };
    if frame.request_id == 0 {
        // About the connection itself (it is closing): tell every request.
        for tx in routes.values() {
            let _ = tx.send(event.clone());
        }
        return;
    }
    let terminal = event.is_terminal();
    if let Some(tx) = routes.get(&frame.request_id) {
        let _ = tx.send(event);
    }
    if terminal {
        routes.remove(&frame.request_id);
    }
}
