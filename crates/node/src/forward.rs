//! Handing a request to a peer: where it should go ([`route`]), and
//! running it there while its client hears the peer's events
//! ([`hand_over`]).
//!
//! A job handed to a peer is never lost and its client never receives two
//! results: the client's one [`Responder`] stays here and answers exactly
//! once. When the peer dies (the connection breaks, or the failure detector
//! declares it dead, which catches a peer cut off behind a silent
//! connection), or answers that it is shutting down, the job is sent again
//! to another peer or run here; a late answer from the old peer goes
//! nowhere. A job may therefore *run* twice after a failure, which every
//! operation tolerates (filters and detection are pure, and enrolling the
//! same photo twice stores it once).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ocellus_protocol::{Frame, Op};
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use crate::connection::{Conn, Responder};
use crate::job::error;
use crate::mesh::{Forwarding, Mesh, PeerInfo};
use crate::queue::{JobSink, Progress};
use crate::routing::{self, Decision, Load};
use crate::server::Shared;

/// Header field of a request a node forwards: the sender's node id. A
/// forwarded request is never forwarded again.
pub(crate) const VIA: &str = "via";
/// Header field of a request forwarded for load: the sender's own expected
/// time for it; the peer answers BUSY when it would take longer.
pub(crate) const MAX_WAIT_S: &str = "max_wait_s";

/// What forwarding one job is assumed to cost, seconds: the rule adds it
/// to a peer's expected time. bench/mesh.py measured 0.3 ms for a 640x480
/// JPEG over loopback; this allows for larger images and real networks.
const FORWARD_OVERHEAD_S: f64 = 0.002;

/// Peers tried for one job before it is run here (or given up).
const MAX_PEER_ATTEMPTS: usize = 3;

/// A request that may run on a peer: what is needed to send it again.
pub(crate) struct Handover {
    pub op: Op,
    pub request_id: u64,
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
    /// Where the client's progress events go.
    pub sink: Arc<dyn JobSink>,
    /// Set when the client has gone.
    pub cancelled: Arc<AtomicBool>,
}

/// Where a request goes.
pub(crate) enum Route {
    /// Run it on this node.
    Here,
    /// Send it to `peer`.
    Peer {
        peer: PeerInfo,
        /// Set when it moves for load: the peer may refuse it.
        max_wait_s: Option<f64>,
    },
}

/// The roles a peer needs to run `op`.
pub(crate) fn roles_for(op: Op, header: &Map<String, Value>) -> &'static [&'static str] {
    match op {
        Op::Filter => &["filter"],
        Op::Detect => &["detect"],
        // The node-to-node form carries face crops: only the recognition
        // role is needed.
        Op::Enroll | Op::Recognize if header.contains_key("crops") => &["recognize"],
        Op::Enroll | Op::Recognize => &["detect", "recognize"],
        Op::People | Op::RemovePerson => &["recognize"],
        _ => &[],
    }
}

/// Whether this node can run `op` itself.
pub(crate) fn runs_here(shared: &Shared, op: Op, header: &Map<String, Value>) -> bool {
    let ctx = &shared.context;
    match op {
        Op::Filter => shared.config.roles.filter,
        Op::Detect => ctx.detection.is_some(),
        Op::Enroll | Op::Recognize if header.contains_key("crops") => ctx.recognition.is_some(),
        Op::Enroll | Op::Recognize => ctx.detection.is_some() && ctx.link.is_some(),
        Op::People | Op::RemovePerson => ctx.recognition.is_some() || ctx.link.is_some(),
        _ => true,
    }
}

/// This node's load as the forwarding rule sees it.
pub(crate) fn local_load(shared: &Shared) -> Load {
    let stats = shared.queue.stats();
    Load {
        queue_length: stats.queue_length,
        busy: stats.busy,
        workers: shared.config.workers as u64,
        mean_job_s: stats.mean_job_s,
    }
}

/// Where `op` should run. `here` says whether this node may run it (it has
/// the role and is not leaving); peers in `exclude` were tried already.
/// Face operations move only when this node lacks their role; FILTER and
/// DETECT also move for load, as `--forwarding` says.
pub(crate) fn route(
    shared: &Shared,
    mesh: &Mesh,
    op: Op,
    header: &Map<String, Value>,
    here: bool,
    exclude: &[String],
) -> Route {
    let roles = roles_for(op, header);
    if roles.is_empty() {
        return Route::Here;
    }
    let (peers, candidates) = mesh.candidates(roles, exclude);
    let local = local_load(shared);
    let least_loaded = || {
        routing::least_loaded_of_two(&candidates, local.mean_job_s).map_or(Route::Here, |i| {
            Route::Peer {
                peer: peers[i].clone(),
                max_wait_s: None,
            }
        })
    };
    if !here {
        return least_loaded();
    }
    if !matches!(op, Op::Filter | Op::Detect) {
        return Route::Here;
    }
    match mesh.forwarding {
        Forwarding::Never => Route::Here,
        Forwarding::Always => least_loaded(),
        Forwarding::Auto => match routing::decide(local, &candidates, FORWARD_OVERHEAD_S) {
            Decision::Local => Route::Here,
            Decision::Forward { index, max_wait_s } => Route::Peer {
                peer: peers[index].clone(),
                max_wait_s: Some(max_wait_s),
            },
        },
    }
}

/// Whether a request forwarded for load should be refused: this node
/// would take longer than the sender expected to take itself.
pub(crate) fn should_refuse(shared: &Shared, header: &Map<String, Value>) -> bool {
    let Some(max_wait_s) = header.get(MAX_WAIT_S).and_then(Value::as_f64) else {
        return false;
    };
    let load = local_load(shared);
    // Without a job time of its own, a node has no basis to refuse.
    load.mean_job_s > 0.0 && load.expected_s(load.mean_job_s) > max_wait_s
}

/// How one attempt on a peer ended.
enum Outcome {
    /// The client has its answer.
    Delivered,
    /// The peer said BUSY: it would be slower than expected.
    Refused(Responder),
    /// The peer could not run it (gone, dying, shutting down).
    Failed(Responder, String),
}

/// Runs `job` on `peer`, then on other peers or here (`here`, when this
/// node may still run jobs) until someone answers it.
pub(crate) async fn hand_over(
    shared: Arc<Shared>,
    job: Handover,
    mut responder: Responder,
    mut peer: PeerInfo,
    mut max_wait_s: Option<f64>,
    here: Option<Conn>,
) {
    let Some(mesh) = shared.mesh.clone() else {
        return responder.error(error("internal", "forwarding without a mesh"));
    };
    let mut tried: Vec<String> = Vec::new();
    loop {
        responder = match attempt(&shared, &mesh, &job, &peer, max_wait_s, responder).await {
            Outcome::Delivered => return,
            Outcome::Refused(r) => {
                debug!(peer = %peer.addr, request = job.request_id, "peer busy; choosing again");
                r
            }
            Outcome::Failed(r, why) => {
                warn!(peer = %peer.addr, node = %peer.node_id, request = job.request_id, why, "peer failed a forwarded job; running it again");
                r
            }
        };
        tried.push(peer.node_id.clone());
        if job.cancelled.load(Ordering::Acquire) {
            return; // the client has gone: nobody to answer
        }
        let may_run_here = here.is_some() && !shared.queue.is_shutting_down();
        let next = if tried.len() >= MAX_PEER_ATTEMPTS {
            Route::Here
        } else {
            route(&shared, &mesh, job.op, &job.header, may_run_here, &tried)
        };
        match (next, &here) {
            (
                Route::Peer {
                    peer: p,
                    max_wait_s: w,
                },
                _,
            ) => {
                peer = p;
                max_wait_s = w;
            }
            (Route::Here, Some(conn)) if may_run_here => {
                info!(
                    request = job.request_id,
                    "running here after forwarding failed"
                );
                let frame = Frame::new(job.op, job.request_id, job.header, job.payload);
                return conn.run_here(job.op, frame, responder);
            }
            (Route::Here, _) => {
                let code = if shared.queue.is_shutting_down() {
                    "shutting_down"
                } else {
                    "peer_unavailable"
                };
                return responder.error(error(
                    code,
                    format!(
                        "no node could run the request: {} peer(s) tried and this node cannot run it",
                        tried.len()
                    ),
                ));
            }
        }
    }
}

/// One try on one peer, relaying its progress events to the client.
async fn attempt(
    shared: &Shared,
    mesh: &Mesh,
    job: &Handover,
    peer: &PeerInfo,
    max_wait_s: Option<f64>,
    responder: Responder,
) -> Outcome {
    let _counted = mesh.track(&peer.node_id);
    let mut header = job.header.clone();
    header.insert(VIA.into(), Value::from(shared.node_id.as_str()));
    if let Some(w) = max_wait_s {
        header.insert(MAX_WAIT_S.into(), Value::from(w));
    }
    // A pooled connection the peer has since closed (idle timeout) fails
    // at once: open a new one and send again, once.
    let mut sent = None;
    let mut last_error = String::new();
    for _ in 0..2 {
        let client = match mesh.link(&peer.addr).await {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(responder, e.to_string()),
        };
        // Sending may block on a peer that stopped reading (frozen): the
        // failure detector ends the wait.
        let send = client.request(job.op, header.clone(), job.payload.clone());
        let sent_now = tokio::select! {
            r = send => r,
            _ = mesh.wait_dead(&peer.node_id) => {
                mesh.forget_link(&peer.addr, &client).await;
                return Outcome::Failed(responder, "the failure detector declared it dead".into());
            }
        };
        match sent_now {
            Ok(request) => {
                sent = Some((client, request));
                break;
            }
            Err(e) => {
                last_error = e.to_string();
                mesh.forget_link(&peer.addr, &client).await;
            }
        }
    }
    let Some((client, mut request)) = sent else {
        return Outcome::Failed(responder, last_error);
    };
    loop {
        let event = tokio::select! {
            event = request.next() => event,
            _ = mesh.wait_dead(&peer.node_id) => {
                mesh.forget_link(&peer.addr, &client).await;
                return Outcome::Failed(responder, "the failure detector declared it dead".into());
            }
        };
        let Some(mut event) = event else {
            mesh.forget_link(&peer.addr, &client).await;
            return Outcome::Failed(responder, "connection lost".into());
        };
        match event.op {
            Op::Busy => return Outcome::Refused(responder),
            Op::Error => {
                let e = event.as_error().unwrap_or_else(|| error("internal", ""));
                // The job was not run there: these are worth another node.
                if matches!(e.code.as_str(), "shutting_down" | "timeout") {
                    return Outcome::Failed(responder, format!("{} ({})", e.message, e.code));
                }
                responder.send(Op::Error, event.header, event.payload);
                return Outcome::Delivered;
            }
            op if op.is_terminal() => {
                responder.send(op, event.header, event.payload);
                return Outcome::Delivered;
            }
            op => {
                event
                    .header
                    .insert("node_id".into(), Value::from(peer.node_id.as_str()));
                event
                    .header
                    .insert("node_addr".into(), Value::from(peer.addr.as_str()));
                job.sink.progress(
                    job.request_id,
                    Progress::Relayed {
                        op,
                        header: event.header,
                    },
                );
            }
        }
    }
}
