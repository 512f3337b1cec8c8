//! The training histograms of an LBPH model, stored twice as integer bin
//! counts:
//!
//! - per sample, as sparse rows ((bin, count) pairs, bins increasing): what
//!   the exact distance of one sample and the model file need;
//! - per bin, over blocks of samples: for bin k either the list of
//!   (sample, count) of every sample whose count is non-zero (compressed
//!   sparse columns), or, when at least half the samples are non-zero, a
//!   dense row of one byte per sample (cheaper to scan in full than entry
//!   by entry). The prediction scan ([`super::scan`]) only visits the
//!   bins where the query is non-zero.
//!
//! Appending samples (an LBPH update) builds a block of the new samples
//! only, then merges the last blocks while the one before the last holds
//! at most twice as many samples (or both are small), as a binary counter
//! carries: every sample is rebuilt O(log n) times over the life of the
//! model, so an update costs about the new samples times log n, not the
//! whole model. Invariant: blocks are consecutive in sample order, each
//! holds 1 to [`BLOCK_LEN`] samples, and their sizes never increase from
//! one block to the next by more than the merge rule allows (at most
//! O(log n) blocks per [`BLOCK_LEN`] samples).

/// A sparse histogram: (bin, count) pairs, bins increasing, counts non-zero.
pub(crate) type SparseHistogram = Vec<(u32, u16)>;

/// Blocks of fewer samples keep no dense rows.
const MIN_DENSE_LEN: usize = 8;

/// Samples per block: block-local sample numbers fit in 16 bits, next to a
/// 16-bit count in one `u32` entry (small in unit tests, to exercise several
/// blocks).
const BLOCK_LEN: usize = if cfg!(test) { 16 } else { 1 << 16 };

/// Two neighbouring blocks whose samples add up to at most this many are
/// always merged: rebuilding a few hundred samples takes well under a
/// millisecond (a 100x100 face has about 4,000 non-zero bins), and fewer
/// blocks make the scan's per-block overhead smaller.
const SMALL_MERGE: usize = if cfg!(test) { 4 } else { 256 };

/// The compressed sparse columns of up to [`BLOCK_LEN`] consecutive samples.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    /// Index of the block's first sample in the model.
    first: usize,
    /// Number of samples in the block.
    len: usize,
    /// `entries[offsets[k]..offsets[k + 1]]` are the non-zero entries of bin
    /// k, for the bins without a dense row.
    offsets: Vec<usize>,
    /// `(block-local sample << 16) | count`, by bin then sample.
    entries: Vec<u32>,
    /// Per bin: 1 + its row in `dense`, or 0 when the bin has no dense row.
    dense_rows: Vec<u32>,
    /// Dense rows of `len` counts (one per sample, zeros included) for the
    /// bins where at least half the samples are non-zero and every count
    /// fits in a byte.
    dense: Vec<u8>,
}

impl Block {
    fn build(bins: usize, first: usize, samples: &[SparseHistogram]) -> Block {
        let len = samples.len();
        let mut non_zero = vec![0usize; bins];
        let mut largest = vec![0u16; bins];
        for h in samples {
            for &(bin, count) in h {
                non_zero[bin as usize] += 1;
                largest[bin as usize] = largest[bin as usize].max(count);
            }
        }
        // Each bin goes either to a dense row or to the sparse entries.
        let mut dense_rows = vec![0u32; bins];
        let mut rows = 0;
        let mut offsets = vec![0usize; bins + 1];
        for k in 0..bins {
            let is_dense =
                len >= MIN_DENSE_LEN && 2 * non_zero[k] >= len && largest[k] <= u16::from(u8::MAX);
            if is_dense {
                rows += 1;
                dense_rows[k] = rows;
                offsets[k + 1] = offsets[k];
            } else {
                offsets[k + 1] = offsets[k] + non_zero[k];
            }
        }
        let mut dense = vec![0u8; rows as usize * len];
        let mut cursor: Vec<usize> = offsets[..bins].to_vec();
        let mut entries = vec![0u32; offsets[bins]];
        for (s, h) in samples.iter().enumerate() {
            for &(bin, count) in h {
                let k = bin as usize;
                match dense_rows[k].checked_sub(1) {
                    Some(row) => dense[row as usize * len + s] = count as u8,
                    None => {
                        entries[cursor[k]] = ((s as u32) << 16) | u32::from(count);
                        cursor[k] += 1;
                    }
                }
            }
        }
        Block {
            first,
            len,
            offsets,
            entries,
            dense_rows,
            dense,
        }
    }

    /// Index of the block's first sample in the model.
    pub fn first(&self) -> usize {
        self.first
    }

    /// Number of samples in the block.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The packed entries of bin k (see [`entry_sample`], [`entry_count`]);
    /// empty when the bin has a [`Block::dense_row`].
    #[inline]
    pub fn column(&self, k: usize) -> &[u32] {
        &self.entries[self.offsets[k]..self.offsets[k + 1]]
    }

    /// The counts of bin k for every sample of the block (zeros included),
    /// if the bin is dense (at least half the samples non-zero, counts
    /// below 256): cheaper to scan in full than entry by entry.
    #[inline]
    pub fn dense_row(&self, k: usize) -> Option<&[u8]> {
        let row = (*self.dense_rows.get(k)? as usize).checked_sub(1)?;
        self.dense.get(row * self.len..(row + 1) * self.len)
    }
}

/// Block-local sample number of a packed column entry.
#[inline]
pub(crate) fn entry_sample(entry: u32) -> usize {
    (entry >> 16) as usize
}

/// Bin count of a packed column entry.
#[inline]
pub(crate) fn entry_count(entry: u32) -> usize {
    (entry & 0xffff) as usize
}

/// All training histograms of a model.
#[derive(Clone, Debug)]
pub(crate) struct HistogramIndex {
    bins: usize,
    samples: Vec<SparseHistogram>,
    blocks: Vec<Block>,
}

impl HistogramIndex {
    /// An empty index for histograms of `bins` bins.
    pub fn new(bins: usize) -> Self {
        HistogramIndex {
            bins,
            samples: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// Appends samples (in order) after the existing ones; every bin must be
    /// below the histogram length.
    pub fn push(&mut self, samples: Vec<SparseHistogram>) {
        let mut first = self.samples.len();
        self.samples.extend(samples);
        while first < self.samples.len() {
            let end = (first + BLOCK_LEN).min(self.samples.len());
            self.blocks
                .push(Block::build(self.bins, first, &self.samples[first..end]));
            first = end;
            self.merge_tail();
        }
    }

    /// Merges the last two blocks while the merge rule (module docs) asks.
    fn merge_tail(&mut self) {
        while let [.., before, last] = &self.blocks[..] {
            let merged = before.len + last.len;
            let carry = before.len <= 2 * last.len || merged <= SMALL_MERGE;
            if !carry || merged > BLOCK_LEN {
                return;
            }
            let start = before.first;
            self.blocks.truncate(self.blocks.len() - 2);
            self.blocks.push(Block::build(
                self.bins,
                start,
                &self.samples[start..start + merged],
            ));
        }
    }

    /// Histogram length (bins per sample).
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Every sample's sparse histogram, in sample order.
    pub fn samples(&self) -> &[SparseHistogram] {
        &self.samples
    }

    /// The column blocks, in sample order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Largest count stored (0 when empty).
    pub fn max_count(&self) -> u16 {
        self.samples
            .iter()
            .flat_map(|h| h.iter().map(|e| e.1))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_rows_hold_every_sample_of_bins_at_least_half_full() {
        let samples: Vec<SparseHistogram> = (0..10u16)
            .map(|s| {
                let mut h = vec![(0, 1 + s)];
                if s % 2 == 0 {
                    h.push((1, 300 + s));
                }
                if s < 4 {
                    h.push((2, 9));
                }
                if s % 2 == 1 {
                    h.push((3, 2));
                }
                h
            })
            .collect();
        let block = Block::build(4, 0, &samples);
        let want0: Vec<u8> = (1..=10).collect();
        assert_eq!(block.dense_row(0), Some(&want0[..]));
        // Half full, but counts above 255.
        assert_eq!(block.dense_row(1), None);
        // Less than half full.
        assert_eq!(block.dense_row(2), None);
        assert_eq!(
            block.dense_row(3),
            Some(&[0, 2, 0, 2, 0, 2, 0, 2, 0, 2][..])
        );
        assert_eq!(block.column(3), &[]);
        assert_eq!(block.column(2).len(), 4);
    }

    #[test]
    fn columns_list_every_non_zero_entry_by_bin() {
        let mut index = HistogramIndex::new(4);
        index.push(vec![vec![(0, 3), (2, 1)], vec![(2, 5)]]);
        index.push(vec![vec![(1, 2), (2, 7)]]);
        assert_eq!(index.len(), 3);
        assert_eq!(index.blocks().len(), 1);
        let block = &index.blocks()[0];
        let column = |k| -> Vec<(usize, usize)> {
            block
                .column(k)
                .iter()
                .map(|&e| (entry_sample(e), entry_count(e)))
                .collect()
        };
        assert_eq!(column(0), vec![(0, 3)]);
        assert_eq!(column(1), vec![(2, 2)]);
        assert_eq!(column(2), vec![(0, 1), (1, 5), (2, 7)]);
        assert_eq!(column(3), vec![]);
        assert_eq!(index.max_count(), 7);
        // Too few samples for dense rows.
        assert_eq!(block.dense_row(2), None);
        assert_eq!(index.samples()[2], vec![(1, 2), (2, 7)]);
    }
}
