//! `ocellus detect --server`: the node finds the faces.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ocellus_codec::{DecodeLimits, decode};
use ocellus_detect::Rect;
use ocellus_node::client::ClientError;
use ocellus_protocol::Op;
use ocellus_protocol::face::{DetectOverrides, DetectRequest, DetectResult, DetectedImage};
use ocellus_protocol::message::{ErrorEvent, from_header, to_header};

use super::detect::{DetectArgs, GREEN, print_faces, write_annotated};
use super::remote::{await_result, connect, per_file, runtime};

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
    let failed = runtime()?.block_on(async {
        let client = Arc::new(connect(addr).await?);
        let failed = per_file(
            &args.files,
            4,
            |file| {
                let (client, header) = (client.clone(), header.clone());
                async move {
                    let bytes = tokio::fs::read(&file).await.context("cannot read file")?;
                    let event = await_result(
                        || {
                            client.request_images(
                                Op::Detect,
                                header.clone(),
                                std::slice::from_ref(&bytes),
                            )
                        },
                        &|_| {},
                    )
                    .await?;
                    let mut result: DetectResult =
                        from_header(&event.header).context("unexpected answer from the node")?;
                    let found = result
                        .results
                        .pop()
                        .context("the node answered for no image")?;
                    Ok((found, bytes))
                }
            },
            |file, outcome| match outcome.and_then(|(found, bytes)| show(file, found, &bytes, args))
            {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("error: {}: {e:#}", file.display());
                    false
                }
            },
        )
        .await;
        anyhow::Ok(failed)
    })?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn show(file: &Path, found: DetectedImage, bytes: &[u8], args: &DetectArgs) -> anyhow::Result<()> {
    if let Some(code) = found.error {
        return Err(ClientError::Server(ErrorEvent {
            code,
            message: found.message,
        })
        .into());
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
