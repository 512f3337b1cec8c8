//! The TCP server: accepts connections, runs the workers, shuts down
//! gracefully.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ocellus_protocol::Op;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::connection::{self, Task};
use crate::faces::{RecognizerLink, RemoteRecognizer};
use crate::forward::{self, Route};
use crate::job::{Context, error};
use crate::mesh::Mesh;
use crate::queue::JobQueue;
use crate::recognition::RecognitionService;
use crate::status::StatusReport;

/// State every connection and worker shares.
pub(crate) struct Shared {
    pub config: NodeConfig,
    pub queue: JobQueue<Task>,
    /// What workers need besides the job.
    pub context: Context,
    /// This node's identifier, new at every start.
    pub node_id: String,
    /// Membership of the peer-to-peer mesh, when the node takes part.
    pub mesh: Option<Arc<Mesh>>,
    started: Instant,
    /// Each connection's in-flight permits, to wait for results to be
    /// written at shutdown.
    connections: Mutex<Vec<Weak<Semaphore>>>,
}

impl Shared {
    pub(crate) fn register(&self, permits: &Arc<Semaphore>) {
        let mut list = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(permits));
    }

    pub(crate) fn status_report(&self) -> StatusReport {
        let stats = self.queue.stats();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node_id: self.node_id.clone(),
            roles: self.config.roles.names(),
            queue_length: stats.queue_length,
            queue_capacity: self.config.queue_capacity as u64,
            workers: self.config.workers as u64,
            busy: stats.busy,
            jobs_done: stats.jobs_done,
            jobs_failed: stats.jobs_failed,
            uptime_s: self.started.elapsed().as_secs_f64(),
            mean_job_s: stats.mean_job_s,
            jobs_forwarded: self.mesh.as_ref().map_or(0, |m| m.jobs_forwarded()),
            peers: self
                .mesh
                .as_ref()
                .map(|m| {
                    m.peers()
                        .iter()
                        .filter_map(|p| serde_json::to_value(p).ok())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether every connection has written all its results.
    fn all_answered(&self) -> bool {
        let max = self.config.max_in_flight;
        let list = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .filter_map(Weak::upgrade)
            .all(|s| s.available_permits() == max)
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Lets another task stop a running server.
#[derive(Clone)]
pub struct ServerHandle {
    stop: watch::Sender<bool>,
}

impl ServerHandle {
    /// Asks the server to shut down gracefully.
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

impl Server {
    /// Binds the listening socket and opens what the roles need (the
    /// face store for the recognition role). Must be called within a
    /// tokio runtime.
    pub async fn bind(config: NodeConfig) -> std::io::Result<Server> {
        let context = context_for(&config)?;
        let listener = TcpListener::bind(config.listen).await?;
        let node_id = new_node_id();
        let mesh = match &config.mesh {
            Some(settings) => Some(Arc::new(
                Mesh::start(
                    settings,
                    &node_id,
                    listener.local_addr()?,
                    &config.roles.names(),
                    config.workers,
                )
                .await
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, e))?,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            context,
            queue: JobQueue::new(config.queue_capacity, config.workers),
            config,
            node_id,
            mesh,
            started: Instant::now(),
            connections: Mutex::new(Vec::new()),
        });
        Ok(Server { listener, shared })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until `shutdown` resolves or a [`ServerHandle`] asks to stop;
    /// then stops accepting, answers waiting jobs with ERROR
    /// `shutting_down`, lets running jobs finish and deliver, and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        self.run_with(shutdown, stop_tx, stop_rx).await
    }

    /// A handle to stop the server from elsewhere, and the future running it.
    pub fn into_running(
        self,
    ) -> (
        ServerHandle,
        impl std::future::Future<Output = std::io::Result<()>>,
    ) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let handle = ServerHandle {
            stop: stop_tx.clone(),
        };
        (
            handle,
            self.run_with(std::future::pending(), stop_tx, stop_rx),
        )
    }

    async fn run_with(
        self,
        shutdown: impl std::future::Future<Output = ()>,
        _stop_tx: watch::Sender<bool>,
        mut stop_rx: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let shared = self.shared;
        let workers: Vec<_> = (0..shared.config.workers)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("ocellus-worker-{i}"))
                    .spawn(move || worker(&shared))
            })
            .collect::<Result<_, _>>()?;
        let heartbeat = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(shared.config.heartbeat);
                loop {
                    tick.tick().await;
                    shared.queue.heartbeat();
                }
            })
        };

        let gossip = shared.mesh.clone().map(|mesh| {
            let shared = shared.clone();
            tokio::spawn(async move { mesh.keep_in_touch(|| shared.queue.stats()).await })
        });

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = stop_rx.changed() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(connection::serve(stream, shared.clone()));
                    }
                    // Out of file descriptors and the like: wait and go on.
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(self.listener);
        if let Some(mesh) = &shared.mesh {
            mesh.announce_leaving().await;
        }
        info!("shutting down: no new connections; handing over or answering waiting jobs");
        if let Some(service) = &shared.context.recognition {
            service.stop();
        }
        for job in shared.queue.shut_down() {
            hand_over_or_refuse(&shared, job);
        }
        heartbeat.abort();
        let joined = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        });
        let _ = joined.await;
        // Give writers a moment to put the last results on the wire, and
        // peers time to finish the jobs handed to them.
        let grace = if shared.mesh.is_some() { 120 } else { 10 };
        let deadline = Instant::now() + Duration::from_secs(grace);
        while !shared.all_answered() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(mesh) = &shared.mesh {
            if let Some(task) = gossip {
                task.abort();
            }
            mesh.stop().await;
        }
        info!("stopped");
        Ok(())
    }
}

/// At shutdown, a waiting job goes to a live peer that can run it, with
/// its client hearing the peer's events through this node; without one (or
/// when it came from a peer, which then runs it elsewhere itself) it is
/// answered ERROR `shutting_down`.
fn hand_over_or_refuse(shared: &Arc<Shared>, job: crate::queue::QueuedJob<Task>) {
    let Task {
        work,
        responder,
        request,
    } = job.work;
    let refuse = |responder: connection::Responder| {
        responder.error(error("shutting_down", "server shutting down"))
    };
    let (Some(mesh), Some((op, header))) = (&shared.mesh, request) else {
        return refuse(responder);
    };
    if header.contains_key(forward::VIA) || job.cancelled.load(Ordering::Acquire) {
        return refuse(responder);
    }
    let Route::Peer { peer, .. } = forward::route(shared, mesh, op, &header, false, &[]) else {
        return refuse(responder);
    };
    info!(job = job.job, peer = %peer.addr, "handing a waiting job to a peer");
    let handover = forward::Handover {
        op,
        request_id: job.request_id,
        header,
        payload: work.into_payload(),
        sink: job.sink,
        cancelled: job.cancelled,
    };
    tokio::spawn(forward::hand_over(
        shared.clone(),
        handover,
        responder,
        peer,
        None,
        None,
    ));
}

/// Opens the recognition role's store and links the detection role to a
/// recognition role, as the configuration asks.
fn context_for(config: &NodeConfig) -> std::io::Result<Context> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let roles = config.roles;
    let recognition = if roles.recognize {
        let dir = config
            .data_dir
            .as_deref()
            .ok_or_else(|| invalid("the recognize role needs a data directory".into()))?;
        let service = RecognitionService::open(dir, config.default_algorithm).map_err(|e| {
            std::io::Error::other(format!(
                "cannot open the face store in {}: {}",
                dir.display(),
                e.message
            ))
        })?;
        Some(service)
    } else {
        None
    };
    let link = match (&config.recognizer_addr, &recognition) {
        (Some(addr), _) => Some(RecognizerLink::Remote(Arc::new(RemoteRecognizer::new(
            addr.clone(),
        )))),
        (None, Some(service)) => Some(RecognizerLink::Local(service.clone())),
        (None, None) if roles.detect => {
            return Err(invalid(
                "the detect role needs a recognition node (--recognizer ADDR) or the recognize role".into(),
            ));
        }
        (None, None) => None,
    };
    if roles.detect && config.detection.is_none() {
        return Err(invalid("the detect role needs a cascade".into()));
    }
    Ok(Context {
        decode_limits: config.decode_limits,
        detection: if roles.detect {
            config.detection.clone()
        } else {
            None
        },
        link,
        recognition,
        runtime: tokio::runtime::Handle::current(),
    })
}

/// Runs jobs until the queue shuts down.
///
/// A job that starts while others wait runs on this worker's own
/// one-thread pool: the other workers are about to take the other cores,
/// and splitting every image across all cores as well would only add
/// contention and band overlaps (measured: about 10 % fewer images/s under
/// load). A job that starts with nothing waiting may use every core, so a
/// lone large image still finishes sooner.
fn worker(shared: &Shared) {
    let alone = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "ocellus-worker-pool".to_string())
        .build()
        .map_err(|e| warn!(error = %e, "no single-thread pool; jobs will share the global one"))
        .ok();
    while let Some(job) = shared.queue.pop() {
        let started = Instant::now();
        let Task {
            work, responder, ..
        } = job.work;
        let description = work.describe();
        let others_waiting = shared.queue.stats().queue_length > 0;
        let result = match &alone {
            Some(pool) if others_waiting => pool.install(|| work.run(&shared.context)),
            _ => work.run(&shared.context),
        };
        let elapsed = started.elapsed();
        shared.queue.finish(job.job, result.is_ok(), elapsed);
        if job.cancelled.load(Ordering::Acquire) {
            info!(job = job.job, %description, ms = elapsed.as_millis() as u64, "result discarded: client gone");
            continue;
        }
        match result {
            Ok(mut out) => {
                info!(job = job.job, %description, ms = elapsed.as_millis() as u64, bytes = out.payload.len(), "done");
                // Where it ran: the entry node of a mesh passes it on as is.
                out.header
                    .insert("node_id".into(), shared.node_id.as_str().into());
                responder.send(Op::Result, out.header, out.payload);
            }
            Err(e) => {
                info!(job = job.job, %description, code = %e.code, "failed");
                responder.error(e);
            }
        }
    }
}
