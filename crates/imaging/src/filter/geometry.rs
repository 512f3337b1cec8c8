//! Lossless geometric changes: rotation by quarter turns, mirroring, cropping.

use thiserror::Error;

use crate::{Cancel, Cancelled, Image};

/// A clockwise rotation by a multiple of 90 degrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// 90 degrees clockwise.
    Quarter,
    /// 180 degrees.
    Half,
    /// 270 degrees clockwise (90 counter-clockwise).
    ThreeQuarters,
}

/// A mirror axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flip {
    /// Left and right swap.
    Horizontal,
    /// Top and bottom swap.
    Vertical,
}

/// A crop rectangle that does not fit in the image.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("crop {width}x{height}+{x}+{y} does not fit in a {image_width}x{image_height} image")]
pub struct CropOutOfBounds {
    /// Requested width.
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Requested left edge.
    pub x: u32,
    /// Requested top edge.
    pub y: u32,
    /// Width of the image.
    pub image_width: u32,
    /// Height of the image.
    pub image_height: u32,
}

// The figures below are one-thread CPU times of
// `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`
// on 640x480 and 1920x1080 RGB, 2026-12-02 (docs/limits-cost.md).

/// Single-thread ns per pixel of [`rotate`]: 4.5-5.7 measured for quarter
/// turns, 3.8 for a half turn.
pub const ROTATE_COST_NS_PER_PIXEL: f64 = 5.0;

/// Single-thread ns per sample of a horizontal [`flip`] (swaps value by
/// value): 0.62 measured.
pub const FLIP_H_COST_NS_PER_SAMPLE: f64 = 0.65;

/// Single-thread ns per sample of a vertical [`flip`] (swaps whole rows):
/// 0.08 measured.
pub const FLIP_V_COST_NS_PER_SAMPLE: f64 = 0.08;

/// Single-thread ns per output sample of [`crop`] (row copies): 0.09-0.12
/// measured.
pub const CROP_COST_NS_PER_SAMPLE: f64 = 0.12;

/// Rotates clockwise by a quarter, half or three-quarter turn.
pub fn rotate(image: &Image, rotation: Rotation) -> Image {
    match rotate_cancellable(image, rotation, &Cancel::never()) {
        Ok(v) => v,
        Err(Cancelled) => unreachable!("Cancel::never() is never raised"),
    }
}

/// [`rotate`], polling `cancel` before each output row; `Err(Cancelled)`
/// once it is raised.
pub fn rotate_cancellable(
    image: &Image,
    rotation: Rotation,
    cancel: &Cancel,
) -> Result<Image, Cancelled> {
    let (w, h, c) = (
        image.width() as usize,
        image.height() as usize,
        image.channels(),
    );
    let src = image.as_bytes();
    let (ow, oh) = match rotation {
        Rotation::Half => (w, h),
        _ => (h, w),
    };
    let mut out = vec![0u8; src.len()];
    for (oy, row) in out.chunks_exact_mut(ow * c).enumerate() {
        cancel.check()?;
        for ox in 0..ow {
            let (sx, sy) = match rotation {
                Rotation::Quarter => (oy, h - 1 - ox),
                Rotation::Half => (w - 1 - ox, h - 1 - oy),
                Rotation::ThreeQuarters => (w - 1 - oy, ox),
            };
            row[ox * c..(ox + 1) * c].copy_from_slice(&src[(sy * w + sx) * c..][..c]);
        }
    }
    Ok(Image::from_vec(ow as u32, oh as u32, image.layout(), out).expect("same pixel count"))
}

/// Mirrors the image in place.
pub fn flip(image: &mut Image, axis: Flip) {
    let c = image.channels();
    let row_len = image.row_len();
    let h = image.height() as usize;
    let data = image.as_bytes_mut();
    match axis {
        Flip::Horizontal => {
            for row in data.chunks_exact_mut(row_len) {
                let n = row_len / c;
                for i in 0..n / 2 {
                    for ch in 0..c {
                        row.swap(i * c + ch, (n - 1 - i) * c + ch);
                    }
                }
            }
        }
        Flip::Vertical => {
            for y in 0..h / 2 {
                let (top, bottom) = data.split_at_mut((h - 1 - y) * row_len);
                top[y * row_len..(y + 1) * row_len].swap_with_slice(&mut bottom[..row_len]);
            }
        }
    }
}

/// Cuts out the `width` x `height` rectangle whose top-left corner is (x, y).
pub fn crop(
    image: &Image,
    width: u32,
    height: u32,
    x: u32,
    y: u32,
) -> Result<Image, CropOutOfBounds> {
    let fits = width > 0
        && height > 0
        && x.checked_add(width).is_some_and(|r| r <= image.width())
        && y.checked_add(height).is_some_and(|b| b <= image.height());
    if !fits {
        return Err(CropOutOfBounds {
            width,
            height,
            x,
            y,
            image_width: image.width(),
            image_height: image.height(),
        });
    }
    let c = image.channels();
    let mut data = Vec::with_capacity(width as usize * height as usize * c);
    for row in y..y + height {
        data.extend_from_slice(&image.row(row)[x as usize * c..(x + width) as usize * c]);
    }
    Ok(Image::from_vec(width, height, image.layout(), data).expect("crop size checked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PixelLayout;

    fn img() -> Image {
        // 3x2: 1 2 3 / 4 5 6
        Image::from_vec(3, 2, PixelLayout::Gray, vec![1, 2, 3, 4, 5, 6]).unwrap()
    }

    #[test]
    fn rotations_are_clockwise() {
        assert_eq!(
            rotate(&img(), Rotation::Quarter).as_bytes(),
            &[4, 1, 5, 2, 6, 3]
        );
        assert_eq!(
            rotate(&img(), Rotation::Half).as_bytes(),
            &[6, 5, 4, 3, 2, 1]
        );
        assert_eq!(
            rotate(&img(), Rotation::ThreeQuarters).as_bytes(),
            &[3, 6, 2, 5, 1, 4]
        );
    }

    #[test]
    fn flips_and_crop() {
        let mut a = img();
        flip(&mut a, Flip::Horizontal);
        assert_eq!(a.as_bytes(), &[3, 2, 1, 6, 5, 4]);
        let mut b = img();
        flip(&mut b, Flip::Vertical);
        assert_eq!(b.as_bytes(), &[4, 5, 6, 1, 2, 3]);
        assert_eq!(crop(&img(), 2, 1, 1, 1).unwrap().as_bytes(), &[5, 6]);
        assert!(crop(&img(), 3, 1, 1, 0).is_err());
        assert!(crop(&img(), 0, 1, 0, 0).is_err());
    }
}
