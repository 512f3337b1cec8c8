//! Where a request should run: here, or on which peer.
//!
//! Face operations move only when this node lacks their role; FILTER and
//! DETECT also move for load, as `--forwarding` says, by the pure rule of
//! [`super::rule`]. Only the op and whether the request carries face
//! crops are read: routing never parses a request.

use ocellus_protocol::{Op, PeerStatus, Role, RoleSet, field};
use serde_json::{Map, Value};

use super::rule::{self, Decision, Load};
use super::{Forwarding, Mesh};

/// What forwarding one job is assumed to cost, seconds: the rule adds it
/// to a peer's expected time. bench/mesh.py measured 0.24-0.3 ms for a
/// 640x480 JPEG over loopback; this allows for larger images and real
/// networks.
const FORWARD_OVERHEAD_S: f64 = 0.002;

/// Where a request goes.
pub(crate) enum Route {
    /// Run it on this node.
    Here,
    /// Send it to `peer`.
    Peer {
        peer: PeerStatus,
        /// Set when it moves for load: the peer may refuse it.
        max_wait_s: Option<f64>,
    },
}

/// The roles a peer needs to run `op` (`crops`: the node-to-node form of
/// ENROLL / RECOGNIZE, which needs only the recognition role).
pub(crate) fn roles_for(op: Op, crops: bool) -> RoleSet {
    match op {
        Op::Filter => RoleSet::of(&[Role::Filter]),
        Op::Detect => RoleSet::of(&[Role::Detect]),
        Op::Enroll | Op::Recognize if crops => RoleSet::of(&[Role::Recognize]),
        Op::Enroll | Op::Recognize => RoleSet::of(&[Role::Detect, Role::Recognize]),
        Op::People | Op::RemovePerson => RoleSet::of(&[Role::Recognize]),
        _ => RoleSet::NONE,
    }
}

/// Where `op` should run. `here` says whether this node may run it (it has
/// the role and is not leaving); peers in `exclude` were tried already.
pub(crate) fn route(
    mesh: &Mesh,
    local: Load,
    op: Op,
    crops: bool,
    here: bool,
    exclude: &[String],
) -> Route {
    let roles = roles_for(op, crops);
    if roles.is_empty() {
        return Route::Here;
    }
    // Decided before the candidates are gathered: most requests stay.
    let movable_for_load = matches!(op, Op::Filter | Op::Detect);
    if here && (!movable_for_load || mesh.forwarding == Forwarding::Never) {
        return Route::Here;
    }
    let (peers, candidates) = mesh.candidates(roles, exclude);
    let least_loaded = || {
        rule::least_loaded_of_two(&candidates, local.mean_job_s).map_or(Route::Here, |i| {
            Route::Peer {
                peer: peers[i].clone(),
                max_wait_s: None,
            }
        })
    };
    if !here {
        return least_loaded();
    }
    match mesh.forwarding {
        Forwarding::Never => Route::Here,
        Forwarding::Always => least_loaded(),
        Forwarding::Auto => match rule::decide(local, &candidates, FORWARD_OVERHEAD_S) {
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
pub(crate) fn should_refuse(local: Load, header: &Map<String, Value>) -> bool {
    let Some(max_wait_s) = header.get(field::MAX_WAIT_S).and_then(Value::as_f64) else {
        return false;
    };
    // Without a job time of its own, a node has no basis to refuse.
    local.mean_job_s > 0.0 && local.expected_s(local.mean_job_s) > max_wait_s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(queue_length: u64, busy: u64, mean_job_s: f64) -> Load {
        Load {
            queue_length,
            busy,
            workers: 2,
            mean_job_s,
        }
    }

    #[test]
    fn a_peer_refuses_only_when_it_would_be_slower_than_expected() {
        let mut header = Map::new();
        // No max_wait_s: not forwarded for load, never refused.
        assert!(!should_refuse(load(10, 2, 1.0), &header));
        header.insert(field::MAX_WAIT_S.into(), Value::from(2.0));
        // Idle: expected 1 s <= 2 s.
        assert!(!should_refuse(load(0, 0, 1.0), &header));
        // 4 waiting + 2 running on 2 workers: 1 * (1 + 5/2) = 3.5 s > 2 s.
        assert!(should_refuse(load(4, 2, 1.0), &header));
        // No job time yet: no basis to refuse.
        assert!(!should_refuse(load(40, 2, 0.0), &header));
    }

    #[test]
    fn roles_per_op() {
        assert_eq!(roles_for(Op::Filter, false), RoleSet::of(&[Role::Filter]));
        assert_eq!(roles_for(Op::Enroll, true), RoleSet::of(&[Role::Recognize]));
        assert_eq!(
            roles_for(Op::Recognize, false),
            RoleSet::of(&[Role::Detect, Role::Recognize])
        );
        assert!(roles_for(Op::Status, false).is_empty());
    }
}
