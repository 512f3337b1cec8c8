//! The connecting side of the peer proof: before a job, crop or face goes
//! to another node, the connection proves this node holds the cluster
//! secret and checks that the other side does too (steps 1-3 in
//! `ocellus_auth::secret`).
//!
//! Invariant: [`prove`] returns `Ok` only after the other node's proof
//! checked out, so nothing is sent to a node that merely claims an
//! address in the mesh.

use bytes::Bytes;
use ocellus_auth::ClusterSecret;
use ocellus_auth::secret::{from_hex, proofs_match, to_hex};
use ocellus_client::{Client, ClientError};
use ocellus_protocol::Op;
use ocellus_protocol::auth::{AuthRequest, PeerChallenge};
use ocellus_protocol::message::{from_header, to_header};

/// Why a peer connection was not trusted.
#[derive(Debug, thiserror::Error)]
pub enum PeerAuthError {
    /// The exchange failed on the wire or was refused.
    #[error("peer authentication failed: {0}")]
    Client(#[from] ClientError),
    /// The other node's answer was not a challenge.
    #[error("peer authentication failed: the node answered something else than a challenge")]
    Unexpected,
    /// The other node does not hold the secret.
    #[error("the node does not hold this cluster's secret: not trusted")]
    WrongProof,
}

/// What this node proves itself with: the secret and its node id.
pub(crate) struct PeerProver {
    pub secret: ClusterSecret,
    pub node_id: String,
    /// Exchanges that failed (the other side refused us, or could not
    /// prove itself).
    pub failures: std::sync::atomic::AtomicU64,
}

impl PeerProver {
    /// Runs the exchange on a freshly connected `client`.
    pub async fn prove(&self, client: &Client) -> Result<(), PeerAuthError> {
        let outcome = prove(client, &self.secret, &self.node_id).await;
        if outcome.is_err() {
            self.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        outcome
    }
}

/// Proves `client`'s connection to be this node's (`node_id`) and checks
/// the other side's proof.
pub(crate) async fn prove(
    client: &Client,
    secret: &ClusterSecret,
    node_id: &str,
) -> Result<(), PeerAuthError> {
    let nonce = ClusterSecret::nonce();
    let hello = AuthRequest::PeerHello {
        peer: node_id.to_string(),
        nonce: to_hex(&nonce),
    };
    let event = client
        .request(Op::Auth, to_header(&hello), Bytes::new())
        .await?
        .finish()
        .await?;
    let challenge: PeerChallenge =
        from_header(&event.header).map_err(|_| PeerAuthError::Unexpected)?;
    let challenge_bytes = from_hex(&challenge.challenge).ok_or(PeerAuthError::Unexpected)?;
    let expected = secret.server_proof(&challenge_bytes, &nonce, node_id);
    if !proofs_match(&expected, &challenge.proof) {
        return Err(PeerAuthError::WrongProof);
    }
    let proof = AuthRequest::PeerProof {
        peer: node_id.to_string(),
        proof: to_hex(&secret.client_proof(&challenge_bytes, &nonce, node_id)),
    };
    client
        .request(Op::Auth, to_header(&proof), Bytes::new())
        .await?
        .finish()
        .await?;
    Ok(())
}
