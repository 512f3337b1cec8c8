//! `ocellus detect`: find faces (or whatever the cascade was trained on) in
//! image files with an OpenCV cascade, OpenCV-exact.
//!
//! This module owns the arguments and the choice of mode; `local` runs the
//! detector in this process, `remote` asks a node. Both print through
//! `output::report::print_faces`, so the two modes print the same.
//!
//! Invariant: the options a node does not take (`--cascade`,
//! `--max-size`, `--repeat`) are refused with `--server` before anything
//! is sent; `local` and `remote` only depend on this module, not on each
//! other.

mod local;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;

use crate::remote::{ConnectArgs, refuse_local};

/// Arguments of `ocellus detect`.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["local", "server"]))]
pub struct DetectArgs {
    /// Run the detector in this process.
    #[arg(long)]
    pub(crate) local: bool,
    /// Send the images to this node (host:port), which detects with its
    /// own cascade and settings; the options below override the node's
    /// within the bounds it allows.
    #[arg(long, env = "OCELLUS_SERVER", value_name = "ADDR")]
    pub(crate) server: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Cascade file (--local only): a path, or a name looked up in
    /// $OCELLUS_CASCADE_DIR and the OpenCV data folders (e.g.
    /// haarcascade_frontalface_alt2.xml, frontalface_default,
    /// lbpcascade_frontalface_improved). Default:
    /// haarcascade_frontalface_default.xml.
    #[arg(long)]
    pub(crate) cascade: Option<String>,
    /// Ratio between successive window sizes (> 1; default 1.1).
    #[arg(long)]
    pub(crate) scale_factor: Option<f64>,
    /// Raw detections needed to keep a box, minus one (0: no grouping;
    /// default 3).
    #[arg(long)]
    pub(crate) min_neighbors: Option<u32>,
    /// Smallest face size in pixels (0: no minimum; default 30).
    #[arg(long)]
    pub(crate) min_size: Option<u32>,
    /// Largest face size in pixels (--local only; default: the image size).
    #[arg(long)]
    pub(crate) max_size: Option<u32>,
    /// Print one JSON object per file and line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write a copy of each image with the boxes drawn into this folder.
    #[arg(long, value_name = "OUTDIR")]
    pub(crate) annotate: Option<PathBuf>,
    /// Run detection N times per image and report the median time
    /// ("detect_ms"), decoding excluded.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) repeat: Option<u32>,
    /// Image files.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}

/// Runs the command.
pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    match args.server.clone() {
        Some(addr) => {
            if args.cascade.is_some() || args.max_size.is_some() || args.repeat.is_some() {
                bail!("--cascade, --max-size and --repeat work with --local only");
            }
            remote::run(&args, &addr)
        }
        None => {
            refuse_local(&args.connect)?;
            local::run(&args)
        }
    }
}
