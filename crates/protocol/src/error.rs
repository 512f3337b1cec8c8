//! Error codes: the stable `code` of an ERROR event, as a type.
//!
//! Invariant: every code the node can send is a variant here, and its wire
//! spelling is the one in the table of `docs/PROTOCOL.md` (a test checks
//! [`ErrorCode::as_str`] against serde's spelling for every variant).
//! Decisions about an error (retry elsewhere, exit status, what to print)
//! are made on the variant, never on the human message.

use serde::{Deserialize, Serialize};

/// The `code` of an ERROR event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The stream cannot be parsed; the connection closes.
    MalformedFrame,
    /// `length` over the limit; the connection closes.
    FrameTooLarge,
    /// Header over the limit; the connection closes.
    HeaderTooLarge,
    /// Unknown protocol `version`.
    UnsupportedVersion,
    /// Unknown `op`.
    UnknownOp,
    /// A header field missing or of the wrong type.
    BadRequest,
    /// The FILTER pipeline does not parse.
    BadOps,
    /// More images than the limit.
    TooManyImages,
    /// An image cannot be decoded.
    BadImage,
    /// An image declares more pixels than the limit.
    ImageTooLarge,
    /// The pipeline cannot be applied to this image.
    FilterFailed,
    /// A request id already in flight on this connection.
    DuplicateRequestId,
    /// This node does not serve that operation.
    RoleUnavailable,
    /// A person's name is not acceptable.
    BadName,
    /// REMOVE_PERSON of a name nobody has.
    UnknownPerson,
    /// RECOGNIZE before anyone was enrolled.
    NoPeopleEnrolled,
    /// The algorithm has no model for the enrolled faces (yet).
    ModelUnavailable,
    /// The detection node cannot reach its recognition node.
    RecognizerUnavailable,
    /// The recognition node's queue is full.
    RecognizerBusy,
    /// The face store could not be read or written.
    StoreFailed,
    /// The node is stopping; the request was not run.
    ShuttingDown,
    /// No live peer with the needed role could run the request.
    PeerUnavailable,
    /// The connection was idle (or a frame incomplete) too long.
    Timeout,
    /// A bug.
    Internal,
    /// The node needs a key and the connection has not authenticated (or
    /// its key was revoked, or AUTH was given a wrong key).
    Unauthorized,
    /// The connection's key does not allow this operation, or a client
    /// used a form only peers may send.
    Forbidden,
    /// The request would cost more than one request may (CPU estimated
    /// from the images' headers, decode memory, pipeline length); it was
    /// not run. The message names the limit and its flag.
    TooCostly,
    /// The node (or this client's share of it) is full: a connection over
    /// the connection caps is told so and closed.
    Busy,
    /// A code this version does not know (sent by a newer node). Never
    /// sent by this version.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code this version sends, in the order of `docs/PROTOCOL.md`.
    pub const ALL: [ErrorCode; 28] = [
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::HeaderTooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownOp,
        ErrorCode::BadRequest,
        ErrorCode::BadOps,
        ErrorCode::TooManyImages,
        ErrorCode::BadImage,
        ErrorCode::ImageTooLarge,
        ErrorCode::FilterFailed,
        ErrorCode::DuplicateRequestId,
        ErrorCode::RoleUnavailable,
        ErrorCode::BadName,
        ErrorCode::UnknownPerson,
        ErrorCode::NoPeopleEnrolled,
        ErrorCode::ModelUnavailable,
        ErrorCode::RecognizerUnavailable,
        ErrorCode::RecognizerBusy,
        ErrorCode::StoreFailed,
        ErrorCode::ShuttingDown,
        ErrorCode::PeerUnavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::TooCostly,
        ErrorCode::Busy,
    ];

    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::HeaderTooLarge => "header_too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadOps => "bad_ops",
            ErrorCode::TooManyImages => "too_many_images",
            ErrorCode::BadImage => "bad_image",
            ErrorCode::ImageTooLarge => "image_too_large",
            ErrorCode::FilterFailed => "filter_failed",
            ErrorCode::DuplicateRequestId => "duplicate_request_id",
            ErrorCode::RoleUnavailable => "role_unavailable",
            ErrorCode::BadName => "bad_name",
            ErrorCode::UnknownPerson => "unknown_person",
            ErrorCode::NoPeopleEnrolled => "no_people_enrolled",
            ErrorCode::ModelUnavailable => "model_unavailable",
            ErrorCode::RecognizerUnavailable => "recognizer_unavailable",
            ErrorCode::RecognizerBusy => "recognizer_busy",
            ErrorCode::StoreFailed => "store_failed",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::PeerUnavailable => "peer_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooCostly => "too_costly",
            ErrorCode::Busy => "busy",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Whether the request was not run and another node (or a new
    /// connection) may run it: the node was stopping, or the connection
    /// timed out. Every other error is the request's own answer.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::ShuttingDown | ErrorCode::Timeout)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ERROR event header, and the error type of every request: a code and
/// an explanation for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ErrorEvent {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Explanation for people.
    pub message: String,
}

impl ErrorEvent {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorEvent {
        ErrorEvent {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spelling_matches_serde_and_round_trips() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::from(code.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
        }
        let newer: ErrorCode = serde_json::from_value("from_the_future".into()).unwrap();
        assert_eq!(newer, ErrorCode::Unknown);
    }

    #[test]
    fn only_unrun_requests_are_retryable() {
        let retryable: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.is_retryable())
            .collect();
        assert_eq!(retryable, [ErrorCode::ShuttingDown, ErrorCode::Timeout]);
    }

    #[test]
    fn error_event_header_shape() {
        let e = ErrorEvent::new(ErrorCode::BadOps, "no such op");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "bad_ops", "message": "no such op"})
        );
        assert_eq!(e.to_string(), "no such op (bad_ops)");
    }
}
