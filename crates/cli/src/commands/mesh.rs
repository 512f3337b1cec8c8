//! `ocellus mesh`: what a closed mesh needs, made here.
//!
//! Invariant: a secret is written only to a new file, created with mode
//! 0600 on unix (never over an existing one), or printed to standard
//! output; it is never logged.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ocellus_auth::ClusterSecret;

/// Arguments of `ocellus mesh`.
#[derive(clap::Args)]
pub struct MeshArgs {
    #[command(subcommand)]
    pub command: MeshCommand,
}

/// The subcommands of `ocellus mesh`.
#[derive(clap::Subcommand)]
pub enum MeshCommand {
    /// Make a new cluster secret: printed on standard output, or written to
    /// a new file readable by its owner only (give that file to every node
    /// with `serve --cluster-secret-file FILE`).
    Secret {
        /// Write the secret to FILE (created with mode 0600; an existing
        /// file is not overwritten).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Runs the command.
pub fn run(args: MeshArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        MeshCommand::Secret { out } => {
            let text = ClusterSecret::generate().to_text();
            match out {
                None => println!("{text}"),
                Some(path) => {
                    write_new_private(&path, &format!("{text}\n"))
                        .with_context(|| format!("writing the secret to {}", path.display()))?;
                    eprintln!(
                        "cluster secret written to {} (readable by you only)",
                        path.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Creates `path`, which must not exist, readable and writable by its
/// owner only, holding `text`.
fn write_new_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "the file exists; not overwriting it (remove it first, or choose another)"
            )
        } else {
            anyhow::Error::from(e)
        }
    })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
