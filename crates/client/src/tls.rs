//! TLS for a connection to a node: which certificates the client trusts
//! and which name the node's certificate must carry.
//!
//! It owns the client's rustls configuration (the ring provider, TLS 1.2
//! and 1.3, no client certificate) and reading certificates from PEM
//! files, which the node also uses for its own chain.
//!
//! Invariant: a connection made with [`TlsOptions`] sends no protocol byte
//! before the node's certificate has been verified against the trusted
//! roots and the expected name; there is no way to turn verification off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// Why TLS settings could not be made.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file that should hold certificates holds none (or bad PEM).
    #[error("{} holds no PEM certificate ({reason})", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A certificate cannot be used as a trusted root.
    #[error("{}: not a usable CA certificate: {reason}", path.display())]
    BadRoot {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The system's trust store gave no certificate.
    #[error("no trusted roots in the system store ({0}): give the CA file explicitly")]
    NoSystemRoots(String),
    /// The name to verify is neither a DNS name nor an IP address.
    #[error("{0:?} is not a valid TLS server name (a DNS name or an IP address)")]
    ServerName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The cryptography every Ocellus TLS configuration uses: rustls with
/// ring, chosen explicitly so no process-wide default is needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file at `path`, in order (a chain starts
/// with its leaf); at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NoCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The system's trusted roots (`rustls-native-certs`: the platform store,
/// or `SSL_CERT_FILE` / `SSL_CERT_DIR`). Unparsable entries are skipped;
/// an empty result is an error.
pub fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_added, _skipped) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "empty".to_string(), |e| e.to_string());
        return Err(TlsError::NoSystemRoots(why));
    }
    Ok(roots)
}

/// Adds every certificate of the PEM file at `path` to `roots`.
pub fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    for cert in read_certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::BadRoot {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// How to speak TLS to a node: the roots its certificate must chain to,
/// and the name it must carry (by default the host of the address
/// connected to). Cheap to clone: the configuration is shared.
#[derive(Clone)]
pub struct TlsOptions {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsOptions {
    /// Trusts exactly `roots`.
    pub fn from_roots(roots: RootCertStore) -> Result<TlsOptions, TlsError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsOptions {
            config: Arc::new(config),
            server_name: None,
        })
    }

    /// Trusts the system's roots.
    pub fn system() -> Result<TlsOptions, TlsError> {
        TlsOptions::from_roots(system_roots()?)
    }

    /// Trusts the certificates of the PEM file at `ca` (only them).
    pub fn ca_file(ca: &Path) -> Result<TlsOptions, TlsError> {
        let mut roots = RootCertStore::empty();
        add_ca_file(&mut roots, ca)?;
        TlsOptions::from_roots(roots)
    }

    /// Expects the node's certificate to carry `name` (a DNS name or an
    /// IP address) rather than the host connected to.
    pub fn with_server_name(mut self, name: impl Into<String>) -> TlsOptions {
        self.server_name = Some(name.into());
        self
    }

    /// The name set with [`with_server_name`](Self::with_server_name).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name to verify when connecting to `addr` (host:port).
    pub(crate) fn name_for(&self, addr: &str) -> Result<ServerName<'static>, TlsError> {
        let name = match &self.server_name {
            Some(n) => n.as_str(),
            None => host_of(addr),
        };
        ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName(name.to_string()))
    }
}

/// The host part of host:port (`[::1]:7070` gives `::1`).
fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    };
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_taken_from_the_address() {
        assert_eq!(host_of("node.example:7070"), "node.example");
        assert_eq!(host_of("127.0.0.1:7070"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7070"), "::1");
        assert_eq!(host_of("node.example"), "node.example");
    }

    #[test]
    fn files_without_certificates_are_refused() {
        let dir = std::env::temp_dir().join(format!("ocellus-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        assert!(matches!(
            TlsOptions::ca_file(&empty),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(matches!(
            TlsOptions::ca_file(&dir.join("missing.pem")),
            Err(TlsError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
