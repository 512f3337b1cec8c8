//! AUTH (op 8) headers: a client presenting a key, and the two steps of
//! the proof a node gives a peer that it holds the cluster secret
//! (`docs/PROTOCOL.md`, "Authentication").
//!
//! A request is told apart by its fields: `key` (a client key), `peer`
//! with `nonce` (a peer's first step), `peer` with `proof` (its second).

use serde::{Deserialize, Serialize};

/// What an AUTH request asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AuthRequest {
    /// A client key.
    Key {
        /// The key (`ock_…`).
        key: String,
    },
    /// A peer's second step: its proof over the challenge.
    PeerProof {
        /// The connecting node's id.
        peer: String,
        /// HMAC proof, hex.
        proof: String,
    },
    /// A peer's first step: who it is and a fresh nonce.
    PeerHello {
        /// The connecting node's id.
        peer: String,
        /// 32 random bytes, hex.
        nonce: String,
    },
}

/// RESULT of a successful AUTH with a key, or of a peer's second step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthGranted {
    /// The key's name (`peer:<node id>` for a peer).
    pub name: String,
    /// What the connection may do now.
    pub scopes: Vec<String>,
    /// The node needs no key (every client is trusted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
}

/// RESULT of a peer's first step: this node's challenge and its own proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerChallenge {
    /// The answering node's id.
    pub node_id: String,
    /// 32 random bytes, hex.
    pub challenge: String,
    /// The answering node's HMAC proof, hex.
    pub proof: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_three_forms_are_told_apart_by_their_fields() {
        let f = |v: serde_json::Value| serde_json::from_value::<AuthRequest>(v).ok();
        assert_eq!(
            f(json!({"key": "k"})),
            Some(AuthRequest::Key { key: "k".into() })
        );
        assert_eq!(
            f(json!({"peer": "n", "nonce": "00"})),
            Some(AuthRequest::PeerHello {
                peer: "n".into(),
                nonce: "00".into()
            })
        );
        assert_eq!(
            f(json!({"peer": "n", "proof": "00"})),
            Some(AuthRequest::PeerProof {
                peer: "n".into(),
                proof: "00".into()
            })
        );
        assert_eq!(f(json!({"peer": "n"})), None);
        assert_eq!(f(json!({"key": 3})), None);
        assert_eq!(f(json!({})), None);
    }
}
