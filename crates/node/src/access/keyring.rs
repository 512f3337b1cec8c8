//! The keyring as the keys file says now: loaded at start, re-read when
//! the file changes (checked every [`POLL`]) or on SIGHUP.
//!
//! Invariants: a keys file that cannot be read or parsed at start stops
//! the node from starting; one that becomes unreadable or invalid later
//! is *failed closed*: every key is refused until the file is fixed (an
//! edit that broke the file must not leave a revoked key working), and
//! the log says so. The file is replaced whole by `ocellus keys` (write
//! to a temporary file, then rename), so a reader never sees half of it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use ocellus_auth::Keyring;
use tracing::{error, info, warn};

/// How often the file's metadata is checked for a change.
pub(crate) const POLL: Duration = Duration::from_millis(500);

/// Why the keys file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Unreadable.
    #[error("cannot read the keys file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a valid keys file.
    #[error("the keys file {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ocellus_auth::KeyFileError,
    },
}

/// What identifies a version of the file without reading it.
type Stamp = (SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

/// Reads and parses the keys file.
pub fn read(path: &Path) -> Result<Keyring, KeysError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Keyring::parse(&text).map_err(|source| KeysError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The keyring of a keys file, kept current.
pub struct LiveKeyring {
    path: PathBuf,
    current: RwLock<Arc<Keyring>>,
    stamp: Mutex<Option<Stamp>>,
}

impl std::fmt::Debug for LiveKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKeyring")
            .field("path", &self.path)
            .finish()
    }
}

impl LiveKeyring {
    /// Loads the file (an error stops the node from starting).
    pub fn load(path: &Path) -> Result<LiveKeyring, KeysError> {
        let before = stamp(path);
        let ring = read(path)?;
        warn_if_exposed(path);
        Ok(LiveKeyring {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(ring)),
            stamp: Mutex::new(before),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyring now.
    pub fn current(&self) -> Arc<Keyring> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the file if it changed (or always, with `force`: SIGHUP).
    pub fn refresh(&self, force: bool) {
        let now = stamp(&self.path);
        {
            let mut last = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *last == now {
                return;
            }
            *last = now;
        }
        let next = match read(&self.path) {
            Ok(ring) => ring,
            Err(e) => {
                error!(error = %e, "refusing every key until the keys file is fixed");
                Keyring::default()
            }
        };
        let before = self.current();
        let names =
            |r: &Keyring| -> Vec<String> { r.entries().iter().map(|e| e.name.clone()).collect() };
        let (old, new) = (names(&before), names(&next));
        let added: Vec<_> = new.iter().filter(|n| !old.contains(n)).cloned().collect();
        let removed: Vec<_> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
        let changed: Vec<_> = next
            .entries()
            .iter()
            .filter(|e| before.entries().iter().any(|b| b.name == e.name && b != *e))
            .map(|e| e.name.clone())
            .collect();
        info!(
            target: "ocellus::audit",
            event = "keys_reloaded",
            file = %self.path.display(),
            keys = next.entries().len(),
            ?added,
            ?removed,
            ?changed,
            "keys file reloaded"
        );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }

    /// Keeps the keyring current until the node stops: polls the file and
    /// re-reads it on SIGHUP.
    pub async fn watch(self: Arc<Self>) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let forced = match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = h.recv() => true,
                    _ = tokio::time::sleep(POLL) => false,
                },
                None => {
                    tokio::time::sleep(POLL).await;
                    false
                }
            };
            #[cfg(not(unix))]
            let forced = {
                tokio::time::sleep(POLL).await;
                false
            };
            let me = self.clone();
            // File reads off the async threads.
            let _ = tokio::task::spawn_blocking(move || me.refresh(forced)).await;
        }
    }
}

/// Warns when others than the owner may write the file (they could add a
/// key) or read it (they learn who holds which rights).
fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = m.permissions().mode();
        if mode & 0o022 != 0 {
            warn!(file = %path.display(), mode = format!("{:o}", mode & 0o777), "the keys file is writable by others: anyone who can write it can give themselves a key (chmod 600)");
        } else if mode & 0o044 != 0 {
            warn!(file = %path.display(), mode = format!("{:o}", mode & 0o777), "the keys file is readable by others (chmod 600)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocellus_auth::Scopes;

    #[test]
    fn changes_are_picked_up_and_a_broken_file_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let mut ring = Keyring::default();
        let a = ring.add("a", Scopes::all(), 0).unwrap();
        std::fs::write(&path, ring.to_toml()).unwrap();
        let live = LiveKeyring::load(&path).unwrap();
        assert!(live.current().verify(a.expose()).is_some());

        let b = ring.add("b", Scopes::all(), 0).unwrap();
        ring.revoke("a").unwrap();
        std::fs::write(&path, ring.to_toml()).unwrap();
        live.refresh(true);
        assert!(live.current().verify(a.expose()).is_none());
        assert!(live.current().verify(b.expose()).is_some());

        std::fs::write(&path, "[[key]\n").unwrap();
        live.refresh(true);
        assert!(live.current().is_empty());

        std::fs::write(&path, "not = [valid").unwrap();
        assert!(matches!(
            LiveKeyring::load(&path),
            Err(KeysError::Parse { .. })
        ));
        assert!(matches!(
            LiveKeyring::load(&dir.path().join("none.toml")),
            Err(KeysError::Read { .. })
        ));
    }
}
