//! What a worker runs: decoding, filtering and encoding one image.

use ocellus_codec::{DecodeError, DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
use ocellus_imaging::pipeline::Pipeline;
use ocellus_protocol::message::{ErrorEvent, FilterResult};

/// A job's work.
pub(crate) enum Work {
    /// Apply `pipeline` to one encoded image.
    Filter {
        pipeline: Pipeline,
        format: Option<ImageFormat>,
        quality: u8,
        image: Vec<u8>,
    },
}

/// A successful result: header and payload of the RESULT event.
pub(crate) struct Output {
    pub header: serde_json::Map<String, serde_json::Value>,
    pub payload: Vec<u8>,
}

pub(crate) fn error(code: &str, message: impl Into<String>) -> ErrorEvent {
    ErrorEvent {
        code: code.to_string(),
        message: message.into(),
    }
}

impl Work {
    /// A short description for the log.
    pub(crate) fn describe(&self) -> String {
        match self {
            Work::Filter {
                pipeline, image, ..
            } => format!("filter {pipeline} ({} bytes in)", image.len()),
        }
    }

    /// Runs the job on the current thread.
    pub(crate) fn run(self, limits: &DecodeLimits) -> Result<Output, ErrorEvent> {
        match self {
            Work::Filter {
                pipeline,
                format,
                quality,
                image,
            } => {
                let (decoded, input_format) = decode(&image, limits).map_err(|e| match e {
                    DecodeError::TooLarge { .. } | DecodeError::TooManyPixels { .. } => {
                        error("image_too_large", e.to_string())
                    }
                    other => error("bad_image", other.to_string()),
                })?;
                drop(image);
                let result = pipeline
                    .apply(decoded)
                    .map_err(|e| error("filter_failed", e.to_string()))?;
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
                .map_err(|e| error("internal", e.to_string()))?;
                let header = ocellus_protocol::message::to_header(&FilterResult {
                    width: result.width(),
                    height: result.height(),
                    format: format.extension().to_string(),
                    images: vec![bytes.len() as u64],
                });
                Ok(Output {
                    header,
                    payload: bytes,
                })
            }
        }
    }
}
