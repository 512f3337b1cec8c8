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
//! A connection is plain TCP or TLS ([`ConnectOptions`]); everything after
//! the handshake is the same code over either. With a key, the client
//! sends AUTH first and the connection is returned only once the node
//! accepted it.
//!
//! Modules: `call` (a request to send, and the requests that carry
//! images), `retry` ([`Client::call`]: one request followed to its answer,
//! BUSY retried, the queue news typed), `tls` (trusted roots and the
//! name to verify).

#![warn(missing_docs)]

mod call;
mod retry;
pub mod tls;

pub use call::Call;
pub use retry::{Progress, Retry};
pub use tls::{TlsError, TlsOptions};
/// The rustls this crate is built with (for callers that build roots).
pub use tokio_rustls::rustls;

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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
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
    /// The node answered a plain-text connection with TLS.
    #[error("the node at {addr} speaks TLS: use --tls")]
    SpeaksTls {
        /// The node.
        addr: String,
    },
    /// The TLS settings could not be made.
    #[error(transparent)]
    TlsSettings(#[from] TlsError),
    /// The TLS handshake failed for another reason than the certificate.
    #[error("TLS handshake with {addr} failed: {source}{hint}")]
    Tls {
        /// The node.
        addr: String,
        /// The cause.
        source: std::io::Error,
        /// What it may mean, or empty.
        hint: &'static str,
    },
    /// The node's certificate is not trusted (unknown CA, wrong name,
    /// expired...).
    #[error(
        "the node at {addr} presented a certificate that is not trusted: {reason} (give the CA that signed it with --ca, and --tls-server-name if the name in it differs from the address)"
    )]
    Certificate {
        /// The node.
        addr: String,
        /// What verification found.
        reason: String,
    },
    /// The node refused the key sent with AUTH.
    #[error("the node refused the key ({})", ErrorCode::Unauthorized)]
    Unauthorized {
        /// The node's message.
        message: String,
    },
}

/// How to connect: plain TCP or TLS, and a key to present with AUTH.
/// The default is what [`Client::connect`] does: plain, no key.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Speak TLS, verifying the node as these options say.
    pub tls: Option<TlsOptions>,
    /// An API key: sent with AUTH right after connecting.
    pub key: Option<String>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key itself is never printed.
        f.debug_struct("ConnectOptions")
            .field("tls", &self.tls)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What the node said about an accepted key (the RESULT of AUTH).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct AuthInfo {
    /// The key's name.
    pub name: String,
    /// What it may do (`filter`, `detect`, `recognize`, `enroll`, `read`,
    /// `admin`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// What the reading side learnt about the connection, for the error of a
/// request that ends without an answer.
struct Peer {
    addr: String,
    /// The node answered in TLS (this connection is plain).
    speaks_tls: std::sync::atomic::AtomicBool,
}

impl Peer {
    /// The error of a request whose events stopped.
    fn closed(&self) -> ClientError {
        if self.speaks_tls.load(Ordering::Acquire) {
            ClientError::SpeaksTls {
                addr: self.addr.clone(),
            }
        } else {
            ClientError::Closed
        }
    }
}

/// Open requests by id; `None` once the connection has closed.
type Routes = Arc<Mutex<Option<HashMap<u64, mpsc::UnboundedSender<Event>>>>>;

/// A connection to a node.
pub struct Client {
    writer: tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
    routes: Routes,
    peer: Arc<Peer>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

/// The events of one request, in order.
pub struct Request {
    /// The request id on the wire.
    pub id: u64,
    events: mpsc::UnboundedReceiver<Event>,
    peer: Arc<Peer>,
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
        Err(self.closed())
    }

    /// The error of this request when its events stopped without an
    /// answer: [`ClientError::Closed`], or why the connection could not
    /// work ([`ClientError::SpeaksTls`]).
    pub fn closed(&self) -> ClientError {
        self.peer.closed()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Connects to `addr` (host:port): plain TCP, no key.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with(addr, &ConnectOptions::default()).await
    }

    /// Connects to `addr` (host:port) as `options` say: TLS (the handshake
    /// and the certificate check done before this returns), then AUTH
    /// with the key, if any.
    pub async fn connect_with(addr: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let client = match &options.tls {
            None => {
                let (read, write) = stream.into_split();
                Client::over(addr, read, write)
            }
            Some(tls) => {
                let name = tls.name_for(addr)?;
                let connector = tokio_rustls::TlsConnector::from(tls.config());
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| handshake_error(addr, e))?;
                let (read, write) = tokio::io::split(stream);
                Client::over(addr, read, write)
            }
        };
        if let Some(key) = &options.key {
            client.authenticate(key).await?;
        }
        Ok(client)
    }

    /// Presents `key` with AUTH; returns what the node says about it.
    /// A refused key is [`ClientError::Unauthorized`].
    pub async fn authenticate(&self, key: &str) -> Result<AuthInfo, ClientError> {
        let mut header = Map::new();
        header.insert("key".into(), Value::from(key));
        let answer = self
            .request(Op::Auth, header, Bytes::new())
            .await?
            .finish()
            .await;
        match answer {
            Ok(event) => {
                from_header(&event.header).map_err(|e| ClientError::Unexpected(e.to_string()))
            }
            Err(ClientError::Server(e)) if e.code == ErrorCode::Unauthorized => {
                Err(ClientError::Unauthorized { message: e.message })
            }
            Err(e) => Err(e),
        }
    }

    /// A client over a connected stream's two halves: starts the task
    /// that reads events and hands each to its request.
    fn over(
        addr: &str,
        mut read: impl AsyncRead + Send + Unpin + 'static,
        write: impl AsyncWrite + Send + Unpin + 'static,
    ) -> Client {
        let routes: Routes = Arc::new(Mutex::new(Some(HashMap::new())));
        let peer = Arc::new(Peer {
            addr: addr.to_string(),
            speaks_tls: std::sync::atomic::AtomicBool::new(false),
        });
        let reader_routes = routes.clone();
        let reader_peer = peer.clone();
        let reader = tokio::spawn(async move {
            let limits = FrameLimits {
                max_frame: usize::MAX >> 1,
                max_header: 1 << 24,
            };
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut frames = 0u64;
            loop {
                match decode_frame(&buf, &limits) {
                    Ok(Decoded::Frame(frame, used)) => {
                        buf.drain(..used);
                        frames += 1;
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
            // A TLS node answers the first plain frame with an alert and
            // closes: say so rather than "closed".
            if frames == 0 && ocellus_protocol::sniff::is_tls_record(&buf) {
                reader_peer.speaks_tls.store(true, Ordering::Release);
            }
            // Every open request learns that nothing more will come, and
            // new requests fail at once.
            lock(&reader_routes).take();
        });
        Client {
            writer: tokio::sync::Mutex::new(Box::new(write)),
            routes,
            peer,
            next_id: AtomicU64::new(1),
            reader,
        }
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
            None => return Err(self.peer.closed()),
        };
        let bytes = Frame::new(op, id, header, payload).to_bytes();
        let mut w = self.writer.lock().await;
        if let Err(e) = w.write_all(&bytes).await {
            if let Some(routes) = lock(&self.routes).as_mut() {
                routes.remove(&id);
            }
            return Err(e.into());
        }
        Ok(Request {
            id,
            events: rx,
            peer: self.peer.clone(),
        })
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

/// The error of a failed TLS handshake with `addr`: a certificate that
/// does not verify is [`ClientError::Certificate`].
fn handshake_error(addr: &str, e: std::io::Error) -> ClientError {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::InvalidCertificate(reason)) = tls {
        return ClientError::Certificate {
            addr: addr.to_string(),
            reason: reason.to_string(),
        };
    }
    // A plain-text node closes on a ClientHello, or answers it with a
    // frame that is no TLS record.
    let plain = e.kind() == std::io::ErrorKind::UnexpectedEof
        || matches!(tls, Some(rustls::Error::InvalidMessage(_)));
    ClientError::Tls {
        addr: addr.to_string(),
        source: e,
        hint: if plain {
            " (is it a plain-text node, started without --tls-cert?)"
        } else {
            ""
        },
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::retry::tests::scripted_node;

    fn options(key: &str) -> ConnectOptions {
        ConnectOptions {
            tls: None,
            key: Some(key.to_string()),
        }
    }

    /// A FILTER-like request whose RESULT the scripted node echoes.
    async fn echo(client: &Client) -> Result<Event, ClientError> {
        client
            .request(Op::Filter, Map::new(), Bytes::from_static(b"x"))
            .await?
            .finish()
            .await
    }

    #[tokio::test]
    async fn a_key_is_presented_with_auth_before_anything_else() {
        let accepted = json!({"name": "ci", "scopes": ["filter", "read"]});
        let (addr, node) = scripted_node(vec![
            vec![(Op::Result, accepted)],
            vec![(Op::Result, json!({}))],
        ])
        .await;
        let client = Client::connect_with(&addr, &options("s3cret"))
            .await
            .expect("the key is accepted");
        echo(&client).await.expect("the request after AUTH");
        let got = node.await.expect("node");
        assert_eq!(got[0].op, Op::Auth as u8);
        assert_eq!(got[0].header["key"], json!("s3cret"));
        assert_eq!(got[1].op, Op::Filter as u8);
    }

    #[tokio::test]
    async fn authenticate_returns_the_name_and_scopes() {
        let accepted = json!({"name": "ci", "scopes": ["filter", "read"]});
        let (addr, _node) = scripted_node(vec![vec![(Op::Result, accepted)]]).await;
        let client = Client::connect(&addr).await.expect("connect");
        let info = client.authenticate("s3cret").await.expect("accepted");
        assert_eq!(
            info,
            AuthInfo {
                name: "ci".into(),
                scopes: vec!["filter".into(), "read".into()],
            }
        );
    }

    #[tokio::test]
    async fn a_refused_key_is_a_typed_error_that_does_not_show_the_key() {
        let refused = json!({"code": "unauthorized", "message": "unknown key"});
        let (addr, _node) = scripted_node(vec![vec![(Op::Error, refused)]]).await;
        let outcome = Client::connect_with(&addr, &options("s3cret")).await;
        let Err(e) = outcome else {
            panic!("a refused key must fail the connection")
        };
        assert!(matches!(&e, ClientError::Unauthorized { .. }), "{e:?}");
        assert_eq!(e.to_string(), "the node refused the key (unauthorized)");
        assert!(!format!("{e:?}").contains("s3cret"));
        assert!(!format!("{:?}", options("s3cret")).contains("s3cret"));
    }

    #[tokio::test]
    async fn without_a_key_the_first_request_is_the_callers() {
        let (addr, node) = scripted_node(vec![vec![(Op::Result, json!({}))]]).await;
        let client = Client::connect_with(&addr, &ConnectOptions::default())
            .await
            .expect("connect");
        echo(&client).await.expect("answer");
        let got = node.await.expect("node");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].op, Op::Filter as u8);
    }

    #[tokio::test]
    async fn a_node_that_answers_in_tls_is_named_as_such() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let node = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut first = [0u8; 4];
            let _ = stream.read(&mut first).await;
            // What rustls sends to bytes that are not TLS: a fatal
            // decode_error alert; then it closes.
            let _ = stream.write_all(&[0x15, 3, 3, 0, 2, 2, 50]).await;
        });
        let client = Client::connect(&addr).await.expect("connect");
        let outcome = client.status().await;
        assert!(
            matches!(&outcome, Err(ClientError::SpeaksTls { addr: a }) if *a == addr),
            "{outcome:?}"
        );
        node.await.expect("node");
    }
}
