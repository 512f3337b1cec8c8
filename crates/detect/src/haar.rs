//! Evaluating a Haar cascade on one window of one pyramid level, with
//! OpenCV's arithmetic: variance normalisation over the window shrunk by one
//! pixel, feature values in f32, stage sums in f64.
//!
//! The cascade is "compiled" per level: each node carries its feature's
//! rectangle offsets into the level's tables inline, so the inner loop reads
//! one contiguous array and never looks a feature up.

use crate::cascade::{Cascade, HaarFeature, Stage};
use crate::tables::{LevelTables, Table, corner_sum};

/// A node with its feature inlined. For stump cascades `left`/`right` hold
/// the two leaf values; for trees they hold child references.
#[derive(Clone, Copy)]
struct CompiledNode {
    ofs: [[u32; 4]; 3],
    weight: [f32; 3],
    threshold: f32,
    left: Branch,
    right: Branch,
}

#[derive(Clone, Copy)]
union Branch {
    leaf: f32,
    child: i32,
}

/// A Haar cascade bound to one level's tables.
pub(crate) struct HaarLevel<'a> {
    cascade: &'a Cascade,
    tables: &'a LevelTables,
    nodes: Vec<CompiledNode>,
    stumps: bool,
    variance: [u32; 4],
    variance_sq: [u32; 4],
    area: f64,
}

impl<'a> HaarLevel<'a> {
    /// Binds `cascade` to `tables`; `max_origin` is the largest window
    /// origin offset that will be evaluated. Returns `None` if some offset
    /// would fall outside the tables (impossible for a validated cascade on
    /// a level at least as large as the window).
    pub fn new(cascade: &'a Cascade, tables: &'a LevelTables, max_origin: usize) -> Option<Self> {
        let (w, h) = (cascade.width as i32, cascade.height as i32);
        let stumps = cascade.is_stump_based();
        let mut nodes = Vec::with_capacity(cascade.nodes.len());
        for (i, node) in cascade.nodes.iter().enumerate() {
            let feature = cascade.haar.get(node.feature as usize)?;
            let (left, right) = if stumps {
                // OpenCV's stump path: leaf 0 below the threshold, leaf 1 above.
                let first = cascade.trees[i].first_leaf as usize;
                (
                    Branch {
                        leaf: cascade.leaves[first],
                    },
                    Branch {
                        leaf: cascade.leaves[first + 1],
                    },
                )
            } else {
                (Branch { child: node.left }, Branch { child: node.right })
            };
            nodes.push(CompiledNode {
                ofs: feature_offsets(feature, tables),
                weight: feature.rects.map(|r| r.weight),
                threshold: node.threshold,
                left,
                right,
            });
        }
        let variance = tables.upright(Table::Sum, 1, 1, w - 2, h - 2);
        let variance_sq = tables.upright(Table::SqSum, 1, 1, w - 2, h - 2);
        let max_ofs = nodes
            .iter()
            .flat_map(|n| n.ofs.iter().flatten())
            .chain(variance.iter())
            .chain(variance_sq.iter())
            .copied()
            .max()
            .unwrap_or(0) as usize;
        if max_origin + max_ofs >= tables.buf.len() {
            return None;
        }
        Some(HaarLevel {
            cascade,
            tables,
            nodes,
            stumps,
            variance,
            variance_sq,
            area: ((w - 2) * (h - 2)) as f64,
        })
    }

    /// Classifies the window whose top-left corner is at table offset `p`
    /// (`p <= max_origin`): 1 for a detection, 0 for a rejection by stage 0,
    /// a negative value for any other rejection (OpenCV's `runAt` codes).
    #[inline(always)]
    pub fn classify(&self, p: usize) -> i32 {
        let buf = self.tables.buf.as_slice();
        // SAFETY: `new` checked that every offset plus `max_origin` is in
        // bounds, and the caller keeps `p <= max_origin`.
        let (s1, s2) = unsafe {
            (
                corner_sum(buf, p, &self.variance) as i32,
                corner_sum(buf, p, &self.variance_sq),
            )
        };
        let nf = self.area * s2 as f64 - s1 as f64 * s1 as f64;
        if nf <= 0.0 {
            return -1;
        }
        let norm = (1.0 / nf.sqrt()) as f32;
        if self.area * norm as f64 >= 0.1 {
            return -1;
        }
        self.stages_from(0, buf, p, norm)
    }

    /// Runs stages `first..` on the window at `p` with normalisation `norm`.
    #[inline(always)]
    fn stages_from(&self, first: usize, buf: &[u32], p: usize, norm: f32) -> i32 {
        if self.stumps {
            self.stages_stumps(first, buf, p, norm)
        } else {
            self.stages_trees(first, buf, p, norm)
        }
    }

    /// Appends to `found` the x of every detection in the row of windows
    /// whose first origin is `base` (x from 0 to `last_x` in steps of `step`,
    /// with OpenCV's skip after a stage-0 rejection). `base + last_x` must
    /// not exceed `max_origin`.
    pub fn scan_row(&self, base: usize, last_x: usize, step: usize, found: &mut Vec<usize>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { self.scan_row_avx2(base, last_x, step, found) };
            return;
        }
        self.scan_row_any(base, last_x, step, found);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_row_avx2(
        &self,
        base: usize,
        last_x: usize,
        step: usize,
        found: &mut Vec<usize>,
    ) {
        self.scan_row_any(base, last_x, step, found);
    }

    #[inline(always)]
    fn scan_row_any(&self, base: usize, last_x: usize, step: usize, found: &mut Vec<usize>) {
        if step == 1 {
            self.scan_row_step::<1>(base, last_x, found);
        } else {
            self.scan_row_step::<2>(base, last_x, found);
        }
    }

    /// The row loop: variance and stage 0 are computed for `LANES`
    /// consecutive positions at once (vectorisable; lanes that OpenCV would
    /// skip are computed and ignored, which changes nothing since evaluation
    /// has no side effects), later stages one window at a time.
    #[inline(always)]
    fn scan_row_step<const STEP: usize>(&self, base: usize, last_x: usize, found: &mut Vec<usize>) {
        let buf = self.tables.buf.as_slice();
        let batch = self.stage0_batchable();
        let mut x = 0usize;
        let mut block_start = 0usize;
        let mut block: Option<Block> = None;
        while x <= last_x {
            let in_block = block.is_some() && x < block_start + LANES * STEP;
            let result = if in_block || (batch && x + (LANES - 1) * STEP <= last_x) {
                if !in_block {
                    block = Some(self.stage0_block::<STEP>(buf, base + x));
                    block_start = x;
                }
                let b = block.as_ref().expect("block computed above");
                let lane = (x - block_start) / STEP;
                match b.status[lane] {
                    1 => self.stages_from(BATCH_STAGES, buf, base + x, b.norm[lane]),
                    s => s as i32,
                }
            } else {
                self.classify(base + x)
            };
            if result > 0 {
                found.push(x);
            } else if result == 0 {
                x += STEP;
            }
            x += STEP;
        }
    }

    /// Whether the first stages can be evaluated lane-wise (small trees only).
    fn stage0_batchable(&self) -> bool {
        !self.cascade.stages.is_empty()
            && self.cascade.stages.iter().take(BATCH_STAGES).all(|stage| {
                let first = stage.first_tree as usize;
                let count = stage.tree_count as usize;
                self.cascade.trees[first..first + count]
                    .iter()
                    .all(|t| t.node_count as usize <= MAX_BATCH_NODES)
            })
    }

    /// Variance test and the first `BATCH_STAGES` stages for `LANES`
    /// windows at `p`, `p + STEP`, ... Status per lane: 1 passed them all,
    /// otherwise OpenCV's result code (0 rejected by stage 0, -1 by the
    /// variance test or stage 1, -s by stage s).
    #[inline(always)]
    fn stage0_block<const STEP: usize>(&self, buf: &[u32], p: usize) -> Block {
        let mut s1 = [0i32; LANES];
        let mut s2 = [0u32; LANES];
        for l in 0..LANES {
            // SAFETY: lanes stay within the row (checked by the caller), so
            // every origin is <= max_origin.
            unsafe {
                s1[l] = corner_sum(buf, p + l * STEP, &self.variance) as i32;
                s2[l] = corner_sum(buf, p + l * STEP, &self.variance_sq);
            }
        }
        let mut norm = [0f32; LANES];
        let mut ok = [false; LANES];
        for l in 0..LANES {
            let nf = self.area * s2[l] as f64 - s1[l] as f64 * s1[l] as f64;
            // nf <= 0 gives NaN or infinity here; `ok` is false for it.
            let v = (1.0 / nf.sqrt()) as f32;
            ok[l] = nf > 0.0 && self.area * (v as f64) < 0.1;
            norm[l] = v;
        }
        // Status per lane: 1 while alive, otherwise OpenCV's result code.
        let mut status: [i8; LANES] = std::array::from_fn(|l| if ok[l] { 1 } else { -1 });
        for (si, stage) in self.cascade.stages.iter().enumerate().take(BATCH_STAGES) {
            if status.iter().all(|&s| s != 1) {
                break;
            }
            let sum = self.stage_sums::<STEP>(stage, buf, p, &norm);
            let threshold = stage.threshold as f64;
            for l in 0..LANES {
                if status[l] == 1 && sum[l] < threshold {
                    status[l] = -(si as i8);
                }
            }
        }
        Block { status, norm }
    }

    /// Sums of one stage's leaves for `LANES` windows.
    #[inline(always)]
    fn stage_sums<const STEP: usize>(
        &self,
        stage: &Stage,
        buf: &[u32],
        p: usize,
        norm: &[f32; LANES],
    ) -> [f64; LANES] {
        let first = stage.first_tree as usize;
        let count = stage.tree_count as usize;
        let mut sum = [0f64; LANES];
        if self.stumps {
            for node in &self.nodes[first..first + count] {
                let v = Self::values::<STEP>(node, buf, p, norm);
                // SAFETY: stump nodes hold leaves in both branches.
                let (left, right) = unsafe { (node.left.leaf as f64, node.right.leaf as f64) };
                for l in 0..LANES {
                    sum[l] += if v[l] < node.threshold { left } else { right };
                }
            }
        } else {
            for tree in &self.cascade.trees[first..first + count] {
                let root = tree.first_node as usize;
                let n = tree.node_count as usize;
                let mut vals = [[0f32; LANES]; MAX_BATCH_NODES];
                for (k, node) in self.nodes[root..root + n].iter().enumerate() {
                    vals[k] = Self::values::<STEP>(node, buf, p, norm);
                }
                for l in 0..LANES {
                    let mut idx = 0i32;
                    loop {
                        let node = &self.nodes[root + idx as usize];
                        // SAFETY: tree nodes hold child references.
                        idx = unsafe {
                            if vals[idx as usize][l] < node.threshold {
                                node.left.child
                            } else {
                                node.right.child
                            }
                        };
                        if idx <= 0 {
                            break;
                        }
                    }
                    sum[l] += self.cascade.leaves
                        [tree.first_leaf as usize + idx.unsigned_abs() as usize]
                        as f64;
                }
            }
        }
        sum
    }

    /// Normalised feature values of one node for `LANES` windows.
    #[inline(always)]
    fn values<const STEP: usize>(
        node: &CompiledNode,
        buf: &[u32],
        p: usize,
        norm: &[f32; LANES],
    ) -> [f32; LANES] {
        let mut v = [0f32; LANES];
        for (l, out) in v.iter_mut().enumerate() {
            // SAFETY: as in `stage0_block`.
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
                // SAFETY: as in `stage0_block`.
                let r2 = unsafe { corner_sum(buf, p + l * STEP, &node.ofs[2]) as i32 };
                *out += node.weight[2] * r2 as f32;
            }
        }
        for l in 0..LANES {
            v[l] *= norm[l];
        }
        v
    }

    #[inline(always)]
    fn value(node: &CompiledNode, buf: &[u32], p: usize, norm: f32) -> f32 {
        // SAFETY: see `classify`.
        let (r0, r1) = unsafe {
            (
                corner_sum(buf, p, &node.ofs[0]) as i32,
                corner_sum(buf, p, &node.ofs[1]) as i32,
            )
        };
        let mut v = node.weight[0] * r0 as f32 + node.weight[1] * r1 as f32;
        if node.weight[2] != 0.0 {
            // SAFETY: see `classify`.
            let r2 = unsafe { corner_sum(buf, p, &node.ofs[2]) as i32 };
            v += node.weight[2] * r2 as f32;
        }
        v * norm
    }

    #[inline(always)]
    fn stages_stumps(&self, from: usize, buf: &[u32], p: usize, norm: f32) -> i32 {
        for (si, stage) in self.cascade.stages.iter().enumerate().skip(from) {
            let first = stage.first_tree as usize;
            let count = stage.tree_count as usize;
            let mut sum = 0.0f64;
            for node in &self.nodes[first..first + count] {
                let v = Self::value(node, buf, p, norm);
                // SAFETY: stump nodes hold leaves in both branches.
                let leaf = unsafe {
                    if v < node.threshold {
                        node.left.leaf
                    } else {
                        node.right.leaf
                    }
                };
                sum += leaf as f64;
            }
            if sum < stage.threshold as f64 {
                return -(si as i32);
            }
        }
        1
    }

    #[inline(always)]
    fn stages_trees(&self, from: usize, buf: &[u32], p: usize, norm: f32) -> i32 {
        let trees = &self.cascade.trees;
        let leaves = &self.cascade.leaves;
        for (si, stage) in self.cascade.stages.iter().enumerate().skip(from) {
            let first = stage.first_tree as usize;
            let count = stage.tree_count as usize;
            let mut sum = 0.0f64;
            for tree in &trees[first..first + count] {
                let root = tree.first_node as usize;
                let mut idx = 0i32;
                loop {
                    let node = &self.nodes[root + idx as usize];
                    let v = Self::value(node, buf, p, norm);
                    // SAFETY: tree nodes hold child references in both branches.
                    idx = unsafe {
                        if v < node.threshold {
                            node.left.child
                        } else {
                            node.right.child
                        }
                    };
                    if idx <= 0 {
                        break;
                    }
                }
                sum += leaves[tree.first_leaf as usize + idx.unsigned_abs() as usize] as f64;
            }
            if sum < stage.threshold as f64 {
                return -(si as i32);
            }
        }
        1
    }
}

/// Windows evaluated together in the vectorised first stage.
const LANES: usize = 8;
/// Stages evaluated lane-wise before switching to one window at a time.
const BATCH_STAGES: usize = 2;
/// Largest tree (in nodes) evaluated lane-wise in the batched stages.
const MAX_BATCH_NODES: usize = 4;

/// Variance and stage-0 outcome of `LANES` consecutive windows.
struct Block {
    status: [i8; LANES],
    norm: [f32; LANES],
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
