//! The cluster secret: what makes a set of nodes one mesh.
//!
//! 32 random bytes, kept in a file readable by the node's user only
//! (`ocellus mesh secret` makes one). Nothing uses the secret directly:
//! each purpose gets its own key, HMAC-SHA256(secret, label), so a key
//! that leaked from one use (say, gossip encryption) says nothing about
//! another (peer proofs).
//!
//! Peers prove to each other that they hold the secret with a
//! challenge-response over the TCP protocol (AUTH, `docs/PROTOCOL.md`):
//! 1. the connecting node sends its node id and a fresh nonce;
//! 2. the accepting node answers a fresh challenge and its own proof,
//!    [`ClusterSecret::server_proof`], over both;
//! 3. the connecting node checks that proof (it now knows the other side
//!    is a member) and answers [`ClusterSecret::client_proof`].
//!
//! Both proofs cover both nonces, the node id and a direction label, so a
//! proof recorded on one connection is worth nothing on another and one
//! direction's proof cannot be reflected as the other's.
//!
//! Invariant: proofs are compared only through [`proofs_match`] (constant
//! time).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "ocs_";

/// Bytes of a challenge and of a nonce.
pub const NONCE_LEN: usize = 32;

/// Label of the gossip encryption key.
const GOSSIP_LABEL: &[u8] = b"ocellus gossip v1";
/// Label of the peer-proof key.
const PEER_LABEL: &[u8] = b"ocellus peer auth v1";

/// Why a secret file's text is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Not `ocs_` and 64 hex digits.
    #[error(
        "not a cluster secret: expected \"{SECRET_PREFIX}\" and 64 hex digits on one line (make one with `ocellus mesh secret`)"
    )]
    Malformed,
}

/// The cluster secret. `Debug` does not show it.
#[derive(Clone)]
pub struct ClusterSecret([u8; 32]);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(…)")
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        // Length-prefixed, so that parts cannot slide into each other.
        mac.update(&(p.len() as u32).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl ClusterSecret {
    /// A new random secret.
    pub fn generate() -> ClusterSecret {
        ClusterSecret(crate::random::<32>())
    }

    /// The secret from its text form (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<ClusterSecret, SecretError> {
        let hex = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Malformed)?;
        let bytes: [u8; 32] = crate::unhex(hex)
            .and_then(|b| b.try_into().ok())
            .ok_or(SecretError::Malformed)?;
        Ok(ClusterSecret(bytes))
    }

    /// Its text form, for the secret file.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", crate::hex(&self.0))
    }

    /// The key for a purpose: HMAC-SHA256(secret, label).
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        hmac(&self.0, &[label])
    }

    /// The 256-bit key that encrypts and authenticates gossip datagrams.
    pub fn gossip_key(&self) -> [u8; 32] {
        self.derive(GOSSIP_LABEL)
    }

    /// The accepting node's proof (step 2).
    pub fn server_proof(&self, challenge: &[u8], nonce: &[u8], node_id: &str) -> [u8; 32] {
        hmac(
            &self.derive(PEER_LABEL),
            &[b"server", challenge, nonce, node_id.as_bytes()],
        )
    }

    /// The connecting node's proof (step 3).
    pub fn client_proof(&self, challenge: &[u8], nonce: &[u8], node_id: &str) -> [u8; 32] {
        hmac(
            &self.derive(PEER_LABEL),
            &[b"client", challenge, nonce, node_id.as_bytes()],
        )
    }

    /// A fresh nonce or challenge.
    pub fn nonce() -> [u8; NONCE_LEN] {
        crate::random::<NONCE_LEN>()
    }
}

/// Whether a presented proof (hex) is the expected one, in constant time.
pub fn proofs_match(expected: &[u8; 32], presented_hex: &str) -> bool {
    match crate::unhex(presented_hex) {
        Some(bytes) if bytes.len() == 32 => bool::from(expected.ct_eq(bytes.as_slice())),
        _ => false,
    }
}

/// Hex of a proof or nonce, for the wire.
pub fn to_hex(bytes: &[u8]) -> String {
    crate::hex(bytes)
}

/// Bytes of a hex nonce from the wire.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    crate::unhex(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_bad_text_is_refused() {
        let s = ClusterSecret::generate();
        let text = s.to_text();
        assert_eq!(text.len(), 4 + 64);
        let back = ClusterSecret::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(back.gossip_key(), s.gossip_key());
        for bad in [
            "",
            "ocs_",
            "ocs_12",
            &text[4..],
            &format!("{text}00"),
            &text.replace('_', "-"),
        ] {
            assert_eq!(
                ClusterSecret::parse(bad).unwrap_err(),
                SecretError::Malformed,
                "{bad}"
            );
        }
        assert_eq!(format!("{s:?}"), "ClusterSecret(…)");
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_secret() {
        let a = ClusterSecret::parse(&format!("ocs_{}", "11".repeat(32))).unwrap();
        let b = ClusterSecret::parse(&format!("ocs_{}", "12".repeat(32))).unwrap();
        assert_ne!(a.gossip_key(), b.gossip_key());
        assert_ne!(a.gossip_key(), a.derive(PEER_LABEL));
        assert_eq!(a.gossip_key(), a.derive(GOSSIP_LABEL));
    }

    #[test]
    fn proofs_bind_direction_nonces_and_node() {
        let s = ClusterSecret::generate();
        let (c, n) = (ClusterSecret::nonce(), ClusterSecret::nonce());
        let server = s.server_proof(&c, &n, "node-a");
        let client = s.client_proof(&c, &n, "node-a");
        assert_ne!(server, client);
        assert!(proofs_match(&client, &to_hex(&client)));
        assert!(!proofs_match(&client, &to_hex(&server)));
        assert!(!proofs_match(
            &client,
            &to_hex(&s.client_proof(&n, &c, "node-a"))
        ));
        assert!(!proofs_match(
            &client,
            &to_hex(&s.client_proof(&c, &n, "node-b"))
        ));
        let other = ClusterSecret::generate();
        assert!(!proofs_match(
            &client,
            &to_hex(&other.client_proof(&c, &n, "node-a"))
        ));
        assert!(!proofs_match(&client, "zz"));
        assert!(!proofs_match(&client, ""));
    }
}
