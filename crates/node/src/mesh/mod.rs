//! The peer-to-peer mesh: which nodes form it and how loaded they are
//! ([`membership`]), the connections to them ([`connections`]), the pure
//! forwarding rule ([`rule`]), where a request goes ([`route`]), and
//! running a request on a peer while its caller hears the peer's events
//! ([`handover`]). Gossip travels sealed under the cluster secret
//! ([`sealed`]): a node without the secret is not in any mesh.
//!
//! Nothing here parses or runs requests: a request that no peer takes
//! comes back to the caller ([`handover::Unplaced`]) to run here.

pub(crate) mod connections;
pub(crate) mod handover;
pub(crate) mod membership;
pub(crate) mod route;
pub(crate) mod rule;
pub mod sealed;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::Transport;
use ocellus_auth::ClusterSecret;

pub(crate) use membership::Mesh;

/// When a node hands jobs to peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarding {
    /// When a peer's expected wait is clearly shorter (docs/mesh.md).
    Auto,
    /// Every FILTER and DETECT job that a live peer can run goes to the
    /// least loaded of two random peers (to measure forwarding).
    Always,
    /// Never for load; only operations this node has no role for move.
    Never,
}

impl Forwarding {
    /// Parses `auto`, `always` or `never`.
    pub fn from_name(name: &str) -> Option<Forwarding> {
        match name {
            "auto" => Some(Forwarding::Auto),
            "always" => Some(Forwarding::Always),
            "never" => Some(Forwarding::Never),
            _ => None,
        }
    }
}

/// How a node takes part in the mesh.
#[derive(Clone, Debug)]
pub struct MeshSettings {
    /// UDP address for gossip; `None`: the TCP listener's address and port.
    pub gossip: Option<SocketAddr>,
    /// The IP peers use to reach this node, when it listens on an
    /// unspecified address (0.0.0.0).
    pub advertise: Option<IpAddr>,
    /// Gossip addresses of members to join.
    pub seeds: Vec<String>,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
    /// Nodes only gossip with nodes of the same cluster name.
    pub cluster: String,
    /// When jobs are handed to peers.
    pub forwarding: Forwarding,
    /// What gossip runs on.
    pub transport: GossipTransport,
    /// The cluster secret that seals gossip ([`GossipTransport::Sealed`]
    /// needs it).
    pub secret: Option<ClusterSecret>,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            gossip: None,
            advertise: None,
            seeds: Vec::new(),
            gossip_interval: Duration::from_millis(500),
            cluster: "ocellus".to_string(),
            forwarding: Forwarding::Auto,
            transport: GossipTransport::default(),
            secret: None,
        }
    }
}

/// The transport gossip runs on.
#[derive(Clone, Default)]
pub enum GossipTransport {
    /// UDP, every datagram sealed under [`MeshSettings::secret`]
    /// ([`sealed`]).
    #[default]
    Sealed,
    /// Another chitchat transport, as is, unsealed: tests run a whole mesh
    /// in one process over chitchat's in-memory `ChannelTransport`.
    Custom(Arc<dyn Transport>),
}

impl std::fmt::Debug for GossipTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GossipTransport::Sealed => "GossipTransport::Sealed",
            GossipTransport::Custom(_) => "GossipTransport::Custom",
        })
    }
}

/// Why the mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// No address peers could use.
    #[error(
        "the node listens on {0}, which peers cannot reach: give --advertise IP (or listen on a specific address)"
    )]
    NoAdvertiseAddress(IpAddr),
    /// Sealed gossip without a cluster secret.
    #[error(
        "sealed gossip needs the cluster secret (make one with `ocellus mesh secret --out FILE`, give it with --cluster-secret-file FILE)"
    )]
    NoSecret,
    /// The gossip socket could not be opened.
    #[error("cannot start gossip on UDP {addr}: {message} (choose another with --gossip ADDR)")]
    Gossip {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}
