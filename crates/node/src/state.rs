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
use crate::budget::MemoryBudget;
use crate::call::Outstanding;
use crate::config::NodeConfig;
use crate::exec::{JobQueue, Task};
use crate::mesh::Mesh;
use tracing::warn;

use crate::metrics::{Enrolled, Gauges, Metrics, Peers};
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
    /// Bytes held for clients, against `config.memory_budget`.
    pub budget: Arc<MemoryBudget>,
    /// Connections open, in all and per address, against the caps.
    pub connections: Arc<crate::admission::Connections>,
}

impl State {
    /// The values the metrics report as gauges, read now (the numbers
    /// STATUS reports). It reads the face store under the recognition
    /// role's store lock, which an enrolment holds for a few milliseconds.
    pub fn gauges(&self) -> Gauges {
        let stats = self.queue.stats();
        let mut peers = Peers::default();
        if let Some(mesh) = &self.mesh {
            for p in mesh.peers().iter() {
                match (p.alive, p.leaving) {
                    (true, false) => peers.alive += 1,
                    (true, true) => peers.leaving += 1,
                    (false, _) => peers.dead += 1,
                }
            }
        }
        let enrolled = self
            .roles
            .recognition
            .as_ref()
            .and_then(|r| match r.census() {
                Ok(c) => Some(Enrolled {
                    people: c.people,
                    faces: c.faces,
                    generation: c.generation,
                }),
                Err(e) => {
                    warn!(error = %e, "metrics: cannot read the face store");
                    None
                }
            });
        Gauges {
            queue_length: stats.queue_length,
            queue_capacity: self.config.queue_capacity as u64,
            workers: self.config.workers as u64,
            busy: stats.busy,
            jobs_forwarded: self.mesh.as_ref().map_or(0, |m| m.jobs_forwarded()),
            peers,
            enrolled,
            memory_held: self.budget.used(),
            memory_budget: self.budget.limit(),
        }
    }
}
