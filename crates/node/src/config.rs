//! Node settings, with the defaults `ocellus serve` documents.
//!
//! Every field is plain data, checked when the node starts
//! ([`crate::Node::bind`]): a role without what it needs is refused there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ocellus_auth::ClusterSecret;
use ocellus_codec::DecodeLimits;
use ocellus_embed::FaceModels;
use ocellus_protocol::FrameLimits;
use ocellus_recognize::Algorithm;

use ocellus_protocol::RoleSet;

use ocellus_client::TlsOptions;

use crate::mesh::MeshSettings;
use crate::roles::detection::DetectionSettings;
use crate::tls::ServerTls;

/// Everything a node needs to know to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// TCP address to listen on.
    pub listen: SocketAddr,
    /// Address of the HTTP API and web page (`docs/http.md`); `None`: no
    /// HTTP (the default of a library node; `ocellus serve` has it on).
    pub http: Option<SocketAddr>,
    /// Worker threads running jobs.
    pub workers: usize,
    /// Jobs that may wait in the queue; beyond, clients get BUSY.
    pub queue_capacity: usize,
    /// Jobs one client (its key, else its IP address) may have waiting;
    /// beyond, that client gets BUSY (`reason: client`).
    pub max_queued_per_client: usize,
    /// Bytes the node may hold for clients: frames being received, queued
    /// requests, results waiting to be written (`docs/limits.md`). When
    /// reached, the node stops reading until bytes are given back; a frame
    /// larger than this is refused.
    pub memory_budget: u64,
    /// The estimated single-core CPU time one request may cost (filters
    /// and detection, from the images' headers, before any work); beyond,
    /// ERROR `too_costly`.
    pub max_request_cost: Duration,
    /// Connections open at once (TCP and HTTP each); beyond, a new one is
    /// told ERROR `busy` and closed. Lowered at start to what the process'
    /// file-descriptor limit allows.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_client: usize,
    /// A result not written within this time (the client does not read)
    /// closes the connection.
    pub write_timeout: Duration,
    /// At shutdown, how long running jobs may take to finish before the
    /// node exits anyway.
    pub drain_timeout: Duration,
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
    pub roles: RoleSet,
    /// The detection role's cascade and parameters (needed with `detect`).
    pub detection: Option<DetectionSettings>,
    /// A recognition node to send faces to; without it, a detection node
    /// uses its own recognition role.
    pub recognizer_addr: Option<String>,
    /// The algorithm RECOGNIZE uses when a request names none.
    pub default_algorithm: Algorithm,
    /// `resnet`: the largest distance at which a face is named, when a
    /// request gives none.
    pub tolerance: f64,
    /// The dlib model files of the `resnet` embedding, loaded once (the
    /// detection role computes descriptors with them; the recognition role
    /// fills in faces stored without one).
    pub models: Option<Arc<FaceModels>>,
    /// Peer-to-peer mesh membership; `None`: a standalone node.
    pub mesh: Option<MeshSettings>,
    /// The keys file: with one, clients must AUTH with a key whose scopes
    /// cover what they ask (`docs/security.md`); without, clients are
    /// trusted.
    pub keys: Option<PathBuf>,
    /// The cluster secret: with one, only nodes that prove they hold it
    /// may send the peer-only request forms, and links to peers prove it
    /// before sending anything.
    pub cluster_secret: Option<ClusterSecret>,
    /// TLS on the protocol port; `None`: plain TCP.
    pub tls: Option<ServerTls>,
    /// How to verify peers that speak TLS (mesh peers, the recognition
    /// node); `None`: the system roots.
    pub peer_tls: Option<TlsOptions>,
    /// Speak TLS to the recognition node ([`recognizer_addr`](Self::recognizer_addr)).
    pub recognizer_tls: bool,
}

impl NodeConfig {
    /// A standalone node on `listen` serving `roles` (no mesh: that takes
    /// [`MeshSettings`] with the cluster secret), with every other setting at the default
    /// `ocellus serve` documents. The detection role still needs
    /// [`detection`](Self::detection), and the recognition role a
    /// [`data_dir`](Self::data_dir).
    pub fn new(listen: SocketAddr, roles: RoleSet) -> NodeConfig {
        NodeConfig {
            listen,
            http: None,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            queue_capacity: 256,
            max_queued_per_client: 64,
            memory_budget: crate::budget::default_memory_budget(),
            max_request_cost: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_client: 64,
            write_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            data_dir: None,
            frame_limits: FrameLimits::default(),
            decode_limits: DecodeLimits::default(),
            max_images: 64,
            max_in_flight: 16,
            idle_timeout: Duration::from_secs(120),
            frame_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            roles,
            detection: None,
            recognizer_addr: None,
            default_algorithm: Algorithm::Lbph,
            tolerance: ocellus_recognize::resnet::DEFAULT_TOLERANCE,
            models: None,
            mesh: None,
            keys: None,
            cluster_secret: None,
            tls: None,
            peer_tls: None,
            recognizer_tls: false,
        }
    }
}
