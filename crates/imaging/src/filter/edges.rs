//! Sobel edge magnitude.

use rayon::prelude::*;

use super::convolve::reflect_101;
use super::grayscale::to_gray;
use crate::{Cancel, Cancelled, Image, PixelLayout};

/// Single-thread ns per input pixel of [`sobel_edges`] (the luma and the
/// gradient): 16-17 measured at 640x480 and 1920x1080 RGB (one-thread CPU
/// time, `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`, 2026-12-02; docs/limits-cost.md).
pub const COST_NS_PER_PIXEL: f64 = 17.0;

/// Gradient magnitude of the luma, sqrt(gx^2 + gy^2) with 3x3 Sobel
/// kernels and reflected borders (as OpenCV's `Sobel(ksize=3)`), rounded and
/// clamped to 255. The result is a one-channel grey image.
pub fn sobel_edges(image: &Image) -> Image {
    match sobel_edges_cancellable(image, &Cancel::never()) {
        Ok(v) => v,
        Err(Cancelled) => unreachable!("Cancel::never() is never raised"),
    }
}

/// [`sobel_edges`], polling `cancel` before each output row of the
/// gradient; `Err(Cancelled)` once it is raised.
pub fn sobel_edges_cancellable(image: &Image, cancel: &Cancel) -> Result<Image, Cancelled> {
    let gray = to_gray(image);
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let src = gray.as_bytes();
    let mut out = vec![0u8; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        if cancel.is_cancelled() {
            return;
        }
        let up = &src[reflect_101(y as isize - 1, h) * w..][..w];
        let mid = &src[y * w..][..w];
        let down = &src[reflect_101(y as isize + 1, h) * w..][..w];
        for (x, o) in row.iter_mut().enumerate() {
            let l = reflect_101(x as isize - 1, w);
            let r = reflect_101(x as isize + 1, w);
            let px = |row: &[u8], i: usize| row[i] as i32;
            let gx = (px(up, r) - px(up, l))
                + 2 * (px(mid, r) - px(mid, l))
                + (px(down, r) - px(down, l));
            let gy = (px(down, l) - px(up, l))
                + 2 * (px(down, x) - px(up, x))
                + (px(down, r) - px(up, r));
            let m = ((gx * gx + gy * gy) as f32).sqrt();
            *o = m.round().min(255.0) as u8;
        }
    });
    cancel.check()?;
    Ok(
        Image::from_vec(gray.width(), gray.height(), PixelLayout::Gray, out)
            .expect("same size as input"),
    )
}
