//! ITU-R BT.601 luma, bit-exact with OpenCV's `cvtColor(BGR2GRAY)`.

use crate::{Image, PixelLayout};

// OpenCV's fixed-point BT.601 weights (14 fractional bits). Pillow's "L" uses
// 16-bit weights of the same coefficients; the two differ by at most one
// level. We follow OpenCV so that the cascade detector sees exactly the
// pixels OpenCV's detector sees.
const R_WEIGHT: u32 = 4899;
const G_WEIGHT: u32 = 9617;
const B_WEIGHT: u32 = 1868;
const SHIFT: u32 = 14;

/// Luma of one RGB pixel (BT.601, OpenCV's rounding).
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * R_WEIGHT + g as u32 * G_WEIGHT + b as u32 * B_WEIGHT + (1 << (SHIFT - 1)))
        >> SHIFT) as u8
}

/// Converts to one luma channel ([`PixelLayout::Gray`]); alpha is dropped.
/// Grey input is returned as it is (its luma channel copied).
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

/// The `grayscale` filter: luma in every colour channel, layout and alpha kept,
/// so that a pipeline can go on with colour filters afterwards.
pub fn grayscale(image: &mut Image) {
    let layout = image.layout();
    if layout.color_channels() == 1 {
        return;
    }
    let c = layout.channels();
    for p in image.as_bytes_mut().chunks_exact_mut(c) {
        let y = luma(p[0], p[1], p[2]);
        p[0] = y;
        p[1] = y;
        p[2] = y;
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
    }

    #[test]
    fn to_gray_keeps_size_and_drops_alpha() {
        let img =
            Image::from_vec(2, 1, PixelLayout::Rgba, vec![255, 0, 0, 9, 0, 0, 255, 9]).unwrap();
        let g = to_gray(&img);
        assert_eq!(g.layout(), PixelLayout::Gray);
        assert_eq!(g.as_bytes(), &[76, 29]);
    }
}
