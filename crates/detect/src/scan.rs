//! Scanning the pyramid: every level is downscaled, its integral tables are
//! built once, and its window rows are classified in parallel (rayon). The
//! raw candidates come back in OpenCV's single-thread order (by level, then
//! row, then column), whatever the number of threads.

use rayon::prelude::*;

use crate::Rect;
use crate::cascade::{Cascade, FeatureKind};
use crate::haar::HaarLevel;
use crate::lbp::LbpLevel;
use crate::pyramid::{Level, resize_linear_exact, round_f32};
use crate::tables::LevelTables;

/// Raw detections of all `levels` of a grey image (`width` x `height`,
/// packed rows), before grouping.
pub(crate) fn scan_levels(
    cascade: &Cascade,
    gray: &[u8],
    width: usize,
    height: usize,
    levels: &[Level],
) -> Vec<Rect> {
    levels
        .par_iter()
        .map(|level| scan_level(cascade, gray, width, height, level))
        .collect::<Vec<_>>()
        .concat()
}

fn scan_level(
    cascade: &Cascade,
    gray: &[u8],
    width: usize,
    height: usize,
    level: &Level,
) -> Vec<Rect> {
    let (win_w, win_h) = (cascade.width as usize, cascade.height as usize);
    let (lw, lh) = (level.width, level.height);
    if lw < win_w || lh < win_h {
        return Vec::new();
    }
    let scaled;
    let pixels = if (lw, lh) == (width, height) {
        gray
    } else {
        scaled = resize_linear_exact(gray, width, height, lw, lh);
        &scaled
    };
    let haar = cascade.kind == FeatureKind::Haar;
    let tables = LevelTables::new(pixels, lw, lh, haar, haar && cascade.has_tilted_features());

    // Window origins: x in 0..=lw - W, y in 0..=lh - H, in steps.
    let step = if level.factor >= 2.0 { 1 } else { 2 };
    let last_x = lw - win_w;
    let rows = (lh - win_h) / step + 1;
    let max_origin = (lh - win_h) * tables.stride + last_x;
    let factor = level.factor;
    let window = Rect {
        x: 0,
        y: 0,
        width: round_f32(cascade.width as f32 * factor),
        height: round_f32(cascade.height as f32 * factor),
    };
    let candidate = |x: usize, y: usize| Rect {
        x: round_f32(x as f32 * factor),
        y: round_f32(y as f32 * factor),
        ..window
    };
    let stride = tables.stride;

    macro_rules! scan_rows {
        ($classifier:expr) => {{
            let c = $classifier;
            (0..rows)
                .into_par_iter()
                .map(|row| {
                    let y = row * step;
                    let mut xs = Vec::new();
                    c.scan_row(y * stride, last_x, step, &mut xs);
                    xs.into_iter().map(|x| candidate(x, y)).collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
                .concat()
        }};
    }

    match cascade.kind {
        FeatureKind::Haar => match HaarLevel::new(cascade, &tables, max_origin) {
            Some(c) => scan_rows!(&c),
            None => Vec::new(),
        },
        FeatureKind::Lbp => match LbpLevel::new(cascade, &tables, max_origin) {
            Some(c) => scan_rows!(&c),
            None => Vec::new(),
        },
    }
}
