//! Decoding with size limits and EXIF orientation.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};
use ocellus_imaging::{Image, PixelLayout};
use thiserror::Error;

use crate::ImageFormat;

/// Upper bounds checked against the image header before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width x height (default 100 megapixels).
    pub max_pixels: u64,
    /// Largest accepted width or height (default 65535).
    pub max_dimension: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 100_000_000,
            max_dimension: 65_535,
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

fn corrupt(format: ImageFormat, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Corrupt {
        format,
        message: e.to_string(),
    }
}

fn check_limits(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::Empty { width, height });
    }
    if width > limits.max_dimension || height > limits.max_dimension {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_dimension: limits.max_dimension,
        });
    }
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

/// Decodes an encoded image (JPEG, PNG, WebP, GIF first frame, BMP, TIFF,
/// PNM) into an 8-bit [`Image`], upright according to its EXIF orientation.
///
/// The declared size is checked against `limits` before any pixel memory is
/// allocated.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<(Image, ImageFormat), DecodeError> {
    let (format, width, height) = read_dimensions(bytes)?;
    check_limits(width, height, limits)?;
    if format == ImageFormat::Jpeg {
        // libjpeg-turbo first (fast, and the pixels OpenCV sees); the image
        // crate's decoder as a fallback for what it refuses (CMYK, files
        // with recoverable damage).
        let turbo = match crate::jpeg::decode(bytes) {
            Ok(image) => Ok(image),
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
    // Room for a 16-bit RGBA decode of the largest accepted image.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(1 << 26));
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
