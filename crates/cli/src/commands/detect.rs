//! `ocellus detect`: find faces (or whatever the cascade was trained on) in
//! image files with an OpenCV cascade, OpenCV-exact.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use ocellus_codec::{DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
use ocellus_detect::draw::draw_rect;
use ocellus_detect::{Cascade, DetectParams, Rect, detect};
use ocellus_imaging::Image;
use ocellus_imaging::filter::grayscale::to_gray;
use serde::Serialize;

use crate::cascades;

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

#[derive(Serialize)]
struct Face {
    x: i32,
    y: i32,
    width: i32,
    height: i32,
}

#[derive(Serialize)]
struct Report<'a> {
    file: &'a str,
    width: u32,
    height: u32,
    faces: Vec<Face>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detect_ms: Option<f64>,
}

/// Runs the command.
pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.server.clone() {
        if args.cascade.is_some() || args.max_size.is_some() || args.repeat.is_some() {
            bail!("--cascade, --max-size and --repeat work with --local only");
        }
        return super::detect_remote::run(&args, &addr);
    }
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
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    let mut failed = 0usize;
    for file in &args.files {
        if let Err(err) = process(file, &cascade, &params, &args) {
            eprintln!("error: {}: {err:#}", file.display());
            failed += 1;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
        write_annotated(dir, file, image, format, &boxes)?;
    }
    Ok(())
}

/// The colour of a detected (or recognised) face's box.
pub(crate) const GREEN: [u8; 3] = [0, 255, 0];

/// Prints what was found in one file: a JSON line or a line for people.
pub(crate) fn print_faces(
    file: &Path,
    width: u32,
    height: u32,
    faces: &[Rect],
    detect_ms: Option<f64>,
    json: bool,
) -> anyhow::Result<()> {
    let shown = file.display().to_string();
    if json {
        let report = Report {
            file: &shown,
            width,
            height,
            faces: faces
                .iter()
                .map(|r| Face {
                    x: r.x,
                    y: r.y,
                    width: r.width,
                    height: r.height,
                })
                .collect(),
            detect_ms: detect_ms.map(|ms| (ms * 1000.0).round() / 1000.0),
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let boxes: Vec<String> = faces
            .iter()
            .map(|r| format!("{}x{}+{}+{}", r.width, r.height, r.x, r.y))
            .collect();
        let timing = detect_ms.map_or(String::new(), |ms| format!(" ({ms:.2} ms)"));
        println!(
            "{shown}: {} face{}{}{timing}",
            faces.len(),
            if faces.len() == 1 { "" } else { "s" },
            if boxes.is_empty() {
                String::new()
            } else {
                format!(" {}", boxes.join(" "))
            }
        );
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

/// Where the annotated copy of `file` goes: OUTDIR/<file name> when its
/// format can be written, else OUTDIR/<file name>.png.
fn annotated_path(dir: &Path, file: &Path, format: ImageFormat) -> (PathBuf, ImageFormat) {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".to_string());
    let ext_ok = file
        .extension()
        .and_then(|e| ImageFormat::from_name(&e.to_string_lossy()))
        == Some(format);
    if format.can_encode() && ext_ok {
        (dir.join(name), format)
    } else {
        (dir.join(format!("{name}.png")), ImageFormat::Png)
    }
}

/// Writes a copy of `file`'s image with the boxes drawn into `dir`.
pub(crate) fn write_annotated(
    dir: &Path,
    file: &Path,
    mut image: Image,
    format: ImageFormat,
    faces: &[(Rect, [u8; 3])],
) -> anyhow::Result<()> {
    let thickness = (image.width().max(image.height()) / 400).max(2);
    for (face, rgb) in faces {
        draw_rect(&mut image, face, *rgb, thickness);
    }
    let (path, out_format) = annotated_path(dir, file, format);
    let bytes = encode(&image, out_format, &EncodeOptions::default())?;
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotated_copies_keep_writable_formats_and_fall_back_to_png() {
        let dir = Path::new("/out");
        assert_eq!(
            annotated_path(dir, Path::new("a/b/photo.jpg"), ImageFormat::Jpeg),
            (PathBuf::from("/out/photo.jpg"), ImageFormat::Jpeg)
        );
        assert_eq!(
            annotated_path(dir, Path::new("yale/subject01.glasses"), ImageFormat::Gif),
            (
                PathBuf::from("/out/subject01.glasses.png"),
                ImageFormat::Png
            )
        );
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
