//! `ocellus filter`: apply a filter pipeline to image files.
//!
//! This module owns the arguments, the checks both modes share and the
//! choice of mode; `local` runs the pipeline in this process, `remote`
//! sends the files to a node. Both name their results with `output_path`
//! and write them with `write_new`.
//!
//! Invariant: before any file is processed, no two inputs would write the
//! same output and the output folder exists; a result file is either
//! absent or complete, and never replaces its input. `local` and `remote`
//! only depend on this module, not on each other.

mod local;
mod remote;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::remote::{ConnectArgs, refuse_local};
use ocellus_codec::{DecodeLimits, ImageFormat};
use ocellus_imaging::pipeline::{OPERATIONS, Pipeline};

/// Arguments of `ocellus filter`.
#[derive(clap::Args)]
#[command(after_help = filter_help())]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["local", "server"]))]
pub struct FilterArgs {
    /// Process the files in this process.
    #[arg(long)]
    pub local: bool,
    /// Send the files to this node (host:port) and write what it returns.
    #[arg(
        long,
        env = "OCELLUS_SERVER",
        value_name = "ADDR",
        conflicts_with = "local"
    )]
    pub server: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// With --server: files in flight at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub in_flight: usize,
    /// Comma-separated operations applied left to right, e.g. "blur=5,resize=800x,grayscale".
    #[arg(long, value_name = "SPEC")]
    pub ops: Pipeline,
    /// Folder for the results (created if missing).
    #[arg(short = 'o', long = "out", value_name = "OUTDIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// Output format; default: the input's (PNG for formats Ocellus does not write).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<ImageFormat>,
    /// JPEG quality, 1-100.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, value_name = "N", default_value_t = DecodeLimits::default().max_pixels)]
    pub max_pixels: u64,
    /// Print one JSON line per file with decode, filter and encode times
    /// instead of the usual line.
    #[arg(long)]
    pub timings: bool,
    /// With --timings: run the pipeline N times per image and report the median.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Input images (JPEG, PNG, WebP, GIF, BMP, TIFF, PNM).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

fn filter_help() -> String {
    format!("Operations:\n  {}", OPERATIONS.join("\n  "))
}

fn parse_format(name: &str) -> Result<ImageFormat, String> {
    match ImageFormat::from_name(name) {
        Some(f) if f.can_encode() => Ok(f),
        _ => Err(format!(
            "`{name}` is not an output format (jpeg, png or webp)"
        )),
    }
}

/// Runs the command.
pub fn run(args: FilterArgs) -> anyhow::Result<ExitCode> {
    let server = args.server.clone().filter(|_| !args.local);
    if server.is_none()
        && let Some(n) = args.threads
    {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .context("setting the thread count")?;
    }
    check_distinct_stems(&args.files)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    match server {
        Some(addr) => remote::run(&args, &addr),
        None => {
            refuse_local(&args.connect)?;
            local::run(&args)
        }
    }
}

/// Two inputs with the same stem would write the same output file.
fn check_distinct_stems(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut seen: HashMap<&std::ffi::OsStr, &Path> = HashMap::new();
    for file in files {
        let stem = file
            .file_stem()
            .with_context(|| format!("{} has no file name", file.display()))?;
        if let Some(first) = seen.insert(stem, file) {
            bail!(
                "{} and {} would both be written as {}.*: rename one or filter them separately",
                first.display(),
                file.display(),
                stem.to_string_lossy()
            );
        }
    }
    Ok(())
}

/// Where the result of `file` goes: OUTDIR/<stem>.<extension>.
fn output_path(out_dir: &Path, file: &Path, extension: &str) -> anyhow::Result<PathBuf> {
    let stem = file.file_stem().context("input has no file name")?;
    Ok(out_dir.join(format!("{}.{extension}", stem.to_string_lossy())))
}

/// Writes `data` to `output` through a temporary file and a rename, so a
/// reader never sees half a file; refuses to overwrite the input itself.
fn write_new(output: &Path, input: &Path, data: &[u8]) -> anyhow::Result<()> {
    if let (Ok(a), Ok(b)) = (output.canonicalize(), input.canonicalize())
        && a == b
    {
        bail!(
            "output {} would overwrite the input; choose another -o folder or --format",
            output.display()
        );
    }
    let name = output.file_name().context("output has no file name")?;
    let tmp = output.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("renaming to {}", output.display()))?;
    Ok(())
}
