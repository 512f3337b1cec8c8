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
    /// Other nodes of the mesh (empty until peer-to-peer mode).
    pub peers: Vec<serde_json::Value>,
}
