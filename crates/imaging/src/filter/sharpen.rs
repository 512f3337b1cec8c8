//! Unsharp-mask sharpening.

use super::gaussian::gaussian_blur_cancellable;
use crate::{Cancel, Cancelled, Image};

/// Single-thread ns per sample of the unsharp mask besides its blur (the
/// copy and the combining pass, in f32): sharpen=1..20:1 on 1920x1080 RGB
/// took 5.3-8.4 ns per sample more than blur at the same sigma (one-thread CPU
/// time, `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`, 2026-12-02; docs/limits-cost.md).
pub const COST_NS_PER_SAMPLE: f64 = 6.5;

/// Estimated single-thread ns per sample of [`sharpen`]; `row_len` is the
/// image's width x channels.
pub fn cost_ns_per_sample(sigma: f32, row_len: usize) -> f64 {
    COST_NS_PER_SAMPLE + super::gaussian::cost_ns_per_sample(sigma, row_len)
}

/// Unsharp mask: out = in + amount * (in - gaussian(in, sigma)), rounded and
/// clamped; alpha is left alone. `amount` 1.0 doubles local contrast at the
/// scale of `sigma`.
pub fn sharpen(image: &mut Image, sigma: f32, amount: f32) {
    if sharpen_cancellable(image, sigma, amount, &Cancel::never()).is_err() {
        unreachable!("Cancel::never() is never raised");
    }
}

/// [`sharpen`], polling `cancel` between rows of the blur and of the
/// combining pass; `Err(Cancelled)` once it is raised (the image is then
/// partly sharpened and should be dropped).
pub fn sharpen_cancellable(
    image: &mut Image,
    sigma: f32,
    amount: f32,
    cancel: &Cancel,
) -> Result<(), Cancelled> {
    let mut blurred = image.clone();
    gaussian_blur_cancellable(&mut blurred, sigma, cancel)?;
    let c = image.channels();
    let row_len = image.row_len();
    let colour = image.layout().color_channels();
    for (row, blurred_row) in image
        .as_bytes_mut()
        .chunks_exact_mut(row_len)
        .zip(blurred.as_bytes().chunks_exact(row_len))
    {
        cancel.check()?;
        for (p, b) in row.chunks_exact_mut(c).zip(blurred_row.chunks_exact(c)) {
            for ch in 0..colour {
                let v = p[ch] as f32;
                p[ch] = (v + amount * (v - b[ch] as f32)).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(())
}
