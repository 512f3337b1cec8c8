//! Accepting connections until the node stops, and the TLS handshake of
//! each on a node with TLS.
//!
//! Invariant: an accept error (out of file descriptors and the like) never
//! ends the node; it waits a moment and goes on. A connection over the
//! caps ([`crate::admission`]) is accepted, told ERROR `busy` with the reason
//! (before any TLS handshake: the frame is plain, and a TLS client sees
//! the connection close) and closed. A TLS handshake that does
//! not complete within the frame timeout is dropped (slow-loris), and no
//! request is read before the handshake is done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use ocellus_client::rustls;

use super::connection;
use crate::state::State;

/// How long to wait after a failed accept before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves every connection `listener` accepts until `stop` resolves; then
/// drops the listener (no new connections).
pub(crate) async fn accept_until(
    listener: TcpListener,
    state: Arc<State>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match state.connections.open(peer.ip()) {
                    Ok(slot) => {
                        let state = state.clone();
                        tokio::spawn(async move {
                            let _slot = slot;
                            serve(stream, peer, state).await
                        });
                    }
                    Err(refused) => {
                        state.metrics.connection_refused();
                        info!(%peer, reason = %refused.message(), "connection refused");
                        tokio::spawn(refuse(stream, refused));
                    }
                },
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

/// How long a refused connection is given to read its ERROR.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Tells a connection over the caps why, then closes it.
async fn refuse(mut stream: TcpStream, refused: crate::admission::Refused) {
    use ocellus_protocol::message::to_header;
    use ocellus_protocol::{ErrorCode, ErrorEvent, Frame, Op};
    use tokio::io::AsyncWriteExt;
    let e = ErrorEvent::new(ErrorCode::Busy, refused.message());
    let mut bytes = Vec::new();
    Frame::new(Op::Error, 0, to_header(&e), bytes::Bytes::new()).encode_head(&mut bytes);
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

/// One accepted connection: plain, or TLS once the handshake is done.
async fn serve(stream: TcpStream, peer: SocketAddr, state: Arc<State>) {
    // Open from accept to close, the TLS handshake included.
    let _open = state.metrics.tcp_connection();
    let _ = stream.set_nodelay(true);
    let Some(tls) = &state.config.tls else {
        let (reader, writer) = stream.into_split();
        return connection::serve(reader, writer, Some(peer), state).await;
    };
    let handshake = tls.acceptor().accept(stream);
    match tokio::time::timeout(state.config.frame_timeout, handshake).await {
        Ok(Ok(stream)) => {
            let (reader, writer) = tokio::io::split(stream);
            connection::serve(reader, writer, Some(peer), state).await;
        }
        Ok(Err(e)) => {
            let plain = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::InvalidMessage(_)));
            if plain {
                info!(%peer, "a plain-text client on the TLS port (it should connect with --tls)");
            } else {
                info!(%peer, error = %e, "TLS handshake failed");
            }
        }
        Err(_) => info!(%peer, "TLS handshake not completed within the frame timeout"),
    }
}
