//! Running a request on a peer while its caller hears the peer's events.
//!
//! A request handed to a peer is never lost and its caller never receives
//! two results: the caller's one [`Responder`] stays on this node and
//! answers exactly once. When the peer dies (the connection breaks, or the
//! failure detector declares it dead, which catches a peer cut off behind
//! a silent connection), or answers with a retryable error (it is shutting
//! down), the request is sent again to another peer, or comes back to the
//! caller as [`Unplaced`] to run here; a late answer from the old peer
//! goes nowhere. A job may therefore *run* twice after a failure, which
//! every operation tolerates (filters and detection are pure, and
//! enrolling the same photo twice stores it once).
//!
//! The request travels as it arrived: its header plus `via` (and
//! `max_wait_s`), and its payload shared, not copied.

use std::sync::Arc;

use ocellus_client::Client;
use ocellus_protocol::{ErrorCode, Op, PeerStatus, field};
use serde_json::Value;
use tracing::{debug, warn};

use super::Mesh;
use super::route::{Route, route};
use super::rule::Load;
use crate::call::{Caller, Incoming, Progress, Responder, error};

/// Peers tried for one request before it comes back to run here.
const MAX_PEER_ATTEMPTS: usize = 3;

/// A request no peer ran, back to run here (or be refused).
pub(crate) struct Unplaced {
    pub request: Incoming,
    pub responder: Responder,
    /// How many peers were tried.
    pub tried: usize,
}

/// How one attempt on a peer ended.
enum Outcome {
    /// The caller has its answer.
    Delivered,
    /// The peer said BUSY: it would be slower than expected.
    Refused(Responder),
    /// The peer could not run it (gone, dying, shutting down).
    Failed(Responder, String),
}

/// Runs `request` on `peer`, then on other peers, until one answers it;
/// gives it back when none could (after [`MAX_PEER_ATTEMPTS`], or when the
/// rule says to keep it and `may_run_here` says this node can). Returns
/// `Ok` also when the caller has gone (nobody to answer).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn hand_over(
    mesh: &Mesh,
    node_id: &str,
    local_load: impl Fn() -> Load,
    may_run_here: impl Fn() -> bool,
    request: Incoming,
    caller: &Caller,
    mut responder: Responder,
    mut peer: PeerStatus,
    mut max_wait_s: Option<f64>,
) -> Result<(), Unplaced> {
    let mut tried: Vec<String> = Vec::new();
    loop {
        let outcome = attempt(
            mesh, node_id, &request, caller, &peer, max_wait_s, responder,
        )
        .await;
        responder = match outcome {
            Outcome::Delivered => return Ok(()),
            Outcome::Refused(r) => {
                debug!(peer = %peer.addr, request = request.request_id, "peer busy; choosing again");
                r
            }
            Outcome::Failed(r, why) => {
                warn!(peer = %peer.addr, node = %peer.node_id, request = request.request_id, why, "peer failed a forwarded job; running it again");
                r
            }
        };
        tried.push(peer.node_id.clone());
        if caller.is_gone() {
            return Ok(()); // nobody to answer: the responder's write goes nowhere
        }
        let next = if tried.len() >= MAX_PEER_ATTEMPTS {
            Route::Here
        } else {
            route(
                mesh,
                local_load(),
                request.op,
                request.has_crops(),
                may_run_here(),
                &tried,
            )
        };
        match next {
            Route::Peer {
                peer: p,
                max_wait_s: w,
            } => {
                peer = p;
                max_wait_s = w;
            }
            Route::Here => {
                return Err(Unplaced {
                    request,
                    responder,
                    tried: tried.len(),
                });
            }
        }
    }
}

/// One try on one peer, relaying its progress events to the caller.
async fn attempt(
    mesh: &Mesh,
    node_id: &str,
    request: &Incoming,
    caller: &Caller,
    peer: &PeerStatus,
    max_wait_s: Option<f64>,
    responder: Responder,
) -> Outcome {
    let _counted = mesh.track(&peer.node_id);
    let mut header = request.header.clone();
    header.insert(field::VIA.into(), Value::from(node_id));
    if let Some(w) = max_wait_s {
        header.insert(field::MAX_WAIT_S.into(), Value::from(w));
    }
    // A pooled connection the peer has since closed (idle timeout) fails
    // at once: open a new one and send again, once.
    let mut sent: Option<(Arc<Client>, ocellus_client::Request)> = None;
    let mut last_error = String::new();
    for _ in 0..2 {
        let client = match mesh.connections.get(&peer.addr, peer.tls).await {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(responder, e.to_string()),
        };
        // Sending may block on a peer that stopped reading (frozen): the
        // failure detector ends the wait.
        let send = client.request(request.op, header.clone(), request.payload.clone());
        let sent_now = tokio::select! {
            r = send => r,
            _ = mesh.wait_dead(&peer.node_id) => {
                mesh.connections.forget(&peer.addr, &client).await;
                return Outcome::Failed(responder, "the failure detector declared it dead".into());
            }
        };
        match sent_now {
            Ok(r) => {
                sent = Some((client, r));
                break;
            }
            Err(e) => {
                last_error = e.to_string();
                mesh.connections.forget(&peer.addr, &client).await;
            }
        }
    }
    let Some((client, mut events)) = sent else {
        return Outcome::Failed(responder, last_error);
    };
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = mesh.wait_dead(&peer.node_id) => {
                mesh.connections.forget(&peer.addr, &client).await;
                return Outcome::Failed(responder, "the failure detector declared it dead".into());
            }
        };
        let Some(mut event) = event else {
            mesh.connections.forget(&peer.addr, &client).await;
            return Outcome::Failed(responder, "connection lost".into());
        };
        match event.op {
            Op::Busy => return Outcome::Refused(responder),
            Op::Error => {
                let e = event
                    .as_error()
                    .unwrap_or_else(|| error(ErrorCode::Internal, ""));
                // The job was not run there: worth another node.
                if e.code.is_retryable() {
                    return Outcome::Failed(responder, e.to_string());
                }
                responder.send(Op::Error, event.header, event.payload);
                return Outcome::Delivered;
            }
            op if op.is_terminal() => {
                responder.send(op, event.header, event.payload);
                return Outcome::Delivered;
            }
            op => {
                event
                    .header
                    .insert(field::NODE_ID.into(), Value::from(peer.node_id.as_str()));
                event
                    .header
                    .insert(field::NODE_ADDR.into(), Value::from(peer.addr.as_str()));
                caller.sink.progress(
                    request.request_id,
                    Progress::Relayed {
                        op,
                        header: event.header,
                    },
                );
            }
        }
    }
}
