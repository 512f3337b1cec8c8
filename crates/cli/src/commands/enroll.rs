//! `ocellus enroll`: store photos of a person on a node (the original
//! system's operation 1).
//!
//! Invariant: the photos go in as few requests as the protocol's limits
//! allow (`batches`), one after the other, and each photo's outcome is
//! reported against its own file, in order; what is printed for a rejected
//! photo is chosen by its `rejection`, never by the node's wording.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ocellus_client::Call;
use ocellus_protocol::Op;
use ocellus_protocol::face::{DetectOverrides, EnrollRequest, EnrollResult, FaceBox, Rejection};
use ocellus_protocol::message::to_header;
use serde::Serialize;

use crate::remote::{ServerArg, answer, call, connect, runtime};

/// Arguments of `ocellus enroll`.
#[derive(clap::Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub node: ServerArg,
    /// The person's name (any non-empty text up to 128 characters).
    #[arg(long)]
    pub name: String,
    /// With several faces in a photo, enroll the largest instead of
    /// rejecting the photo.
    #[arg(long)]
    pub largest_face: bool,
    /// Print one JSON object: {"name", "images": [{"file", "accepted", "message"}]}.
    #[arg(long)]
    pub json: bool,
    /// Photos of the person, one face each. The exit code is 1 if any photo
    /// was rejected.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct ImageReport {
    file: String,
    accepted: bool,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    face: Option<FaceBox>,
    /// Not in the JSON report (its fields are documented as they are).
    #[serde(skip)]
    rejection: Option<Rejection>,
}

#[derive(Serialize)]
struct Report {
    name: String,
    images: Vec<ImageReport>,
    /// Faces the person has on the node now.
    faces: u64,
}

/// Photos per request: the protocol's default limit.
const IMAGES_PER_REQUEST: usize = 64;
/// Bytes per request, under the default 64 MiB frame limit.
const BYTES_PER_REQUEST: usize = 48 << 20;

/// Runs the command.
pub fn run(args: EnrollArgs) -> anyhow::Result<ExitCode> {
    let mut photos = Vec::with_capacity(args.files.len());
    for file in &args.files {
        photos
            .push(std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?);
    }
    let header = to_header(&EnrollRequest {
        name: args.name.clone(),
        largest_face: args.largest_face,
        overrides: DetectOverrides::default(),
        crops: None,
    });
    let quiet = args.json;
    let results = runtime()?.block_on(async {
        let client = connect(&args.node.server, &args.node.connect).await?;
        let mut results: Vec<EnrollResult> = Vec::new();
        for batch in batches(&photos) {
            let request = Call::with_images(Op::Enroll, header.clone(), batch);
            let event = call(&client, &request, |line| {
                if !quiet {
                    eprintln!("{line}")
                }
            })
            .await?;
            results.push(answer(&event)?);
        }
        anyhow::Ok(results)
    })?;
    let faces = results.last().map_or(0, |r| r.faces);
    let images: Vec<ImageReport> = results
        .into_iter()
        .flat_map(|r| r.images)
        .zip(&args.files)
        .map(|(i, file)| ImageReport {
            file: file.display().to_string(),
            accepted: i.accepted,
            message: i.message,
            face: i.face,
            rejection: i.rejection,
        })
        .collect();
    let rejected = images.iter().filter(|i| !i.accepted).count();
    if args.json {
        let report = Report {
            name: args.name,
            images,
            faces,
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for (n, image) in images.iter().enumerate() {
            let n = n + 1;
            if image.accepted {
                println!("Image {n} ({}): {}", image.file, image.message);
            } else if image.rejection == Some(Rejection::NoFace) {
                println!("Image {n} ({}) has no face", image.file);
            } else {
                println!("Image {n} ({}) rejected: {}", image.file, image.message);
            }
        }
        println!(
            "{}: {} of {} images accepted; {} faces stored",
            args.name,
            images.len() - rejected,
            images.len(),
            faces
        );
    }
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Splits the photos into requests within the protocol's limits.
fn batches(photos: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, p) in photos.iter().enumerate() {
        let full =
            i - start == IMAGES_PER_REQUEST || (i > start && bytes + p.len() > BYTES_PER_REQUEST);
        if full {
            out.push(&photos[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += p.len();
    }
    if start < photos.len() {
        out.push(&photos[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_size() {
        let photos = vec![vec![0u8; 10]; 130];
        let sizes: Vec<usize> = batches(&photos).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![64, 64, 2]);
        let big = vec![vec![0u8; 30 << 20]; 3];
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert!(batches(&[]).is_empty());
    }
}
