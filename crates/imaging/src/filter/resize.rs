//! Resampling to a new size with a convolution filter (Lanczos3 or bilinear).
//!
//! The filter is widened by the scale factor when shrinking, so downscaling
//! averages every source pixel (no aliasing). Coefficients and arithmetic
//! follow the widely used scheme of Pillow's `Image.resize`: double-precision
//! weights turned into 22-bit fixed point, a horizontal pass rounded to 8
//! bits, then a vertical pass. Matching that arithmetic lets the reference
//! tests compare with Pillow exactly.

use rayon::prelude::*;

use crate::{Cancel, Cancelled, Image};

/// The interpolation kernel of [`resize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResizeFilter {
    /// Windowed sinc with three lobes: sharp, the default.
    #[default]
    Lanczos3,
    /// Triangle filter: faster, softer.
    Bilinear,
}

impl ResizeFilter {
    fn support(self) -> f64 {
        match self {
            ResizeFilter::Lanczos3 => 3.0,
            ResizeFilter::Bilinear => 1.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            ResizeFilter::Lanczos3 => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
            ResizeFilter::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

// The figures below were fitted to the one-thread CPU times of
// `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`
// (2026-12-02; docs/limits-cost.md): 1920x1080 RGB to 3840x2160 with
// Lanczos3 (7 taps) and bilinear (3 taps) give the per-tap costs from their
// difference and the per-sample costs from the rest; halving (13 taps), a
// vertical-only halving and shrinking to 192x108 (61 taps) and 16x9 (721
// taps) then agree. Resize varied most from run to run on the loaded
// machine (halving 1920x1080: 41 to 82 ms of CPU), so the figures sit
// about 25 % above the quietest run.

/// Single-thread ns per output sample of the horizontal pass of [`resize`],
/// apart from the taps.
pub const H_COST_NS_PER_SAMPLE: f64 = 1.6;
/// Single-thread ns per tap per output sample of the horizontal pass.
pub const H_COST_NS_PER_TAP: f64 = 0.85;
/// Single-thread ns per output sample of the vertical pass, apart from the taps.
pub const V_COST_NS_PER_SAMPLE: f64 = 1.6;
/// Single-thread ns per tap per output sample of the vertical pass.
pub const V_COST_NS_PER_TAP: f64 = 0.65;
/// Single-thread ns per sample of the copy made when the size is unchanged
/// (as [`crop`](super::geometry::crop), a row copy).
pub const COPY_COST_NS_PER_SAMPLE: f64 = 0.12;

/// Source samples one output sample reads along an axis of `in_size`
/// resampled to `out_size` (the filter's support, widened when shrinking,
/// and never more than the source).
fn taps_along(in_size: u32, out_size: u32, filter: ResizeFilter) -> f64 {
    let scale = in_size as f64 / out_size.max(1) as f64;
    let taps = (filter.support() * scale.max(1.0)).ceil() * 2.0 + 1.0;
    taps.min(in_size as f64)
}

/// Estimated single-thread ns of [`resize`] from `in_w` x `in_h` to
/// `out_w` x `out_h`, `channels` channels: a horizontal pass producing
/// out_w x in_h samples, then a vertical pass producing out_w x out_h, each
/// costing per sample a constant plus one multiply-add per tap.
pub fn cost_ns(
    in_w: u32,
    in_h: u32,
    channels: u8,
    out_w: u32,
    out_h: u32,
    filter: ResizeFilter,
) -> f64 {
    let c = channels as f64;
    let mut ns = 0.0;
    if out_w != in_w {
        let samples = out_w as f64 * in_h as f64 * c;
        ns +=
            samples * (H_COST_NS_PER_SAMPLE + H_COST_NS_PER_TAP * taps_along(in_w, out_w, filter));
    }
    if out_h != in_h {
        let samples = out_w as f64 * out_h as f64 * c;
        ns +=
            samples * (V_COST_NS_PER_SAMPLE + V_COST_NS_PER_TAP * taps_along(in_h, out_h, filter));
    }
    if out_w == in_w && out_h == in_h {
        ns += in_w as f64 * in_h as f64 * c * COPY_COST_NS_PER_SAMPLE;
    }
    ns
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output index: the first source index and the fixed-point
/// weights of the source samples it averages.
struct Coefficients {
    starts: Vec<usize>,
    /// `taps` weights per output index (zero-padded).
    weights: Vec<i32>,
    taps: usize,
}

fn coefficients(in_size: usize, out_size: usize, filter: ResizeFilter) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let taps = support.ceil() as usize * 2 + 1;
    let mut starts = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * taps];
    let mut raw = vec![0f64; taps];
    for (out, w) in weights.chunks_exact_mut(taps).enumerate() {
        let centre = (out as f64 + 0.5) * scale;
        // `as isize` truncates toward zero, as the reference does.
        let min = ((centre - support + 0.5) as isize).max(0) as usize;
        let max = ((centre + support + 0.5) as isize).min(in_size as isize) as usize;
        let n = max.saturating_sub(min).min(taps);
        let mut total = 0.0;
        for (i, r) in raw[..n].iter_mut().enumerate() {
            *r = filter.weight((i as f64 + min as f64 - centre + 0.5) / filter_scale);
            total += *r;
        }
        for (dst, r) in w.iter_mut().zip(&raw[..n]) {
            let k = if total != 0.0 { r / total } else { 0.0 };
            let fixed = k * (1u32 << PRECISION_BITS) as f64;
            *dst = if k < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        starts.push(min);
    }
    Coefficients {
        starts,
        weights,
        taps,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

fn resize_horizontal(
    image: &Image,
    out_w: usize,
    filter: ResizeFilter,
    cancel: &Cancel,
) -> Result<Image, Cancelled> {
    let (w, h, c) = (
        image.width() as usize,
        image.height() as usize,
        image.channels(),
    );
    let co = coefficients(w, out_w, filter);
    let mut out = vec![0u8; out_w * h * c];
    out.par_chunks_mut(out_w * c)
        .enumerate()
        .for_each(|(y, row)| {
            if cancel.is_cancelled() {
                return;
            }
            let src = image.row(y as u32);
            for (x, px) in row.chunks_exact_mut(c).enumerate() {
                let start = co.starts[x];
                let k = &co.weights[x * co.taps..(x + 1) * co.taps];
                let n = co.taps.min(w - start);
                for (ch, p) in px.iter_mut().enumerate() {
                    let mut acc = 1i32 << (PRECISION_BITS - 1);
                    for (i, &kk) in k[..n].iter().enumerate() {
                        acc += src[(start + i) * c + ch] as i32 * kk;
                    }
                    *p = clip8(acc);
                }
            }
        });
    cancel.check()?;
    Ok(Image::from_vec(out_w as u32, h as u32, image.layout(), out).expect("computed size"))
}

fn resize_vertical(
    image: &Image,
    out_h: usize,
    filter: ResizeFilter,
    cancel: &Cancel,
) -> Result<Image, Cancelled> {
    let (h, row_len) = (image.height() as usize, image.row_len());
    let co = coefficients(h, out_h, filter);
    let mut out = vec![0u8; out_h * row_len];
    out.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(y, row)| {
            if cancel.is_cancelled() {
                return;
            }
            let start = co.starts[y];
            let k = &co.weights[y * co.taps..(y + 1) * co.taps];
            let n = co.taps.min(h - start);
            let mut acc = vec![1i32 << (PRECISION_BITS - 1); row_len];
            for (i, &kk) in k[..n].iter().enumerate() {
                let src = image.row((start + i) as u32);
                for (a, &s) in acc.iter_mut().zip(src) {
                    *a += s as i32 * kk;
                }
            }
            for (o, a) in row.iter_mut().zip(&acc) {
                *o = clip8(*a);
            }
        });
    cancel.check()?;
    Ok(Image::from_vec(image.width(), out_h as u32, image.layout(), out).expect("computed size"))
}

/// Resamples `image` to `width` x `height` (both at least 1) with `filter`.
/// Each channel, alpha included, is resampled independently.
pub fn resize(image: &Image, width: u32, height: u32, filter: ResizeFilter) -> Image {
    match resize_cancellable(image, width, height, filter, &Cancel::never()) {
        Ok(v) => v,
        Err(Cancelled) => unreachable!("Cancel::never() is never raised"),
    }
}

/// [`resize`], polling `cancel` before each output row of both passes;
/// `Err(Cancelled)` once it is raised.
pub fn resize_cancellable(
    image: &Image,
    width: u32,
    height: u32,
    filter: ResizeFilter,
    cancel: &Cancel,
) -> Result<Image, Cancelled> {
    let (w, h) = (width.max(1) as usize, height.max(1) as usize);
    let horizontal = if w != image.width() as usize {
        Some(resize_horizontal(image, w, filter, cancel)?)
    } else {
        None
    };
    let src = horizontal.as_ref().unwrap_or(image);
    if h != src.height() as usize {
        resize_vertical(src, h, filter, cancel)
    } else {
        Ok(horizontal.unwrap_or_else(|| image.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PixelLayout;

    #[test]
    fn flat_image_stays_flat_at_any_size() {
        let img = Image::filled(37, 23, PixelLayout::Rgb, 200);
        for (w, h) in [(1, 1), (5, 100), (74, 46), (36, 22), (300, 7)] {
            for f in [ResizeFilter::Lanczos3, ResizeFilter::Bilinear] {
                let out = resize(&img, w, h, f);
                assert_eq!((out.width(), out.height()), (w, h));
                assert!(out.as_bytes().iter().all(|&v| v == 200), "{w}x{h} {f:?}");
            }
        }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(100, 37), (37, 100), (1, 5), (5, 1)] {
            let co = coefficients(i, o, ResizeFilter::Lanczos3);
            for k in co.weights.chunks_exact(co.taps) {
                let s: i32 = k.iter().sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= co.taps as i32,
                    "{i}->{o}: {s}"
                );
            }
        }
    }
}
