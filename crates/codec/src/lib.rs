//! Ocellus image codecs: encoded bytes to an [`Image`] and back.
//!
//! Decoding checks the declared size against [`DecodeLimits`] from the file
//! header, before any pixel buffer is allocated, so that a tiny file that
//! declares a 100000 x 100000 image (a decompression bomb) is refused cheaply.
//! EXIF orientation is applied, 16-bit and float images are reduced to 8 bits.

#![warn(missing_docs)]

mod decode;
mod encode;
mod format;
mod jpeg;

pub use decode::{DecodeError, DecodeLimits, decode, read_dimensions};
pub use encode::{EncodeError, EncodeOptions, encode};
pub use format::ImageFormat;
pub use ocellus_imaging::{Image, PixelLayout};
