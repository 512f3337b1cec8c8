//! TLS on the protocol port: the node's certificate chain and key, read
//! from PEM files once at start, and the roots it trusts when it connects
//! to peers that speak TLS.
//!
//! It owns loading and checking those files (both present, readable, the
//! key matching the chain's first certificate) and the server's rustls
//! configuration (the ring provider, TLS 1.2 and 1.3, no client
//! certificate). What runs over a TLS connection is
//! [`super::connection`]'s, the same as over plain TCP.
//!
//! Invariant: a [`ServerTls`] only exists for a chain and key that rustls
//! accepted together, so a node that starts with one can complete
//! handshakes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ocellus_client::TlsOptions;
use ocellus_client::rustls::pki_types::pem::PemObject;
use ocellus_client::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use ocellus_client::rustls::{self, RootCertStore, ServerConfig};
use ocellus_client::tls::{self as client_tls, TlsError};
use thiserror::Error;

/// Why the node's TLS settings could not be made.
#[derive(Debug, Error)]
pub enum ServerTlsError {
    /// Reading or parsing a certificate file.
    #[error(transparent)]
    Certificates(#[from] TlsError),
    /// The key file could not be read.
    #[error("cannot read the TLS key {}: {source}", path.display())]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file holds no private key in PEM.
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key is not the certificate's, or rustls cannot use it.
    #[error("the TLS key {} does not go with the certificate {}: {reason}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// The node's TLS identity: its server configuration, and the last
/// certificate of its chain (the CA, when the chain file includes it).
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    chain_last: CertificateDer<'static>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Reads the certificate chain (PEM, leaf first) and the private key
    /// (PEM) and checks that they go together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, ServerTlsError> {
        let chain = client_tls::read_certificates(cert)?;
        let pem = std::fs::read(key).map_err(|source| ServerTlsError::ReadKey {
            path: key.to_path_buf(),
            source,
        })?;
        let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ServerTlsError::NoKey {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mismatch = |e: rustls::Error| ServerTlsError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        };
        let chain_last = chain
            .last()
            .cloned()
            .ok_or_else(|| TlsError::NoCertificate {
                path: cert.to_path_buf(),
                reason: "no CERTIFICATE block".into(),
            })?;
        let config = ServerConfig::builder_with_provider(client_tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(mismatch)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(mismatch)?;
        Ok(ServerTls {
            config: Arc::new(config),
            chain_last,
        })
    }

    /// The acceptor for incoming connections.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// How a node verifies the peers it connects to over TLS (mesh peers, the
/// recognition node): the CA file `peer_ca` alone when given; otherwise
/// the system roots plus the last certificate of the node's own chain, so
/// that nodes whose certificates one private CA signed (each chain file
/// ending with that CA) trust each other with no more flags.
pub fn peer_tls(
    peer_ca: Option<&Path>,
    own: Option<&ServerTls>,
) -> Result<TlsOptions, ServerTlsError> {
    if let Some(ca) = peer_ca {
        return Ok(TlsOptions::ca_file(ca)?);
    }
    // No system roots is fine when the node's own CA is there.
    let mut roots = client_tls::system_roots().unwrap_or_else(|_| RootCertStore::empty());
    if let Some(own) = own {
        // A leaf that is its own issuer works as an anchor too; one that
        // rustls cannot use as a root only means peers are not trusted
        // through it.
        let _ = roots.add(own.chain_last.clone());
    }
    Ok(TlsOptions::from_roots(roots)?)
}

/// Whether the bytes a client sent on a plain connection begin with a TLS
/// ClientHello.
pub(crate) fn is_client_hello(first: &[u8]) -> bool {
    first.first() == Some(&0x16) && ocellus_protocol::sniff::is_tls_record(first)
}
