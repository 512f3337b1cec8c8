//! What a request will cost, estimated before any work from its images'
//! headers, against the node's per-request limit (`--max-request-cost`).
//!
//! Invariant: a request whose estimate is over the limit is answered ERROR
//! `too_costly` at parse time, naming the estimate, the limit and its
//! flag, and never queued. The estimates are the pure crates' (each
//! operation's measured cost beside its code, detection's per window);
//! this module only adds them up (with each image's decode,
//! `ImageInfo::decode_cost_ns`). An image whose header cannot be read, or
//! that is over the decode limits, costs nothing here: decoding refuses it
//! at once from its header, with its own error.

use bytes::Bytes;
use ocellus_codec::inspect;
use ocellus_imaging::pipeline::{FilterError, Pipeline};
use ocellus_protocol::{ErrorCode, ErrorEvent};

use crate::call::error;
use crate::state::State;

/// Checks a FILTER request: every operation's output within
/// `--max-pixels`, the pipeline's estimated time within the limit.
pub(super) fn check_filter(
    state: &State,
    image: &[u8],
    pipeline: &Pipeline,
) -> Result<(), ErrorEvent> {
    let Ok(info) = inspect(image) else {
        return Ok(());
    };
    let (width, height) = (info.width, info.height);
    let limits = &state.roles.decode_limits;
    if ocellus_codec::check(&info, limits).is_err() {
        // The decode refuses it from its header, with the precise error.
        return Ok(());
    }
    // Decoded to at most 8-bit samples, in the header's channels.
    let plan = match pipeline.plan(width, height, info.channels.clamp(1, 4), limits.max_pixels) {
        Ok(plan) => plan,
        Err(e @ FilterError::TooLarge { .. }) => {
            return Err(too_costly(state, format!("{e} (--max-pixels)")));
        }
        // A crop outside the image and the like: the run says so, as
        // before (filter_failed).
        Err(_) => return Ok(()),
    };
    let cost = plan.cost_ns.saturating_add(info.decode_cost_ns());
    within(state, cost, || {
        format!("decoding a {width}x{height} image and the pipeline on it")
    })
}

/// Checks a detection request (DETECT, ENROLL, RECOGNIZE of photos): the
/// estimated detection time over every image within the limit.
pub(super) fn check_detection(
    state: &State,
    images: &[Bytes],
    params: &ocellus_detect::DetectParams,
) -> Result<(), ErrorEvent> {
    let Ok(settings) = state.roles.detection() else {
        return Ok(());
    };
    let mut total: u64 = 0;
    let mut pixels: u64 = 0;
    for image in images {
        let limits = &state.roles.decode_limits;
        if let Ok(info) = inspect(image)
            && ocellus_codec::check(&info, limits).is_ok()
        {
            let (w, h) = (info.width, info.height);
            let detection = ocellus_detect::detect_cost_ns(&settings.cascade, w, h, params);
            total = total
                .saturating_add(detection)
                .saturating_add(info.decode_cost_ns());
            pixels = pixels.saturating_add(w as u64 * h as u64);
        }
    }
    within(state, total, || {
        format!(
            "decoding and detection on {} image(s) of {:.1} megapixels in all",
            images.len(),
            pixels as f64 / 1e6
        )
    })
}

fn within(state: &State, cost_ns: u64, what: impl FnOnce() -> String) -> Result<(), ErrorEvent> {
    let limit = state.config.max_request_cost;
    if u128::from(cost_ns) <= limit.as_nanos() {
        return Ok(());
    }
    Err(too_costly(
        state,
        format!(
            "{} would take about {:.1} s of CPU, over the limit of {} s per request (--max-request-cost)",
            what(),
            cost_ns as f64 / 1e9,
            limit.as_secs_f64()
        ),
    ))
}

fn too_costly(state: &State, message: String) -> ErrorEvent {
    state.metrics.request_too_costly();
    error(ErrorCode::TooCostly, message)
}
