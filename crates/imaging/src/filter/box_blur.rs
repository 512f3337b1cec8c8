//! Box (mean) blur.

use super::convolve::{SymmetricKernel, convolve_separable_cancellable};
use crate::{Cancel, Cancelled, Image};

/// Estimated single-thread ns per sample of [`box_blur`]: the convolution's
/// cost at this radius (see
/// [`convolve::cost_ns_per_sample`](super::convolve::cost_ns_per_sample)).
/// `row_len` is the image's width x channels.
pub fn cost_ns_per_sample(radius: u32, row_len: usize) -> f64 {
    super::convolve::cost_ns_per_sample(radius as usize, row_len)
}

/// Replaces every channel value by the mean of its (2r+1) x (2r+1)
/// neighbourhood, borders reflected (OpenCV's `blur` with ksize 2r+1).
pub fn box_blur(image: &mut Image, radius: u32) {
    if box_blur_cancellable(image, radius, &Cancel::never()).is_err() {
        unreachable!("Cancel::never() is never raised");
    }
}

/// [`box_blur`], polling `cancel` between rows (see
/// [`convolve_separable_cancellable`]).
pub fn box_blur_cancellable(
    image: &mut Image,
    radius: u32,
    cancel: &Cancel,
) -> Result<(), Cancelled> {
    if radius == 0 {
        return Ok(());
    }
    let half = vec![1.0; radius as usize + 1];
    convolve_separable_cancellable(image, &SymmetricKernel::from_half(&half), cancel)
}
