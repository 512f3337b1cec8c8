//! The cost model of detection: how much work a detection is, from the
//! image size, the cascade and the parameters alone.
//!
//! Owns [`detect_cost_ns`] and [`detect_work`]. Invariant: they walk
//! exactly the pyramid levels and window positions the scan visits
//! (`pyramid::levels`, the step rule and the window test of `scan`), without
//! touching a pixel, so a caller can refuse a detection before it starts.
//! The per-pixel and per-window figures below were measured with
//! `nice -n 10 cargo run --release -p ocellus-detect --example detect_cost`
//! (one thread, CPU time; the table is in docs/limits-cost.md).

use ocellus_imaging::filter::grayscale;

use crate::cascade::{Cascade, FeatureKind};
use crate::{DetectParams, pyramid};

// Measured 2026-12-02 with `nice -n 10 cargo run --release -p
// ocellus-detect --example detect_cost 6` (one thread, CPU time, default
// parameters, on the shared 2-core Xeon under load): the per-pixel work of
// all levels of a 2828x2121 image took 180-300 ms for Haar (about 7 ns per
// level pixel) and 135-180 ms for LBP (about 4.5). Per window position, once
// that is taken off: Haar 18-28 ns on flat images (the variance test rejects
// every window), 333 (default) and 462 (alt2) on noise, 75-565 on eight
// shared photos; LBP 133-152 on flat and noise, 102-238 on the photos.

/// Single-thread ns per pixel of a pyramid level for the bilinear
/// downscale that produces it.
pub const RESIZE_NS_PER_PIXEL: f64 = 3.0;

/// Single-thread ns per pixel of a pyramid level for each integral table
/// built on it (Haar: sums and squared sums, plus rotated sums when the
/// cascade has tilted features; LBP: sums only).
pub const TABLE_NS_PER_PIXEL: f64 = 2.0;

/// Single-thread ns per window position of a Haar cascade: about the
/// slowest measured on noise in the quieter run (alt2, 462), so photos take
/// up to 4x less and flat images 10x-15x less with the default cascade;
/// under heavier load alt2 took up to 715 (docs/limits-cost.md).
pub const HAAR_NS_PER_WINDOW: f64 = 450.0;

/// Single-thread ns per window position of an LBP cascade: above the
/// 133-152 measured on flat images and noise, below the 238 of the smallest
/// photo (where per-image overheads weigh most).
pub const LBP_NS_PER_WINDOW: f64 = 180.0;

/// The amount of work of one detection, counted as the scan does it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectWork {
    /// Pyramid levels scanned.
    pub levels: u64,
    /// Pixels of all scanned levels together (each is downscaled, then its
    /// integral tables are built).
    pub level_pixels: u64,
    /// Window positions classified, over all levels.
    pub windows: u64,
}

/// The levels, pixels and windows a detection of a `width` x `height`
/// image with `cascade` and `params` goes through. Invalid parameters (a
/// scale factor not above 1) give no work, as the detection is refused.
pub fn detect_work(
    cascade: &Cascade,
    width: u32,
    height: u32,
    params: &DetectParams,
) -> DetectWork {
    let (win_w, win_h) = (cascade.width as usize, cascade.height as usize);
    let mut work = DetectWork::default();
    for level in pyramid::levels(
        (width as usize, height as usize),
        cascade.window_size(),
        params.scale_factor,
        params.min_size,
        params.max_size,
    ) {
        let (lw, lh) = (level.width, level.height);
        if lw < win_w || lh < win_h {
            continue;
        }
        let step = if level.factor >= 2.0 { 1 } else { 2 };
        let rows = (lh - win_h) / step + 1;
        let cols = (lw - win_w) / step + 1;
        work.levels += 1;
        work.level_pixels += (lw * lh) as u64;
        work.windows += (rows * cols) as u64;
    }
    work
}

/// Estimated single-thread nanoseconds of [`detect`](crate::detect) on a
/// `width` x `height` image: the grey conversion, then per level its
/// downscale, its integral tables and its windows, each times its measured
/// cost. Upper-ish: the per-window figure is the one measured on the
/// content slowest to reject, so photographs usually take less.
pub fn detect_cost_ns(cascade: &Cascade, width: u32, height: u32, params: &DetectParams) -> u64 {
    let work = detect_work(cascade, width, height, params);
    let tables = match cascade.kind {
        FeatureKind::Haar => 2.0 + cascade.has_tilted_features() as u8 as f64,
        FeatureKind::Lbp => 1.0,
    };
    let per_window = match cascade.kind {
        FeatureKind::Haar => HAAR_NS_PER_WINDOW,
        FeatureKind::Lbp => LBP_NS_PER_WINDOW,
    };
    let ns = width as f64 * height as f64 * grayscale::COST_NS_PER_PIXEL
        + work.level_pixels as f64 * (RESIZE_NS_PER_PIXEL + tables * TABLE_NS_PER_PIXEL)
        + work.windows as f64 * per_window;
    // `as` saturates: an absurd estimate stays absurd, not wrapped.
    ns.ceil() as u64
}
