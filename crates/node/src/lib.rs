//! The Ocellus node runtime: a node serves many clients at once from one
//! bounded queue of jobs and a pool of worker threads, runs the filter,
//! detection and recognition roles, and shares work with its peers.
//!
//! It owns everything between the socket and the algorithms; it must not
//! hold the algorithms themselves (they live in the pure crates) nor the
//! wire format (`ocellus-protocol`), nor anything of the command line.
//!
//! Structure, dependencies running one way (each module's doc states its
//! invariant):
//! - `admission`: the caps on open connections and the descriptor limit;
//! - `budget`: the node's memory budget (bytes held for clients);
//! - `call`: one request's life whatever the transport: the
//!   request as it arrived, its caller, its one answer;
//! - `roles/`: the loaded roles (detection, the link to recognition,
//!   recognition with its store);
//! - `exec/`: the bounded queue and the worker threads;
//! - `mesh/`: membership, peer connections, the forwarding rule, routing and
//!   hand-over;
//! - `request/`: one module per operation (parse, job, run, answer) and the
//!   transport-neutral handler;
//! - `net/`: the TCP listener, TLS, connections and their writers;
//! - `http/`: the HTTP API, a thin adapter onto `request/` (routes, jobs
//!   with Server-Sent Events, probes, the OpenAPI document, the web page);
//! - `metrics`: the Prometheus metrics (counted at the handler, the
//!   worker and the listener; gauges read from the state when scraped);
//! - [`Node`]: the wiring, start and stop order.

#![warn(missing_docs)]

mod access;
mod admission;
mod budget;
mod call;
mod config;
mod error;
mod exec;
mod http;
mod mesh;
mod metrics;
mod net;
mod node;
mod request;
mod roles;
mod state;
mod tls;

pub use config::NodeConfig;
pub use error::NodeError;
pub use mesh::{Forwarding, GossipTransport, MeshError, MeshSettings};
pub use node::{Node, NodeHandle};
pub use roles::detection::{DetectionSettings, MIN_FACE_SIZE, MIN_SCALE_FACTOR};
pub use tls::{ServerTls, ServerTlsError, peer_tls};
