//! `ocellus serve`: run a node.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::{Context, bail};
use ocellus_detect::DetectParams;
use ocellus_node::{
    DetectionSettings, Forwarding, MIN_FACE_SIZE, MIN_SCALE_FACTOR, MeshSettings, Node, NodeConfig,
    ServerTls, peer_tls,
};
use ocellus_protocol::{Role, RoleSet};
use ocellus_recognize::Algorithm;

use crate::cascades;
use crate::models;
use crate::paths;

/// The detection role's default cascade: on the people and no-face photos
/// of the test data it finds exactly one face in 89 of 91 portraits and no
/// face in the 13 photos without one (docs/faces.md).
pub const SERVICE_CASCADE: &str = "lbpcascade_frontalface_improved.xml";

/// Arguments of `ocellus serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// TCP address to listen on (port 0 picks a free port; the address is
    /// printed on the first line of standard output).
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Address of the HTTP API and the web page (docs/http.md), or `off`.
    /// Port 0 picks a free port; the address is printed on the second
    /// line of standard output. HTTPS with --tls-cert/--tls-key.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR|off", value_parser = parse_http)]
    pub http: HttpAddr,
    /// Worker threads running jobs (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Jobs that may wait; beyond, clients get BUSY.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub queue_capacity: usize,
    /// Folder for the node's data: the face store of the recognize role
    /// (default: $XDG_DATA_HOME/ocellus, or ~/.local/share/ocellus).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Roles to serve, comma-separated: filter, detect, recognize (or all).
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub roles: String,
    /// With the detect role: the recognition node to send faces to
    /// (host:port); without it, this node's own recognize role.
    #[arg(long, value_name = "ADDR")]
    pub recognizer: Option<String>,
    /// Speak TLS to the --recognizer node, verified as peers are
    /// (--peer-ca).
    #[arg(long, requires = "recognizer")]
    pub recognizer_tls: bool,
    /// TLS on the protocol port: this node's certificate chain (PEM, its
    /// own certificate first; end it with the CA that signed it so peers
    /// with the same CA trust each other). Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM). Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The CA (PEM) that signs the cluster's node certificates, to verify
    /// TLS peers and the --recognizer-tls node (default: the system roots
    /// and the last certificate of --tls-cert).
    #[arg(long, value_name = "FILE")]
    pub peer_ca: Option<PathBuf>,
    /// Detection cascade: a path, or a name looked up in
    /// $OCELLUS_CASCADE_DIR and the OpenCV data folders.
    #[arg(long, default_value = SERVICE_CASCADE)]
    pub cascade: String,
    /// Detection: ratio between successive window sizes (> 1).
    #[arg(long, default_value_t = 1.1)]
    pub scale_factor: f64,
    /// Detection: raw detections needed to keep a face, minus one.
    #[arg(long, default_value_t = 3)]
    pub min_neighbors: u32,
    /// Detection: smallest face, in pixels.
    #[arg(long, default_value_t = 30)]
    pub min_size: u32,
    /// Recognition algorithm when a request names none: eigen, fisher,
    /// lbph or resnet (default: resnet when its model files are installed,
    /// else lbph; docs/recognition.md).
    #[arg(long, value_parser = ["eigen", "fisher", "lbph", "resnet"])]
    pub algorithm: Option<String>,
    /// Folder holding the resnet model files (default: $OCELLUS_MODEL_DIR,
    /// <data-dir>/models, ~/.local/share/ocellus/models,
    /// /usr/local/share/ocellus/models; scripts/setup installs them).
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Do not load the resnet model files even if installed: lbph is the
    /// default, and faces are stored without descriptors (a node with the
    /// files computes them when it opens the store).
    #[arg(long, conflicts_with = "models")]
    pub without_models: bool,
    /// resnet: the largest descriptor distance at which a face is named
    /// (dlib's 0.6); requests may set their own `tolerance`.
    #[arg(long, default_value_t = ocellus_recognize::resnet::DEFAULT_TOLERANCE)]
    pub tolerance: f64,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub max_frame: usize,
    /// Largest image accepted, in pixels (checked from its header).
    #[arg(long, default_value_t = 100_000_000, value_name = "N")]
    pub max_pixels: u64,
    /// Seconds a connection with nothing in flight may stay silent.
    #[arg(long, default_value_t = 120, value_name = "S")]
    pub idle_timeout: u64,
    /// Seconds within which a frame, once started, must be complete.
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub frame_timeout: u64,
    /// Seconds a result may take to be written (a client that does not
    /// read is closed after this).
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub write_timeout: u64,
    /// At SIGTERM/SIGINT, seconds running jobs may take to finish before
    /// the node exits anyway.
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub drain_timeout: u64,
    /// Bytes the node may hold for clients (frames being received, queued
    /// requests, unwritten results); when reached it stops reading until
    /// some are given back. Suffixes KiB, MiB, GiB (default: a quarter of
    /// physical memory). docs/limits.md.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub memory_budget: Option<u64>,
    /// Bytes one image's decode may allocate (pixels x channels x bytes
    /// per sample, plus the decoder's working memory), checked from its
    /// header. Suffixes KiB, MiB, GiB.
    #[arg(long, default_value = "1GiB", value_name = "BYTES", value_parser = parse_bytes)]
    pub max_decode_bytes: u64,
    /// Seconds of estimated single-core CPU one request may cost (its
    /// pipeline on its image, or detection on all its images), checked
    /// before any work; beyond, ERROR too_costly.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub max_request_cost: f64,
    /// Jobs one client (its key, else its IP address) may have waiting;
    /// beyond, that client gets BUSY.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_queued_per_client: usize,
    /// Connections open at once (protocol and HTTP ports together; lowered
    /// to what the file-descriptor limit allows). Beyond, a new one is told
    /// ERROR busy and closed.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_connections_per_client: usize,
    /// Join a mesh of peers: the gossip address of one or more members
    /// (their protocol address, unless they set --gossip). Needs
    /// --cluster-secret-file. Without it, a node with the secret founds a
    /// mesh that others with the same secret may join.
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',')]
    pub join: Vec<String>,
    /// The cluster secret (a file made by `ocellus mesh secret --out FILE`):
    /// the node gossips, every datagram sealed under it, only with nodes
    /// holding the same secret, and its links to peers and to its
    /// recognition node prove the secret before anything is sent; only
    /// nodes that prove it may send the node-to-node request forms.
    /// Without it the node is standalone.
    #[arg(long, value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// UDP address for gossip with peers (default: the --listen address
    /// and port, on UDP).
    #[arg(long, value_name = "ADDR")]
    pub gossip: Option<SocketAddr>,
    /// Milliseconds between gossip rounds (a silent peer is declared dead
    /// after 5 to 10 of them).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub gossip_interval: u64,
    /// Mesh name: nodes gossip only with nodes of the same name.
    #[arg(long, default_value = "ocellus", value_name = "NAME")]
    pub cluster: String,
    /// The IP peers use to reach this node (needed when listening on
    /// 0.0.0.0).
    #[arg(long, value_name = "IP")]
    pub advertise: Option<IpAddr>,
    /// When to hand jobs to peers: auto (when a peer would finish them
    /// clearly sooner; docs/mesh.md), always (every FILTER and DETECT job
    /// a peer can take), never (only operations this node has no role for).
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub forwarding: String,
    /// The keys file clients' keys are checked against (default:
    /// <data-dir>/keys.toml when it exists). With keys, every request needs
    /// AUTH with a key whose scopes cover it; the file is re-read when it
    /// changes and on SIGHUP. Make keys with `ocellus keys add`.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Run without keys on an address other than loopback: anyone who can
    /// reach the port may filter, read and change the enrolled faces.
    #[arg(long)]
    pub insecure: bool,
}

/// `--http`: an address, or off.
#[derive(Clone, Copy, Debug)]
pub struct HttpAddr(pub Option<SocketAddr>);

fn parse_http(text: &str) -> Result<HttpAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(HttpAddr(None));
    }
    text.parse()
        .map(|a| HttpAddr(Some(a)))
        .map_err(|e| format!("{e}: an address such as 127.0.0.1:8080, or off"))
}

/// The keys file `serve` uses, if any; refuses to run an open node on an
/// address others can reach unless told to.
fn keys_for(args: &ServeArgs) -> anyhow::Result<Option<PathBuf>> {
    let keys = match &args.keys {
        Some(path) => {
            if !path.exists() {
                bail!(
                    "the keys file {} does not exist (make a key with `ocellus keys add NAME --scopes admin --keys {}`)",
                    path.display(),
                    path.display()
                );
            }
            Some(path.clone())
        }
        None => paths::keys_file(None, args.data_dir.as_deref())
            .ok()
            .filter(|p| p.exists()),
    };
    // The address others may reach: the protocol port's, or the HTTP
    // port's when only that one is open to the network.
    let exposed = std::iter::once(args.listen)
        .chain(args.http.0)
        .find(|a| !a.ip().is_loopback())
        .unwrap_or(args.listen);
    if keys.is_none() {
        let ip = exposed.ip();
        let where_ = paths::keys_file(None, args.data_dir.as_deref()).map_or_else(
            |_| "<data-dir>/keys.toml".to_string(),
            |p| p.display().to_string(),
        );
        if ip.is_loopback() {
            tracing::info!(
                "no keys file ({where_}): the node is open to every local user; only this machine can reach {ip}"
            );
        } else if args.insecure {
            tracing::warn!(
                "--insecure: no keys on {ip}; anyone who reaches the port may filter, read and change the enrolled faces"
            );
        } else {
            bail!(
                "refusing to listen on {ip} without keys: anyone who reaches the port could read and change the enrolled faces.\n\
                 Make a key first:  ocellus keys add NAME --scopes admin   (written to {where_}; or --keys FILE)\n\
                 or listen on 127.0.0.1, or pass --insecure to run open anyway"
            );
        }
    }
    Ok(keys)
}

/// Runs the node until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let face = FaceModelArgs {
        models: args.models.clone(),
        without_models: args.without_models,
        algorithm: args.algorithm.clone(),
        tolerance: args.tolerance,
    };
    let roles = RoleSet::parse(&args.roles).map_err(anyhow::Error::msg)?;
    let mut config = NodeConfig {
        queue_capacity: args.queue_capacity.max(1),
        data_dir: args.data_dir.clone(),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        frame_timeout: Duration::from_secs(args.frame_timeout.max(1)),
        http: args.http.0,
        ..NodeConfig::new(args.listen, roles)
    };
    if let Some(w) = args.workers {
        config.workers = w.max(1);
    }
    config.frame_limits.max_frame = args.max_frame;
    config.decode_limits.max_pixels = args.max_pixels;
    config.decode_limits.max_decode_bytes = args.max_decode_bytes;
    config.write_timeout = Duration::from_secs(args.write_timeout.max(1));
    config.drain_timeout = Duration::from_secs(args.drain_timeout);
    if let Some(bytes) = args.memory_budget {
        config.memory_budget = bytes;
    }
    if !(args.max_request_cost > 0.0 && args.max_request_cost.is_finite()) {
        bail!("--max-request-cost must be a positive number of seconds");
    }
    config.max_request_cost = Duration::from_secs_f64(args.max_request_cost);
    config.max_queued_per_client = args.max_queued_per_client.max(1);
    config.max_connections = args.max_connections.max(1);
    config.max_connections_per_client = args.max_connections_per_client.max(1);
    if args.recognizer.is_some() && !roles.contains(Role::Detect) {
        bail!("--recognizer is for a node with the detect role");
    }
    if args.recognizer.is_some() && roles.contains(Role::Recognize) {
        bail!("--recognizer sends faces elsewhere: drop the recognize role (--roles detect)");
    }
    config.recognizer_addr = args.recognizer.clone();
    config.keys = keys_for(&args)?;
    config.recognizer_tls = args.recognizer_tls;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = ServerTls::from_pem_files(cert, key).context("--tls-cert/--tls-key")?;
        config.tls = Some(tls);
    }
    if config.tls.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(
            "no TLS on {}: keys, names and photos cross the network in clear (--tls-cert/--tls-key)",
            args.listen
        );
    }
    // Without TLS of its own nor --peer-ca, a node that meets a TLS peer
    // trusts the system roots (loaded then, not at every start).
    if config.tls.is_some() || args.peer_ca.is_some() {
        let roots = peer_tls(args.peer_ca.as_deref(), config.tls.as_ref())
            .context("--peer-ca: the roots for verifying TLS peers")?;
        config.peer_tls = Some(roots);
    }
    let secret = match &args.cluster_secret_file {
        Some(path) => Some(read_secret(path)?),
        None if !args.join.is_empty() => bail!(
            "--join needs the cluster secret of the mesh: give its file with --cluster-secret-file FILE \
             (make one for a new mesh with `ocellus mesh secret --out FILE`, and copy it to every node)"
        ),
        None => None,
    };
    config.cluster_secret = secret.clone();
    config.mesh = match secret {
        Some(secret) => Some(MeshSettings {
            gossip: args.gossip,
            advertise: args.advertise,
            seeds: args.join,
            gossip_interval: Duration::from_millis(args.gossip_interval.max(10)),
            cluster: args.cluster,
            forwarding: Forwarding::from_name(&args.forwarding).unwrap_or(Forwarding::Auto),
            secret: Some(secret),
            ..MeshSettings::default()
        }),
        None => {
            tracing::info!("no --cluster-secret-file: standalone node, not in a mesh (no gossip)");
            None
        }
    };
    if roles.contains(Role::Detect) {
        if args.scale_factor.is_nan() || args.scale_factor < MIN_SCALE_FACTOR {
            bail!("--scale-factor must be at least {MIN_SCALE_FACTOR}");
        }
        if args.min_size < MIN_FACE_SIZE {
            bail!("--min-size must be at least {MIN_FACE_SIZE}");
        }
        let (path, cascade) = cascades::load(&args.cascade)?;
        tracing::info!(cascade = %path.display(), "detection cascade loaded");
        config.detection = Some(DetectionSettings {
            cascade: Arc::new(cascade),
            params: DetectParams {
                scale_factor: args.scale_factor,
                min_neighbors: args.min_neighbors,
                min_size: (args.min_size, args.min_size),
                max_size: (0, 0),
            },
        });
    }
    if roles.contains(Role::Recognize) {
        let dir = match config.data_dir.take() {
            Some(dir) => dir,
            None => paths::default_data_dir()?,
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        tracing::info!(data_dir = %dir.display(), "face store");
        config.data_dir = Some(dir);
    }
    if roles.contains(Role::Detect) || roles.contains(Role::Recognize) {
        face_models(&face, &mut config)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let workers = config.workers;
        let node = Node::bind(config.clone())
            .await
            .with_context(|| format!("starting the node on {}", config.listen))?;
        let addr = node.local_addr()?;
        println!("listening on {addr}");
        let tls = config.tls.is_some();
        if let Some(http) = node.http_addr() {
            let scheme = if tls { "https" } else { "http" };
            println!("http on {scheme}://{http}");
            tracing::info!(%http, tls, "HTTP API and web page");
        }
        tracing::info!(%addr, tls, workers, queue_capacity = config.queue_capacity, roles = %config.roles, "ocellus node started");
        node.run(shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Reads the cluster secret from `path`; warns if others may read it.
fn read_secret(path: &std::path::Path) -> anyhow::Result<ocellus_auth::ClusterSecret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the cluster secret file {}", path.display()))?;
    let secret = ocellus_auth::ClusterSecret::parse(&text)
        .with_context(|| format!("the cluster secret file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the cluster secret file is readable by group or others: chmod 600 it"
            );
        }
    }
    Ok(secret)
}

/// Loads the resnet model files if installed, and sets the default
/// algorithm: the one asked for, else resnet with the files, lbph without.
/// What `face_models` reads of the arguments.
struct FaceModelArgs {
    models: Option<PathBuf>,
    without_models: bool,
    algorithm: Option<String>,
    tolerance: f64,
}

fn face_models(args: &FaceModelArgs, config: &mut NodeConfig) -> anyhow::Result<()> {
    use ocellus_recognize::resnet::MAX_TOLERANCE;
    if !(0.0..=MAX_TOLERANCE).contains(&args.tolerance) {
        bail!("--tolerance must be between 0 and {MAX_TOLERANCE}");
    }
    config.tolerance = args.tolerance;
    let data_dir = match &config.data_dir {
        Some(d) => Some(d.clone()),
        None => paths::default_data_dir().ok(),
    };
    let asked = args.algorithm.as_deref().and_then(Algorithm::from_name);
    if args.without_models {
        if asked == Some(Algorithm::Resnet) {
            bail!("--algorithm resnet needs the model files (drop --without-models)");
        }
        config.default_algorithm = asked.unwrap_or(Algorithm::Lbph);
        return Ok(());
    }
    let found = models::discover(args.models.as_deref(), data_dir.as_deref())?;
    config.default_algorithm = match (&found, asked) {
        (_, Some(a)) if a != Algorithm::Resnet => a,
        (Some(_), _) => Algorithm::Resnet,
        (None, Some(_)) => bail!(
            "--algorithm resnet: {}",
            models::not_found(&models::search_dirs(None, data_dir.as_deref()))
        ),
        (None, None) => {
            tracing::warn!(
                "{}; recognizing with lbph until then",
                models::not_found(&models::search_dirs(None, data_dir.as_deref()))
            );
            Algorithm::Lbph
        }
    };
    tracing::info!(algorithm = %config.default_algorithm, "default recognition algorithm");
    config.models = found.map(|(_, m)| Arc::new(m));
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// A size in bytes: a number with an optional suffix (KiB, MiB, GiB, or
/// K, M, G for the same powers of 1024).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 512MiB, 4GiB, 1048576)"))?;
    let unit: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        other => return Err(format!("unknown size suffix {other:?} (KiB, MiB or GiB)")),
    };
    n.checked_mul(unit)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{text:?} is not a usable size"))
}
