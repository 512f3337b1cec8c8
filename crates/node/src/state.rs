//! What every part of a running node shares: its configuration, identity,
//! queue, loaded roles, mesh membership and metrics. [`crate::node`] builds it;
//! connections, requests and workers read it.
//!
//! Invariant: everything here is either immutable after start or
//! synchronised inside its own type (the queue, the mesh, the recognition
//! service), so a `State` is shared by `Arc` with no lock of its own.

use std::sync::Arc;
use std::time::Instant;

use crate::access::Access;
use crate::call::Outstanding;
use crate::config::NodeConfig;
use crate::exec::{JobQueue, Task};
use crate::mesh::Mesh;
use crate::metrics::Metrics;
use crate::roles::Roles;

/// A running node's shared state.
pub(crate) struct State {
    pub config: NodeConfig,
    /// This node's identifier, new at every start.
    pub node_id: String,
    pub queue: Arc<JobQueue<Task>>,
    pub roles: Arc<Roles>,
    /// Membership of the peer-to-peer mesh, when the node takes part.
    pub mesh: Option<Arc<Mesh>>,
    pub started: Instant,
    /// Keys, cluster secret, failure counters.
    pub access: Arc<Access>,
    /// Requests not yet answered on the wire (shutdown waits for them).
    pub outstanding: Arc<Outstanding>,
    /// The Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}
