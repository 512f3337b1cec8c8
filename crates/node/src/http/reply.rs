//! A request's terminal event as an HTTP response: RESULT as the image
//! (FILTER) or the JSON result, ERROR and BUSY as [`ApiError`]s; with the
//! headers saying where and how long it ran.
//!
//! Invariant: the JSON of a RESULT is the TCP RESULT header as it is (the
//! same field names on both ports), minus `images` where that is the
//! payload's framing (byte lengths, which HTTP does not need); ENROLL's
//! per-image report, also `images`, stays.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ocellus_codec::ImageFormat;
use ocellus_protocol::message::{Busy, FilterResult, from_header};
use ocellus_protocol::{ErrorCode, Op, field};
use serde_json::{Map, Value};

use super::bridge::{Reply, Timing};
use super::error::{ApiError, code, status_of};
use crate::state::State;

/// The node that ran the request.
pub(crate) const NODE: HeaderName = HeaderName::from_static("ocellus-node");
/// Milliseconds it waited in the queue.
pub(crate) const QUEUE_MS: HeaderName = HeaderName::from_static("ocellus-queue-ms");
/// Milliseconds it ran (and, for face operations on another node, waited
/// for the recognition node).
pub(crate) const RUN_MS: HeaderName = HeaderName::from_static("ocellus-run-ms");
/// The result image's size.
pub(crate) const WIDTH: HeaderName = HeaderName::from_static("ocellus-width");
pub(crate) const HEIGHT: HeaderName = HeaderName::from_static("ocellus-height");

/// Seconds a client told BUSY should wait: the time the queue needs to
/// drain at the recent job rate, between 1 and 60.
pub(crate) fn retry_after(state: &State, queue_length: u64) -> u64 {
    let stats = state.queue.stats();
    let workers = state.config.workers.max(1) as f64;
    let s = (queue_length as f64 * stats.mean_job_s / workers).ceil();
    (s as u64).clamp(1, 60)
}

/// The error a terminal ERROR or BUSY event stands for.
pub(crate) fn error_of(state: &State, reply: &Reply) -> ApiError {
    if reply.op == Op::Busy {
        let busy: Busy = from_header(&reply.header).unwrap_or(Busy {
            queue_length: 0,
            capacity: state.config.queue_capacity as u64,
            reason: None,
        });
        if busy.reason.as_deref() == Some("client") {
            return ApiError::busy_client(
                busy.queue_length,
                busy.capacity,
                retry_after(state, busy.queue_length),
            );
        }
        return ApiError::busy(
            busy.queue_length,
            busy.capacity,
            retry_after(state, busy.queue_length),
        );
    }
    let text = |k: &str| reply.header.get(k).and_then(Value::as_str).unwrap_or("");
    let (c, message) = (text("code"), text("message").to_string());
    if c == code::CANCELLED {
        return ApiError::new(StatusCode::CONFLICT, c, message);
    }
    let parsed: ErrorCode =
        serde_json::from_value(Value::String(c.to_string())).unwrap_or(ErrorCode::Unknown);
    match parsed {
        ErrorCode::Unknown => ApiError::new(
            status_of(parsed),
            if c.is_empty() { "internal" } else { c },
            message,
        ),
        known => ApiError::protocol(known, message),
    }
}

/// The JSON of a RESULT (its header without the payload framing).
pub(crate) fn result_json(reply: &Reply) -> Map<String, Value> {
    let mut header = reply.header.clone();
    let framing = header
        .get(field::IMAGES)
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().all(Value::is_u64));
    if framing && !reply.payload.is_empty() {
        header.remove(field::IMAGES);
    }
    header
}

/// The Content-Type of a FILTER result.
pub(crate) fn content_type(result: &FilterResult) -> &'static str {
    ImageFormat::from_name(&result.format).map_or("application/octet-stream", |f| f.mime())
}

fn set(response: &mut Response, name: HeaderName, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        response.headers_mut().insert(name, v);
    }
}

/// Adds where and how long the request ran.
fn timing_headers(response: &mut Response, reply: &Reply, timing: Timing) {
    if let Some(node) = reply.header.get(field::NODE_ID).and_then(Value::as_str) {
        set(response, NODE, node);
    }
    set(response, QUEUE_MS, timing.queue_ms);
    set(response, RUN_MS, timing.run_ms);
    set(
        response,
        HeaderName::from_static("server-timing"),
        format!("queue;dur={}, run;dur={}", timing.queue_ms, timing.run_ms),
    );
}

/// The response to request `op`'s terminal event.
pub(crate) fn respond(state: &State, op: Op, reply: Reply, timing: Timing) -> Response {
    if reply.op != Op::Result {
        let mut response = error_of(state, &reply).into_response();
        timing_headers(&mut response, &reply, timing);
        return response;
    }
    let mut response = if op == Op::Filter {
        match from_header::<FilterResult>(&reply.header) {
            Ok(result) => {
                let mut r = (
                    [(header::CONTENT_TYPE, content_type(&result))],
                    reply.payload.clone(),
                )
                    .into_response();
                set(&mut r, WIDTH, result.width);
                set(&mut r, HEIGHT, result.height);
                r
            }
            Err(e) => ApiError::protocol(
                ErrorCode::Internal,
                format!("a FILTER result without its fields: {e}"),
            )
            .into_response(),
        }
    } else {
        Json(Value::Object(result_json(&reply))).into_response()
    };
    timing_headers(&mut response, &reply, timing);
    response
}
