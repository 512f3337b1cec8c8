//! `ocellus keys add|list|revoke`: the keys file a node checks clients'
//! keys against (`docs/security.md`).
//!
//! Invariants: a new key is printed once, on standard output, and only its
//! hash is written; the file is replaced whole (written beside it, synced,
//! then renamed), with mode 0600, so a node that re-reads it never sees
//! half a file and no other user can read or change it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ocellus_auth::{Keyring, Scopes};

use crate::paths;

/// Arguments of `ocellus keys`.
#[derive(clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    /// The keys file (default: <data-dir>/keys.toml).
    #[arg(long, global = true, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// The node's data folder, where the keys file is by default.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum KeysCommand {
    /// Create a key (printed once: keep it; only its hash is stored).
    Add {
        /// Who holds it (letters, digits, '.', '_', '-', '@').
        name: String,
        /// What it allows, comma-separated: filter, detect, recognize,
        /// enroll (enroll and remove people), read (status, people list),
        /// admin (everything).
        #[arg(long, value_name = "LIST")]
        scopes: String,
    },
    /// List the keys: names, scopes, creation dates (never the keys).
    List,
    /// Remove a key; nodes stop accepting it within a second, also on
    /// connections already open.
    Revoke {
        /// The key's name.
        name: String,
    },
}

/// Runs `ocellus keys`.
pub fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let path = paths::keys_file(args.keys.as_deref(), args.data_dir.as_deref())?;
    match args.command {
        KeysCommand::Add { name, scopes } => {
            let scopes = Scopes::parse(&scopes).map_err(anyhow::Error::msg)?;
            let mut ring = load_or_empty(&path)?;
            let key = ring.add(&name, scopes, unix_now())?;
            save(&path, &ring)?;
            println!("{}", key.expose());
            eprintln!(
                "key {name:?} ({scopes}) added to {}; it is shown only this once",
                path.display()
            );
        }
        KeysCommand::List => {
            let ring = load_or_empty(&path)?;
            if ring.is_empty() {
                eprintln!("no keys in {}", path.display());
            }
            for e in ring.entries() {
                println!("{}\t{}\tcreated {}", e.name, e.scopes, e.created);
            }
        }
        KeysCommand::Revoke { name } => {
            let mut ring = crate::paths::read_keys(&path)?;
            ring.revoke(&name)?;
            save(&path, &ring)?;
            eprintln!("key {name:?} revoked in {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn load_or_empty(path: &Path) -> anyhow::Result<Keyring> {
    if !path.exists() {
        return Ok(Keyring::default());
    }
    crate::paths::read_keys(path)
}

/// Replaces the file whole, mode 0600.
fn save(path: &Path, ring: &Keyring) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("keys"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| -> std::io::Result<()> {
        let mut f = options.open(&tmp)?;
        f.write_all(ring.to_toml().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}
