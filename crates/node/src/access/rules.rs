//! The decision for one request: may this connection's session send it?
//! Pure: the session, the op, whether the request uses a peer-only form,
//! and the current keyring in; allowed or the ERROR to send out.
//!
//! Invariant: the session holds only the key's hash and name, never its
//! rights; rights come from the keyring passed in, which is the current
//! one (see the module above).

use ocellus_auth::{Keyring, Scopes, required_scope};
use ocellus_protocol::{ErrorCode, ErrorEvent, Op};

/// What a connection has proved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Session {
    /// Nothing yet.
    #[default]
    Anonymous,
    /// A client key.
    Key {
        /// The key's SHA-256 (what the keyring is searched by).
        hash: [u8; 32],
        /// Its name when it was presented.
        name: String,
    },
    /// Step 2 of a peer proof was answered; waiting for the peer's proof.
    PeerChallenged {
        /// The node that is proving itself.
        node_id: String,
        /// This node's challenge.
        challenge: [u8; 32],
        /// The peer's nonce.
        nonce: Vec<u8>,
    },
    /// A node of the cluster.
    Peer {
        /// Its node id.
        node_id: String,
    },
}

impl Session {
    /// Whom the session's jobs are queued for (fair turns, per-client
    /// caps): its key once it has authenticated with one, a peer node by
    /// its id, else the client's IP address (`peer`).
    pub fn client_id(&self, peer: Option<std::net::SocketAddr>) -> std::sync::Arc<str> {
        match self {
            Session::Key { name, .. } => format!("key:{name}").into(),
            Session::Peer { node_id } => format!("peer:{node_id}").into(),
            Session::Anonymous | Session::PeerChallenged { .. } => peer
                .map_or_else(|| "ip:-".to_string(), |a| format!("ip:{}", a.ip()))
                .into(),
        }
    }

    /// The name the audit trail gives the session.
    pub fn principal(&self) -> String {
        match self {
            Session::Anonymous | Session::PeerChallenged { .. } => "-".to_string(),
            Session::Key { name, .. } => name.clone(),
            Session::Peer { node_id } => format!("peer:{node_id}"),
        }
    }
}

/// Whether `session` may send `op`; `peer_form`: the request carries a
/// field only peers may send.
///
/// `keyring`: `None` when the node has no keys file (clients need no
/// key); `fully_open`: neither keys nor cluster secret.
pub(crate) fn authorize(
    session: &Session,
    op: Op,
    peer_form: bool,
    keyring: Option<&Keyring>,
    fully_open: bool,
) -> Result<(), ErrorEvent> {
    if let Session::Peer { .. } = session {
        return Ok(());
    }
    if peer_form && !fully_open {
        return Err(ErrorEvent::new(
            ErrorCode::Forbidden,
            "the crops, via and max_wait_s forms are for nodes of the cluster, not for clients",
        ));
    }
    let Some(keyring) = keyring else {
        return Ok(());
    };
    let Some(needed) = required_scope(op) else {
        return Ok(());
    };
    match session {
        Session::Key { hash, name } => match keyring.by_hash(hash) {
            Some(entry) if entry.scopes.allows(needed) => Ok(()),
            Some(entry) => Err(ErrorEvent::new(
                ErrorCode::Forbidden,
                format!(
                    "key {:?} has the scopes {}; {} needs {needed}",
                    entry.name,
                    entry.scopes,
                    op_name(op)
                ),
            )),
            None => Err(ErrorEvent::new(
                ErrorCode::Unauthorized,
                format!("key {name:?} has been revoked"),
            )),
        },
        _ => Err(ErrorEvent::new(
            ErrorCode::Unauthorized,
            "this node needs a key: send AUTH first (the CLI's --key or OCELLUS_KEY)",
        )),
    }
}

/// The scopes of a session, for AUTH's answer.
pub(crate) fn scopes_of(session: &Session, keyring: Option<&Keyring>) -> Scopes {
    match (session, keyring) {
        (Session::Peer { .. }, _) | (_, None) => Scopes::all(),
        (Session::Key { hash, .. }, Some(k)) => k.by_hash(hash).map_or(Scopes::NONE, |e| e.scopes),
        _ => Scopes::NONE,
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Enroll => "ENROLL",
        Op::Recognize => "RECOGNIZE",
        Op::Detect => "DETECT",
        Op::Filter => "FILTER",
        Op::Status => "STATUS",
        Op::People => "PEOPLE",
        Op::RemovePerson => "REMOVE_PERSON",
        _ => "this operation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocellus_auth::ApiKey;

    fn ring() -> (Keyring, String, String) {
        let mut k = Keyring::default();
        let f = k.add("f", Scopes::parse("filter").unwrap(), 0).unwrap();
        let a = k.add("a", Scopes::all(), 0).unwrap();
        (k, f.expose().to_string(), a.expose().to_string())
    }

    fn key(text: &str, name: &str) -> Session {
        Session::Key {
            hash: ApiKey::hash_of(text),
            name: name.to_string(),
        }
    }

    #[test]
    fn keys_allow_their_scopes_only() {
        let (k, f, a) = ring();
        let code = |s: &Session, op| authorize(s, op, false, Some(&k), false).map_err(|e| e.code);
        assert_eq!(code(&key(&f, "f"), Op::Filter), Ok(()));
        assert_eq!(code(&key(&f, "f"), Op::Enroll), Err(ErrorCode::Forbidden));
        assert_eq!(code(&key(&f, "f"), Op::Status), Err(ErrorCode::Forbidden));
        for op in [Op::Enroll, Op::RemovePerson, Op::People, Op::Detect] {
            assert_eq!(code(&key(&a, "a"), op), Ok(()));
        }
        assert_eq!(
            code(&Session::Anonymous, Op::Filter),
            Err(ErrorCode::Unauthorized)
        );
        assert_eq!(
            code(&Session::Anonymous, Op::Status),
            Err(ErrorCode::Unauthorized)
        );
    }

    #[test]
    fn a_revoked_key_is_unauthorized_on_the_next_request() {
        let (mut k, f, _) = ring();
        let s = key(&f, "f");
        assert!(authorize(&s, Op::Filter, false, Some(&k), false).is_ok());
        k.revoke("f").unwrap();
        let e = authorize(&s, Op::Filter, false, Some(&k), false).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert!(e.message.contains("revoked"));
    }

    #[test]
    fn peer_forms_need_a_peer_unless_the_node_is_fully_open() {
        let (k, _, a) = ring();
        let admin = key(&a, "a");
        let e = authorize(&admin, Op::Enroll, true, Some(&k), false).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        // Secret but no keys: clients are trusted, but not with peer forms.
        let e = authorize(&Session::Anonymous, Op::Filter, true, None, false).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(authorize(&Session::Anonymous, Op::Filter, false, None, false).is_ok());
        let peer = Session::Peer {
            node_id: "n".into(),
        };
        assert!(authorize(&peer, Op::Enroll, true, Some(&k), false).is_ok());
        assert!(authorize(&Session::Anonymous, Op::Enroll, true, None, true).is_ok());
        let challenged = Session::PeerChallenged {
            node_id: "n".into(),
            challenge: [0; 32],
            nonce: vec![],
        };
        let e = authorize(&challenged, Op::Enroll, true, None, false).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
    }
}
