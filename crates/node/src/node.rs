//! The wiring of a node: what starts in which order, and how it stops.
//!
//! Start: open the roles (the face store), bind the listener, join the
//! mesh, then start the workers, the heartbeat and gossip, and accept.
//! Stop (a signal, or a [`NodeHandle`]): stop accepting and announce
//! leaving; stop the trainer; hand each waiting job to a live peer (its
//! caller keeps hearing the peer's events through this node) or answer it
//! `shutting_down`; let running jobs finish; wait for every answer to be
//! written (and for peers to finish handed-over jobs); stop gossip. Running
//! jobs get `--drain-timeout` to finish; after it the node exits anyway.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocellus_client::TlsOptions;
use ocellus_protocol::ErrorCode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::call::{Caller, Outstanding, error};
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::exec::worker::{self, Workers};
use crate::exec::{JobQueue, QueuedJob, Task};
use crate::mesh::Mesh;
use crate::mesh::connections::PeerConnections;
use crate::mesh::handover;
use crate::mesh::route::{Route, route};
use ocellus_protocol::Role;

use crate::roles::Roles;
use crate::roles::link::{RecognizerLink, RemoteRecognizer};
use crate::roles::recognition::{RecognitionService, RecognitionSettings};
use crate::state::State;

/// How long a stopping node waits for its answers to be written; with
/// peers, also for them to finish the jobs it handed over.
const DRAIN_ALONE: Duration = Duration::from_secs(10);
const DRAIN_WITH_PEERS: Duration = Duration::from_secs(120);

/// A bound node, ready to run.
pub struct Node {
    listener: TcpListener,
    /// The HTTP API's listener, when the node has one.
    http: Option<TcpListener>,
    state: Arc<State>,
}

/// Lets another task stop a running node.
#[derive(Clone)]
pub struct NodeHandle {
    stop: watch::Sender<bool>,
}

impl NodeHandle {
    /// Asks the node to shut down gracefully.
    pub fn shut_down(&self) {
        let _ = self.stop.send(true);
    }
}

fn new_node_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl Node {
    /// Opens what the roles need (the face store for the recognition
    /// role), binds the listening socket and joins the mesh. Must be
    /// called within a tokio runtime.
    pub async fn bind(config: NodeConfig) -> Result<Node, NodeError> {
        let node_id = new_node_id();
        // One secret for gossip and links: the mesh's, if only it was given.
        let secret = config
            .cluster_secret
            .clone()
            .or_else(|| config.mesh.as_ref().and_then(|m| m.secret.clone()));
        let prover = secret.clone().map(|secret| {
            Arc::new(crate::access::peer::PeerProver {
                secret,
                node_id: node_id.clone(),
                failures: Default::default(),
            })
        });
        let roles = open_roles(&config, prover.clone())?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let http = match config.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| NodeError::Listen { addr, source })?,
            ),
            None => None,
        };
        let keys = match &config.keys {
            Some(path) => Some(Arc::new(crate::access::keyring::LiveKeyring::load(path)?)),
            None => None,
        };
        match &keys {
            Some(k) => {
                info!(file = %k.path().display(), keys = k.current().entries().len(), "clients need a key (AUTH)")
            }
            None => tracing::warn!(
                "no keys file: every client that reaches this node may do everything"
            ),
        }
        let mut access = crate::access::Access::new(keys, secret);
        access.prover = prover.clone();
        let access = Arc::new(access);
        let mesh = match &config.mesh {
            Some(settings) => Some(Arc::new(
                Mesh::start(
                    settings,
                    &node_id,
                    listener.local_addr()?,
                    config.roles,
                    config.workers,
                    PeerConnections::new(config.tls.is_some(), config.peer_tls.clone()),
                )
                .await?,
            )),
            None => None,
        };
        if let (Some(mesh), Some(prover)) = (&mesh, &prover) {
            mesh.connections.set_prover(prover.clone());
        }
        let max_connections = crate::admission::fit_connections(config.max_connections, 1);
        let state = Arc::new(State {
            queue: Arc::new(JobQueue::with_client_cap(
                config.queue_capacity,
                config.max_queued_per_client,
                config.workers,
            )),
            budget: crate::budget::MemoryBudget::new(config.memory_budget),
            connections: crate::admission::Connections::new(
                max_connections,
                config.max_connections_per_client,
            ),
            roles: Arc::new(roles),
            config,
            node_id,
            mesh,
            started: Instant::now(),
            outstanding: Arc::new(Outstanding::default()),
            access,
            metrics: Arc::new(crate::metrics::Metrics::new()),
        });
        Ok(Node {
            listener,
            http,
            state,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The HTTP API's address actually bound, when the node has one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs until `shutdown` resolves; then stops gracefully (see the
    /// module doc) and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        let (_keep, stop_rx) = watch::channel(false);
        self.run_until(shutdown, stop_rx).await
    }

    /// A handle to stop the node from elsewhere, and the future running it.
    pub fn into_running(
        self,
    ) -> (
        NodeHandle,
        impl std::future::Future<Output = std::io::Result<()>>,
    ) {
        let (stop, stop_rx) = watch::channel(false);
        let keep = stop.clone();
        let running = async move {
            let _keep = keep;
            self.run_until(std::future::pending(), stop_rx).await
        };
        (NodeHandle { stop }, running)
    }

    async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
        mut stop_rx: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let state = self.state;
        let workers = worker::spawn(
            state.config.workers,
            Arc::new(Workers {
                queue: state.queue.clone(),
                roles: state.roles.clone(),
                node_id: state.node_id.clone(),
                runtime: tokio::runtime::Handle::current(),
                metrics: state.metrics.clone(),
            }),
        )?;
        let heartbeat = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(state.config.heartbeat);
                loop {
                    tick.tick().await;
                    state.queue.heartbeat();
                }
            })
        };
        let keys_watch = state.access.keys.clone().map(|k| tokio::spawn(k.watch()));
        let gossip = state.mesh.clone().map(|mesh| {
            let state = state.clone();
            tokio::spawn(async move { mesh.keep_in_touch(|| state.queue.stats()).await })
        });

        // Both listeners stop accepting together.
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http = self.http.map(|listener| {
            let state = state.clone();
            tokio::spawn(async move {
                crate::http::serve(listener, state, async {
                    let _ = http_stopped.await;
                })
                .await
            })
        });
        let stop = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stop_rx.wait_for(|s| *s) => {}
            }
        };
        crate::net::listener::accept_until(self.listener, state.clone(), stop).await;
        let _ = stop_http.send(());
        if let Some(task) = http {
            let _ = task.await;
        }

        if let Some(mesh) = &state.mesh {
            mesh.announce_leaving().await;
        }
        info!("shutting down: no new connections; handing over or answering waiting jobs");
        state.roles.stop();
        for job in state.queue.shut_down() {
            hand_over_or_refuse(&state, job);
        }
        heartbeat.abort();
        if let Some(w) = keys_watch {
            w.abort();
        }
        // A plain thread, not spawn_blocking: the runtime's drop would
        // wait for a blocking task, and so past the drain timeout.
        let (joined_tx, joined) = tokio::sync::oneshot::channel::<()>();
        let _ = std::thread::Builder::new()
            .name("ocellus-drain".into())
            .spawn(move || {
                for w in workers {
                    let _ = w.join();
                }
                let _ = joined_tx.send(());
            });
        // Running jobs get `drain_timeout` to finish; then the node exits
        // without them (their threads end with the process).
        let drain = state.config.drain_timeout;
        if tokio::time::timeout(drain, joined).await.is_err() {
            let running = state.queue.stats().busy;
            tracing::warn!(
                running,
                drain_s = drain.as_secs(),
                "jobs still running after the drain timeout (--drain-timeout): exiting without them"
            );
            if let Some(mesh) = &state.mesh {
                if let Some(task) = gossip {
                    task.abort();
                }
                mesh.stop().await;
            }
            info!("stopped");
            return Ok(());
        }
        // Give writers a moment to put the last results on the wire, and
        // peers time to finish the jobs handed to them.
        let grace = if state.mesh.is_some() {
            DRAIN_WITH_PEERS
        } else {
            DRAIN_ALONE
        };
        let deadline = Instant::now() + grace;
        while !state.outstanding.is_zero() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(mesh) = &state.mesh {
            if let Some(task) = gossip {
                task.abort();
            }
            mesh.stop().await;
        }
        info!("stopped");
        Ok(())
    }
}

/// Opens what the configured roles need: the face store for the
/// recognition role, the link for the detection role; refuses half a role.
fn open_roles(
    config: &NodeConfig,
    prover: Option<Arc<crate::access::peer::PeerProver>>,
) -> Result<Roles, NodeError> {
    let roles = config.roles;
    let recognition = if roles.contains(Role::Recognize) {
        let dir = config
            .data_dir
            .as_deref()
            .ok_or_else(|| NodeError::Config("the recognize role needs a data directory".into()))?;
        let settings = RecognitionSettings {
            default_algorithm: config.default_algorithm,
            tolerance: config.tolerance,
            models: config.models.clone(),
        };
        let service = RecognitionService::open(dir, settings).map_err(|e| {
            NodeError::Store(format!(
                "cannot open the face store in {}: {e}",
                dir.display()
            ))
        })?;
        Some(service)
    } else {
        None
    };
    let detect = roles.contains(Role::Detect);
    let link = match (&config.recognizer_addr, &recognition) {
        (Some(addr), _) => {
            let tls =
                match (config.recognizer_tls, &config.peer_tls) {
                    (false, _) => None,
                    (true, Some(t)) => Some(t.clone()),
                    (true, None) => Some(TlsOptions::system().map_err(|e| {
                        NodeError::Config(format!("TLS to the recognition node: {e}"))
                    })?),
                };
            Some(RecognizerLink::Remote(Arc::new(RemoteRecognizer::new(
                addr.clone(),
                tls,
                prover,
            ))))
        }
        (None, Some(service)) => Some(RecognizerLink::Local(service.clone())),
        (None, None) if detect => {
            return Err(NodeError::Config(
                "the detect role needs a recognition node (--recognizer ADDR) or the recognize role".into(),
            ));
        }
        (None, None) => None,
    };
    if detect && config.detection.is_none() {
        return Err(NodeError::Config("the detect role needs a cascade".into()));
    }
    Ok(Roles {
        decode_limits: config.decode_limits,
        filter: roles.contains(Role::Filter),
        detection: if detect {
            config.detection.clone()
        } else {
            None
        },
        link,
        recognition,
        models: config.models.clone(),
        default_algorithm: config.default_algorithm,
    })
}

/// At shutdown, a waiting job goes to a live peer that can run it, as it
/// arrived, with its caller hearing the peer's events through this node;
/// without one (or when it came from a peer, which then runs it elsewhere
/// itself) it is answered ERROR `shutting_down`.
fn hand_over_or_refuse(state: &Arc<State>, job: QueuedJob<Task>) {
    let Task {
        request, responder, ..
    } = job.task;
    let refuse = |responder: crate::call::Responder| {
        responder.error(error(ErrorCode::ShuttingDown, "server shutting down"))
    };
    let Some(mesh) = state.mesh.clone() else {
        return refuse(responder);
    };
    let caller = Caller {
        sink: job.sink,
        cancelled: job.cancelled,
        client: crate::exec::ClientId::from("-"),
    };
    if request.is_forwarded() || caller.is_gone() {
        return refuse(responder);
    }
    let local = crate::request::local_load(state);
    let Route::Peer { peer, .. } = route(&mesh, local, request.op, request.has_crops(), false, &[])
    else {
        return refuse(responder);
    };
    info!(job = job.job, peer = %peer.addr, "handing a waiting job to a peer");
    let state = state.clone();
    tokio::spawn(async move {
        let outcome = handover::hand_over(
            &mesh,
            &state.node_id,
            || crate::request::local_load(&state),
            || false,
            request,
            &caller,
            responder,
            peer,
            None,
        )
        .await;
        if let Err(unplaced) = outcome {
            let message = format!(
                "no node could run the request: {} peer(s) tried and this node cannot run it",
                unplaced.tried
            );
            unplaced
                .responder
                .error(error(ErrorCode::ShuttingDown, message));
        }
    });
}
