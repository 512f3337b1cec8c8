//! Evaluating an LBP cascade on one window of one pyramid level: each
//! feature is an 8-bit code comparing the eight outer blocks of a 3 x 3 grid
//! with the centre block, looked up in a 256-bit subset at each tree node.
//! No variance normalisation.

use crate::cascade::{Cascade, LBP_SUBSET_WORDS, LbpFeature};
use crate::tables::{LevelTables, Table};

/// A node with its feature inlined: the 16 grid-corner offsets (4 x 4
/// points of the 3 x 3 block grid, row-major) and the subset words.
#[derive(Clone, Copy)]
struct CompiledNode {
    ofs: [u32; 16],
    subset: [u32; LBP_SUBSET_WORDS],
    /// Stumps: leaf values below; trees: child references.
    left: Branch,
    right: Branch,
}

#[derive(Clone, Copy)]
union Branch {
    leaf: f32,
    child: i32,
}

/// The 8-bit LBP code of a 3 x 3 block grid given the 16 corner values of
/// the grid (row-major 4 x 4 points of an integral table): bit weights
/// top-left 128, top 64, top-right 32, right 16, bottom-right 8, bottom 4,
/// bottom-left 2, left 1; a bit is set when the block sum is >= the centre.
#[inline(always)]
pub fn lbp_code(c: &[i32; 16]) -> u32 {
    let block = |a: usize, b: usize, d: usize, e: usize| {
        c[a].wrapping_sub(c[b])
            .wrapping_sub(c[d])
            .wrapping_add(c[e])
    };
    let centre = block(5, 6, 9, 10);
    ((block(0, 1, 4, 5) >= centre) as u32) << 7
        | ((block(1, 2, 5, 6) >= centre) as u32) << 6
        | ((block(2, 3, 6, 7) >= centre) as u32) << 5
        | ((block(6, 7, 10, 11) >= centre) as u32) << 4
        | ((block(10, 11, 14, 15) >= centre) as u32) << 3
        | ((block(9, 10, 13, 14) >= centre) as u32) << 2
        | ((block(8, 9, 12, 13) >= centre) as u32) << 1
        | ((block(4, 5, 8, 9) >= centre) as u32)
}

/// An LBP cascade bound to one level's tables.
pub(crate) struct LbpLevel<'a> {
    cascade: &'a Cascade,
    tables: &'a LevelTables,
    nodes: Vec<CompiledNode>,
    stumps: bool,
}

impl<'a> LbpLevel<'a> {
    /// Binds `cascade` to `tables` (see `HaarLevel::new`).
    pub fn new(cascade: &'a Cascade, tables: &'a LevelTables, max_origin: usize) -> Option<Self> {
        let stumps = cascade.is_stump_based();
        let mut nodes = Vec::with_capacity(cascade.nodes.len());
        for (i, node) in cascade.nodes.iter().enumerate() {
            let feature = cascade.lbp.get(node.feature as usize)?;
            let mut subset = [0u32; LBP_SUBSET_WORDS];
            subset.copy_from_slice(
                cascade
                    .subsets
                    .get(i * LBP_SUBSET_WORDS..(i + 1) * LBP_SUBSET_WORDS)?,
            );
            let (left, right) = if stumps {
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
                ofs: grid_offsets(feature, tables),
                subset,
                left,
                right,
            });
        }
        let max_ofs = nodes
            .iter()
            .flat_map(|n| n.ofs.iter())
            .copied()
            .max()
            .unwrap_or(0) as usize;
        if max_origin + max_ofs >= tables.buf.len() {
            return None;
        }
        Some(LbpLevel {
            cascade,
            tables,
            nodes,
            stumps,
        })
    }

    #[inline(always)]
    fn code(node: &CompiledNode, buf: &[u32], p: usize) -> u32 {
        // SAFETY: `new` checked every offset against the largest origin.
        let c: [i32; 16] =
            std::array::from_fn(|k| unsafe { *buf.get_unchecked(p + node.ofs[k] as usize) as i32 });
        lbp_code(&c)
    }

    #[inline(always)]
    fn in_subset(node: &CompiledNode, code: u32) -> bool {
        node.subset[(code >> 5) as usize] & (1 << (code & 31)) != 0
    }

    /// Appends to `found` the x of every detection in the row of windows
    /// whose first origin is `base` (see `HaarLevel::scan_row`).
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

    /// Row loop with stage 0 computed for `LANES` positions at once (see
    /// `HaarLevel::scan_row_step`).
    #[inline(always)]
    fn scan_row_step<const STEP: usize>(&self, base: usize, last_x: usize, found: &mut Vec<usize>) {
        let buf = self.tables.buf.as_slice();
        let batch = self.stumps && !self.cascade.stages.is_empty();
        let mut x = 0usize;
        let mut block_start = 0usize;
        let mut block: Option<[bool; LANES]> = None;
        while x <= last_x {
            let in_block = block.is_some() && x < block_start + LANES * STEP;
            let result = if in_block || (batch && x + (LANES - 1) * STEP <= last_x) {
                if !in_block {
                    block = Some(self.stage0_block::<STEP>(buf, base + x));
                    block_start = x;
                }
                let passed = block.as_ref().expect("block computed above");
                if passed[(x - block_start) / STEP] {
                    self.stages_from(1, buf, base + x)
                } else {
                    0
                }
            } else {
                self.stages_from(0, buf, base + x)
            };
            if result > 0 {
                found.push(x);
            } else if result == 0 {
                // Rejected by the first stage: skip a position.
                x += STEP;
            }
            x += STEP;
        }
    }

    /// Stage 0 (stump cascades) for `LANES` windows at `p`, `p + STEP`, ...:
    /// whether each passed.
    #[inline(always)]
    fn stage0_block<const STEP: usize>(&self, buf: &[u32], p: usize) -> [bool; LANES] {
        let stage = &self.cascade.stages[0];
        let first = stage.first_tree as usize;
        let count = stage.tree_count as usize;
        let mut sum = [0f64; LANES];
        for node in &self.nodes[first..first + count] {
            let mut codes = [0u32; LANES];
            for (l, code) in codes.iter_mut().enumerate() {
                *code = Self::code(node, buf, p + l * STEP);
            }
            // SAFETY: stump nodes hold leaves in both branches.
            let (left, right) = unsafe { (node.left.leaf as f64, node.right.leaf as f64) };
            for l in 0..LANES {
                sum[l] += if Self::in_subset(node, codes[l]) {
                    left
                } else {
                    right
                };
            }
        }
        let threshold = stage.threshold as f64;
        std::array::from_fn(|l| sum[l] >= threshold)
    }

    /// Runs stages `from..` on the window at `p`: 1 for a detection, 0 for a
    /// rejection by stage 0, a negative value for a later rejection.
    #[inline(always)]
    fn stages_from(&self, from: usize, buf: &[u32], p: usize) -> i32 {
        let trees = &self.cascade.trees;
        let leaves = &self.cascade.leaves;
        for (si, stage) in self.cascade.stages.iter().enumerate().skip(from) {
            let first = stage.first_tree as usize;
            let count = stage.tree_count as usize;
            let mut sum = 0.0f64;
            if self.stumps {
                for node in &self.nodes[first..first + count] {
                    let code = Self::code(node, buf, p);
                    // SAFETY: stump nodes hold leaves in both branches.
                    let leaf = unsafe {
                        if Self::in_subset(node, code) {
                            node.left.leaf
                        } else {
                            node.right.leaf
                        }
                    };
                    sum += leaf as f64;
                }
            } else {
                for tree in &trees[first..first + count] {
                    let root = tree.first_node as usize;
                    let mut idx = 0i32;
                    loop {
                        let node = &self.nodes[root + idx as usize];
                        let code = Self::code(node, buf, p);
                        // SAFETY: tree nodes hold child references.
                        idx = unsafe {
                            if Self::in_subset(node, code) {
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
            }
            if sum < stage.threshold as f64 {
                return -(si as i32);
            }
        }
        1
    }
}

fn grid_offsets(f: &LbpFeature, tables: &LevelTables) -> [u32; 16] {
    std::array::from_fn(|k| {
        let (gx, gy) = ((k % 4) as i32, (k / 4) as i32);
        // A zero-size rectangle at the grid point gives its plain offset.
        tables.upright(Table::Sum, f.x + gx * f.width, f.y + gy * f.height, 0, 0)[0]
    })
}

/// Windows evaluated together in the vectorised first stage.
const LANES: usize = 8;
