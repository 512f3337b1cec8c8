//! One face's spatial histogram (spec section 4.2) and OpenCV's chi-square
//! distance between two histograms (spec section 4.3).
//!
//! Invariant: the f32 value OpenCV stores for a bin is always
//! count * f32(1 / cell area) ([`bin_value`]), so histograms are kept as
//! integer counts, and a chi-square term depends only on the two counts
//! ([`chi_square_term`], the one place where a term is computed; the
//! prediction tables of [`super::scan`] are filled from it).

use ocellus_imaging::Image;

use super::LbphParams;
use super::codes::lbp_codes;
use super::index::SparseHistogram;
use crate::RecognizeError;

/// Cell size of the spatial histogram for one image size (the grid covers
/// the LBP code image from its top-left corner; leftover columns and rows
/// are not counted, as in OpenCV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CellGeometry {
    cell_w: usize,
    cell_h: usize,
}

impl CellGeometry {
    pub fn new(params: &LbphParams, width: u32, height: u32) -> Result<Self, RecognizeError> {
        let too_small = || RecognizeError::TooSmallForLbph {
            width,
            height,
            radius: params.radius,
            grid_x: params.grid_x,
            grid_y: params.grid_y,
        };
        let lbp_w = (width as usize)
            .checked_sub(2 * params.radius as usize)
            .ok_or_else(too_small)?;
        let lbp_h = (height as usize)
            .checked_sub(2 * params.radius as usize)
            .ok_or_else(too_small)?;
        let cell_w = lbp_w / params.grid_x as usize;
        let cell_h = lbp_h / params.grid_y as usize;
        if cell_w == 0 || cell_h == 0 {
            return Err(too_small());
        }
        if cell_w * cell_h > u16::MAX as usize {
            return Err(RecognizeError::InvalidParams(format!(
                "grid cells of {cell_w}x{cell_h} pixels are too large (at most 65535 pixels per cell); use a finer grid or smaller faces"
            )));
        }
        Ok(CellGeometry { cell_w, cell_h })
    }

    pub fn area(&self) -> usize {
        self.cell_w * self.cell_h
    }
}

/// Bin counts of the spatial histogram (spec section 4.2), dense.
pub(super) fn count_histogram(
    face: &Image,
    params: &LbphParams,
    geometry: CellGeometry,
) -> Vec<u16> {
    let (codes, lbp_w, _) = lbp_codes(face, params.radius, params.neighbors);
    let bins = params.bins_per_cell();
    let mut counts = vec![0u16; params.histogram_len()];
    for gy in 0..params.grid_y as usize {
        for gx in 0..params.grid_x as usize {
            let cell = &mut counts[(gy * params.grid_x as usize + gx) * bins..][..bins];
            for row in gy * geometry.cell_h..(gy + 1) * geometry.cell_h {
                let start = row * lbp_w + gx * geometry.cell_w;
                for &code in &codes[start..start + geometry.cell_w] {
                    cell[code as usize] += 1;
                }
            }
        }
    }
    counts
}

/// The non-zero bins of a dense count histogram.
pub(super) fn sparse(counts: &[u16]) -> SparseHistogram {
    // Branch-free compaction: about half the bins are zero, in no pattern.
    let mut out = vec![(0u32, 0u16); counts.len()];
    let mut len = 0;
    for (k, &c) in counts.iter().enumerate() {
        if let Some(slot) = out.get_mut(len) {
            *slot = (k as u32, c);
        }
        len += usize::from(c != 0);
    }
    out.truncate(len);
    // Training histograms are kept: do not keep room for every bin.
    out.shrink_to_fit();
    out
}

/// The f32 value OpenCV stores for a bin count: count * f32(1 / area).
#[inline]
pub(super) fn bin_value(count: u16, reciprocal_area: f32) -> f32 {
    f32::from(count) * reciprocal_area
}

pub(super) fn reciprocal_area(area: usize) -> f32 {
    (1.0 / area as f64) as f32
}

/// One chi-square term for bin values a (training) and b (query), in OpenCV's
/// arithmetic: f64 operands, (a - b)^2 times the reciprocal of (a + b); bins
/// whose sum is not above DBL_EPSILON contribute nothing.
#[inline]
pub(super) fn chi_square_term(a: f32, b: f32) -> f64 {
    let (a, b) = (f64::from(a), f64::from(b));
    let sum = a + b;
    if sum.abs() > f64::EPSILON {
        let diff = a - b;
        diff * diff * (1.0 / sum)
    } else {
        0.0
    }
}

/// OpenCV's `compareHist(train, query, HISTCMP_CHISQR_ALT)` on two dense
/// histograms, bit-exact (spec section 4.3): terms summed in two f64
/// accumulators, even and odd bins, each in increasing bin order; the result
/// is 2 * (even + odd).
pub fn chi_square(train: &[f32], query: &[f32]) -> f64 {
    let mut even = 0.0;
    let mut odd = 0.0;
    for (k, (&a, &b)) in train.iter().zip(query).enumerate() {
        let sum = f64::from(a) + f64::from(b);
        if sum.abs() > f64::EPSILON {
            if k % 2 == 0 {
                even += chi_square_term(a, b);
            } else {
                odd += chi_square_term(a, b);
            }
        }
    }
    2.0 * (even + odd)
}
