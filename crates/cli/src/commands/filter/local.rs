//! `ocellus filter --local`: the pipeline runs in this process, on all
//! cores (one file per thread).
//!
//! Invariant: each file is decoded, filtered and encoded on its own, so a
//! file that fails is reported and the others still run; `--repeat` runs
//! only the pipeline again, never decoding or encoding.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use ocellus_codec::{DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
use rayon::prelude::*;

use super::{FilterArgs, output_path, write_new};
use crate::output::progress::FileProgress;
use crate::output::report;

/// What happened to one file.
struct Outcome {
    output: PathBuf,
    width: u32,
    height: u32,
    decode_ms: f64,
    filter_ms: f64,
    encode_ms: f64,
}

/// Runs the local mode (the thread pool, the stems and the output folder
/// are ready).
pub(super) fn run(args: &FilterArgs) -> anyhow::Result<ExitCode> {
    let progress = FileProgress::local(args.files.len(), args.timings);
    let failures: usize = args
        .files
        .par_iter()
        .map(|file| {
            let result = process(file, args);
            match &result {
                Ok(o) if args.timings => progress.println(
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
                Ok(o) => progress.println(format!(
                    "{} -> {} ({}x{}, {:.0} ms)",
                    file.display(),
                    o.output.display(),
                    o.width,
                    o.height,
                    o.decode_ms + o.filter_ms + o.encode_ms
                )),
                Err(e) => progress.eprintln(report::error_line(file, e)),
            }
            progress.inc();
            usize::from(result.is_err())
        })
        .sum();
    progress.finish();
    Ok(report::finish_files(failures, args.files.len()))
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

    let output = output_path(&args.out_dir, file, format.extension())?;
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
