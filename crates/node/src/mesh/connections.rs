//! Connections to peers (for forwarded requests): one per peer address, opened on first use and
//! forgotten when it fails, so the next job opens a new one.
//!
//! Invariant: a failed connection is forgotten only if it is still the
//! one in the pool (a newer one opened meanwhile by another job stays).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ocellus_client::{Client, ClientError};

use crate::access::peer::PeerProver;

/// How long opening a connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The pool.
#[derive(Default)]
pub(crate) struct PeerConnections {
    pool: tokio::sync::Mutex<HashMap<String, Arc<Client>>>,
    /// With a cluster secret: the proof each new connection starts with
    /// (set once, when the node starts).
    prover: std::sync::OnceLock<Arc<PeerProver>>,
}

impl PeerConnections {
    /// Makes every new connection prove this node's membership first.
    pub fn set_prover(&self, prover: Arc<PeerProver>) {
        let _ = self.prover.set(prover);
    }

    /// A connection to the peer at `addr`: the open one, or a new one.
    pub async fn get(&self, addr: &str) -> Result<Arc<Client>, ClientError> {
        let mut pool = self.pool.lock().await;
        if let Some(c) = pool.get(addr).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(addr)).await {
            Ok(c) => Arc::new(c?),
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
                });
            }
        };
        if let Some(prover) = self.prover.get() {
            // A peer that cannot prove it holds the secret gets nothing.
            prover
                .prove(&client)
                .await
                .map_err(|e| ClientError::Unexpected(format!("peer {addr}: {e}")))?;
        }
        pool.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Forgets a connection that failed.
    pub async fn forget(&self, addr: &str, client: &Arc<Client>) {
        let mut pool = self.pool.lock().await;
        if pool.get(addr).is_some_and(|c| Arc::ptr_eq(c, client)) {
            pool.remove(addr);
        }
    }
}
