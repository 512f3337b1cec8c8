//! Unsharp-mask sharpening.

use super::gaussian::gaussian_blur;
use crate::Image;

/// Single-thread ns per sample of the unsharp mask besides its blur (the
/// copy and the combining pass). Measured with the `cost_table` example
/// (docs/limits-cost.md).
pub const COST_NS_PER_SAMPLE: f64 = 1.5;

/// Estimated single-thread ns per sample of [`sharpen`].
pub fn cost_ns_per_sample(sigma: f32) -> f64 {
    COST_NS_PER_SAMPLE + super::gaussian::cost_ns_per_sample(sigma)
}

/// Unsharp mask: out = in + amount * (in - gaussian(in, sigma)), rounded and
/// clamped; alpha is left alone. `amount` 1.0 doubles local contrast at the
/// scale of `sigma`.
pub fn sharpen(image: &mut Image, sigma: f32, amount: f32) {
    let mut blurred = image.clone();
    gaussian_blur(&mut blurred, sigma);
    let c = image.channels();
    let colour = image.layout().color_channels();
    for (p, b) in image
        .as_bytes_mut()
        .chunks_exact_mut(c)
        .zip(blurred.as_bytes().chunks_exact(c))
    {
        for ch in 0..colour {
            let v = p[ch] as f32;
            p[ch] = (v + amount * (v - b[ch] as f32)).round().clamp(0.0, 255.0) as u8;
        }
    }
}
