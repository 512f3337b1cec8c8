//! Evaluating a boosted cascade on the windows of one pyramid level, for any
//! feature type: the per-level compilation of the tree nodes, the stage loop
//! with its early rejection, the lane-batched first stages and the row loop
//! with OpenCV's skip after a stage-0 rejection. What a feature is (Haar
//! rectangles with variance normalisation, LBP codes and subsets) comes in
//! through [`WeakFeature`], implemented in [`crate::haar`] and
//! [`crate::lbp`]; everything here is generic over it and monomorphised, so
//! each feature type gets its own inlined hot loop.
//!
//! Invariant: [`BoostedLevel::new`] checks once that every table offset a
//! compiled node or the window test reads, added to the largest window
//! origin that will be evaluated, lies inside the level's tables; the
//! evaluation then reads the tables without bounds checks.

use crate::cascade::{Cascade, Node, Stage, Tree};
use crate::tables::LevelTables;

/// Windows evaluated together in the batched first stages.
pub(crate) const LANES: usize = 8;

/// Upper bound of [`WeakFeature::BATCH_MAX_NODES`] (the size of the
/// per-tree scratch in the batched stages).
const MAX_BATCH_NODES: usize = 4;

/// What one feature type contributes to the evaluation of a window: its
/// compiled node data, the per-window test that comes before the stages,
/// and the test that sends a tree node to its left or right branch.
///
/// The `unsafe` methods read the tables without bounds checks; their
/// contract is the module's invariant: `p + o` is in bounds of `buf` for
/// every offset `o` reported by [`WeakFeature::max_offset`] and
/// [`WeakFeature::window_max_offset`] (and, for the lane methods, for every
/// lane origin `p + l * STEP`, `l < LANES`).
pub(crate) trait WeakFeature: Sync {
    /// A tree node's feature, compiled to offsets into one level's tables.
    type Node: Copy + Sync;
    /// What the window test hands to every node test of that window (Haar:
    /// the variance normalisation factor; LBP: nothing).
    type Norm: Copy + Default;
    /// What the branch test of one node needs for one window, computed for
    /// `LANES` windows at once (Haar: the normalised feature value; LBP: the
    /// code), so that the lane loop stays vectorisable and each lane's test
    /// is one comparison.
    type Lane: Copy + Default;

    /// Stages evaluated lane-wise before switching to one window at a time.
    const BATCH_STAGES: usize;
    /// Largest tree (in nodes) evaluated lane-wise in the batched stages; a
    /// cascade with a larger tree there is evaluated one window at a time.
    /// 1 batches stump cascades only (then the batched code has no tree
    /// path at all); at most `MAX_BATCH_NODES`.
    const BATCH_MAX_NODES: usize;

    /// Compiles the feature of node number `index` of `cascade`; `None` if
    /// it refers to data the cascade lacks.
    fn compile(
        &self,
        cascade: &Cascade,
        index: usize,
        node: &Node,
        tables: &LevelTables,
    ) -> Option<Self::Node>;

    /// The largest table offset `node` reads.
    fn max_offset(node: &Self::Node) -> u32;

    /// The largest table offset the window test reads.
    fn window_max_offset(&self) -> u32;

    /// The window test at origin `p`: `Some` with what the node tests need,
    /// or `None` if the window is rejected before stage 0 (OpenCV's -1).
    ///
    /// # Safety
    /// See the trait documentation.
    unsafe fn window(&self, buf: &[u32], p: usize) -> Option<Self::Norm>;

    /// The window test for `LANES` windows at `p`, `p + STEP`, ...: the
    /// values and whether each window passed (a failed lane's value is
    /// never used).
    ///
    /// # Safety
    /// See the trait documentation.
    unsafe fn window_lanes<const STEP: usize>(
        &self,
        buf: &[u32],
        p: usize,
    ) -> ([Self::Norm; LANES], [bool; LANES]);

    /// Whether the window at `p` takes the left branch of `node`.
    ///
    /// # Safety
    /// See the trait documentation.
    unsafe fn goes_left(&self, node: &Self::Node, buf: &[u32], p: usize, norm: Self::Norm) -> bool;

    /// Computes [`WeakFeature::Lane`] of `node` for `LANES` windows at
    /// `p`, `p + STEP`, ...
    ///
    /// # Safety
    /// See the trait documentation.
    unsafe fn lanes<const STEP: usize>(
        &self,
        node: &Self::Node,
        buf: &[u32],
        p: usize,
        norm: &[Self::Norm; LANES],
    ) -> [Self::Lane; LANES];

    /// Whether a window takes the left branch of `node`, given its
    /// [`WeakFeature::Lane`] value (the same answer as
    /// [`WeakFeature::goes_left`] for that window).
    fn lane_goes_left(node: &Self::Node, lane: Self::Lane) -> bool;
}

/// A tree node with its feature inlined, so that the inner loop reads one
/// contiguous array and never looks a feature up. For stump cascades
/// `left`/`right` hold the two leaf values; for trees they hold child
/// references.
#[derive(Clone, Copy)]
struct CompiledNode<N> {
    feature: N,
    left: Branch,
    right: Branch,
}

/// A leaf value (stump cascades) or a child reference (trees); which of
/// the two is fixed for the whole cascade by `BoostedLevel::stumps`.
#[derive(Clone, Copy)]
union Branch {
    leaf: f32,
    child: i32,
}

/// Window test and batched-stage outcome of `LANES` consecutive windows.
struct Block<N> {
    /// 1 while alive, otherwise OpenCV's result code.
    status: [i8; LANES],
    norm: [N; LANES],
}

/// A cascade bound to one level's tables, for feature type `F`.
pub(crate) struct BoostedLevel<'a, F: WeakFeature> {
    cascade: &'a Cascade,
    tables: &'a LevelTables,
    feature: F,
    nodes: Vec<CompiledNode<F::Node>>,
    /// The largest window origin offset the bounds check covers.
    max_origin: usize,
    stumps: bool,
    /// Whether the first `F::BATCH_STAGES` stages are evaluated lane-wise.
    batch: bool,
}

impl<'a, F: WeakFeature> BoostedLevel<'a, F> {
    /// Binds `cascade` to `tables` with the feature evaluator `feature`;
    /// `max_origin` is the largest window origin offset that will be
    /// evaluated. Returns `None` if some offset would fall outside the
    /// tables (impossible for a validated cascade on a level at least as
    /// large as the window) or a node refers to missing data.
    pub fn new(
        cascade: &'a Cascade,
        tables: &'a LevelTables,
        max_origin: usize,
        feature: F,
    ) -> Option<Self> {
        const { assert!(F::BATCH_MAX_NODES <= MAX_BATCH_NODES) };
        let stumps = cascade.is_stump_based();
        let mut nodes = Vec::with_capacity(cascade.nodes.len());
        for (i, node) in cascade.nodes.iter().enumerate() {
            let (left, right) = if stumps {
                // OpenCV's stump path: leaf 0 below the threshold (Haar) or
                // in the subset (LBP), leaf 1 otherwise. Stump cascades
                // have one node per tree, so node i is tree i.
                let first = cascade.trees.get(i)?.first_leaf as usize;
                (
                    Branch {
                        leaf: *cascade.leaves.get(first)?,
                    },
                    Branch {
                        leaf: *cascade.leaves.get(first + 1)?,
                    },
                )
            } else {
                (Branch { child: node.left }, Branch { child: node.right })
            };
            nodes.push(CompiledNode {
                feature: feature.compile(cascade, i, node, tables)?,
                left,
                right,
            });
        }
        let max_ofs = nodes
            .iter()
            .map(|n| F::max_offset(&n.feature))
            .chain([feature.window_max_offset()])
            .max()
            .unwrap_or(0) as usize;
        if max_origin + max_ofs >= tables.buf.len() {
            return None;
        }
        let batch = !cascade.stages.is_empty()
            && (stumps || F::BATCH_MAX_NODES > 1)
            && cascade.stages.iter().take(F::BATCH_STAGES).all(|stage| {
                let first = stage.first_tree as usize;
                let count = stage.tree_count as usize;
                cascade.trees[first..first + count]
                    .iter()
                    .all(|t| t.node_count as usize <= F::BATCH_MAX_NODES)
            });
        Some(BoostedLevel {
            cascade,
            tables,
            feature,
            nodes,
            max_origin,
            stumps,
            batch,
        })
    }

    /// Appends to `found` the x of every detection in the row of windows
    /// whose first origin is `base` (x from 0 to `last_x` in steps of `step`,
    /// with OpenCV's skip after a stage-0 rejection).
    ///
    /// # Panics
    /// If `base + last_x` exceeds the `max_origin` given to `new`.
    pub fn scan_row(&self, base: usize, last_x: usize, step: usize, found: &mut Vec<usize>) {
        // The one check that makes the unchecked reads below sound.
        assert!(base + last_x <= self.max_origin, "window row out of bounds");
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

    /// The row loop: the window test and the first `F::BATCH_STAGES` stages
    /// are computed for `LANES` consecutive positions at once (vectorisable;
    /// lanes that OpenCV would skip are computed and ignored, which changes
    /// nothing since evaluation has no side effects), later stages one
    /// window at a time.
    #[inline(always)]
    fn scan_row_step<const STEP: usize>(&self, base: usize, last_x: usize, found: &mut Vec<usize>) {
        let buf = self.tables.buf.as_slice();
        let mut x = 0usize;
        let mut block_start = 0usize;
        let mut block: Option<Block<F::Norm>> = None;
        while x <= last_x {
            let in_block = block.is_some() && x < block_start + LANES * STEP;
            let result = if in_block || (self.batch && x + (LANES - 1) * STEP <= last_x) {
                if !in_block {
                    // SAFETY: every lane origin is at most base + last_x
                    // (checked just above), hence <= max_origin.
                    block = Some(unsafe { self.first_stages_block::<STEP>(buf, base + x) });
                    block_start = x;
                }
                let b = block.as_ref().expect("block computed above");
                let lane = (x - block_start) / STEP;
                match b.status[lane] {
                    // SAFETY: base + x <= max_origin.
                    1 => unsafe { self.stages_from(F::BATCH_STAGES, buf, base + x, b.norm[lane]) },
                    s => s as i32,
                }
            } else {
                // SAFETY: base + x <= max_origin.
                unsafe { self.classify(buf, base + x) }
            };
            if result > 0 {
                found.push(x);
            } else if result == 0 {
                // Rejected by stage 0: skip a position.
                x += STEP;
            }
            x += STEP;
        }
    }

    /// Classifies the window whose top-left corner is at table offset `p`:
    /// 1 for a detection, 0 for a rejection by stage 0, a negative value for
    /// any other rejection (OpenCV's `runAt` codes).
    ///
    /// # Safety
    /// `p <= max_origin`.
    #[inline(always)]
    unsafe fn classify(&self, buf: &[u32], p: usize) -> i32 {
        // SAFETY: guaranteed by the caller.
        match unsafe { self.feature.window(buf, p) } {
            // SAFETY: as above.
            Some(norm) => unsafe { self.stages_from(0, buf, p, norm) },
            None => -1,
        }
    }

    /// Runs stages `first..` on the window at `p`.
    ///
    /// # Safety
    /// `p <= max_origin`.
    #[inline(always)]
    unsafe fn stages_from(&self, first: usize, buf: &[u32], p: usize, norm: F::Norm) -> i32 {
        // SAFETY: guaranteed by the caller.
        unsafe {
            if self.stumps {
                self.run_stages::<true>(first, buf, p, norm)
            } else {
                self.run_stages::<false>(first, buf, p, norm)
            }
        }
    }

    /// The stage loop with early rejection: 1 if every stage from `first`
    /// on passes, otherwise `-s` for the first stage `s` whose sum of
    /// leaves (in f64, as OpenCV adds them) is below its threshold.
    /// `STUMPS` is `self.stumps`, as a constant so that each loop is
    /// compiled for its kind of tree (no closure, nothing left to inline).
    ///
    /// # Safety
    /// `p <= max_origin`.
    #[inline(always)]
    unsafe fn run_stages<const STUMPS: bool>(
        &self,
        first: usize,
        buf: &[u32],
        p: usize,
        norm: F::Norm,
    ) -> i32 {
        for (si, stage) in self.cascade.stages.iter().enumerate().skip(first) {
            let first_tree = stage.first_tree as usize;
            let trees = first_tree..first_tree + stage.tree_count as usize;
            let mut sum = 0.0f64;
            if STUMPS {
                for node in &self.nodes[trees] {
                    // SAFETY: guaranteed by the caller.
                    let left = unsafe { self.feature.goes_left(&node.feature, buf, p, norm) };
                    sum += node.stump_leaf(left) as f64;
                }
            } else {
                for tree in &self.cascade.trees[trees] {
                    let root = tree.first_node as usize;
                    let mut idx = 0i32;
                    loop {
                        let node = &self.nodes[root + idx as usize];
                        // SAFETY: guaranteed by the caller.
                        let left = unsafe { self.feature.goes_left(&node.feature, buf, p, norm) };
                        idx = node.child(left);
                        if idx <= 0 {
                            break;
                        }
                    }
                    sum += self.leaf(tree, idx) as f64;
                }
            }
            if sum < stage.threshold as f64 {
                return -(si as i32);
            }
        }
        1
    }

    /// Leaf number `-idx` of `tree` (`idx <= 0`, a tree walk's end).
    #[inline(always)]
    fn leaf(&self, tree: &Tree, idx: i32) -> f32 {
        self.cascade.leaves[tree.first_leaf as usize + idx.unsigned_abs() as usize]
    }

    /// The window test and the first `F::BATCH_STAGES` stages for `LANES`
    /// windows at `p`, `p + STEP`, ... Status per lane: 1 passed them all,
    /// otherwise OpenCV's result code (0 rejected by stage 0, -1 by the
    /// window test or stage 1, -s by stage s).
    ///
    /// # Safety
    /// `p + (LANES - 1) * STEP <= max_origin`.
    #[inline(always)]
    unsafe fn first_stages_block<const STEP: usize>(
        &self,
        buf: &[u32],
        p: usize,
    ) -> Block<F::Norm> {
        // SAFETY: guaranteed by the caller.
        let (norm, ok) = unsafe { self.feature.window_lanes::<STEP>(buf, p) };
        let mut status: [i8; LANES] = std::array::from_fn(|l| if ok[l] { 1 } else { -1 });
        for (si, stage) in self.cascade.stages.iter().enumerate().take(F::BATCH_STAGES) {
            if status.iter().all(|&s| s != 1) {
                break;
            }
            // SAFETY: as above.
            let sum = unsafe { self.stage_sums::<STEP>(stage, buf, p, &norm) };
            let threshold = stage.threshold as f64;
            for l in 0..LANES {
                if status[l] == 1 && sum[l] < threshold {
                    status[l] = -(si as i8);
                }
            }
        }
        Block { status, norm }
    }

    /// Sums of one stage's leaves for `LANES` windows (trees of at most
    /// `F::BATCH_MAX_NODES` nodes).
    ///
    /// # Safety
    /// As for `first_stages_block`.
    #[inline(always)]
    unsafe fn stage_sums<const STEP: usize>(
        &self,
        stage: &Stage,
        buf: &[u32],
        p: usize,
        norm: &[F::Norm; LANES],
    ) -> [f64; LANES] {
        let first = stage.first_tree as usize;
        let count = stage.tree_count as usize;
        let mut sum = [0f64; LANES];
        // With BATCH_MAX_NODES == 1 only stump cascades are batched (see
        // `new`): the constant test drops the tree path at compile time.
        if F::BATCH_MAX_NODES == 1 || self.stumps {
            for node in &self.nodes[first..first + count] {
                // SAFETY: guaranteed by the caller.
                let lanes = unsafe { self.feature.lanes::<STEP>(&node.feature, buf, p, norm) };
                let (l_leaf, r_leaf) =
                    (node.stump_leaf(true) as f64, node.stump_leaf(false) as f64);
                for l in 0..LANES {
                    sum[l] += if F::lane_goes_left(&node.feature, lanes[l]) {
                        l_leaf
                    } else {
                        r_leaf
                    };
                }
            }
        } else {
            for tree in &self.cascade.trees[first..first + count] {
                let root = tree.first_node as usize;
                let n = tree.node_count as usize;
                let mut lanes = [[F::Lane::default(); LANES]; MAX_BATCH_NODES];
                for (k, node) in self.nodes[root..root + n].iter().enumerate() {
                    // SAFETY: guaranteed by the caller.
                    lanes[k] = unsafe { self.feature.lanes::<STEP>(&node.feature, buf, p, norm) };
                }
                for l in 0..LANES {
                    let mut idx = 0i32;
                    loop {
                        let node = &self.nodes[root + idx as usize];
                        idx = node.child(F::lane_goes_left(&node.feature, lanes[idx as usize][l]));
                        if idx <= 0 {
                            break;
                        }
                    }
                    sum[l] += self.leaf(tree, idx) as f64;
                }
            }
        }
        sum
    }
}

impl<N> CompiledNode<N> {
    /// The leaf of a stump node on the given side.
    #[inline(always)]
    fn stump_leaf(&self, left: bool) -> f32 {
        // SAFETY: every bit pattern is a valid f32 and a valid i32, so
        // reading either field is defined; stump code (the only caller)
        // runs only when every node was compiled with leaves.
        unsafe {
            if left {
                self.left.leaf
            } else {
                self.right.leaf
            }
        }
    }

    /// The child reference of a tree node on the given side.
    #[inline(always)]
    fn child(&self, left: bool) -> i32 {
        // SAFETY: as in `stump_leaf`; tree code (the only caller) runs only
        // when every node was compiled with child references.
        unsafe {
            if left {
                self.left.child
            } else {
                self.right.child
            }
        }
    }
}
