//! Where the node keeps its files by default: the data folder (XDG base
//! directory rules, written here rather than with a crate: two
//! environment variables are all it takes) and the keys file in it.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// The keys file's name in the data folder.
pub const KEYS_FILE: &str = "keys.toml";

/// The platform data folder: `$XDG_DATA_HOME/ocellus`, else
/// `~/.local/share/ocellus`.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("ocellus"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/ocellus")),
        None => bail!("no data folder: set --data-dir (neither XDG_DATA_HOME nor HOME is set)"),
    }
}

/// The keys file: `--keys FILE`, else `<data-dir>/keys.toml`.
pub fn keys_file(keys: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(k) = keys {
        return Ok(k.to_path_buf());
    }
    Ok(match data_dir {
        Some(d) => d.join(KEYS_FILE),
        None => default_data_dir()?.join(KEYS_FILE),
    })
}

/// Reads and parses a keys file, with the file named in the error.
pub fn read_keys(path: &Path) -> anyhow::Result<ocellus_auth::Keyring> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the keys file {}: {e}", path.display()))?;
    ocellus_auth::Keyring::parse(&text)
        .map_err(|e| anyhow::anyhow!("the keys file {} is not valid: {e}", path.display()))
}
