//! Why a node could not start.

use crate::mesh::MeshError;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration asks for something impossible (a role without
    /// what it needs).
    #[error("{0}")]
    Config(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address tried.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The face store could not be opened.
    #[error("{0}")]
    Store(String),
    /// The keys file could not be loaded.
    #[error(transparent)]
    Keys(#[from] crate::access::keyring::KeysError),
    /// The mesh could not start.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// Threads could not be started, or similar.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
