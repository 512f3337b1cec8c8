//! `ocellus filter`: apply a filter pipeline to image files.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ocellus_codec::{DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
use ocellus_imaging::pipeline::{OPERATIONS, Pipeline};
use rayon::prelude::*;

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

/// What happened to one file.
struct Outcome {
    output: PathBuf,
    width: u32,
    height: u32,
    decode_ms: f64,
    filter_ms: f64,
    encode_ms: f64,
}

/// Runs the command.
pub fn run(args: FilterArgs) -> anyhow::Result<ExitCode> {
    if !args.local
        && let Some(addr) = args.server.clone()
    {
        check_distinct_stems(&args.files)?;
        std::fs::create_dir_all(&args.out_dir)
            .with_context(|| format!("creating {}", args.out_dir.display()))?;
        return super::filter_remote::run(&args, &addr);
    }
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .context("setting the thread count")?;
    }
    check_distinct_stems(&args.files)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;

    let progress =
        (args.files.len() > 1 && !args.timings && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(args.files.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta}")
                    .expect("valid template"),
            );
            bar
        });
    let print = |line: String| match &progress {
        Some(bar) => bar.println(line),
        None => println!("{line}"),
    };

    let failures: usize = args
        .files
        .par_iter()
        .map(|file| {
            let result = process(file, &args);
            match &result {
                Ok(o) if args.timings => print(
                    serde_json::json!({
                        "file": file.display().to_string(),
                        "output": o.output.display().to_string(),
                        "width": o.width,
                        "height": o.height,
                        "decode_ms": o.decode_ms,
                        "filter_ms": o.filter_ms,
                        "encode_ms": o.encode_ms,
                    })
                    .to_string(),
                ),
                Ok(o) => print(format!(
                    "{} -> {} ({}x{}, {:.0} ms)",
                    file.display(),
                    o.output.display(),
                    o.width,
                    o.height,
                    o.decode_ms + o.filter_ms + o.encode_ms
                )),
                Err(e) => {
                    let line = format!("error: {}: {e:#}", file.display());
                    match &progress {
                        Some(bar) => bar.suspend(|| eprintln!("{line}")),
                        None => eprintln!("{line}"),
                    }
                }
            }
            if let Some(bar) = &progress {
                bar.inc(1);
            }
            usize::from(result.is_err())
        })
        .sum();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if failures > 0 {
        eprintln!("{failures} of {} files failed", args.files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Two inputs with the same stem would write the same output file.
pub(crate) fn check_distinct_stems(files: &[PathBuf]) -> anyhow::Result<()> {
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

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn process(file: &Path, args: &FilterArgs) -> anyhow::Result<Outcome> {
    let bytes = std::fs::read(file).context("reading")?;
    let limits = DecodeLimits {
        max_pixels: args.max_pixels,
        ..DecodeLimits::default()
    };
    let t = Instant::now();
    let (image, input_format) = decode(&bytes, &limits)?;
    let decode_ms = ms_since(t);
    drop(bytes);

    let mut times = Vec::with_capacity(args.repeat as usize);
    for _ in 1..args.repeat {
        let copy = image.clone();
        let t = Instant::now();
        std::hint::black_box(args.ops.apply(copy)?);
        times.push(ms_since(t));
    }
    let t = Instant::now();
    let result = args.ops.apply(image)?;
    times.push(ms_since(t));
    times.sort_by(f64::total_cmp);
    let filter_ms = times[times.len() / 2];

    let format = args.format.unwrap_or(if input_format.can_encode() {
        input_format
    } else {
        ImageFormat::Png
    });
    let t = Instant::now();
    let encoded = encode(
        &result,
        format,
        &EncodeOptions {
            jpeg_quality: args.quality,
        },
    )?;
    let encode_ms = ms_since(t);

    let stem = file.file_stem().context("input has no file name")?;
    let output = args
        .out_dir
        .join(format!("{}.{}", stem.to_string_lossy(), format.extension()));
    write_new(&output, file, &encoded)?;
    Ok(Outcome {
        output,
        width: result.width(),
        height: result.height(),
        decode_ms,
        filter_ms,
        encode_ms,
    })
}

/// Writes `data` to `output` through a temporary file and a rename, so a
/// reader never sees half a file; refuses to overwrite the input itself.
pub(crate) fn write_new(output: &Path, input: &Path, data: &[u8]) -> anyhow::Result<()> {
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
