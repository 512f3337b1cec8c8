//! STATUS: the node's counters and its peers, answered at once.

use ocellus_protocol::StatusReport;
use ocellus_protocol::message::to_header;

use crate::call::Responder;
use crate::state::State;

/// The report.
pub(crate) fn report(state: &State) -> StatusReport {
    let stats = state.queue.stats();
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        node_id: state.node_id.clone(),
        roles: state.config.roles,
        queue_length: stats.queue_length,
        queue_capacity: state.config.queue_capacity as u64,
        workers: state.config.workers as u64,
        busy: stats.busy,
        jobs_done: stats.jobs_done,
        jobs_failed: stats.jobs_failed,
        jobs_cancelled: stats.jobs_cancelled,
        uptime_s: state.started.elapsed().as_secs_f64(),
        mean_job_s: stats.mean_job_s,
        peer_auth_failures: state.access.peer_auth_failures(),
        key_auth_failures: state
            .access
            .key_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        keys_required: state.access.keys.is_some(),
        jobs_forwarded: state.mesh.as_ref().map_or(0, |m| m.jobs_forwarded()),
        gossip_rejected: state.mesh.as_ref().map_or(0, |m| m.gossip_rejected()),
        tls: state.config.tls.is_some(),
        peers: state
            .mesh
            .as_ref()
            .map(|m| m.peers().as_ref().clone())
            .unwrap_or_default(),
    }
}

/// Answers STATUS.
pub(super) fn answer(state: &State, responder: Responder) {
    responder.result(to_header(&report(state)), bytes::Bytes::new());
}
