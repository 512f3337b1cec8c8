//! Median filter.
//!
//! Written by hand: no maintained crate offers an 8-bit median for large
//! radii on interleaved images. A sliding 256-bin histogram per channel
//! (Huang's method) costs O(r) per pixel instead of the O(r^2 log r) of
//! sorting each window, and is independent of the image content.

use rayon::prelude::*;

use crate::{Cancel, Cancelled, Image};

// Fitted to the one-thread CPU times of
// `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`
// (median=1..50 on 1920x1080 RGB, 2026-12-02; docs/limits-cost.md). The
// time depends on the content: on gradients plus noise 72-93 ns per sample
// at r=1, 75-116 at r=3 and r=10, 226-348 at r=50; on flat white 131-160 at
// r=1 and 707-840 at r=50 (every update hits the same bin, so they wait on
// each other, and the median scan walks all 256 bins). The spread is the
// machine's load from run to run. The figures sit between the two contents
// so that both stay within about 2x; flat white at large radii is the one
// case near 2x under (a 1x1 image resized up is flat, so it is the case a
// hostile pipeline gets).

/// Single-thread ns of one histogram update (one increment or decrement)
/// of [`median_filter`]: 0.8-1.2 measured on noisy content, 2.9-3.4 on flat.
pub const COST_NS_PER_UPDATE: f64 = 1.6;

/// Single-thread ns of finding one median in the histogram (a scan of up to
/// 256 bins): 70-85 measured on mid-grey content, 125-150 on white.
pub const COST_NS_PER_MEDIAN: f64 = 100.0;

/// Estimated single-thread ns of [`median_filter`] on a `width` x `height`
/// image with `channels` channels: per row and channel, (2r+1)^2 updates
/// to fill the histogram, then per pixel 2 (2r+1) updates and a median.
pub fn cost_ns(width: u32, height: u32, channels: u8, radius: u32) -> f64 {
    if radius == 0 {
        return 0.0;
    }
    let side = 2.0 * radius as f64 + 1.0;
    let rows = height as f64 * channels as f64;
    let per_row = side * side * COST_NS_PER_UPDATE
        + width as f64 * (2.0 * side * COST_NS_PER_UPDATE + COST_NS_PER_MEDIAN);
    rows * per_row
}

/// Replaces every channel value by the median of its (2r+1) x (2r+1)
/// neighbourhood; pixels beyond the border repeat the edge (OpenCV's
/// `medianBlur`). Alpha is filtered like the other channels.
pub fn median_filter(image: &mut Image, radius: u32) {
    if median_filter_cancellable(image, radius, &Cancel::never()).is_err() {
        unreachable!("Cancel::never() is never raised");
    }
}

/// [`median_filter`], polling `cancel` before each output row: once it is
/// raised the remaining rows are skipped and `Err(Cancelled)` is returned
/// (the image is then partly filtered and should be dropped).
pub fn median_filter_cancellable(
    image: &mut Image,
    radius: u32,
    cancel: &Cancel,
) -> Result<(), Cancelled> {
    if radius == 0 {
        return Ok(());
    }
    let (w, h, c) = (
        image.width() as usize,
        image.height() as usize,
        image.channels(),
    );
    let r = radius as usize;
    let src = image.as_bytes().to_vec();
    let row_len = w * c;
    let half = ((2 * r + 1) * (2 * r + 1)) / 2;
    image
        .as_bytes_mut()
        .par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(y, out)| {
            if cancel.is_cancelled() {
                return;
            }
            let rows: Vec<&[u8]> = (0..=2 * r)
                .map(|i| {
                    let sy = (y + i).saturating_sub(r).min(h - 1);
                    &src[sy * row_len..(sy + 1) * row_len]
                })
                .collect();
            let clamp_x = |x: isize| x.clamp(0, w as isize - 1) as usize;
            for ch in 0..c {
                let mut hist = [0u16; 256];
                for dx in -(r as isize)..=(r as isize) {
                    let sx = clamp_x(dx);
                    for row in &rows {
                        hist[row[sx * c + ch] as usize] += 1;
                    }
                }
                out[ch] = median_of(&hist, half);
                for x in 1..w {
                    let gone = clamp_x(x as isize - r as isize - 1);
                    let new = clamp_x(x as isize + r as isize);
                    for row in &rows {
                        hist[row[gone * c + ch] as usize] -= 1;
                        hist[row[new * c + ch] as usize] += 1;
                    }
                    out[x * c + ch] = median_of(&hist, half);
                }
            }
        });
    cancel.check()
}

/// The value at rank `half` (0-based) of the histogram.
#[inline]
fn median_of(hist: &[u16; 256], half: usize) -> u8 {
    let mut seen = 0usize;
    for (v, &n) in hist.iter().enumerate() {
        seen += n as usize;
        if seen > half {
            return v as u8;
        }
    }
    255
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PixelLayout;

    #[test]
    fn removes_salt_and_keeps_edges() {
        let mut data = vec![0u8; 10 * 10];
        for y in 0..10 {
            for x in 5..10 {
                data[y * 10 + x] = 200;
            }
        }
        data[2 * 10 + 2] = 255; // salt
        let mut img = Image::from_vec(10, 10, PixelLayout::Gray, data.clone()).unwrap();
        median_filter(&mut img, 1);
        data[2 * 10 + 2] = 0;
        assert_eq!(img.as_bytes(), &data[..]);
    }

    #[test]
    fn brute_force_agreement() {
        let (w, h) = (13usize, 9usize);
        let data: Vec<u8> = (0..w * h).map(|i| ((i * 7919) % 251) as u8).collect();
        let mut img = Image::from_vec(w as u32, h as u32, PixelLayout::Gray, data.clone()).unwrap();
        median_filter(&mut img, 2);
        for y in 0..h {
            for x in 0..w {
                let mut win = Vec::new();
                for dy in -2isize..=2 {
                    for dx in -2isize..=2 {
                        let sy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
                        let sx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
                        win.push(data[sy * w + sx]);
                    }
                }
                win.sort_unstable();
                assert_eq!(img.as_bytes()[y * w + x], win[12], "at {x},{y}");
            }
        }
    }
}
