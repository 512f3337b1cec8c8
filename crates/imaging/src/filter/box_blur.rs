//! Box (mean) blur.

use super::convolve::{SymmetricKernel, convolve_separable};
use crate::Image;

/// Estimated single-thread ns per sample of [`box_blur`]: the convolution's
/// cost at this radius (see
/// [`convolve::cost_ns_per_sample`](super::convolve::cost_ns_per_sample)).
pub fn cost_ns_per_sample(radius: u32) -> f64 {
    super::convolve::cost_ns_per_sample(radius as usize)
}

/// Replaces every channel value by the mean of its (2r+1) x (2r+1)
/// neighbourhood, borders reflected (OpenCV's `blur` with ksize 2r+1).
pub fn box_blur(image: &mut Image, radius: u32) {
    if radius == 0 {
        return;
    }
    let half = vec![1.0; radius as usize + 1];
    convolve_separable(image, &SymmetricKernel::from_half(&half));
}
