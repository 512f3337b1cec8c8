//! `ocellus detect --server`: the node finds the faces.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use ocellus_codec::{DecodeLimits, decode};
use ocellus_detect::Rect;
use ocellus_protocol::Op;
use ocellus_protocol::face::{DetectOverrides, DetectRequest, DetectedImage};
use ocellus_protocol::message::to_header;

use super::detect::{DetectArgs, GREEN, print_faces, write_annotated};
use super::remote::{each_file, image_error};

/// Runs the networked mode.
pub fn run(args: &DetectArgs, addr: &str) -> anyhow::Result<ExitCode> {
    let header = to_header(&DetectRequest {
        overrides: DetectOverrides {
            scale_factor: args.scale_factor,
            min_neighbors: args.min_neighbors,
            min_size: args.min_size,
        },
    });
    if let Some(dir) = &args.annotate {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    each_file(
        addr,
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
    let faces: Vec<Rect> = found
        .faces
        .iter()
        .map(|f| Rect {
            x: f.x,
            y: f.y,
            width: f.width,
            height: f.height,
        })
        .collect();
    print_faces(file, found.width, found.height, &faces, None, args.json)?;
    if let Some(dir) = &args.annotate {
        let (image, format) = decode(bytes, &DecodeLimits::default())?;
        let boxes: Vec<(Rect, [u8; 3])> = faces.iter().map(|r| (*r, GREEN)).collect();
        write_annotated(dir, file, image, format, &boxes)?;
    }
    Ok(())
}
