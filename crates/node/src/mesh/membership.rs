//! Membership: which nodes form the mesh, whether they are alive, and how
//! loaded they are.
//!
//! Membership, state dissemination and failure detection are chitchat's
//! (scuttlebutt gossip with a phi-accrual failure detector), over the
//! configured transport (sealed UDP, [`super::sealed`]; in-memory in
//! tests). Each node publishes a
//! few keys in its gossip state ([`keys`]); every gossip interval, and
//! whenever the live set changes, this module publishes the node's own
//! load and takes a snapshot of the others', which the forwarding rule
//! reads without waiting on a lock.
//!
//! Invariant: the snapshot lists each node once (a restarted node, under
//! a new generation, shows its live entry), and never this node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chitchat::{Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use ocellus_protocol::{PeerStatus, RoleSet};
use tokio::sync::watch;
use tracing::{info, warn};

use super::connections::PeerConnections;
use super::rule::{Candidate, Load};
use super::sealed::{Rejections, SealedUdpTransport};
use super::{Forwarding, GossipTransport, MeshError, MeshSettings};
use crate::exec::QueueStats;

/// The gossip keys every node publishes.
pub(crate) mod keys {
    /// host:port of the node's TCP protocol listener.
    pub const ADDR: &str = "addr";
    /// Comma-separated roles.
    pub const ROLES: &str = "roles";
    /// Worker threads.
    pub const WORKERS: &str = "workers";
    /// Jobs waiting.
    pub const QUEUE_LENGTH: &str = "queue_length";
    /// Jobs running.
    pub const BUSY: &str = "busy";
    /// Jobs the node ran itself.
    pub const JOBS_DONE: &str = "jobs_done";
    /// Recent mean job time, seconds.
    pub const MEAN_JOB_S: &str = "mean_job_s";
    /// "true" once the node is leaving: send it nothing more.
    pub const LEAVING: &str = "leaving";
    /// "true" when the protocol listener speaks TLS (connect with TLS).
    pub const TLS: &str = "tls";
}

/// The load a peer's gossip state describes.
fn load_of(p: &PeerStatus) -> Load {
    Load {
        queue_length: p.queue_length,
        busy: p.busy,
        workers: p.workers,
        mean_job_s: p.mean_job_s,
    }
}

/// This node's membership in the mesh.
pub(crate) struct Mesh {
    node_id: String,
    chitchat: Arc<tokio::sync::Mutex<Chitchat>>,
    handle: tokio::sync::Mutex<Option<ChitchatHandle>>,
    peers: watch::Sender<Arc<Vec<PeerStatus>>>,
    /// Jobs forwarded to each peer (by node id) that have not finished.
    in_flight: Mutex<HashMap<String, u64>>,
    /// Connections to peers.
    pub connections: PeerConnections,
    /// When to hand jobs over.
    pub forwarding: Forwarding,
    jobs_forwarded: AtomicU64,
    /// Gossip datagrams the sealed transport dropped.
    rejections: Arc<Rejections>,
    interval: Duration,
}

impl Mesh {
    /// Joins (or founds) the mesh. `listen` is the TCP address actually
    /// bound; `connections` says whether it speaks TLS (published to peers).
    pub(crate) async fn start(
        settings: &MeshSettings,
        node_id: &str,
        listen: SocketAddr,
        roles: RoleSet,
        workers: usize,
        connections: PeerConnections,
    ) -> Result<Mesh, MeshError> {
        let host = match (settings.advertise, listen.ip()) {
            (Some(ip), _) => ip,
            (None, ip) if ip.is_unspecified() => return Err(MeshError::NoAdvertiseAddress(ip)),
            (None, ip) => ip,
        };
        let protocol_addr = SocketAddr::new(host, listen.port());
        let gossip_listen = settings.gossip.unwrap_or(listen);
        let gossip_advertise = if gossip_listen.ip().is_unspecified() {
            SocketAddr::new(host, gossip_listen.port())
        } else {
            gossip_listen
        };
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let interval = settings.gossip_interval;
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(node_id.to_string(), generation, gossip_advertise),
            cluster_id: settings.cluster.clone(),
            gossip_interval: interval,
            listen_addr: gossip_listen,
            seed_nodes: settings.seeds.clone(),
            // The detector's prior for heartbeat intervals is the gossip
            // interval (its default, 5 s, would make a young mesh slow to
            // notice a death); dead nodes stay listed for ten minutes.
            failure_detector_config: FailureDetectorConfig {
                initial_interval: interval,
                dead_node_grace_period: Duration::from_secs(600),
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let initial = vec![
            (keys::ADDR.to_string(), protocol_addr.to_string()),
            (keys::ROLES.to_string(), roles.to_string()),
            (keys::WORKERS.to_string(), workers.to_string()),
            (keys::LEAVING.to_string(), "false".to_string()),
            (keys::TLS.to_string(), connections.own_tls().to_string()),
        ];
        let rejections = Arc::new(Rejections::default());
        let sealed;
        let transport: &dyn chitchat::transport::Transport = match &settings.transport {
            GossipTransport::Sealed => {
                let secret = settings.secret.clone().ok_or(MeshError::NoSecret)?;
                sealed = SealedUdpTransport::new(secret, rejections.clone());
                &sealed
            }
            GossipTransport::Custom(t) => t.as_ref(),
        };
        let handle = chitchat::spawn_chitchat(config, initial, transport)
            .await
            .map_err(|e| MeshError::Gossip {
                addr: gossip_listen,
                message: format!("{e:#}"),
            })?;
        info!(gossip = %gossip_advertise, seeds = ?settings.seeds, "mesh: gossip started");
        Ok(Mesh {
            node_id: node_id.to_string(),
            chitchat: handle.chitchat(),
            handle: tokio::sync::Mutex::new(Some(handle)),
            peers: watch::Sender::new(Arc::new(Vec::new())),
            in_flight: Mutex::new(HashMap::new()),
            connections,
            forwarding: settings.forwarding,
            jobs_forwarded: AtomicU64::new(0),
            rejections,
            interval,
        })
    }

    /// Publishes this node's load and refreshes the snapshot of the
    /// others, every gossip interval and whenever membership changes,
    /// until the task is aborted.
    pub(crate) async fn keep_in_touch(&self, stats: impl Fn() -> QueueStats) {
        let mut live = self.chitchat.lock().await.live_nodes_watcher();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = live.changed() => if changed.is_err() { return },
            }
            self.refresh(&stats()).await;
        }
    }

    async fn refresh(&self, stats: &QueueStats) {
        let mut chitchat = self.chitchat.lock().await;
        let own = chitchat.self_node_state();
        own.set(keys::QUEUE_LENGTH, stats.queue_length);
        own.set(keys::BUSY, stats.busy);
        own.set(keys::JOBS_DONE, stats.jobs_done);
        // Millisecond precision: finer changes are not worth a gossip update.
        own.set(keys::MEAN_JOB_S, format!("{:.3}", stats.mean_job_s));
        let self_id = chitchat.self_chitchat_id().clone();
        let live: std::collections::HashSet<&ChitchatId> = chitchat.live_nodes().collect();
        let mut peers: Vec<PeerStatus> = chitchat
            .node_states()
            .iter()
            .filter(|(id, _)| **id != self_id)
            .filter_map(|(id, state)| {
                let get = |k: &str| state.get(k);
                let num = |k: &str| get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
                Some(PeerStatus {
                    node_id: id.node_id.to_string(),
                    // A node whose state has not arrived yet is not usable.
                    addr: get(keys::ADDR)?.to_string(),
                    gossip_addr: id.gossip_advertise_addr.to_string(),
                    roles: RoleSet::parse_lenient(get(keys::ROLES).unwrap_or("")),
                    queue_length: num(keys::QUEUE_LENGTH),
                    busy: num(keys::BUSY),
                    workers: num(keys::WORKERS),
                    jobs_done: num(keys::JOBS_DONE),
                    mean_job_s: get(keys::MEAN_JOB_S)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0.0),
                    alive: live.contains(id),
                    leaving: get(keys::LEAVING) == Some("true"),
                    tls: get(keys::TLS) == Some("true"),
                })
            })
            .collect();
        drop(live);
        drop(chitchat);
        // A restarted node appears under a new generation; list it once,
        // the live entry first.
        peers.sort_by(|a, b| (a.node_id.as_str(), !a.alive).cmp(&(b.node_id.as_str(), !b.alive)));
        peers.dedup_by(|later, first| later.node_id == first.node_id);
        self.peers.send_if_modified(|current| {
            if **current == peers {
                return false;
            }
            *current = Arc::new(peers);
            true
        });
    }

    /// The other nodes, alive or recently dead.
    pub(crate) fn peers(&self) -> Arc<Vec<PeerStatus>> {
        self.peers.borrow().clone()
    }

    /// Live peers that serve `roles` and are not in `exclude`, each with
    /// its load as the forwarding rule sees it.
    pub(crate) fn candidates(
        &self,
        roles: RoleSet,
        exclude: &[String],
    ) -> (Vec<PeerStatus>, Vec<Candidate>) {
        let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        self.peers()
            .iter()
            .filter(|p| p.usable() && p.roles.contains_all(roles) && !exclude.contains(&p.node_id))
            .map(|p| {
                let c = Candidate {
                    load: load_of(p),
                    in_flight_from_us: in_flight.get(&p.node_id).copied().unwrap_or(0),
                };
                (p.clone(), c)
            })
            .unzip()
    }

    /// Counts a job handed to `peer` until the guard drops.
    pub(crate) fn track(&self, peer: &str) -> InFlight<'_> {
        *self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer.to_string())
            .or_default() += 1;
        self.jobs_forwarded.fetch_add(1, Ordering::Relaxed);
        InFlight {
            mesh: self,
            peer: peer.to_string(),
        }
    }

    /// Jobs this node has handed to peers since it started (attempts).
    pub(crate) fn jobs_forwarded(&self) -> u64 {
        self.jobs_forwarded.load(Ordering::Relaxed)
    }

    /// Gossip datagrams dropped since start (not sealed under the cluster
    /// secret, stale, replayed or malformed).
    pub(crate) fn gossip_rejected(&self) -> u64 {
        self.rejections.total()
    }

    /// Resolves once `node_id` is no longer alive (or is leaving and so
    /// will not take new work, which does not matter to running jobs: only
    /// death counts here).
    pub(crate) async fn wait_dead(&self, node_id: &str) {
        let mut rx = self.peers.subscribe();
        loop {
            let alive = rx
                .borrow_and_update()
                .iter()
                .any(|p| p.node_id == node_id && p.alive);
            if !alive {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Tells the mesh this node is leaving: peers stop sending it work.
    pub(crate) async fn announce_leaving(&self) {
        self.chitchat
            .lock()
            .await
            .self_node_state()
            .set(keys::LEAVING, "true");
        info!(node = %self.node_id, "mesh: leaving announced");
    }

    /// Gives gossip a round to carry the last state, then stops it.
    pub(crate) async fn stop(&self) {
        tokio::time::sleep(self.interval).await;
        if let Some(handle) = self.handle.lock().await.take()
            && let Err(e) = handle.shutdown().await
        {
            warn!(error = %e, "mesh: gossip did not stop cleanly");
        }
    }
}

/// A job in flight on a peer; counted until dropped.
pub(crate) struct InFlight<'a> {
    mesh: &'a Mesh,
    peer: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .mesh
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
        }
    }
}
