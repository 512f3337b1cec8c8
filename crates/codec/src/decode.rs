//! Decoding with size limits and EXIF orientation.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};
use ocellus_imaging::{Image, PixelLayout};
use thiserror::Error;

use crate::ImageFormat;
use crate::inspect::{check, inspect, scan_limit};

/// Upper bounds checked against the image header before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width x height (default 100 megapixels).
    pub max_pixels: u64,
    /// Largest accepted width or height (default 65535).
    pub max_dimension: u32,
    /// Largest peak memory one decode may allocate, as estimated by
    /// [`crate::inspect`] (default 1 GiB; the node's `--max-decode-bytes`).
    pub max_decode_bytes: u64,
}

/// The default [`DecodeLimits::max_decode_bytes`]: 1 GiB, enough for the
/// costliest ordinary file at the pixel limit (a 100 MP 8-bit RGBA PNG
/// needs 400 MB; a 100 MP progressive 4:2:0 JPEG 750 MB) while refusing
/// 16-bit RGBA (1.2 GB) and lossless RGB WebP (700 MB is accepted, 1 GiB
/// bounds it) beyond that.
pub const DEFAULT_MAX_DECODE_BYTES: u64 = 1 << 30;

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 100_000_000,
            max_dimension: 65_535,
            max_decode_bytes: DEFAULT_MAX_DECODE_BYTES,
        }
    }
}

/// Why bytes could not be turned into an [`Image`].
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The bytes are not in a format Ocellus reads.
    #[error("unrecognised image format (expected JPEG, PNG, WebP, GIF, BMP, TIFF or PNM)")]
    UnknownFormat,
    /// The header declares an image over the pixel limit.
    #[error(
        "image too large: {width}x{height} is {} megapixels, the limit is {} megapixels",
        (*width as u64 * *height as u64) as f64 / 1e6,
        *max_pixels as f64 / 1e6
    )]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },
    /// The header declares a width or height over the dimension limit.
    #[error(
        "image too large: {width}x{height} exceeds the limit of {max_dimension} pixels per side"
    )]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit in force.
        max_dimension: u32,
    },
    /// The header declares a zero width or height.
    #[error("image has no pixels ({width}x{height})")]
    Empty {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// Decoding would allocate more memory than the limit allows.
    #[error(
        "image too costly to decode: it needs {needed} bytes ({} MB) of memory, the limit is {limit} bytes ({} MB, --max-decode-bytes)",
        needed.div_ceil(1_000_000),
        limit / 1_000_000
    )]
    TooCostly {
        /// Peak bytes the decode would allocate.
        needed: u64,
        /// The limit in force (bytes).
        limit: u64,
    },
    /// A progressive JPEG has more scans than its size allows.
    #[error(
        "JPEG has too many scans: {scans}, the limit for an image of this size is {limit} (each scan is a pass over the whole image)"
    )]
    TooManyScans {
        /// Start-of-scan markers in the file.
        scans: u32,
        /// The limit for this image's size.
        limit: u32,
    },
    /// The data is corrupt or truncated, or uses an unsupported feature.
    #[error("cannot decode {format} image: {message}")]
    Corrupt {
        /// The detected format.
        format: ImageFormat,
        /// The decoder's explanation.
        message: String,
    },
}

/// Reads the format and declared dimensions from the header only.
pub fn read_dimensions(bytes: &[u8]) -> Result<(ImageFormat, u32, u32), DecodeError> {
    let format = ImageFormat::sniff(bytes).ok_or(DecodeError::UnknownFormat)?;
    if format == ImageFormat::Jpeg
        && let Ok((w, h)) = crate::jpeg::dimensions(bytes)
    {
        return Ok((format, w, h));
    }
    if format == ImageFormat::Png
        && let Some(dims) = png_dimensions(bytes)
    {
        return Ok((format, dims.0, dims.1));
    }
    let reader = ImageReader::with_format(Cursor::new(bytes), format.to_image());
    let (w, h) = reader.into_dimensions().map_err(|e| corrupt(format, e))?;
    Ok((format, w, h))
}

/// Width and height from a PNG's IHDR chunk, which the format requires to
/// come first. Read directly so that the limits apply even to files whose
/// later chunks are missing or damaged.
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((w, h))
}

pub(crate) fn corrupt(format: ImageFormat, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Corrupt {
        format,
        message: e.to_string(),
    }
}

/// The most scans of a JPEG that is decoded again by the `image` crate when
/// libjpeg-turbo refuses it: libjpeg-turbo's and mozjpeg's progressive
/// scripts write 10 (the shared photos have at most 10). The fallback costs
/// 1.45 ms per scan-megapixel (`decode_peak fallback`, 8000x8000, 100
/// scans: 9.3 s), more than libjpeg-turbo itself.
const FALLBACK_MAX_SCANS: u32 = 16;

/// Decodes an encoded image (JPEG, PNG, WebP, GIF first frame, BMP, TIFF,
/// PNM) into an 8-bit [`Image`], upright according to its EXIF orientation.
///
/// The header is read with [`inspect`] and checked with [`check`] against
/// `limits` (size, decode memory, JPEG scans) before any pixel memory is
/// allocated.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<(Image, ImageFormat), DecodeError> {
    let info = inspect(bytes)?;
    check(&info, limits)?;
    let format = info.format;
    if format == ImageFormat::Jpeg {
        // libjpeg-turbo first (fast, and the pixels OpenCV sees); the image
        // crate's decoder as a fallback for what it refuses (CMYK, files
        // with recoverable damage).
        let dims = (info.width, info.height);
        let turbo = match crate::jpeg::decode(bytes, dims, scan_limit(info.pixels())) {
            Ok(image) => Ok(image),
            // A file with more scans than encoders write has cost one full
            // decode already; it is not decoded a second time.
            Err(message) if info.scans > FALLBACK_MAX_SCANS => {
                Err(DecodeError::Corrupt { format, message })
            }
            Err(message) => decode_with_image_crate(bytes, format, limits)
                .map(|(image, _)| image)
                .map_err(|_| DecodeError::Corrupt { format, message }),
        }?;
        return Ok((orient(turbo, crate::jpeg::exif_orientation(bytes)), format));
    }
    decode_with_image_crate(bytes, format, limits)
}

/// Applies an EXIF orientation (1..=8) with lossless quarter turns and flips.
fn orient(image: Image, orientation: Option<u8>) -> Image {
    use ocellus_imaging::filter::geometry::{Flip, Rotation, flip, rotate};
    let turn = |img: &Image, r| rotate(img, r);
    let mirrored = |mut img: Image| {
        flip(&mut img, Flip::Horizontal);
        img
    };
    match orientation {
        Some(2) => mirrored(image),
        Some(3) => turn(&image, Rotation::Half),
        Some(4) => {
            let mut img = image;
            flip(&mut img, Flip::Vertical);
            img
        }
        Some(5) => mirrored(turn(&image, Rotation::Quarter)),
        Some(6) => turn(&image, Rotation::Quarter),
        Some(7) => mirrored(turn(&image, Rotation::ThreeQuarters)),
        Some(8) => turn(&image, Rotation::ThreeQuarters),
        _ => image,
    }
}

fn decode_with_image_crate(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<(Image, ImageFormat), DecodeError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image());
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_dimension);
    lim.max_image_height = Some(limits.max_dimension);
    // The image crate checks each of its allocations against this; the
    // whole decode has been checked against the same budget by `check`.
    lim.max_alloc = Some(limits.max_decode_bytes);
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(|e| corrupt(format, e))?;
    let orientation = decoder.orientation().ok();
    let mut dynamic = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(format, e))?;
    if let Some(o) = orientation {
        dynamic.apply_orientation(o);
    }
    Ok((from_dynamic(dynamic), format))
}

/// Converts whatever the decoder produced to 8-bit Gray, GrayAlpha, Rgb or Rgba.
fn from_dynamic(dynamic: DynamicImage) -> Image {
    let (w, h) = (dynamic.width(), dynamic.height());
    let (layout, data) = match dynamic {
        DynamicImage::ImageLuma8(b) => (PixelLayout::Gray, b.into_raw()),
        DynamicImage::ImageLumaA8(b) => (PixelLayout::GrayAlpha, b.into_raw()),
        DynamicImage::ImageRgb8(b) => (PixelLayout::Rgb, b.into_raw()),
        DynamicImage::ImageRgba8(b) => (PixelLayout::Rgba, b.into_raw()),
        DynamicImage::ImageLuma16(_) => (PixelLayout::Gray, dynamic.to_luma8().into_raw()),
        DynamicImage::ImageLumaA16(_) => {
            (PixelLayout::GrayAlpha, dynamic.to_luma_alpha8().into_raw())
        }
        other if other.color().has_alpha() => (PixelLayout::Rgba, other.to_rgba8().into_raw()),
        other => (PixelLayout::Rgb, other.to_rgb8().into_raw()),
    };
    Image::from_vec(w, h, layout, data).expect("decoder output matches its dimensions")
}
