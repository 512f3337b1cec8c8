//! Ocellus image algorithms: the [`Image`] buffer and the filters.
//!
//! Everything here is pure computation on memory: no files, no sockets, no
//! async. Codecs live in `ocellus-codec`, the network in the node crates.
//! Each filter is a small function in its own module under [`filter`];
//! [`pipeline`] parses and runs comma-separated lists of them, plans their
//! cost before any pixel work, and stops at checkpoints when a [`Cancel`]
//! token is raised.

#![warn(missing_docs)]

mod cancel;
pub mod filter;
mod image;
pub mod pipeline;

pub use crate::cancel::{Cancel, Cancelled};
pub use crate::image::{Image, ImageError, PixelLayout};
