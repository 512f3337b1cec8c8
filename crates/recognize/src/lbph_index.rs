//! The training histograms of an LBPH model, stored bin-major and sparse, and
//! the exact chi-square scan of a query against all of them.
//!
//! OpenCV sums the chi-square terms of one (training, query) pair in two f64
//! accumulators, even and odd bins, each in increasing bin order. The scan
//! here keeps exactly that order per pair, but walks the bins once for *all*
//! training samples of a block: for bin k it adds the term of every sample
//! to that sample's even or odd accumulator. This turns one long dependent
//! chain of additions per pair into many independent ones (no latency
//! stall, vectorisable), and lets the scan skip work:
//!
//! - where the query bin is zero, only the training samples whose bin is
//!   non-zero are visited (a bin where both are zero contributes nothing in
//!   OpenCV either, so skipping it changes no bit);
//! - where the query bin is non-zero, every sample gets a term: the one for a
//!   zero training count is filled in for all, then overwritten for the
//!   samples with a non-zero count, then added.
//!
//! Each block holds, for every bin, the list of (sample, count) pairs of its
//! samples with a non-zero count (compressed sparse columns). Blocks are
//! independent, so prediction can run them in parallel.

use rayon::prelude::*;

/// A sparse histogram: (bin, count) pairs, bins increasing, counts non-zero.
pub(crate) type SparseHistogram = Vec<(u32, u16)>;

/// Training samples per block (block-local sample numbers fit in u16).
const BLOCK_LEN: usize = 128;

#[derive(Clone, Debug)]
struct Block {
    /// Number of samples in the block.
    len: usize,
    /// entries[offsets[k]..offsets[k + 1]] are the non-zero entries of bin k.
    offsets: Vec<u32>,
    /// (block-local sample, count), by bin then sample.
    entries: Vec<(u16, u16)>,
}

impl Block {
    fn build(bins: usize, samples: &[SparseHistogram]) -> Block {
        let mut offsets = vec![0u32; bins + 1];
        for h in samples {
            for &(bin, _) in h {
                offsets[bin as usize + 1] += 1;
            }
        }
        for k in 0..bins {
            offsets[k + 1] += offsets[k];
        }
        let mut cursor: Vec<u32> = offsets[..bins].to_vec();
        let mut entries = vec![(0u16, 0u16); offsets[bins] as usize];
        for (s, h) in samples.iter().enumerate() {
            for &(bin, count) in h {
                let slot = &mut cursor[bin as usize];
                entries[*slot as usize] = (s as u16, count);
                *slot += 1;
            }
        }
        Block {
            len: samples.len(),
            offsets,
            entries,
        }
    }

    fn sample_histograms(&self) -> Vec<SparseHistogram> {
        let mut out = vec![Vec::new(); self.len];
        for (bin, range) in self.offsets.windows(2).enumerate() {
            for &(s, count) in &self.entries[range[0] as usize..range[1] as usize] {
                out[usize::from(s)].push((bin as u32, count));
            }
        }
        out
    }

    /// Chi-square distances of the query to this block's samples, with the
    /// terms read from a table column per query count: `columns[cb * stride
    /// + ca]` is the term for training count ca and query count cb.
    fn distances_table(&self, query: &[u16], columns: &[f64], stride: usize, out: &mut [f64]) {
        let n = self.len.min(BLOCK_LEN);
        let mut even = [0.0f64; BLOCK_LEN];
        let mut odd = [0.0f64; BLOCK_LEN];
        let mut terms = [0.0f64; BLOCK_LEN];
        let last = stride - 1;
        let column = |cb: u16| &columns[usize::from(cb).min(last) * stride..][..stride];
        let zero_column = column(0);
        for (k, (&cb, range)) in query.iter().zip(self.offsets.windows(2)).enumerate() {
            let acc = if k % 2 == 0 { &mut even } else { &mut odd };
            let entries = &self.entries[range[0] as usize..range[1] as usize];
            if cb == 0 {
                for &(s, ca) in entries {
                    acc[usize::from(s) % BLOCK_LEN] += zero_column[usize::from(ca).min(last)];
                }
            } else {
                let col = column(cb);
                terms[..n].fill(col[0]);
                for &(s, ca) in entries {
                    terms[usize::from(s) % BLOCK_LEN] = col[usize::from(ca).min(last)];
                }
                for (a, t) in acc[..n].iter_mut().zip(&terms[..n]) {
                    *a += *t;
                }
            }
        }
        for ((d, e), o) in out.iter_mut().zip(&even[..n]).zip(&odd[..n]) {
            *d = 2.0 * (e + o);
        }
    }

    /// Chi-square distances of the query to this block's samples.
    fn distances(&self, query: &[u16], term: &(impl Fn(u16, u16) -> f64 + Sync), out: &mut [f64]) {
        let n = self.len;
        let mut even = vec![0.0f64; n];
        let mut odd = vec![0.0f64; n];
        let mut terms = vec![0.0f64; n];
        for (k, (&cb, range)) in query.iter().zip(self.offsets.windows(2)).enumerate() {
            let acc = if k % 2 == 0 { &mut even } else { &mut odd };
            let entries = &self.entries[range[0] as usize..range[1] as usize];
            if cb == 0 {
                for &(s, ca) in entries {
                    acc[usize::from(s)] += term(ca, 0);
                }
            } else {
                terms.fill(term(0, cb));
                for &(s, ca) in entries {
                    terms[usize::from(s)] = term(ca, cb);
                }
                for (a, t) in acc.iter_mut().zip(&terms) {
                    *a += *t;
                }
            }
        }
        for ((d, e), o) in out.iter_mut().zip(&even).zip(&odd) {
            *d = 2.0 * (e + o);
        }
    }
}

/// All training histograms of a model, in blocks of [`BLOCK_LEN`] samples.
#[derive(Clone, Debug)]
pub(crate) struct HistogramIndex {
    bins: usize,
    len: usize,
    blocks: Vec<Block>,
}

impl HistogramIndex {
    /// An empty index for histograms of `bins` bins.
    pub fn new(bins: usize) -> Self {
        HistogramIndex {
            bins,
            len: 0,
            blocks: Vec::new(),
        }
    }

    /// Appends samples (in order) after the existing ones.
    pub fn push(&mut self, mut samples: Vec<SparseHistogram>) {
        if let Some(last) = self.blocks.last()
            && last.len < BLOCK_LEN
        {
            let mut merged = last.sample_histograms();
            let take = (BLOCK_LEN - last.len).min(samples.len());
            merged.extend(samples.drain(..take));
            self.len += take;
            let rebuilt = Block::build(self.bins, &merged);
            if let Some(slot) = self.blocks.last_mut() {
                *slot = rebuilt;
            }
        }
        for chunk in samples.chunks(BLOCK_LEN) {
            self.blocks.push(Block::build(self.bins, chunk));
            self.len += chunk.len();
        }
    }

    /// Every sample's sparse histogram, in sample order.
    pub fn sample_histograms(&self) -> Vec<SparseHistogram> {
        self.blocks
            .iter()
            .flat_map(|b| b.sample_histograms())
            .collect()
    }

    /// Largest count stored (0 when empty).
    pub fn max_count(&self) -> u16 {
        self.blocks
            .iter()
            .flat_map(|b| b.entries.iter().map(|e| e.1))
            .max()
            .unwrap_or(0)
    }

    /// Like [`HistogramIndex::distances`] with the terms read from a table:
    /// `columns[cb * stride + ca]` is the term for training count ca and
    /// query count cb; every count must be below `stride`.
    pub fn distances_table(&self, query: &[u16], columns: &[f64], stride: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.len];
        let parallel = rayon::current_num_threads() > 1 && self.blocks.len() > 1;
        if parallel {
            out.par_chunks_mut(BLOCK_LEN)
                .zip(self.blocks.par_iter())
                .for_each(|(chunk, block)| block.distances_table(query, columns, stride, chunk));
        } else {
            for (chunk, block) in out.chunks_mut(BLOCK_LEN).zip(&self.blocks) {
                block.distances_table(query, columns, stride, chunk);
            }
        }
        out
    }

    /// Chi-square distance of the dense `query` counts to every sample, in
    /// OpenCV's arithmetic; `term(train_count, query_count)` gives one term.
    pub fn distances(&self, query: &[u16], term: impl Fn(u16, u16) -> f64 + Sync) -> Vec<f64> {
        let mut out = vec![0.0; self.len];
        let parallel = rayon::current_num_threads() > 1 && self.blocks.len() > 1;
        if parallel {
            out.par_chunks_mut(BLOCK_LEN)
                .zip(self.blocks.par_iter())
                .for_each(|(chunk, block)| block.distances(query, &term, chunk));
        } else {
            for (chunk, block) in out.chunks_mut(BLOCK_LEN).zip(&self.blocks) {
                block.distances(query, &term, chunk);
            }
        }
        out
    }
}
