//! `ocellus recognize`: who is in these photos (the original system's
//! operation 2).
//!
//! Invariant: a photo without a face, or whose faces nobody matches, is an
//! answer, not a failure; only a photo the node could not process (its
//! error code) or a failed request fails the command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ocellus_detect::Rect;
use ocellus_protocol::Op;
use ocellus_protocol::face::{DetectOverrides, RecognizeRequest, RecognizedFace, RecognizedImage};
use ocellus_protocol::message::to_header;
use serde::Serialize;

use crate::output::annotate::{self, GREEN, RED};
use crate::output::report::geometry;
use crate::remote::{ServerArg, each_file, image_error};

/// Arguments of `ocellus recognize`.
#[derive(clap::Args)]
pub struct RecognizeArgs {
    #[command(flatten)]
    pub node: ServerArg,
    /// eigen, fisher, lbph or resnet (default: the node's, see
    /// docs/recognition.md).
    #[arg(long, value_parser = ["eigen", "fisher", "lbph", "resnet"])]
    pub algorithm: Option<String>,
    /// resnet: the largest descriptor distance at which a face is named
    /// (default: the node's --tolerance, 0.6).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Write a copy of each photo with the faces boxed (green: identified,
    /// red: not) into this folder.
    #[arg(long, value_name = "OUTDIR")]
    pub annotate: Option<PathBuf>,
    /// Print one JSON object per file and line:
    /// {"file", "faces": [{"x", "y", "width", "height", "name", "distance", "algorithm"}], "message"}.
    #[arg(long)]
    pub json: bool,
    /// Photos. The exit code is 1 if any could not be processed (a photo
    /// without a face is not a failure).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    faces: &'a [RecognizedFace],
    message: &'a str,
}

/// Runs the command.
pub fn run(args: RecognizeArgs) -> anyhow::Result<ExitCode> {
    let header = to_header(&RecognizeRequest {
        algorithm: args.algorithm.clone(),
        tolerance: args.tolerance,
        overrides: DetectOverrides::default(),
        crops: None,
    });
    if let Some(dir) = &args.annotate {
        annotate::create_folder(dir)?;
    }
    // Queue news only for a single file in human mode.
    let progress: fn(String) = if args.files.len() == 1 && !args.json {
        |line| eprintln!("{line}")
    } else {
        |_| {}
    };
    let mut index = 0;
    each_file(
        &args.node.server,
        &args.node.connect,
        &args.files,
        Op::Recognize,
        header,
        progress,
        |file, found, bytes| {
            index += 1;
            show(index, file, found, bytes, &args)
        },
    )
}

fn show(
    index: usize,
    file: &Path,
    found: RecognizedImage,
    bytes: &[u8],
    args: &RecognizeArgs,
) -> anyhow::Result<()> {
    if let Some(code) = found.error {
        return Err(image_error(code, found.message));
    }
    let shown = file.display().to_string();
    if args.json {
        let report = Report {
            file: shown,
            faces: &found.faces,
            message: &found.message,
        };
        println!("{}", serde_json::to_string(&report)?);
    } else if found.faces.is_empty() {
        println!("{shown}: Image {index} has no face");
    } else {
        for face in &found.faces {
            let at = geometry(&annotate::rect(&face.face));
            let id = &face.identity;
            match &id.name {
                Some(name) => println!(
                    "{shown}: Recognized: {name} (distance {}, {}{}) at {at}",
                    distance(id.distance, &id.algorithm),
                    id.algorithm,
                    runner_up(id)
                ),
                None => println!(
                    "{shown}: Not identified (nearest distance {}, {}{}) at {at}",
                    distance(id.distance, &id.algorithm),
                    id.algorithm,
                    runner_up(id)
                ),
            }
        }
        if found.faces.iter().all(|f| f.identity.name.is_none()) {
            println!("{shown}: People not identified");
        }
    }
    if let Some(dir) = &args.annotate {
        let boxes: Vec<(Rect, [u8; 3])> = found
            .faces
            .iter()
            .map(|f| {
                let colour = if f.identity.name.is_some() {
                    GREEN
                } else {
                    RED
                };
                (annotate::rect(&f.face), colour)
            })
            .collect();
        annotate::write_annotated_bytes(dir, file, bytes, &boxes)?;
    }
    Ok(())
}

/// A distance as people read it: resnet's are about 0.3-1.0, the others'
/// tens or thousands.
fn distance(d: f64, algorithm: &str) -> String {
    if algorithm == "resnet" {
        format!("{d:.3}")
    } else {
        format!("{d:.1}")
    }
}

/// ", runner-up Bob at 0.812" when the answer names one.
fn runner_up(id: &ocellus_protocol::face::Identity) -> String {
    match (&id.runner_up, id.runner_up_distance) {
        (Some(name), Some(d)) => format!("; runner-up {name} at {d:.3}"),
        _ => String::new(),
    }
}
