//! Encoding to JPEG, PNG and WebP.

use std::io::Cursor;

use image::{ExtendedColorType, ImageEncoder};
use ocellus_imaging::{Image, PixelLayout};
use thiserror::Error;

use crate::ImageFormat;

/// Settings for [`encode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// JPEG quality, 1..=100 (default 90).
    pub jpeg_quality: u8,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { jpeg_quality: 90 }
    }
}

/// Why an image could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// Ocellus does not write this format.
    #[error("cannot write {0} (Ocellus writes JPEG, PNG and WebP)")]
    Unsupported(ImageFormat),
    /// The encoder failed.
    #[error("{format} encoder failed: {message}")]
    Failed {
        /// The target format.
        format: ImageFormat,
        /// The encoder's explanation.
        message: String,
    },
}

fn color_type(layout: PixelLayout) -> ExtendedColorType {
    match layout {
        PixelLayout::Gray => ExtendedColorType::L8,
        PixelLayout::GrayAlpha => ExtendedColorType::La8,
        PixelLayout::Rgb => ExtendedColorType::Rgb8,
        PixelLayout::Rgba => ExtendedColorType::Rgba8,
    }
}

/// Drops the alpha channel (JPEG has none).
fn without_alpha(image: &Image) -> Option<Image> {
    let layout = match image.layout() {
        PixelLayout::GrayAlpha => PixelLayout::Gray,
        PixelLayout::Rgba => PixelLayout::Rgb,
        _ => return None,
    };
    let keep = layout.channels();
    let data = image
        .as_bytes()
        .chunks_exact(image.channels())
        .flat_map(|p| p[..keep].iter().copied())
        .collect();
    Some(Image::from_vec(image.width(), image.height(), layout, data).expect("same pixel count"))
}

/// Encodes `image` as `format`. JPEG drops alpha; WebP is written lossless.
pub fn encode(
    image: &Image,
    format: ImageFormat,
    options: &EncodeOptions,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    let failed = |e: image::ImageError| EncodeError::Failed {
        format,
        message: e.to_string(),
    };
    match format {
        ImageFormat::Jpeg => {
            let opaque = without_alpha(image);
            let img = opaque.as_ref().unwrap_or(image);
            out = crate::jpeg::encode(img, options.jpeg_quality)
                .map_err(|message| EncodeError::Failed { format, message })?;
        }
        ImageFormat::Png => {
            image::codecs::png::PngEncoder::new(Cursor::new(&mut out))
                .write_image(
                    image.as_bytes(),
                    image.width(),
                    image.height(),
                    color_type(image.layout()),
                )
                .map_err(failed)?;
        }
        ImageFormat::WebP => {
            let rgb;
            let img = match image.layout() {
                // The WebP encoder takes only RGB(A).
                PixelLayout::Gray | PixelLayout::GrayAlpha => {
                    rgb = expand_gray(image);
                    &rgb
                }
                _ => image,
            };
            image::codecs::webp::WebPEncoder::new_lossless(Cursor::new(&mut out))
                .write_image(
                    img.as_bytes(),
                    img.width(),
                    img.height(),
                    color_type(img.layout()),
                )
                .map_err(failed)?;
        }
        other => return Err(EncodeError::Unsupported(other)),
    }
    Ok(out)
}

fn expand_gray(image: &Image) -> Image {
    let alpha = image.layout().has_alpha();
    let layout = if alpha {
        PixelLayout::Rgba
    } else {
        PixelLayout::Rgb
    };
    let mut data =
        Vec::with_capacity(image.width() as usize * image.height() as usize * layout.channels());
    for p in image.as_bytes().chunks_exact(image.channels()) {
        data.extend_from_slice(&[p[0], p[0], p[0]]);
        if alpha {
            data.push(p[1]);
        }
    }
    Image::from_vec(image.width(), image.height(), layout, data).expect("same pixel count")
}
