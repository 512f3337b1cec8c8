//! `ocellus detect --server`: the node finds the faces.
//!
//! Invariant: only the overrides a node takes are sent (scale factor,
//! neighbours, minimum size); the node's answer is printed as `--local`
//! would print it, and an image the node could not read fails with the
//! node's error code.

use std::path::Path;
use std::process::ExitCode;

use ocellus_detect::Rect;
use ocellus_protocol::Op;
use ocellus_protocol::face::{DetectOverrides, DetectRequest, DetectedImage};
use ocellus_protocol::message::to_header;

use super::DetectArgs;
use crate::output::annotate::{self, GREEN};
use crate::output::report::print_faces;
use crate::remote::{each_file, image_error};

/// Runs the networked mode.
pub(super) fn run(args: &DetectArgs, addr: &str) -> anyhow::Result<ExitCode> {
    let header = to_header(&DetectRequest {
        overrides: DetectOverrides {
            scale_factor: args.scale_factor,
            min_neighbors: args.min_neighbors,
            min_size: args.min_size,
        },
    });
    if let Some(dir) = &args.annotate {
        annotate::create_folder(dir)?;
    }
    each_file(
        addr,
        &args.connect,
        &args.files,
        Op::Detect,
        header,
        |_| {},
        |file, found, bytes| show(file, found, bytes, args),
    )
}

fn show(file: &Path, found: DetectedImage, bytes: &[u8], args: &DetectArgs) -> anyhow::Result<()> {
    if let Some(code) = found.error {
        return Err(image_error(code, found.message));
    }
    let faces: Vec<Rect> = found.faces.iter().map(annotate::rect).collect();
    print_faces(file, found.width, found.height, &faces, None, args.json)?;
    if let Some(dir) = &args.annotate {
        let boxes: Vec<(Rect, [u8; 3])> = faces.iter().map(|r| (*r, GREEN)).collect();
        annotate::write_annotated_bytes(dir, file, bytes, &boxes)?;
    }
    Ok(())
}
