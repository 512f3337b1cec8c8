//! DETECT: the face boxes in photos.
//!
//! parse: the detection overrides (bounded) and the images; run: decode
//! and scan each photo; answer: one entry per image, in request order, an
//! unreadable image being an entry with its error rather than a failure
//! of the request.

use bytes::Bytes;
use ocellus_detect::DetectParams;
use ocellus_protocol::ErrorEvent;
use ocellus_protocol::face::{DetectRequest, DetectResult, DetectedImage};
use ocellus_protocol::message::from_header;

use super::{NO_FACE, bad_header, images};
use crate::call::Incoming;
use crate::exec::{Cancel, Output, Ran, Work};
use crate::roles::Roles;
use crate::roles::detection::scan;
use crate::state::State;

/// A DETECT job.
pub(super) struct DetectJob {
    images: Vec<Bytes>,
    params: DetectParams,
}

/// Checks a DETECT request and makes its job.
pub(super) fn parse(state: &State, request: &Incoming) -> Result<DetectJob, ErrorEvent> {
    let header: DetectRequest =
        from_header(&request.header).map_err(|e| bad_header("Detect", e))?;
    let params = state.roles.detection()?.resolve(&header.overrides)?;
    let images = images(state, request)?;
    super::cost::check_detection(state, &images, &params)?;
    Ok(DetectJob { images, params })
}

/// "no face found", "1 face", "3 faces".
pub(super) fn faces_message(n: usize) -> String {
    match n {
        0 => NO_FACE.to_string(),
        1 => "1 face".to_string(),
        n => format!("{n} faces"),
    }
}

impl Work for DetectJob {
    fn describe(&self) -> String {
        format!("detect {} images", self.images.len())
    }

    fn run(self: Box<Self>, roles: &Roles, cancel: &Cancel) -> Ran {
        let settings = match roles.detection() {
            Ok(s) => s,
            Err(e) => return Ran::Done(Err(e)),
        };
        let results = self
            .images
            .iter()
            .map(
                |bytes| match scan(settings, &roles.decode_limits, bytes, &self.params, cancel) {
                    Ok((photo, faces)) => DetectedImage {
                        width: photo.gray.width(),
                        height: photo.gray.height(),
                        message: faces_message(faces.len()),
                        faces,
                        error: None,
                    },
                    Err(e) => DetectedImage {
                        width: 0,
                        height: 0,
                        faces: Vec::new(),
                        message: e.message,
                        error: Some(e.code),
                    },
                },
            )
            .collect();
        Ran::Done(Ok(Output::header(&DetectResult { results })))
    }
}
