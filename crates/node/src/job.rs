//! What a worker runs: a filter job (decode, filter, encode one image) or
//! a face job (see [`crate::face_jobs`]).

use std::sync::Arc;

use ocellus_codec::{DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
use ocellus_detect::DetectParams;
use ocellus_imaging::pipeline::Pipeline;
use ocellus_protocol::message::{ErrorEvent, FilterResult};
use ocellus_recognize::Algorithm;

use crate::faces::{DetectionSettings, RecognizerLink, decode_error};
use crate::recognition::RecognitionService;

/// The images of a request: its payload and their lengths.
pub(crate) struct Images {
    pub payload: Vec<u8>,
    pub lengths: Vec<usize>,
}

impl Images {
    /// Each image's bytes.
    pub(crate) fn slices(&self) -> Vec<&[u8]> {
        let mut at = 0;
        self.lengths
            .iter()
            .map(|&n| {
                let s = &self.payload[at..at + n];
                at += n;
                s
            })
            .collect()
    }

    pub(crate) fn total_len(&self) -> usize {
        self.payload.len()
    }
}

/// What a worker needs besides the job: limits and the face roles.
pub(crate) struct Context {
    pub decode_limits: DecodeLimits,
    pub detection: Option<DetectionSettings>,
    /// Where detected faces go (the recognition role, here or elsewhere).
    pub link: Option<RecognizerLink>,
    /// The recognition role, when this node has it.
    pub recognition: Option<Arc<RecognitionService>>,
    /// For calls to a remote recognition node from worker threads.
    pub runtime: tokio::runtime::Handle,
}

/// A job's work.
pub(crate) enum Work {
    /// Apply `pipeline` to one encoded image.
    Filter {
        pipeline: Pipeline,
        format: Option<ImageFormat>,
        quality: u8,
        image: Vec<u8>,
    },
    /// Face boxes in photos.
    Detect {
        images: Images,
        params: DetectParams,
    },
    /// Enroll a person from photos (one face each).
    Enroll {
        name: String,
        images: Images,
        largest_face: bool,
        params: DetectParams,
    },
    /// Name every face in photos.
    Recognize {
        images: Images,
        algorithm: Option<Algorithm>,
        params: DetectParams,
    },
    /// Enroll face crops a detection node sent.
    EnrollCrops {
        name: String,
        crops: Images,
        hashes: Vec<Option<[u8; 32]>>,
    },
    /// Name face crops a detection node sent.
    RecognizeCrops {
        crops: Images,
        algorithm: Option<Algorithm>,
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
            Work::Detect { images, .. } => format!("detect {} images", images.lengths.len()),
            Work::Enroll { images, .. } => format!("enroll {} images", images.lengths.len()),
            Work::Recognize { images, .. } => {
                format!("recognize {} images", images.lengths.len())
            }
            Work::EnrollCrops { crops, .. } => format!("enroll {} faces", crops.lengths.len()),
            Work::RecognizeCrops { crops, .. } => {
                format!(
                    "recognize {} faces ({} bytes)",
                    crops.lengths.len(),
                    crops.total_len()
                )
            }
        }
    }

    /// The request payload the work was made from (to send it elsewhere).
    pub(crate) fn into_payload(self) -> Vec<u8> {
        match self {
            Work::Filter { image, .. } => image,
            Work::Detect { images, .. }
            | Work::Enroll { images, .. }
            | Work::Recognize { images, .. } => images.payload,
            Work::EnrollCrops { crops, .. } | Work::RecognizeCrops { crops, .. } => crops.payload,
        }
    }

    /// Runs the job on the current thread.
    pub(crate) fn run(self, ctx: &Context) -> Result<Output, ErrorEvent> {
        let limits = &ctx.decode_limits;
        match self {
            Work::Filter {
                pipeline,
                format,
                quality,
                image,
            } => {
                let (decoded, input_format) = decode(&image, limits).map_err(decode_error)?;
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
            Work::Detect { images, params } => crate::face_jobs::detect(ctx, &images, &params),
            Work::Enroll {
                name,
                images,
                largest_face,
                params,
            } => crate::face_jobs::enroll(ctx, &name, &images, largest_face, &params),
            Work::Recognize {
                images,
                algorithm,
                params,
            } => crate::face_jobs::recognize(ctx, &images, algorithm, &params),
            Work::EnrollCrops {
                name,
                crops,
                hashes,
            } => crate::face_jobs::enroll_crops(ctx, &name, &crops, &hashes),
            Work::RecognizeCrops { crops, algorithm } => {
                crate::face_jobs::recognize_crops(ctx, &crops, algorithm)
            }
        }
    }
}
