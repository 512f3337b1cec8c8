//! Who may do what on this node (`docs/security.md`): the keyring loaded
//! from the keys file and kept current ([`keyring`]), the decision for
//! each request ([`rules`]: pure), answering AUTH ([`auth`]), the proof
//! nodes give each other ([`peer`]), slowing down repeated failures
//! ([`throttle`]), and the audit trail ([`audit`]).
//!
//! Two independent switches:
//! - **keys**: with a keys file, every client must AUTH with a key whose
//!   scopes cover the operation; without one, clients are trusted (the CLI
//!   allows that only on loopback, or with `--insecure`);
//! - **cluster secret**: with one, the peer-only request forms (`crops`,
//!   `via`, `max_wait_s`) are accepted only on connections that proved
//!   they hold the secret, whatever key a client has. A node with neither
//!   keys nor secret is fully open (a single-user node on loopback), and
//!   accepts those forms from anyone.
//!
//! Invariant: a connection's rights are re-read from the current keyring
//! at every request, so a revoked key stops working on connections that
//! are already open, and changed scopes apply at once.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod keyring;
pub(crate) mod peer;
pub(crate) mod rules;
pub(crate) mod throttle;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ocellus_auth::{ClusterSecret, Keyring};

pub(crate) use rules::Session;

/// A node's access state.
pub(crate) struct Access {
    /// The keys, when the node has a keys file.
    pub keys: Option<Arc<keyring::LiveKeyring>>,
    /// The cluster secret, when the node has one.
    pub secret: Option<ClusterSecret>,
    /// Repeated failures per address.
    pub throttle: throttle::Throttle,
    /// AUTH with a key that matched none.
    pub key_failures: AtomicU64,
    /// Peer proofs other nodes failed to give this one.
    pub peer_failures: AtomicU64,
    /// How this node proves itself to others (with a secret).
    pub prover: Option<Arc<peer::PeerProver>>,
}

impl Access {
    /// Access for a node with these keys and secret.
    pub fn new(keys: Option<Arc<keyring::LiveKeyring>>, secret: Option<ClusterSecret>) -> Access {
        Access {
            keys,
            secret,
            throttle: throttle::Throttle::default(),
            key_failures: AtomicU64::new(0),
            peer_failures: AtomicU64::new(0),
            prover: None,
        }
    }

    /// Failed peer proofs, in both directions (STATUS).
    pub fn peer_auth_failures(&self) -> u64 {
        self.peer_failures.load(Ordering::Relaxed)
            + self
                .prover
                .as_ref()
                .map_or(0, |p| p.failures.load(Ordering::Relaxed))
    }

    /// The current keyring (`None`: clients need no key).
    pub fn keyring(&self) -> Option<Arc<Keyring>> {
        self.keys.as_ref().map(|k| k.current())
    }

    /// Whether the node has neither keys nor a secret.
    pub fn fully_open(&self) -> bool {
        self.keys.is_none() && self.secret.is_none()
    }

    /// Counts a failed peer proof.
    pub fn peer_failed(&self) {
        self.peer_failures.fetch_add(1, Ordering::Relaxed);
    }
}
