//! Who may do what on an Ocellus node (`docs/security.md`).
//!
//! Three things, all pure (text and bytes in, decisions out; the node and
//! the CLI read and write the files):
//! - [`scope`]: the rights a key can carry and the one an operation needs;
//! - [`keys`]: API keys, the keys file that stores only their hashes, and
//!   checking a presented key against it in constant time;
//! - [`secret`]: the cluster secret, the keys derived from it (gossip
//!   encryption, peer proofs) and the challenge-response nodes use to prove
//!   to each other that they belong to the cluster.
//!
//! Invariant: no secret (a key, the cluster secret, a derived key) is ever
//! compared with `==`, printed by `Debug`, or stored in clear in a keys
//! file.

#![warn(missing_docs)]

pub mod keys;
pub mod scope;
pub mod secret;

pub use keys::{ApiKey, KeyEntry, KeyFileError, Keyring};
pub use scope::{Scope, Scopes, required_scope};
pub use secret::{ClusterSecret, SecretError};

/// `n` random bytes from the operating system.
///
/// # Panics
/// If the OS has no random source, which no supported system lacks.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Bytes from hex (either case); `None` if not hex or of odd length.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
