//! The STATUS report.

use serde::{Deserialize, Serialize};

/// What a node says about itself (the RESULT of STATUS, and
/// `ocellus status --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Ocellus version.
    pub version: String,
    /// This node's identifier, new at every start.
    pub node_id: String,
    /// The roles this node serves.
    pub roles: Vec<String>,
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
    /// Seconds since start.
    pub uptime_s: f64,
    /// Recent average job time, seconds.
    pub mean_job_s: f64,
    /// Jobs this node handed to peers (each attempt counts).
    #[serde(default)]
    pub jobs_forwarded: u64,
    /// The other nodes of the mesh, alive or recently dead: one object per
    /// node with `node_id`, `addr`, `gossip_addr`, `roles`,
    /// `queue_length`, `busy`, `workers`, `jobs_done`, `mean_job_s`,
    /// `alive`, `leaving` (see [`crate::mesh::PeerInfo`]).
    pub peers: Vec<serde_json::Value>,
}
