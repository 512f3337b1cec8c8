//! The integral tables of one pyramid level, laid out in one buffer so that
//! every feature rectangle becomes four plain offsets from the window's
//! top-left corner (the same trick as OpenCV's `sbuf`): the upright sums come
//! first, then the squared sums (Haar), then the rotated sums (tilted Haar
//! features).

use crate::integral::{Integral, tilted_integral};

/// Which of the level's tables a rectangle is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    /// Upright pixel sums.
    Sum,
    /// Upright squared-pixel sums.
    SqSum,
    /// 45-degree rotated pixel sums.
    Tilted,
}

/// Integral tables of one downscaled image.
pub(crate) struct LevelTables {
    /// Row length of each table (image width + 1).
    pub stride: usize,
    /// Length of one table ((width + 1) x (height + 1)).
    pub table_len: usize,
    /// The tables, one after the other.
    pub buf: Vec<u32>,
    has_sq: bool,
    has_tilted: bool,
}

impl LevelTables {
    /// Builds the tables of a `width` x `height` grey image.
    pub fn new(
        pixels: &[u8],
        width: usize,
        height: usize,
        with_squares: bool,
        with_tilted: bool,
    ) -> Self {
        let ii = Integral::new(pixels, width, height, with_squares);
        let table_len = ii.sum.len();
        let mut buf = ii.sum;
        if with_squares {
            buf.extend_from_slice(&ii.sq_sum);
        }
        if with_tilted {
            buf.extend_from_slice(&tilted_integral(pixels, width, height));
        }
        LevelTables {
            stride: ii.stride,
            table_len,
            buf,
            has_sq: with_squares,
            has_tilted: with_tilted,
        }
    }

    fn base(&self, table: Table) -> usize {
        match table {
            Table::Sum => 0,
            Table::SqSum => {
                debug_assert!(self.has_sq);
                self.table_len
            }
            Table::Tilted => {
                debug_assert!(self.has_tilted);
                self.table_len * (1 + self.has_sq as usize)
            }
        }
    }

    /// Offsets (a, b, c, d) with sum = T[a] - T[b] - T[c] + T[d] for an
    /// upright rectangle (x, y, w, h) relative to the window origin.
    pub fn upright(&self, table: Table, x: i32, y: i32, w: i32, h: i32) -> [u32; 4] {
        let base = self.base(table) as i64;
        let s = self.stride as i64;
        let at = |px: i32, py: i32| (base + py as i64 * s + px as i64) as u32;
        [at(x, y), at(x + w, y), at(x, y + h), at(x + w, y + h)]
    }

    /// Offsets for a tilted rectangle: corners (x, y), (x - h, y + h),
    /// (x + w, y + w), (x + w - h, y + w + h) of the rotated table.
    pub fn tilted(&self, x: i32, y: i32, w: i32, h: i32) -> [u32; 4] {
        let base = self.base(Table::Tilted) as i64;
        let s = self.stride as i64;
        let at = |px: i32, py: i32| (base + py as i64 * s + px as i64) as u32;
        [
            at(x, y),
            at(x - h, y + h),
            at(x + w, y + w),
            at(x + w - h, y + w + h),
        ]
    }
}

/// Four-corner difference at window origin `p` (wrapping, like OpenCV's
/// 32-bit tables).
///
/// # Safety
/// `p + o` must be in bounds of `buf` for every offset `o` in `ofs`.
#[inline(always)]
pub(crate) unsafe fn corner_sum(buf: &[u32], p: usize, ofs: &[u32; 4]) -> u32 {
    // SAFETY: guaranteed by the caller.
    unsafe {
        buf.get_unchecked(p + ofs[0] as usize)
            .wrapping_sub(*buf.get_unchecked(p + ofs[1] as usize))
            .wrapping_sub(*buf.get_unchecked(p + ofs[2] as usize))
            .wrapping_add(*buf.get_unchecked(p + ofs[3] as usize))
    }
}
