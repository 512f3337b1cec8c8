//! The Ocellus wire protocol (see `docs/PROTOCOL.md`): length-prefixed
//! binary frames with a JSON header and raw image bytes.
//!
//! Everything here is a pure function over bytes: the node and the client
//! feed it what they read from the socket, so the decoder is tested (and
//! fuzzed) without any network.

#![warn(missing_docs)]

pub mod auth;
mod error;
pub mod face;
pub mod field;
mod frame;
pub mod message;
mod op;
mod role;
pub mod sniff;
mod status;

pub use error::{ErrorCode, ErrorEvent};
pub use frame::{
    Decoded, FIXED_LEN, Frame, FrameError, FrameLimits, PROTOCOL_VERSION, declared_length,
    decode_frame, image_ranges, take_frame,
};
pub use op::Op;
pub use role::{Role, RoleSet};
pub use status::{PeerStatus, StatusReport};
