//! Connections to peers (for forwarded requests): one per peer address, opened on first use and
//! forgotten when it fails, so the next job opens a new one. A peer that
//! publishes `tls` in its gossip state is connected to with TLS, verified
//! with the node's peer roots ([`crate::peer_tls`]).
//!
//! Invariant: a failed connection is forgotten only if it is still the
//! one in the pool (a newer one opened meanwhile by another job stays);
//! every connection in the pool was made by [`PeerConnections::open`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ocellus_client::{Client, ClientError, ConnectOptions, TlsOptions};

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
    /// Whether this node's own listener speaks TLS.
    own_tls: bool,
    /// How TLS peers are verified; `None`: the system roots.
    peer_tls: Option<TlsOptions>,
}

impl PeerConnections {
    /// Makes every new connection prove this node's membership first.
    pub fn set_prover(&self, prover: Arc<PeerProver>) {
        let _ = self.prover.set(prover);
    }

    /// A pool for a node whose listener speaks TLS if `own_tls`, verifying
    /// TLS peers with `peer_tls`.
    pub fn new(own_tls: bool, peer_tls: Option<TlsOptions>) -> PeerConnections {
        PeerConnections {
            own_tls,
            peer_tls,
            ..PeerConnections::default()
        }
    }

    /// Whether this node's own listener speaks TLS.
    pub fn own_tls(&self) -> bool {
        self.own_tls
    }

    /// A connection to the peer at `addr`: the open one, or a new one
    /// (with TLS if `tls`).
    pub async fn get(&self, addr: &str, tls: bool) -> Result<Arc<Client>, ClientError> {
        let mut pool = self.pool.lock().await;
        if let Some(c) = pool.get(addr).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = match tokio::time::timeout(CONNECT_TIMEOUT, self.open(addr, tls)).await {
            Ok(c) => Arc::new(c?),
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
                });
            }
        };
        pool.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Opens a new connection to the peer at `addr`: the one place a
    /// fresh peer connection is made, so whatever a peer must do before
    /// any job goes over it (TLS, then the proof of the cluster secret) happens exactly once per connection.
    async fn open(&self, addr: &str, tls: bool) -> Result<Client, ClientError> {
        let options = ConnectOptions {
            tls: match (tls, &self.peer_tls) {
                (false, _) => None,
                (true, Some(t)) => Some(t.clone()),
                (true, None) => Some(TlsOptions::system()?),
            },
            key: None,
        };
        let client = Client::connect_with(addr, &options).await?;
        if let Some(prover) = self.prover.get() {
            // A peer that cannot prove it holds the secret gets nothing.
            prover
                .prove(&client)
                .await
                .map_err(|e| ClientError::Unexpected(format!("peer {addr}: {e}")))?;
        }
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
