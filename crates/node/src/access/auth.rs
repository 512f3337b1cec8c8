//! Answering AUTH on a connection: a client's key, or a peer's proof
//! (the exchange is described in `ocellus_auth::secret`).
//!
//! Invariants: a failed AUTH leaves the connection anonymous (it loses
//! what it had), is counted, written to the audit trail and slowed down
//! per address ([`super::throttle`]); the answer never says whether a key
//! exists under another name.

use std::net::SocketAddr;
use std::time::Instant;

use ocellus_auth::secret::{from_hex, proofs_match, to_hex};
use ocellus_auth::{ClusterSecret, Scopes};
use ocellus_protocol::auth::{AuthGranted, AuthRequest, PeerChallenge};
use ocellus_protocol::message::{from_header, to_header};
use ocellus_protocol::{ErrorCode, ErrorEvent};
use serde_json::{Map, Value};
use tracing::{info, warn};

use super::{Access, Session, rules};

/// The AUTH answer and the connection's session after it.
pub(crate) struct Answered {
    pub session: Session,
    pub reply: Result<Map<String, Value>, ErrorEvent>,
}

fn unauthorized(message: &str) -> ErrorEvent {
    ErrorEvent::new(ErrorCode::Unauthorized, message)
}

/// Answers one AUTH request from `from` on a connection whose session is
/// `session`; `node_id` is this node's.
pub(crate) async fn answer(
    access: &Access,
    node_id: &str,
    session: Session,
    header: &Map<String, Value>,
    from: Option<SocketAddr>,
) -> Answered {
    let request: AuthRequest = match from_header(header) {
        Ok(r) => r,
        Err(_) => {
            return Answered {
                session,
                reply: Err(ErrorEvent::new(
                    ErrorCode::BadRequest,
                    "AUTH needs {\"key\": \"...\"} (or, between nodes, a peer proof)",
                )),
            };
        }
    };
    // Slow down an address that keeps failing, before any check.
    if let Some(addr) = from {
        let wait = access.throttle.delay(addr.ip(), Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let client = from.map_or_else(|| "-".to_string(), |a| a.to_string());
    let outcome = match request {
        AuthRequest::Key { key } => key_auth(access, &key),
        AuthRequest::PeerHello { peer, nonce } => peer_hello(access, node_id, &peer, &nonce),
        AuthRequest::PeerProof { peer, proof } => peer_proof(access, &session, &peer, &proof),
    };
    match outcome {
        Ok((next, reply)) => {
            if let Some(addr) = from {
                access.throttle.succeeded(addr.ip());
            }
            if matches!(next, Session::Key { .. } | Session::Peer { .. }) {
                info!(target: "ocellus::audit", event = "auth", principal = %next.principal(), %client, "authenticated");
            }
            Answered {
                session: next,
                reply: Ok(reply),
            }
        }
        Err((what, e)) => {
            if let Some(addr) = from {
                access.throttle.failed(addr.ip(), Instant::now());
            }
            warn!(target: "ocellus::audit", event = "auth_failed", what, %client, reason = %e.message, "authentication failed");
            Answered {
                session: Session::Anonymous,
                reply: Err(e),
            }
        }
    }
}

type Outcome = Result<(Session, Map<String, Value>), (&'static str, ErrorEvent)>;

fn granted(name: String, scopes: Scopes, open: bool) -> Map<String, Value> {
    to_header(&AuthGranted {
        name,
        scopes: scopes.names().into_iter().map(String::from).collect(),
        open,
    })
}

fn key_auth(access: &Access, key: &str) -> Outcome {
    let Some(ring) = access.keyring() else {
        // No keys file: every client is trusted; say so.
        return Ok((
            Session::Anonymous,
            granted(String::new(), Scopes::all(), true),
        ));
    };
    match ring.verify(key) {
        Some(entry) => {
            let session = Session::Key {
                hash: entry.hash,
                name: entry.name.clone(),
            };
            let scopes = rules::scopes_of(&session, Some(&ring));
            Ok((session, granted(entry.name.clone(), scopes, false)))
        }
        None => {
            access
                .key_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(("key", unauthorized("the node does not accept this key")))
        }
    }
}

fn secret_of(access: &Access) -> Result<&ClusterSecret, (&'static str, ErrorEvent)> {
    access.secret.as_ref().ok_or_else(|| {
        access.peer_failed();
        (
            "peer",
            unauthorized("this node has no cluster secret: it accepts no peers"),
        )
    })
}

fn peer_hello(access: &Access, node_id: &str, peer: &str, nonce: &str) -> Outcome {
    let secret = secret_of(access)?;
    let nonce = match from_hex(nonce) {
        Some(n) if n.len() == ocellus_auth::secret::NONCE_LEN => n,
        _ => {
            access.peer_failed();
            return Err(("peer", unauthorized("a peer nonce is 32 bytes of hex")));
        }
    };
    let challenge = ClusterSecret::nonce();
    let proof = secret.server_proof(&challenge, &nonce, peer);
    let reply = to_header(&PeerChallenge {
        node_id: node_id.to_string(),
        challenge: to_hex(&challenge),
        proof: to_hex(&proof),
    });
    let session = Session::PeerChallenged {
        node_id: peer.to_string(),
        challenge,
        nonce,
    };
    Ok((session, reply))
}

fn peer_proof(access: &Access, session: &Session, peer: &str, proof: &str) -> Outcome {
    let secret = secret_of(access)?;
    let Session::PeerChallenged {
        node_id,
        challenge,
        nonce,
    } = session
    else {
        access.peer_failed();
        return Err((
            "peer",
            unauthorized("a peer proof must follow this connection's challenge"),
        ));
    };
    let expected = secret.client_proof(challenge, nonce, node_id);
    if node_id != peer || !proofs_match(&expected, proof) {
        access.peer_failed();
        return Err((
            "peer",
            unauthorized("the peer proof is wrong: not a node of this cluster"),
        ));
    }
    let session = Session::Peer {
        node_id: node_id.clone(),
    };
    let reply = granted(session.principal(), Scopes::all(), false);
    Ok((session, reply))
}
