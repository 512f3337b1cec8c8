//! FILTER: apply a pipeline to one image.
//!
//! parse: the header (ops, format, quality) and exactly one image; run:
//! decode within the limits, filter, encode; answer: the image with its
//! size and format.

use bytes::Bytes;
use ocellus_codec::{EncodeOptions, ImageFormat, decode, encode};
use ocellus_imaging::pipeline::{FilterError, Pipeline};
use ocellus_protocol::message::{FilterRequest, FilterResult, from_header, to_header};
use ocellus_protocol::{ErrorCode, ErrorEvent};

use super::{bad_header, frame_images};
use crate::call::{Incoming, error};
use crate::exec::{Cancel, Output, Ran, Work, cancelled};
use crate::roles::Roles;
use crate::roles::detection::decode_error;
use crate::state::State;

/// JPEG quality when the request names none.
const DEFAULT_QUALITY: u8 = 90;

/// A FILTER job.
pub(super) struct FilterJob {
    pipeline: Pipeline,
    format: Option<ImageFormat>,
    quality: u8,
    image: Bytes,
}

/// Checks a FILTER request and makes its job.
pub(super) fn parse(state: &State, request: &Incoming) -> Result<FilterJob, ErrorEvent> {
    if !state.roles.filter {
        return Err(error(
            ErrorCode::RoleUnavailable,
            "this node has no filter role",
        ));
    }
    let header: FilterRequest =
        from_header(&request.header).map_err(|e| bad_header("FILTER", e))?;
    let pipeline: Pipeline =
        header
            .ops
            .parse()
            .map_err(|e: ocellus_imaging::pipeline::ParseError| {
                error(ErrorCode::BadOps, e.to_string())
            })?;
    let format = match header.format.as_deref().map(ImageFormat::from_name) {
        None => None,
        Some(Some(f)) if f.can_encode() => Some(f),
        Some(_) => {
            return Err(error(
                ErrorCode::BadRequest,
                "format must be jpeg, png or webp",
            ));
        }
    };
    let mut images = frame_images(request)?;
    let max = state.config.max_images;
    if images.len() > max {
        return Err(error(
            ErrorCode::TooManyImages,
            format!("{} images; the limit is {max}", images.len()),
        ));
    }
    if images.len() != 1 {
        return Err(error(
            ErrorCode::BadRequest,
            format!("FILTER takes one image, got {}", images.len()),
        ));
    }
    let image = images.remove(0);
    super::cost::check_filter(state, &image, &pipeline)?;
    Ok(FilterJob {
        pipeline,
        format,
        quality: header.quality.unwrap_or(DEFAULT_QUALITY).clamp(1, 100),
        image,
    })
}

impl Work for FilterJob {
    fn describe(&self) -> String {
        format!("filter {} ({} bytes in)", self.pipeline, self.image.len())
    }

    fn run(self: Box<Self>, roles: &Roles, cancel: &Cancel) -> Ran {
        let FilterJob {
            pipeline,
            format,
            quality,
            image,
        } = *self;
        let run = || {
            let (decoded, input_format) =
                decode(&image, &roles.decode_limits).map_err(decode_error)?;
            drop(image);
            cancel.check().map_err(|_| cancelled())?;
            let result = pipeline
                .apply_cancellable(decoded, cancel)
                .map_err(|e| match e {
                    FilterError::Cancelled => cancelled(),
                    FilterError::TooLarge { .. } => error(ErrorCode::TooCostly, e.to_string()),
                    e => error(ErrorCode::FilterFailed, e.to_string()),
                })?;
            let format = format.unwrap_or(if input_format.can_encode() {
                input_format
            } else {
                ImageFormat::Png
            });
            let bytes = encode(
                &result,
                format,
                &EncodeOptions {
                    jpeg_quality: quality,
                },
            )
            .map_err(|e| error(ErrorCode::Internal, e.to_string()))?;
            let header = to_header(&FilterResult {
                width: result.width(),
                height: result.height(),
                format: format.extension().to_string(),
                images: vec![bytes.len() as u64],
            });
            Ok(Output {
                header,
                payload: bytes.into(),
            })
        };
        Ran::Done(run())
    }
}
