//! Gaussian blur.

use super::convolve::{SymmetricKernel, convolve_separable_cancellable};
use crate::{Cancel, Cancelled, Image};

/// The sampled Gaussian kernel OpenCV uses for 8-bit images: 2r+1 taps with
/// 2r+1 = round(6 sigma + 1) made odd (31 taps at sigma 5), weights
/// exp(-x^2 / (2 sigma^2)) normalised to sum to one.
pub fn gaussian_kernel(sigma: f32) -> SymmetricKernel {
    let radius = kernel_radius(sigma);
    let sigma = sigma as f64;
    let half: Vec<f64> = (0..=radius)
        .map(|x| (-((x * x) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    SymmetricKernel::from_half(&half)
}

/// Radius of [`gaussian_kernel`]`(sigma)`: 2r+1 = round(6 sigma + 1) made odd.
pub fn kernel_radius(sigma: f32) -> usize {
    if sigma.is_nan() || sigma <= 0.0 {
        return 0;
    }
    (((sigma as f64 * 6.0 + 1.0).round() as usize) | 1) / 2
}

/// Estimated single-thread ns per sample of [`gaussian_blur`]: the
/// convolution's cost at the kernel's radius (see
/// [`convolve::cost_ns_per_sample`](super::convolve::cost_ns_per_sample)).
/// `row_len` is the image's width x channels.
pub fn cost_ns_per_sample(sigma: f32, row_len: usize) -> f64 {
    super::convolve::cost_ns_per_sample(kernel_radius(sigma), row_len)
}

/// Blurs every channel with a Gaussian of standard deviation `sigma`
/// (the meaning of Pillow's `GaussianBlur(radius)` and OpenCV's
/// `GaussianBlur(img, (0, 0), sigma)`), borders reflected as OpenCV's
/// BORDER_REFLECT_101. Sigma below about 0.1 leaves the image unchanged.
pub fn gaussian_blur(image: &mut Image, sigma: f32) {
    if gaussian_blur_cancellable(image, sigma, &Cancel::never()).is_err() {
        unreachable!("Cancel::never() is never raised");
    }
}

/// [`gaussian_blur`], polling `cancel` between rows (see
/// [`convolve_separable_cancellable`]).
pub fn gaussian_blur_cancellable(
    image: &mut Image,
    sigma: f32,
    cancel: &Cancel,
) -> Result<(), Cancelled> {
    if sigma.is_nan() || sigma <= 0.0 {
        return Ok(());
    }
    convolve_separable_cancellable(image, &gaussian_kernel(sigma), cancel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_size_follows_opencv_rule() {
        assert_eq!(gaussian_kernel(5.0).radius(), 15);
        assert_eq!(gaussian_kernel(1.0).radius(), 3);
        assert_eq!(gaussian_kernel(0.05).radius(), 0);
        let k = gaussian_kernel(2.0);
        let sum: f32 = k.half()[0] + 2.0 * k.half()[1..].iter().sum::<f32>();
        assert!((sum - 1.0).abs() < 1e-6);
    }
}
