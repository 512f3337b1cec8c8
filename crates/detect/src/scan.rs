//! Scanning the pyramid: every level is downscaled, its integral tables are
//! built once, and its window rows are classified in parallel (rayon). The
//! raw candidates come back in OpenCV's single-thread order (by level, then
//! row, then column), whatever the number of threads.

use ocellus_imaging::{Cancel, Cancelled};
use rayon::prelude::*;

use crate::Rect;
use crate::boost::{BoostedLevel, WeakFeature};
use crate::cascade::{Cascade, FeatureKind};
use crate::pyramid::{Level, resize_linear_exact, round_f32};
use crate::tables::LevelTables;
use crate::{haar, lbp};

/// Raw detections of all `levels` of a grey image (`width` x `height`,
/// packed rows), before grouping. `cancel` is polled before each level,
/// after its tables are built and before each window row; once it is
/// raised the remaining work is skipped and `Err(Cancelled)` returned.
pub(crate) fn scan_levels(
    cascade: &Cascade,
    gray: &[u8],
    width: usize,
    height: usize,
    levels: &[Level],
    cancel: &Cancel,
) -> Result<Vec<Rect>, Cancelled> {
    let found = levels
        .par_iter()
        .map(|level| scan_level(cascade, gray, width, height, level, cancel))
        .collect::<Vec<_>>()
        .concat();
    cancel.check()?;
    Ok(found)
}

fn scan_level(
    cascade: &Cascade,
    gray: &[u8],
    width: usize,
    height: usize,
    level: &Level,
    cancel: &Cancel,
) -> Vec<Rect> {
    if cancel.is_cancelled() {
        return Vec::new();
    }
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
    if cancel.is_cancelled() {
        return Vec::new();
    }

    // Window origins: x in 0..=lw - W, y in 0..=lh - H, in steps.
    let step = if level.factor >= 2.0 { 1 } else { 2 };
    let last_x = lw - win_w;
    let max_origin = (lh - win_h) * tables.stride + last_x;
    let rows = Rows {
        cancel,
        count: (lh - win_h) / step + 1,
        step,
        stride: tables.stride,
        last_x,
        factor: level.factor,
        window: Rect {
            x: 0,
            y: 0,
            width: round_f32(cascade.width as f32 * level.factor),
            height: round_f32(cascade.height as f32 * level.factor),
        },
    };
    match cascade.kind {
        FeatureKind::Haar => {
            haar::level(cascade, &tables, max_origin).map_or_else(Vec::new, |c| rows.scan(&c))
        }
        FeatureKind::Lbp => {
            lbp::level(cascade, &tables, max_origin).map_or_else(Vec::new, |c| rows.scan(&c))
        }
    }
}

/// The window rows of one level.
struct Rows<'a> {
    /// Polled before each row.
    cancel: &'a Cancel,
    /// Number of rows.
    count: usize,
    /// Distance between rows and between windows of a row.
    step: usize,
    /// Row length of the level's tables.
    stride: usize,
    /// x of the last window of a row.
    last_x: usize,
    /// The level's scale factor.
    factor: f32,
    /// A window's size in original-image pixels (at x = y = 0).
    window: Rect,
}

impl Rows<'_> {
    /// Classifies every row in parallel; the detections in original-image
    /// coordinates, by row, then column.
    fn scan<F: WeakFeature>(&self, c: &BoostedLevel<'_, F>) -> Vec<Rect> {
        (0..self.count)
            .into_par_iter()
            .map(|row| {
                if self.cancel.is_cancelled() {
                    return Vec::new();
                }
                let y = row * self.step;
                let mut xs = Vec::new();
                c.scan_row(y * self.stride, self.last_x, self.step, &mut xs);
                xs.into_iter()
                    .map(|x| Rect {
                        x: round_f32(x as f32 * self.factor),
                        y: round_f32(y as f32 * self.factor),
                        ..self.window
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .concat()
    }
}
