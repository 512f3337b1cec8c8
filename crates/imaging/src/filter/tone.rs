//! Per-value tone changes: invert, brightness, contrast. Each builds a
//! 256-entry lookup table and applies it to the colour channels (alpha kept).

use crate::Image;

/// Single-thread ns per sample of [`invert`], [`brightness`] and
/// [`contrast`] (one table look-up): 0.46-0.52 measured on 1920x1080 RGB
/// (one-thread CPU time, `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`, 2026-12-02;
/// docs/limits-cost.md).
pub const COST_NS_PER_SAMPLE: f64 = 0.5;

fn apply_lut(image: &mut Image, lut: &[u8; 256]) {
    let c = image.channels();
    let colour = image.layout().color_channels();
    if colour == c {
        for v in image.as_bytes_mut() {
            *v = lut[*v as usize];
        }
    } else {
        for p in image.as_bytes_mut().chunks_exact_mut(c) {
            for v in &mut p[..colour] {
                *v = lut[*v as usize];
            }
        }
    }
}

fn lut(f: impl Fn(f32) -> f32) -> [u8; 256] {
    std::array::from_fn(|v| f(v as f32).round().clamp(0.0, 255.0) as u8)
}

/// Photographic negative: v becomes 255 - v.
pub fn invert(image: &mut Image) {
    apply_lut(image, &lut(|v| 255.0 - v));
}

/// Adds `delta` (-255..=255) to every colour value, clamped.
pub fn brightness(image: &mut Image, delta: i32) {
    apply_lut(image, &lut(|v| v + delta as f32));
}

/// Scales the distance from mid-grey: v becomes (v - 128) * factor + 128,
/// rounded and clamped. 1.0 changes nothing, 0.0 gives flat grey.
pub fn contrast(image: &mut Image, factor: f32) {
    apply_lut(image, &lut(|v| (v - 128.0) * factor + 128.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PixelLayout;

    #[test]
    fn tone_changes_keep_alpha() {
        let mut img = Image::from_vec(1, 1, PixelLayout::Rgba, vec![10, 128, 250, 77]).unwrap();
        invert(&mut img);
        assert_eq!(img.as_bytes(), &[245, 127, 5, 77]);
        brightness(&mut img, 20);
        assert_eq!(img.as_bytes(), &[255, 147, 25, 77]);
        contrast(&mut img, 2.0);
        assert_eq!(img.as_bytes(), &[255, 166, 0, 77]);
    }
}
