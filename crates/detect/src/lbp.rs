//! The LBP feature type of the generic cascade evaluation
//! ([`crate::boost`]): each feature is an 8-bit code comparing the eight
//! outer blocks of a 3 x 3 grid with the centre block (block sums from the
//! upright integral table), and a node goes left when the code is in the
//! node's 256-bit subset. There is no window test (no variance
//! normalisation).
//!
//! Invariant: a compiled feature ([`LbpNode`]) reads only the 16 grid-corner
//! offsets that [`Lbp::max_offset`] reports, so the bounds check of
//! [`BoostedLevel::new`] covers every read made here.

use crate::boost::{BoostedLevel, LANES, WeakFeature};
use crate::cascade::{Cascade, LBP_SUBSET_WORDS, LbpFeature, Node};
use crate::tables::{LevelTables, Table};

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

/// The LBP evaluator (no per-level state).
pub(crate) struct Lbp;

/// An LBP feature compiled for one level: the 16 grid-corner offsets (4 x 4
/// points of the 3 x 3 block grid, row-major) and the node's subset words.
#[derive(Clone, Copy)]
pub(crate) struct LbpNode {
    ofs: [u32; 16],
    subset: [u32; LBP_SUBSET_WORDS],
}

/// Binds an LBP `cascade` to `tables` (see [`BoostedLevel::new`]).
pub(crate) fn level<'a>(
    cascade: &'a Cascade,
    tables: &'a LevelTables,
    max_origin: usize,
) -> Option<BoostedLevel<'a, Lbp>> {
    BoostedLevel::new(cascade, tables, max_origin, Lbp)
}

impl Lbp {
    /// The code of `node`'s feature at window `p`.
    ///
    /// # Safety
    /// As for [`WeakFeature::goes_left`].
    #[inline(always)]
    unsafe fn code(node: &LbpNode, buf: &[u32], p: usize) -> u32 {
        // The window's corner as a pointer, so that each of the 16 reads is
        // one addressing mode (the offset), not an add and a read.
        // SAFETY: p and every p + offset are in bounds (the caller's
        // guarantee).
        let window = unsafe { buf.as_ptr().add(p) };
        // SAFETY: as above.
        let c: [i32; 16] =
            std::array::from_fn(|k| unsafe { *window.add(node.ofs[k] as usize) as i32 });
        lbp_code(&c)
    }

    #[inline(always)]
    fn in_subset(node: &LbpNode, code: u32) -> bool {
        node.subset[(code >> 5) as usize] & (1 << (code & 31)) != 0
    }
}

impl WeakFeature for Lbp {
    type Node = LbpNode;
    type Norm = ();
    type Lane = u32;

    const BATCH_STAGES: usize = 1;
    const BATCH_MAX_NODES: usize = 1;

    fn compile(
        &self,
        cascade: &Cascade,
        index: usize,
        node: &Node,
        tables: &LevelTables,
    ) -> Option<LbpNode> {
        let feature = cascade.lbp.get(node.feature as usize)?;
        let mut subset = [0u32; LBP_SUBSET_WORDS];
        subset.copy_from_slice(
            cascade
                .subsets
                .get(index * LBP_SUBSET_WORDS..(index + 1) * LBP_SUBSET_WORDS)?,
        );
        Some(LbpNode {
            ofs: grid_offsets(feature, tables),
            subset,
        })
    }

    fn max_offset(node: &LbpNode) -> u32 {
        node.ofs.iter().copied().max().unwrap_or(0)
    }

    fn window_max_offset(&self) -> u32 {
        0
    }

    #[inline(always)]
    unsafe fn window(&self, _buf: &[u32], _p: usize) -> Option<()> {
        Some(())
    }

    #[inline(always)]
    unsafe fn window_lanes<const STEP: usize>(
        &self,
        _buf: &[u32],
        _p: usize,
    ) -> ([(); LANES], [bool; LANES]) {
        ([(); LANES], [true; LANES])
    }

    #[inline(always)]
    unsafe fn goes_left(&self, node: &LbpNode, buf: &[u32], p: usize, _norm: ()) -> bool {
        // SAFETY: guaranteed by the caller.
        Self::in_subset(node, unsafe { Self::code(node, buf, p) })
    }

    #[inline(always)]
    unsafe fn lanes<const STEP: usize>(
        &self,
        node: &LbpNode,
        buf: &[u32],
        p: usize,
        _norm: &[(); LANES],
    ) -> [u32; LANES] {
        let mut codes = [0u32; LANES];
        for (l, code) in codes.iter_mut().enumerate() {
            // SAFETY: guaranteed by the caller.
            *code = unsafe { Self::code(node, buf, p + l * STEP) };
        }
        codes
    }

    #[inline(always)]
    fn lane_goes_left(node: &LbpNode, code: u32) -> bool {
        Self::in_subset(node, code)
    }
}

fn grid_offsets(f: &LbpFeature, tables: &LevelTables) -> [u32; 16] {
    std::array::from_fn(|k| {
        let (gx, gy) = ((k % 4) as i32, (k / 4) as i32);
        // A zero-size rectangle at the grid point gives its plain offset.
        tables.upright(Table::Sum, f.x + gx * f.width, f.y + gy * f.height, 0, 0)[0]
    })
}
