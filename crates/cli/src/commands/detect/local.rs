//! `ocellus detect --local`: the cascade runs in this process, one file
//! after the other.
//!
//! Invariant: the detection settings are those of `--local` (defaults:
//! scale factor 1.1, 3 neighbours, 30 px minimum), checked before any file
//! is read; a file that fails is reported and the others still run.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use ocellus_codec::{DecodeLimits, decode};
use ocellus_detect::{Cascade, DetectParams, Rect, detect};
use ocellus_imaging::filter::grayscale::to_gray;

use super::DetectArgs;
use crate::cascades;
use crate::output::annotate::{self, GREEN};
use crate::output::report::{self, print_faces};

/// Runs the local mode.
pub(super) fn run(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let scale_factor = args.scale_factor.unwrap_or(1.1);
    if scale_factor.is_nan() || scale_factor <= 1.0 {
        bail!("--scale-factor must be greater than 1");
    }
    let (_, cascade) =
        cascades::load(args.cascade.as_deref().unwrap_or(cascades::DEFAULT_CASCADE))?;
    let min_size = args.min_size.unwrap_or(30);
    let params = DetectParams {
        scale_factor,
        min_neighbors: args.min_neighbors.unwrap_or(3),
        min_size: (min_size, min_size),
        max_size: args.max_size.map_or((0, 0), |m| (m, m)),
    };
    if let Some(dir) = &args.annotate {
        annotate::create_folder(dir)?;
    }
    let mut failed = 0usize;
    for file in &args.files {
        if let Err(err) = process(file, &cascade, &params, args) {
            report::print_error(file, &err);
            failed += 1;
        }
    }
    Ok(report::exit_code(failed))
}

fn process(
    file: &Path,
    cascade: &Cascade,
    params: &DetectParams,
    args: &DetectArgs,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).context("cannot read file")?;
    let (image, format) = decode(&bytes, &DecodeLimits::default())?;
    let gray = to_gray(&image);
    let (faces, detect_ms) = match args.repeat {
        None => (detect(cascade, &gray, params)?, None),
        Some(n) => {
            let mut times = Vec::with_capacity(n as usize);
            let mut faces = Vec::new();
            for _ in 0..n {
                let start = Instant::now();
                faces = detect(cascade, &gray, params)?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            (faces, Some(median(&mut times)))
        }
    };
    print_faces(
        file,
        image.width(),
        image.height(),
        &faces,
        detect_ms,
        args.json,
    )?;
    if let Some(dir) = &args.annotate {
        let boxes: Vec<(Rect, [u8; 3])> = faces.iter().map(|r| (*r, GREEN)).collect();
        annotate::write_annotated(dir, file, image, format, &boxes)?;
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
