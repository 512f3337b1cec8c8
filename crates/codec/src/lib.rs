//! Ocellus image codecs: encoded bytes to an [`Image`] and back.
//!
//! Decoding first reads the header with [`inspect`] (size, sample layout,
//! JPEG scans, and the peak memory the decode will allocate) and checks it
//! against [`DecodeLimits`] with [`check`], before any pixel buffer is
//! allocated: a tiny file that declares a huge image (a decompression
//! bomb), a 16-bit or lossless file whose decode needs more than
//! `max_decode_bytes`, or a progressive JPEG with more scans than its size
//! allows is refused cheaply.
//! EXIF orientation is applied, 16-bit and float images are reduced to 8 bits.

#![warn(missing_docs)]

mod cost;
mod decode;
mod encode;
mod format;
mod inspect;
mod jpeg;

pub use decode::{DEFAULT_MAX_DECODE_BYTES, DecodeError, DecodeLimits, decode, read_dimensions};
pub use encode::{EncodeError, EncodeOptions, encode};
pub use format::ImageFormat;
pub use inspect::{
    ImageInfo, MAX_SCAN_LIMIT, MIN_SCAN_LIMIT, SCAN_PIXEL_BUDGET, check, inspect, scan_limit,
};
pub use ocellus_imaging::{Image, PixelLayout};
