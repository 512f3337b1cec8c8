//! Node settings, with the defaults `ocellus serve` documents.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ocellus_codec::DecodeLimits;
use ocellus_protocol::FrameLimits;
use ocellus_recognize::Algorithm;

use crate::faces::DetectionSettings;
use crate::mesh::MeshSettings;

/// What a node does. `ocellus serve` runs every role by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Apply filter pipelines (FILTER).
    pub filter: bool,
    /// Find faces (DETECT), and the photo side of ENROLL and RECOGNIZE.
    pub detect: bool,
    /// Store people and name faces: the recognition role with its store.
    pub recognize: bool,
}

impl Roles {
    /// Every role.
    pub const ALL: Roles = Roles {
        filter: true,
        detect: true,
        recognize: true,
    };

    /// Parses a comma-separated list: `filter`, `detect`, `recognize`, or
    /// `all`.
    pub fn parse(list: &str) -> Result<Roles, String> {
        let mut roles = Roles {
            filter: false,
            detect: false,
            recognize: false,
        };
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "all" => roles = Roles::ALL,
                "filter" => roles.filter = true,
                "detect" => roles.detect = true,
                "recognize" => roles.recognize = true,
                other => {
                    return Err(format!(
                        "unknown role {other:?}: use filter, detect, recognize or all"
                    ));
                }
            }
        }
        if roles
            == (Roles {
                filter: false,
                detect: false,
                recognize: false,
            })
        {
            return Err("no role given".to_string());
        }
        Ok(roles)
    }

    /// The role names, as STATUS lists them.
    pub fn names(&self) -> Vec<String> {
        [
            (self.filter, "filter"),
            (self.detect, "detect"),
            (self.recognize, "recognize"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect()
    }
}

/// Everything a node needs to know to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// TCP address to listen on.
    pub listen: SocketAddr,
    /// Worker threads running jobs.
    pub workers: usize,
    /// Jobs that may wait in the queue; beyond, clients get BUSY.
    pub queue_capacity: usize,
    /// Where the node keeps its data.
    pub data_dir: Option<PathBuf>,
    /// Frame and header size limits.
    pub frame_limits: FrameLimits,
    /// Largest image accepted (checked from its header).
    pub decode_limits: DecodeLimits,
    /// Images one request may carry.
    pub max_images: usize,
    /// Requests one connection may have in flight; beyond, the node stops
    /// reading from it until results have been written (backpressure).
    pub max_in_flight: usize,
    /// A connection with nothing in flight that sends nothing for this long
    /// is closed.
    pub idle_timeout: Duration,
    /// A frame that has started must be complete within this time
    /// (defeats slow-loris clients).
    pub frame_timeout: Duration,
    /// How often waiting jobs are reminded of their position.
    pub heartbeat: Duration,
    /// The roles this node serves.
    pub roles: Roles,
    /// The detection role's cascade and parameters (needed with `detect`).
    pub detection: Option<DetectionSettings>,
    /// A recognition node to send faces to; without it, a detection node
    /// uses its own recognition role.
    pub recognizer_addr: Option<String>,
    /// The algorithm RECOGNIZE uses when a request names none.
    pub default_algorithm: Algorithm,
    /// Peer-to-peer mesh membership; `None`: a standalone node.
    pub mesh: Option<MeshSettings>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_capacity: 256,
            data_dir: None,
            frame_limits: FrameLimits::default(),
            decode_limits: DecodeLimits::default(),
            max_images: 64,
            max_in_flight: 16,
            idle_timeout: Duration::from_secs(120),
            frame_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            roles: Roles {
                filter: true,
                detect: false,
                recognize: false,
            },
            detection: None,
            recognizer_addr: None,
            default_algorithm: Algorithm::Lbph,
            mesh: None,
        }
    }
}
