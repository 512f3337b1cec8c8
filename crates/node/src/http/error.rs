//! The one error shape of the HTTP API, `{"error": {"code", "message"}}`,
//! and the HTTP status each code maps to.
//!
//! Invariant: every failure an HTTP client sees goes through [`ApiError`]:
//! the protocol's error codes keep their names (a client handles
//! `bad_ops` the same way on either port), and the status is a function
//! of the code alone ([`status_of`]), so the mapping is written once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ocellus_protocol::{ErrorCode, ErrorEvent};
use serde::Serialize;

/// Codes the HTTP API adds to the protocol's (situations a TCP client
/// cannot meet: routes, methods, stored job results).
pub(crate) mod code {
    /// BUSY on TCP: the queue is full (429, with `Retry-After`).
    pub const BUSY: &str = "busy";
    /// No such route, or no such job.
    pub const NOT_FOUND: &str = "not_found";
    /// The route exists, not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// A job's result was already fetched, or it expired.
    pub const GONE: &str = "gone";
    /// A job's result is asked for before the job has finished.
    pub const NOT_READY: &str = "not_ready";
    /// The job was cancelled (`DELETE /v1/jobs/{id}`).
    pub const CANCELLED: &str = "cancelled";
}

/// An error answer: status, stable code, message for people.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds to wait before retrying (BUSY).
    pub retry_after_s: Option<u64>,
}

/// The JSON body.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable code: the protocol's error codes (docs/PROTOCOL.md) and
    /// busy, not_found, method_not_allowed, gone, not_ready, cancelled.
    pub code: String,
    /// Explanation for people.
    pub message: String,
}

impl ApiError {
    /// An error with this status and code.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// A protocol error code, with its status.
    pub fn protocol(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status_of(code), code.as_str(), message)
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::protocol(ErrorCode::BadRequest, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message)
    }

    /// 429 `busy`: the queue is full.
    pub fn busy(queue_length: u64, capacity: u64, retry_after_s: u64) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::BUSY,
            format!("the queue is full ({queue_length} of {capacity} jobs waiting): retry later"),
        );
        e.retry_after_s = Some(retry_after_s.max(1));
        e
    }

    /// 429: this client has as many jobs waiting as one client may.
    pub fn busy_client(queued: u64, per_client: u64, retry_after_s: u64) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::BUSY,
            format!(
                "you have {queued} jobs waiting, as many as one client may ({per_client}): retry when one has finished"
            ),
        );
        e.retry_after_s = Some(retry_after_s.max(1));
        e
    }
}

impl From<ErrorEvent> for ApiError {
    fn from(e: ErrorEvent) -> ApiError {
        ApiError::new(status_of(e.code), e.code.as_str(), e.message)
    }
}

/// The HTTP status of a protocol error code.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        BadRequest | BadOps | TooManyImages | FilterFailed | BadName | MalformedFrame
        | UnknownOp | UnsupportedVersion | DuplicateRequestId => StatusCode::BAD_REQUEST,
        // An image the node cannot decode: not a media type it supports.
        BadImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ImageTooLarge | FrameTooLarge | HeaderTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        UnknownPerson => StatusCode::NOT_FOUND,
        // Nobody to recognize yet, or no model for the faces: the request
        // is fine, the node's state does not allow it.
        NoPeopleEnrolled | ModelUnavailable => StatusCode::CONFLICT,
        Unauthorized => StatusCode::UNAUTHORIZED,
        Forbidden => StatusCode::FORBIDDEN,
        // Well-formed, but more work than one request may ask for.
        TooCostly => StatusCode::UNPROCESSABLE_ENTITY,
        Busy => StatusCode::TOO_MANY_REQUESTS,
        RoleUnavailable
        | RecognizerUnavailable
        | RecognizerBusy
        | PeerUnavailable
        | ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        Timeout => StatusCode::GATEWAY_TIMEOUT,
        StoreFailed | Internal | Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ocellus\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_code_has_a_status_that_is_an_error() {
        for code in ErrorCode::ALL {
            let s = status_of(code);
            assert!(s.is_client_error() || s.is_server_error(), "{code:?}");
        }
        assert_eq!(status_of(ErrorCode::BadOps), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(ErrorCode::Unauthorized), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(ErrorCode::Forbidden), StatusCode::FORBIDDEN);
        assert_eq!(
            status_of(ErrorCode::ImageTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
