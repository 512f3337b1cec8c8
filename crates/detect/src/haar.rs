//! The Haar feature type of the generic cascade evaluation
//! ([`crate::boost`]), with OpenCV's arithmetic: a window is evaluated only
//! if the variance over the window shrunk by one pixel passes OpenCV's test,
//! feature values are weighted rectangle sums in f32 multiplied by that
//! variance normalisation, and a node goes left when its value is below the
//! node threshold.
//!
//! Invariant: the offsets of a compiled feature ([`HaarNode`]) and of the
//! variance rectangles are exactly those that [`Haar::max_offset`] and
//! [`Haar::window_max_offset`] report, so the bounds check of
//! [`BoostedLevel::new`] covers every read made here.

use crate::boost::{BoostedLevel, LANES, WeakFeature};
use crate::cascade::{Cascade, HaarFeature, Node};
use crate::tables::{LevelTables, Table, corner_sum};

/// The Haar evaluator of one level: the variance rectangle's offsets and
/// its area.
pub(crate) struct Haar {
    variance: [u32; 4],
    variance_sq: [u32; 4],
    area: f64,
}

/// A Haar feature compiled for one level: the four corner offsets and the
/// weight of each rectangle (weight 0: absent), and the node threshold.
#[derive(Clone, Copy)]
pub(crate) struct HaarNode {
    ofs: [[u32; 4]; 3],
    weight: [f32; 3],
    threshold: f32,
}

/// Binds a Haar `cascade` to `tables` (see [`BoostedLevel::new`]).
pub(crate) fn level<'a>(
    cascade: &'a Cascade,
    tables: &'a LevelTables,
    max_origin: usize,
) -> Option<BoostedLevel<'a, Haar>> {
    let (w, h) = (cascade.width as i32, cascade.height as i32);
    let haar = Haar {
        variance: tables.upright(Table::Sum, 1, 1, w - 2, h - 2),
        variance_sq: tables.upright(Table::SqSum, 1, 1, w - 2, h - 2),
        area: ((w - 2) * (h - 2)) as f64,
    };
    BoostedLevel::new(cascade, tables, max_origin, haar)
}

impl Haar {
    /// Whether a window with variance sums `s1`, `s2` is evaluated, and its
    /// normalisation factor (OpenCV's `setWindow`).
    #[inline(always)]
    fn norm(&self, s1: i32, s2: u32) -> Option<f32> {
        let nf = self.area * s2 as f64 - s1 as f64 * s1 as f64;
        if nf <= 0.0 {
            return None;
        }
        let norm = (1.0 / nf.sqrt()) as f32;
        if self.area * norm as f64 >= 0.1 {
            return None;
        }
        Some(norm)
    }

    /// The normalised value of `node` at window `p`.
    ///
    /// # Safety
    /// As for [`WeakFeature::goes_left`].
    #[inline(always)]
    unsafe fn value(node: &HaarNode, buf: &[u32], p: usize, norm: f32) -> f32 {
        // SAFETY: guaranteed by the caller.
        let (r0, r1) = unsafe {
            (
                corner_sum(buf, p, &node.ofs[0]) as i32,
                corner_sum(buf, p, &node.ofs[1]) as i32,
            )
        };
        let mut v = node.weight[0] * r0 as f32 + node.weight[1] * r1 as f32;
        if node.weight[2] != 0.0 {
            // SAFETY: guaranteed by the caller.
            let r2 = unsafe { corner_sum(buf, p, &node.ofs[2]) as i32 };
            v += node.weight[2] * r2 as f32;
        }
        v * norm
    }

    /// Normalised values of `node` for `LANES` windows.
    ///
    /// # Safety
    /// As for [`WeakFeature::lanes`].
    #[inline(always)]
    unsafe fn values<const STEP: usize>(
        node: &HaarNode,
        buf: &[u32],
        p: usize,
        norm: &[f32; LANES],
    ) -> [f32; LANES] {
        let mut v = [0f32; LANES];
        for (l, out) in v.iter_mut().enumerate() {
            // SAFETY: guaranteed by the caller.
            let (r0, r1) = unsafe {
                (
                    corner_sum(buf, p + l * STEP, &node.ofs[0]) as i32,
                    corner_sum(buf, p + l * STEP, &node.ofs[1]) as i32,
                )
            };
            *out = node.weight[0] * r0 as f32 + node.weight[1] * r1 as f32;
        }
        if node.weight[2] != 0.0 {
            for (l, out) in v.iter_mut().enumerate() {
                // SAFETY: guaranteed by the caller.
                let r2 = unsafe { corner_sum(buf, p + l * STEP, &node.ofs[2]) as i32 };
                *out += node.weight[2] * r2 as f32;
            }
        }
        for l in 0..LANES {
            v[l] *= norm[l];
        }
        v
    }
}

impl WeakFeature for Haar {
    type Node = HaarNode;
    type Norm = f32;
    type Lane = f32;

    const BATCH_STAGES: usize = 2;
    const BATCH_MAX_NODES: usize = 4;

    fn compile(
        &self,
        cascade: &Cascade,
        _index: usize,
        node: &Node,
        tables: &LevelTables,
    ) -> Option<HaarNode> {
        let feature = cascade.haar.get(node.feature as usize)?;
        Some(HaarNode {
            ofs: feature_offsets(feature, tables),
            weight: feature.rects.map(|r| r.weight),
            threshold: node.threshold,
        })
    }

    fn max_offset(node: &HaarNode) -> u32 {
        node.ofs.iter().flatten().copied().max().unwrap_or(0)
    }

    fn window_max_offset(&self) -> u32 {
        self.variance
            .iter()
            .chain(&self.variance_sq)
            .copied()
            .max()
            .unwrap_or(0)
    }

    #[inline(always)]
    unsafe fn window(&self, buf: &[u32], p: usize) -> Option<f32> {
        // SAFETY: guaranteed by the caller.
        let (s1, s2) = unsafe {
            (
                corner_sum(buf, p, &self.variance) as i32,
                corner_sum(buf, p, &self.variance_sq),
            )
        };
        self.norm(s1, s2)
    }

    #[inline(always)]
    unsafe fn window_lanes<const STEP: usize>(
        &self,
        buf: &[u32],
        p: usize,
    ) -> ([f32; LANES], [bool; LANES]) {
        let mut s1 = [0i32; LANES];
        let mut s2 = [0u32; LANES];
        for l in 0..LANES {
            // SAFETY: guaranteed by the caller.
            unsafe {
                s1[l] = corner_sum(buf, p + l * STEP, &self.variance) as i32;
                s2[l] = corner_sum(buf, p + l * STEP, &self.variance_sq);
            }
        }
        let mut norm = [0f32; LANES];
        let mut ok = [false; LANES];
        for l in 0..LANES {
            // The branch-free form of `Haar::norm`: nf <= 0 gives NaN or
            // infinity here, and `ok` is false for it.
            let nf = self.area * s2[l] as f64 - s1[l] as f64 * s1[l] as f64;
            let v = (1.0 / nf.sqrt()) as f32;
            ok[l] = nf > 0.0 && self.area * (v as f64) < 0.1;
            norm[l] = v;
        }
        (norm, ok)
    }

    #[inline(always)]
    unsafe fn goes_left(&self, node: &HaarNode, buf: &[u32], p: usize, norm: f32) -> bool {
        // SAFETY: guaranteed by the caller.
        unsafe { Self::value(node, buf, p, norm) < node.threshold }
    }

    #[inline(always)]
    unsafe fn lanes<const STEP: usize>(
        &self,
        node: &HaarNode,
        buf: &[u32],
        p: usize,
        norm: &[f32; LANES],
    ) -> [f32; LANES] {
        // SAFETY: guaranteed by the caller.
        unsafe { Self::values::<STEP>(node, buf, p, norm) }
    }

    #[inline(always)]
    fn lane_goes_left(node: &HaarNode, value: f32) -> bool {
        value < node.threshold
    }
}

fn feature_offsets(feature: &HaarFeature, tables: &LevelTables) -> [[u32; 4]; 3] {
    feature.rects.map(|r| {
        if feature.tilted {
            tables.tilted(r.x, r.y, r.width, r.height)
        } else {
            tables.upright(Table::Sum, r.x, r.y, r.width, r.height)
        }
    })
}
