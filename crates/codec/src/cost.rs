//! What a decode costs in time, estimated from the header alone, for the
//! node's per-request budget (`--max-request-cost`, `docs/limits.md`).
//!
//! The figures are single-thread nanoseconds per pixel (or per byte of
//! decoder output), from the decodes measured with
//! `cargo run --release -p ocellus-codec --example decode_peak` on
//! 2026-12-02 (`docs/limits-decode.md`, "Time"): upper figures, taken on
//! the shared 2-core machine under load, so a quiet machine decodes in
//! about half of this.

use crate::{ImageFormat, ImageInfo};

/// JPEG, baseline: 4000x3000 in 0.57 s.
const JPEG_NS_PER_PIXEL: f64 = 48.0;
/// JPEG, progressive: 4000x3000 in 0.97 s with 10 scans.
const JPEG_PROGRESSIVE_NS_PER_PIXEL: f64 = 70.0;
/// Each progressive scan beyond the tenth: 1.0 ms per megapixel (64 MP).
const JPEG_NS_PER_SCAN_PIXEL: f64 = 1.0;
/// PNG, per byte of decoder output: 5000x5000 RGB8 (75 MB) in 0.68 s.
const PNG_NS_PER_BYTE: f64 = 9.0;
/// PNG at 16 bits, per byte, the reduction to 8 bits included: 5000x5000
/// RGBA16 (200 MB) in 3.7 s.
const PNG16_NS_PER_BYTE: f64 = 18.5;
/// WebP (`image-webp`), lossless or lossy: 5000x5000 in 9.7 to 12.5 s.
const WEBP_NS_PER_PIXEL: f64 = 500.0;
/// GIF, BMP, TIFF, PNM: not measured; the PNG figure per byte, doubled.
const OTHER_NS_PER_BYTE: f64 = 18.0;

impl ImageInfo {
    /// Estimated single-thread nanoseconds to decode this image.
    pub fn decode_cost_ns(&self) -> u64 {
        let pixels = self.pixels() as f64;
        let bytes = pixels * f64::from(self.channels) * f64::from(self.bytes_per_sample);
        let ns = match self.format {
            ImageFormat::Jpeg if self.progressive => {
                let extra_scans = f64::from(self.scans.saturating_sub(10));
                pixels * (JPEG_PROGRESSIVE_NS_PER_PIXEL + extra_scans * JPEG_NS_PER_SCAN_PIXEL)
            }
            ImageFormat::Jpeg => pixels * JPEG_NS_PER_PIXEL,
            ImageFormat::Png if self.bytes_per_sample > 1 => bytes * PNG16_NS_PER_BYTE,
            ImageFormat::Png => bytes * PNG_NS_PER_BYTE,
            ImageFormat::WebP => pixels * WEBP_NS_PER_PIXEL,
            _ => bytes * OTHER_NS_PER_BYTE,
        };
        ns.min(u64::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use crate::inspect;

    #[test]
    fn decode_cost_grows_with_pixels_and_depth() {
        let png = |w, h| {
            let image = ocellus_imaging::Image::from_vec(
                w,
                h,
                ocellus_imaging::PixelLayout::Rgb,
                vec![0; (w * h * 3) as usize],
            )
            .unwrap();
            crate::encode(&image, crate::ImageFormat::Png, &Default::default()).unwrap()
        };
        let small = inspect(&png(100, 100)).unwrap().decode_cost_ns();
        let large = inspect(&png(1000, 1000)).unwrap().decode_cost_ns();
        assert!(small > 0);
        assert!(large > 90 * small && large < 110 * small, "{small} {large}");
        // 1000 x 1000 RGB PNG: 3 MB at 9 ns a byte.
        assert_eq!(large, 27_000_000);
    }
}
