//! API keys and the keys file.
//!
//! A key is `ock_` and 48 hex digits: 192 bits from the OS's random
//! source, printed once when it is made. The keys file stores, per key, a
//! name, its scopes and the SHA-256 of the key, never the key: someone who
//! reads the file learns who has which rights, not how to use them. A
//! plain hash suffices (no slow password hash) because a key is random
//! and 192 bits long: there is no dictionary to try.
//!
//! ```toml
//! [[key]]
//! name = "alice"
//! scopes = ["filter", "read"]
//! sha256 = "3b5d…"
//! created = 1764648000
//! ```
//!
//! Invariants: names are unique in a keyring; [`Keyring::verify`] compares
//! the presented key's hash with every entry in constant time, so the time
//! it takes does not depend on which entry (if any) matched, nor on how
//! many leading bytes of a hash did.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::scope::{Scope, Scopes};

/// What every key starts with (tells people and secret scanners what it is).
pub const KEY_PREFIX: &str = "ock_";

/// Longest key name.
pub const MAX_NAME_LEN: usize = 64;

/// A key as a client presents it. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A new random key.
    pub fn generate() -> ApiKey {
        ApiKey(format!(
            "{KEY_PREFIX}{}",
            crate::hex(&crate::random::<24>())
        ))
    }

    /// The key's text, to print once or send in AUTH.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 the keys file stores for `key`.
    pub fn hash_of(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// One key of the keyring: who, what they may do, and the key's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// Who holds it (unique; appears in logs and the audit trail).
    pub name: String,
    /// What it allows.
    pub scopes: Scopes,
    /// SHA-256 of the key.
    pub hash: [u8; 32],
    /// When it was made, seconds since the Unix epoch.
    pub created: u64,
}

/// Why a keys file or a change to it is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    /// Not a keys file.
    #[error("not a valid keys file: {0}")]
    Syntax(String),
    /// An entry that does not make sense.
    #[error("key {name:?}: {problem}")]
    Entry {
        /// The entry's name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Two entries with one name.
    #[error("key name {0:?} appears twice")]
    Duplicate(String),
    /// `add` of a name that exists.
    #[error("a key named {0:?} exists already (revoke it first)")]
    Exists(String),
    /// `revoke` of a name that does not.
    #[error("no key is named {0:?}")]
    NoSuchKey(String),
    /// A name with characters that do not belong in one.
    #[error(
        "bad key name {0:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
    )]
    BadName(String),
}

/// The keys a node accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyring {
    entries: Vec<KeyEntry>,
}

/// The file's serde shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default, rename = "key")]
    keys: Vec<EntryShape>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryShape {
    name: String,
    scopes: Vec<String>,
    sha256: String,
    #[serde(default)]
    created: u64,
}

const FILE_HEADER: &str = "# Ocellus API keys: names, scopes and SHA-256 hashes (never the keys).\n\
# Manage with `ocellus keys add|list|revoke`; a running node reloads this file.\n\n";

fn check_name(name: &str) -> Result<(), KeyFileError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(KeyFileError::BadName(name.to_string()))
    }
}

impl Keyring {
    /// Parses a keys file.
    pub fn parse(text: &str) -> Result<Keyring, KeyFileError> {
        let shape: FileShape =
            toml::from_str(text).map_err(|e| KeyFileError::Syntax(e.message().to_string()))?;
        let mut entries: Vec<KeyEntry> = Vec::with_capacity(shape.keys.len());
        for e in shape.keys {
            check_name(&e.name)?;
            let problem = |problem: String| KeyFileError::Entry {
                name: e.name.clone(),
                problem,
            };
            let scopes = Scopes::parse(&e.scopes.join(",")).map_err(problem)?;
            let hash: [u8; 32] = crate::unhex(&e.sha256)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| problem("sha256 must be 64 hex digits".to_string()))?;
            if entries.iter().any(|x| x.name == e.name) {
                return Err(KeyFileError::Duplicate(e.name));
            }
            entries.push(KeyEntry {
                name: e.name,
                scopes,
                hash,
                created: e.created,
            });
        }
        Ok(Keyring { entries })
    }

    /// The keys file's text.
    pub fn to_toml(&self) -> String {
        let shape = FileShape {
            keys: self
                .entries
                .iter()
                .map(|e| EntryShape {
                    name: e.name.clone(),
                    scopes: e.scopes.names().into_iter().map(String::from).collect(),
                    sha256: crate::hex(&e.hash),
                    created: e.created,
                })
                .collect(),
        };
        // A struct of strings and integers always serializes.
        let body = toml::to_string(&shape).unwrap_or_default();
        format!("{FILE_HEADER}{body}")
    }

    /// Adds a new key named `name`; returns the key, to print once.
    pub fn add(&mut self, name: &str, scopes: Scopes, now: u64) -> Result<ApiKey, KeyFileError> {
        check_name(name)?;
        if self.entries.iter().any(|e| e.name == name) {
            return Err(KeyFileError::Exists(name.to_string()));
        }
        let key = ApiKey::generate();
        self.entries.push(KeyEntry {
            name: name.to_string(),
            scopes,
            hash: ApiKey::hash_of(key.expose()),
            created: now,
        });
        Ok(key)
    }

    /// Removes the key named `name`.
    pub fn revoke(&mut self, name: &str) -> Result<KeyEntry, KeyFileError> {
        let at = self
            .entries
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| KeyFileError::NoSuchKey(name.to_string()))?;
        Ok(self.entries.remove(at))
    }

    /// The entry whose key is `presented`, if any (constant time in which
    /// entry matched: every hash is compared).
    pub fn verify(&self, presented: &str) -> Option<&KeyEntry> {
        self.by_hash(&ApiKey::hash_of(presented))
    }

    /// The entry with this key hash (how an open connection re-checks its
    /// key after the file changed: a revoked key is gone, new scopes apply).
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<&KeyEntry> {
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.hash.ct_eq(hash)) {
                found = Some(e);
            }
        }
        found
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// Whether there are no keys (a node with an empty keys file accepts
    /// no one but peers).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether some key has `scope` (or admin).
    pub fn any_allows(&self, scope: Scope) -> bool {
        self.entries.iter().any(|e| e.scopes.allows(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_verified_by_hash_only() {
        let mut ring = Keyring::default();
        let a = ring
            .add("alice", Scopes::parse("filter").unwrap(), 1)
            .unwrap();
        let b = ring.add("bob", Scopes::all(), 2).unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(KEY_PREFIX));
        assert_eq!(a.expose().len(), KEY_PREFIX.len() + 48); // 192 bits
        let text = ring.to_toml();
        assert!(!text.contains(a.expose()) && !text.contains(&a.expose()[4..]));
        let back = Keyring::parse(&text).unwrap();
        assert_eq!(back, ring);
        assert_eq!(back.verify(a.expose()).unwrap().name, "alice");
        assert_eq!(back.verify(b.expose()).unwrap().name, "bob");
        assert!(back.verify("ock_0000").is_none());
        assert!(back.verify("").is_none());
        assert_eq!(format!("{a:?}"), "ApiKey(…)");
    }

    #[test]
    fn revoke_removes_and_names_are_checked() {
        let mut ring = Keyring::default();
        let a = ring.add("alice", Scopes::all(), 1).unwrap();
        assert_eq!(
            ring.add("alice", Scopes::all(), 1).unwrap_err(),
            KeyFileError::Exists("alice".into())
        );
        for bad in ["", "../x", "a b", "-lead", &"x".repeat(65), "é"] {
            assert!(matches!(
                ring.add(bad, Scopes::all(), 1),
                Err(KeyFileError::BadName(_))
            ));
        }
        ring.revoke("alice").unwrap();
        assert!(ring.verify(a.expose()).is_none());
        assert_eq!(
            ring.revoke("alice").unwrap_err(),
            KeyFileError::NoSuchKey("alice".into())
        );
    }

    #[test]
    fn bad_files_are_clear_errors() {
        assert!(matches!(
            Keyring::parse("[[key]\n"),
            Err(KeyFileError::Syntax(_))
        ));
        let entry = |name: &str, scopes: &str, hash: &str| {
            format!("[[key]]\nname = \"{name}\"\nscopes = [{scopes}]\nsha256 = \"{hash}\"\n")
        };
        let h = "ab".repeat(32);
        assert!(Keyring::parse(&entry("a", "\"filter\"", &h)).is_ok());
        assert!(matches!(
            Keyring::parse(&entry("a", "\"root\"", &h)),
            Err(KeyFileError::Entry { .. })
        ));
        assert!(matches!(
            Keyring::parse(&entry("a", "\"read\"", "abc")),
            Err(KeyFileError::Entry { .. })
        ));
        let twice = entry("a", "\"read\"", &h) + &entry("a", "\"read\"", &h);
        assert_eq!(
            Keyring::parse(&twice).unwrap_err(),
            KeyFileError::Duplicate("a".into())
        );
        assert!(Keyring::parse("").unwrap().is_empty());
        assert!(Keyring::parse("surprise = 1").is_err());
    }
}
