//! Face preparation: from a detected face rectangle in any [`Image`] to the
//! recognizers' input, a greyscale face of a fixed size.
//!
//! Steps: crop the rectangle (clipped to the image), convert to luma
//! (BT.601, as OpenCV's `BGR2GRAY`), resize to the target size.
//! Interpolation: *area averaging* along an axis that shrinks (each output
//! pixel is the mean of the source pixels under its footprint, weighted by
//! overlap, like OpenCV's `INTER_AREA`), linear interpolation between pixel
//! centres along an axis that grows; computed in f64 and rounded to nearest
//! (ties to even). On non-integer shrink factors this differs from OpenCV's
//! `INTER_AREA` (which works in f32) by one grey level on about 0.01 % of
//! pixels.

use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_imaging::{Image, PixelLayout};
use thiserror::Error;

/// Default prepared face size (width, height): 100 x 100. Detected face boxes
/// are square, and with LBPH's default 8 x 8 grid a 100 x 100 face gives
/// 12 x 12-pixel cells. The default thresholds are calibrated at this size.
pub const DEFAULT_FACE_SIZE: (u32, u32) = (100, 100);

/// A face rectangle in image pixel coordinates (top-left corner and size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceRect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Why a face could not be prepared.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PrepareError {
    /// The rectangle does not overlap the image.
    #[error("face rectangle {rect:?} lies outside the {width}x{height} image")]
    OutsideImage {
        /// The rectangle.
        rect: FaceRect,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// A zero target width or height.
    #[error("target face size must be at least 1x1 (got {0}x{1})")]
    ZeroSize(u32, u32),
}

/// Crops `rect` from `image` (clipped to the image), converts it to grey and
/// resizes it to `size` (width, height); see the module documentation for
/// the interpolation. Use [`DEFAULT_FACE_SIZE`] unless the model was trained
/// at another size.
pub fn prepare_face(
    image: &Image,
    rect: FaceRect,
    size: (u32, u32),
) -> Result<Image, PrepareError> {
    if size.0 == 0 || size.1 == 0 {
        return Err(PrepareError::ZeroSize(size.0, size.1));
    }
    let outside = PrepareError::OutsideImage {
        rect,
        width: image.width(),
        height: image.height(),
    };
    let x0 = rect.x.min(image.width());
    let y0 = rect.y.min(image.height());
    let x1 = rect.x.saturating_add(rect.width).min(image.width());
    let y1 = rect.y.saturating_add(rect.height).min(image.height());
    if x1 <= x0 || y1 <= y0 {
        return Err(outside);
    }
    let c = image.channels();
    let mut data = Vec::with_capacity((x1 - x0) as usize * (y1 - y0) as usize * c);
    for y in y0..y1 {
        let row = image.row(y);
        data.extend_from_slice(&row[x0 as usize * c..x1 as usize * c]);
    }
    let crop = Image::from_vec(x1 - x0, y1 - y0, image.layout(), data).map_err(|_| outside)?;
    let gray = to_gray(&crop);
    Ok(resize_gray(&gray, size.0, size.1))
}

/// Source pixels and weights contributing to each output pixel along one axis.
fn axis_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            if scale >= 1.0 {
                // Area: overlap of [i*scale, (i+1)*scale) with each source pixel.
                let start = i as f64 * scale;
                let end = ((i + 1) as f64 * scale).min(src as f64);
                let mut weights = Vec::new();
                let mut s = start.floor() as usize;
                while (s as f64) < end && s < src {
                    let overlap = end.min((s + 1) as f64) - start.max(s as f64);
                    if overlap > 0.0 {
                        weights.push((s, overlap / scale));
                    }
                    s += 1;
                }
                weights
            } else {
                // Linear between pixel centres, clamped at the borders.
                let pos = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
                let left = (pos.floor() as usize).min(src - 1);
                let right = (left + 1).min(src - 1);
                let frac = pos - left as f64;
                if right == left {
                    vec![(left, 1.0)]
                } else {
                    vec![(left, 1.0 - frac), (right, frac)]
                }
            }
        })
        .collect()
}

/// Resizes a greyscale image (area averaging when shrinking, linear when
/// growing; see the module documentation). Other layouts are converted to
/// grey first. Returns a copy when the size is unchanged.
///
/// # Panics
/// If `width` or `height` is zero (a programming error; [`prepare_face`]
/// checks it).
pub fn resize_gray(image: &Image, width: u32, height: u32) -> Image {
    assert!(width > 0 && height > 0, "target size must be at least 1x1");
    let gray;
    let image = if image.layout() == PixelLayout::Gray {
        image
    } else {
        gray = to_gray(image);
        &gray
    };
    if image.width() == width && image.height() == height {
        return image.clone();
    }
    let (sw, sh) = (image.width() as usize, image.height() as usize);
    let (dw, dh) = (width as usize, height as usize);
    let wx = axis_weights(sw, dw);
    let wy = axis_weights(sh, dh);
    let src = image.as_bytes();
    // Horizontal pass into f64 rows, then vertical.
    let mut horizontal = vec![0.0f64; sh * dw];
    for y in 0..sh {
        let row = &src[y * sw..(y + 1) * sw];
        for (x, weights) in wx.iter().enumerate() {
            horizontal[y * dw + x] = weights.iter().map(|&(s, w)| w * f64::from(row[s])).sum();
        }
    }
    let mut out = vec![0u8; dw * dh];
    for (y, weights) in wy.iter().enumerate() {
        for x in 0..dw {
            let v: f64 = weights
                .iter()
                .map(|&(s, w)| w * horizontal[s * dw + x])
                .sum();
            out[y * dw + x] = v.round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
    Image::from_vec(width, height, PixelLayout::Gray, out).expect("buffer sized for the target")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_shrink_is_the_block_mean() {
        let img =
            Image::from_vec(4, 2, PixelLayout::Gray, vec![0, 2, 10, 20, 4, 6, 30, 40]).unwrap();
        let out = resize_gray(&img, 2, 1);
        assert_eq!(out.as_bytes(), &[3, 25]);
    }

    #[test]
    fn prepare_crops_converts_and_resizes() {
        let img = Image::filled(50, 40, PixelLayout::Rgb, 200);
        let rect = FaceRect {
            x: 10,
            y: 5,
            width: 30,
            height: 30,
        };
        let face = prepare_face(&img, rect, (20, 24)).unwrap();
        assert_eq!(
            (face.width(), face.height(), face.layout()),
            (20, 24, PixelLayout::Gray)
        );
        assert!(face.as_bytes().iter().all(|&v| v == 200));
    }

    #[test]
    fn rectangles_are_clipped_or_rejected() {
        let img = Image::filled(10, 10, PixelLayout::Gray, 1);
        let clipped = FaceRect {
            x: 5,
            y: 5,
            width: 100,
            height: 100,
        };
        assert!(prepare_face(&img, clipped, (4, 4)).is_ok());
        let outside = FaceRect {
            x: 10,
            y: 0,
            width: 5,
            height: 5,
        };
        assert!(matches!(
            prepare_face(&img, outside, (4, 4)),
            Err(PrepareError::OutsideImage { .. })
        ));
        assert_eq!(
            prepare_face(&img, clipped, (0, 4)),
            Err(PrepareError::ZeroSize(0, 4))
        );
    }
}
