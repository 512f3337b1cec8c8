//! ITU-R BT.601 luma, bit-exact with OpenCV's `cvtColor(BGR2GRAY)`.

use crate::{Image, PixelLayout};

// OpenCV 4's fixed-point BT.601 weights for 8-bit images (15 fractional
// bits; checked against cv2 4.14 on a million random pixels). Pillow's "L"
// uses 16-bit weights of the same coefficients; the two differ by at most
// one level. We follow OpenCV so that the cascade detector sees exactly the
// pixels OpenCV's detector sees.
const R_WEIGHT: u32 = 9798;
const G_WEIGHT: u32 = 19235;
const B_WEIGHT: u32 = 3735;
const SHIFT: u32 = 15;

/// Luma of one RGB pixel (BT.601, OpenCV's rounding).
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * R_WEIGHT + g as u32 * G_WEIGHT + b as u32 * B_WEIGHT + (1 << (SHIFT - 1)))
        >> SHIFT) as u8
}

/// Single-thread ns per input pixel of [`grayscale`]: 1.4-1.5 measured at
/// 640x480 and 1920x1080 RGB (one-thread CPU time, `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`,
/// 2026-12-02; docs/limits-cost.md).
pub const COST_NS_PER_PIXEL: f64 = 1.5;

/// One luma channel ([`PixelLayout::Gray`]); alpha is dropped. What the
/// detector and recognizers take.
pub fn to_gray(image: &Image) -> Image {
    let c = image.channels();
    let data: Vec<u8> = match image.layout() {
        PixelLayout::Gray => image.as_bytes().to_vec(),
        PixelLayout::GrayAlpha => image.as_bytes().chunks_exact(2).map(|p| p[0]).collect(),
        PixelLayout::Rgb | PixelLayout::Rgba => image
            .as_bytes()
            .chunks_exact(c)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
    };
    Image::from_vec(image.width(), image.height(), PixelLayout::Gray, data)
        .expect("one byte per pixel of a valid image")
}

/// The `grayscale` filter: luma, keeping alpha (Rgb becomes Gray, Rgba
/// becomes GrayAlpha), as Pillow's `convert("L")` / `convert("LA")`.
pub fn grayscale(image: &Image) -> Image {
    match image.layout() {
        PixelLayout::Gray | PixelLayout::GrayAlpha => image.clone(),
        PixelLayout::Rgb => to_gray(image),
        PixelLayout::Rgba => {
            let data = image
                .as_bytes()
                .chunks_exact(4)
                .flat_map(|p| [luma(p[0], p[1], p[2]), p[3]])
                .collect();
            Image::from_vec(image.width(), image.height(), PixelLayout::GrayAlpha, data)
                .expect("two bytes per pixel of a valid image")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_opencv_fixed_point() {
        assert_eq!(luma(0, 0, 0), 0);
        assert_eq!(luma(255, 255, 255), 255);
        // cv2.cvtColor(np.array([[[b, g, r]]], np.uint8), COLOR_BGR2GRAY)
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
        // A pixel where 14-bit weights round differently from OpenCV 4.
        assert_eq!(luma(111, 200, 37), 155);
        assert_eq!(luma(3, 2, 1), 2);
    }

    #[test]
    fn conversions_drop_or_keep_alpha() {
        let img =
            Image::from_vec(2, 1, PixelLayout::Rgba, vec![255, 0, 0, 9, 0, 0, 255, 8]).unwrap();
        let g = to_gray(&img);
        assert_eq!(g.layout(), PixelLayout::Gray);
        assert_eq!(g.as_bytes(), &[76, 29]);
        let ga = grayscale(&img);
        assert_eq!(ga.layout(), PixelLayout::GrayAlpha);
        assert_eq!(ga.as_bytes(), &[76, 9, 29, 8]);
    }
}
