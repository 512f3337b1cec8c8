//! The STATUS report (the RESULT of STATUS, and `ocellus status --json`).

use serde::{Deserialize, Serialize};

use crate::role::RoleSet;

/// What a node says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReport {
    /// Ocellus version.
    pub version: String,
    /// This node's identifier, new at every start.
    pub node_id: String,
    /// The roles this node serves.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub roles: RoleSet,
    /// Jobs waiting.
    pub queue_length: u64,
    /// Queue capacity.
    pub queue_capacity: u64,
    /// Worker threads.
    pub workers: u64,
    /// Workers running a job now.
    pub busy: u64,
    /// Jobs this node ran successfully.
    pub jobs_done: u64,
    /// Jobs that ended in an error.
    pub jobs_failed: u64,
    /// Jobs that started but whose client had gone before they ended:
    /// stopped at a checkpoint or their result discarded.
    #[serde(default)]
    pub jobs_cancelled: u64,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Recent average job time, seconds.
    pub mean_job_s: f64,
    /// Jobs this node handed to peers (each attempt counts).
    #[serde(default)]
    pub jobs_forwarded: u64,
    /// Whether clients must AUTH with a key.
    #[serde(default)]
    pub keys_required: bool,
    /// AUTH with a key the node does not accept.
    #[serde(default)]
    pub key_auth_failures: u64,
    /// Peer proofs that failed, both ways: nodes that could not prove the
    /// cluster secret to this one, and nodes this one would not trust.
    /// Such nodes are counted here, never listed as peers.
    #[serde(default)]
    pub peer_auth_failures: u64,
    /// Gossip datagrams dropped since start: not sealed under the cluster
    /// secret (a forger, a node of another mesh), tampered, stale,
    /// replayed or malformed. Such senders are never listed in `peers`.
    #[serde(default)]
    pub gossip_rejected: u64,
    /// The other nodes of the mesh, alive or recently dead.
    #[serde(default)]
    pub peers: Vec<PeerStatus>,
    /// Whether the protocol port speaks TLS.
    #[serde(default)]
    pub tls: bool,
}

/// Another node of the mesh, as gossip describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeerStatus {
    /// Its identifier.
    pub node_id: String,
    /// host:port of its protocol listener.
    pub addr: String,
    /// Its gossip address.
    pub gossip_addr: String,
    /// Its roles.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub roles: RoleSet,
    /// Jobs waiting there.
    pub queue_length: u64,
    /// Jobs running there.
    pub busy: u64,
    /// Its worker threads.
    pub workers: u64,
    /// Jobs it ran itself.
    pub jobs_done: u64,
    /// Its recent mean job time, seconds.
    pub mean_job_s: f64,
    /// Whether the failure detector thinks it is alive.
    pub alive: bool,
    /// Whether it announced that it is leaving.
    pub leaving: bool,
    /// Whether its protocol port speaks TLS (peers connect with TLS).
    #[serde(default)]
    pub tls: bool,
}

impl PeerStatus {
    /// Whether it may be sent work.
    pub fn usable(&self) -> bool {
        self.alive && !self.leaving
    }
}
