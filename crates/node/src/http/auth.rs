//! The TCP port's trust rules on HTTP: a key is presented as
//! `Authorization: Bearer KEY` on every request (HTTP has no session to
//! AUTH once), checked by the same keyring, throttle and
//! [`crate::access::rules::authorize`] as AUTH and every TCP request.
//!
//! Invariant: nothing under `/v1` or `/metrics` runs before [`authorize`]
//! said yes; only `/healthz`, `/readyz` and the page's static files are
//! open. HTTP clients never hold a peer session: the peer-only forms are
//! not reachable from here at all (routes never build them).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use ocellus_protocol::{ErrorCode, Op};
use tracing::warn;

use super::error::ApiError;
use crate::access::{Session, rules};
use crate::state::State;

/// What a request may do: the session it proved, checked for `op` (or,
/// with `None`, for any valid key: documentation routes).
pub(crate) async fn authorize(
    state: &State,
    headers: &HeaderMap,
    op: Option<Op>,
    client: Option<SocketAddr>,
) -> Result<Session, ApiError> {
    let access = &state.access;
    let Some(ring) = access.keyring() else {
        // No keys file: clients are trusted (as on TCP).
        return Ok(Session::Anonymous);
    };
    let presented = match headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or("");
            match text.strip_prefix("Bearer ") {
                Some(key) => Some(key.trim().to_string()),
                None => {
                    return Err(ApiError::protocol(
                        ErrorCode::Unauthorized,
                        "the Authorization header must be `Bearer KEY`",
                    ));
                }
            }
        }
    };
    let Some(key) = presented else {
        return Err(ApiError::protocol(
            ErrorCode::Unauthorized,
            "this node needs a key: send `Authorization: Bearer KEY`",
        ));
    };
    // Slow down an address that keeps failing, before any check.
    if let Some(addr) = client {
        let wait = access.throttle.delay(addr.ip(), Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let Some(entry) = ring.verify(&key) else {
        access.key_failures.fetch_add(1, Ordering::Relaxed);
        if let Some(addr) = client {
            access.throttle.failed(addr.ip(), Instant::now());
        }
        let who = client.map_or_else(|| "-".to_string(), |a| a.to_string());
        warn!(target: "ocellus::audit", event = "auth_failed", what = "key", client = %who, transport = "http", "authentication failed");
        return Err(ApiError::protocol(
            ErrorCode::Unauthorized,
            "the node does not accept this key",
        ));
    };
    if let Some(addr) = client {
        access.throttle.succeeded(addr.ip());
    }
    let session = Session::Key {
        hash: entry.hash,
        name: entry.name.clone(),
    };
    if let Some(op) = op {
        rules::authorize(&session, op, false, Some(&ring), access.fully_open())?;
    }
    Ok(session)
}
