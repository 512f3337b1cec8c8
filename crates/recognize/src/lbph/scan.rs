//! The nearest training histogram of a query under OpenCV's chi-square
//! distance, with the same answer as the exhaustive bit-exact scan (same
//! nearest sample, same distance bits), by filtering then refining.
//!
//! OpenCV sums the terms of one (training, query) pair in a fixed order (two
//! f64 accumulators, even and odd bins, spec section 4.3), so the exact
//! distance of a pair is one long chain of dependent additions over every
//! bin where either histogram is non-zero. Only the winner's distance is
//! returned, though, so the scan works in two steps:
//!
//! 1. **Filter.** An approximate distance for every sample, summed in any
//!    order. With t(a, b) the chi-square term of training count a and query
//!    count b (bit-identical to OpenCV's), the half distance of sample s is
//!
//!    sum_k t(a_k, b_k) = base_s + Q + sum_{a_k != 0, b_k != 0} delta(a_k, b_k)
//!
//!    where base_s = sum_{a_k != 0} t(a_k, 0) is fixed at training,
//!    Q = sum_{b_k != 0} t(0, b_k) depends on the query only, and
//!    delta(a, b) = t(a, b) - t(a, 0) - t(0, b) comes from a table. Only the
//!    bins where the query is non-zero are visited, through the bin-major
//!    storage of [`super::index`]: a sparse column lists the samples
//!    whose count is non-zero, a dense row has every sample (a zero count
//!    adds delta(0, b), exactly 0). The additions have no long dependency
//!    chain, and the bins are split over threads.
//! 2. **Refine.** Every sample whose approximate distance could be the
//!    smallest, given a rigorous bound on the rounding difference between the
//!    two summations, gets its exact distance in OpenCV's order; the earliest
//!    strictly smallest of those wins, as in OpenCV. Usually one sample.
//!
//! **The bound.** Let u = 2^-53 and M = m_s + m_q, the sums of the two
//! histograms' bin values. Every term, t(a, b) <= (a + b)(1 + 5u), and every
//! partial sum of either computation is at most 3M(1 + 10^-6) in magnitude,
//! so each rounding errs by at most 3.1uM. The exact chain has at most L + 1
//! roundings (L = bins); the filter has at most L each for base_s and Q,
//! L for the deltas, 2 per delta value (bounded by 4.1uM in total), and one
//! per thread and final addition. So |approx - exact| <= 2 * 3.1uM(4L + 10 +
//! threads) on the full distance (2 * half), which the bound used,
//! [`BOUND_FACTOR`] * f64::EPSILON * (L + 256) * M, covers with a margin of
//! 20 or more for up to 1024 threads: the refinement only skips samples
//! whose exact distance is certainly larger than another sample's.

use rayon::prelude::*;

use super::histogram::{bin_value, chi_square_term, sparse};
use super::index::{HistogramIndex, entry_count, entry_sample};

/// Largest cell area (largest bin count) for which the terms come from
/// tables of (area + 1) x max(area + 1, 256) entries (2 x 8 MiB at most);
/// larger cells compute each term directly, with the same result.
const MAX_TABLE_AREA: usize = 1023;

/// The rounding bound is `BOUND_FACTOR * f64::EPSILON * (L + 256) * M`
/// (f64::EPSILON = 2u; see the module docs for the derivation).
const BOUND_FACTOR: f64 = 256.0;

/// Column length of the tables when every count fits in a byte.
const BYTE_COLUMN: usize = 256;

/// Below this many (query bin, sample) pairs (about 100 us of work) the
/// filter runs on one thread: handing work to the thread pool and waiting
/// for it costs 10-30 us.
const PARALLEL_WORK: usize = 1 << 18;

/// Term tables, indexed `[query count * stride + training count]`, for
/// counts up to the cell area (columns padded to [`BYTE_COLUMN`]).
#[derive(Clone, Debug)]
struct Tables {
    stride: usize,
    /// t(a, b).
    terms: Vec<f64>,
    /// t(a, b) - t(a, 0) - t(0, b).
    deltas: Vec<f64>,
}

/// What the scan precomputes for one model: term tables for its cell area
/// and, per training sample, base_s and its histogram mass.
#[derive(Clone, Debug)]
pub(crate) struct ChiSquareScan {
    reciprocal: f32,
    tables: Option<Tables>,
    /// base_s = sum over the sample's non-zero bins of t(a, 0).
    base: Vec<f64>,
    /// Sum of the sample's bin values.
    mass: Vec<f64>,
}

impl ChiSquareScan {
    /// Prepares the scan of `index`, whose counts are at most `area`
    /// (`reciprocal` = f32(1 / area), the bin value of a count of one).
    pub fn new(index: &HistogramIndex, area: usize, reciprocal: f32) -> Self {
        let mut scan = ChiSquareScan {
            reciprocal,
            tables: None,
            base: Vec::new(),
            mass: Vec::new(),
        };
        if area <= MAX_TABLE_AREA {
            // Byte counts index a whole 256-entry column without a check.
            let stride = (area + 1).max(BYTE_COLUMN);
            let mut terms = Vec::with_capacity((area + 1) * stride);
            for b in 0..=area {
                for a in 0..stride {
                    terms.push(scan.term(a, b));
                }
            }
            // delta(a, b) from the terms: the same operations on the same values.
            let deltas = (0..=area)
                .flat_map(|b| (0..stride).map(move |a| (a, b)))
                .map(|(a, b)| terms[b * stride + a] - terms[a] - terms[b * stride])
                .collect();
            scan.tables = Some(Tables {
                stride,
                terms,
                deltas,
            });
        }
        scan.extend(index);
        scan
    }

    /// Prepares the samples `index` gained since this scan was made (or
    /// last extended): an update costs the new samples, not the model. The
    /// result is the same as [`ChiSquareScan::new`] on the whole index.
    pub fn extend(&mut self, index: &HistogramIndex) {
        let new = index.samples().get(self.base.len()..).unwrap_or(&[]);
        let (base, mass): (Vec<f64>, Vec<f64>) = new
            .iter()
            .map(|h| {
                h.iter().fold((0.0, 0.0), |(base, mass), &(_, a)| {
                    (
                        base + self.table_term(usize::from(a), 0),
                        mass + self.value(usize::from(a)),
                    )
                })
            })
            .unzip();
        self.base.extend(base);
        self.mass.extend(mass);
    }

    /// The f64 value of a bin with this count.
    fn value(&self, count: usize) -> f64 {
        f64::from(bin_value(count as u16, self.reciprocal))
    }

    /// [`ChiSquareScan::term`], from the table when it covers (a, b).
    #[inline]
    fn table_term(&self, a: usize, b: usize) -> f64 {
        if let Some(t) = &self.tables
            && a < t.stride
            && let Some(&term) = t.terms.get(b * t.stride + a)
        {
            return term;
        }
        self.term(a, b)
    }

    /// OpenCV's chi-square term for training count a and query count b.
    fn term(&self, a: usize, b: usize) -> f64 {
        chi_square_term(
            bin_value(a as u16, self.reciprocal),
            bin_value(b as u16, self.reciprocal),
        )
    }

    /// t(a, b) - t(a, 0) - t(0, b): what a bin where both are non-zero adds
    /// to base_s + Q.
    fn delta(&self, a: usize, b: usize) -> f64 {
        self.term(a, b) - self.term(a, 0) - self.term(0, b)
    }

    /// The nearest sample of `index` to the dense `query` counts (index,
    /// exact distance), OpenCV's rule: earliest strictly smallest distance.
    /// `None` when the index is empty.
    pub fn nearest(&self, index: &HistogramIndex, query: &[u16]) -> Option<(usize, f64)> {
        let n = index.len();
        if n == 0 || n != self.base.len() {
            return None;
        }
        let query_bins = sparse(query);
        let (query_sum, query_mass) = query_bins.iter().fold((0.0, 0.0), |(sum, mass), &(_, b)| {
            (
                sum + self.table_term(0, usize::from(b)),
                mass + self.value(usize::from(b)),
            )
        });
        let deltas = self.delta_sums(index, &query_bins);
        let bound_scale = BOUND_FACTOR * f64::EPSILON * (index.bins() as f64 + 256.0);
        let approx: Vec<(f64, f64)> = (0..n)
            .map(|s| {
                let distance = 2.0 * (self.base[s] + query_sum + deltas[s]);
                let bound = bound_scale * (self.mass[s] + query_mass);
                (distance, bound)
            })
            .collect();
        // No exact distance is above this, for the sample where it is reached.
        let limit = approx
            .iter()
            .map(|&(d, bound)| d + bound)
            .fold(f64::INFINITY, f64::min);
        let mut scratch = vec![0u16; index.bins()];
        let mut best: Option<(usize, f64)> = None;
        for (s, &(d, bound)) in approx.iter().enumerate() {
            if d - bound > limit {
                continue;
            }
            let exact = self.exact(&index.samples()[s], query, &mut scratch);
            if best.is_none_or(|(_, b)| exact < b) {
                best = Some((s, exact));
            }
        }
        best
    }

    /// For every sample, the sum of delta(a_k, b_k) over the bins where both
    /// it and the query are non-zero.
    fn delta_sums(&self, index: &HistogramIndex, query_bins: &[(u32, u16)]) -> Vec<f64> {
        let n = index.len();
        let threads = rayon::current_num_threads();
        if threads <= 1 || query_bins.len() * n < PARALLEL_WORK {
            let mut sums = vec![0.0; n];
            self.add_deltas(index, query_bins, &mut sums);
            return sums;
        }
        let parts: Vec<Vec<f64>> = query_bins
            .par_chunks(query_bins.len().div_ceil(threads))
            .map(|part| {
                let mut sums = vec![0.0; n];
                self.add_deltas(index, part, &mut sums);
                sums
            })
            .collect();
        let mut sums = vec![0.0; n];
        for part in &parts {
            for (total, v) in sums.iter_mut().zip(part) {
                *total += v;
            }
        }
        sums
    }

    /// Adds the deltas of the given query bins to `sums` (one per sample).
    fn add_deltas(&self, index: &HistogramIndex, query_bins: &[(u32, u16)], sums: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { self.add_deltas_avx2(index, query_bins, sums) };
            return;
        }
        self.add_deltas_portable(index, query_bins, sums);
    }

    /// [`ChiSquareScan::add_deltas_portable`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn add_deltas_avx2(&self, index: &HistogramIndex, query_bins: &[(u32, u16)], sums: &mut [f64]) {
        self.add_deltas_portable(index, query_bins, sums);
    }

    #[inline(always)]
    fn add_deltas_portable(
        &self,
        index: &HistogramIndex,
        query_bins: &[(u32, u16)],
        sums: &mut [f64],
    ) {
        for block in index.blocks() {
            let sums = &mut sums[block.first()..block.first() + block.len()];
            match &self.tables {
                Some(t) => {
                    // Dense rows are added four at a time (one pass over the
                    // sums instead of four).
                    let mut batch: Vec<DenseRow> = Vec::with_capacity(4);
                    for &(k, b) in query_bins {
                        let deltas = &t.deltas[usize::from(b) * t.stride..][..t.stride];
                        if let Some(row) = block.dense_row(k as usize) {
                            // Dense counts are bytes, so the table has byte
                            // columns.
                            if let Some(deltas) = deltas.first_chunk::<BYTE_COLUMN>() {
                                batch.push((row, deltas));
                                if let [r0, r1, r2, r3] = batch[..] {
                                    add_four_dense_rows(sums, [r0, r1, r2, r3]);
                                    batch.clear();
                                }
                            }
                        }
                        for &e in block.column(k as usize) {
                            sums[entry_sample(e)] += deltas[entry_count(e)];
                        }
                    }
                    for (row, deltas) in batch {
                        add_dense_row(sums, row, deltas);
                    }
                }
                None => {
                    for &(k, b) in query_bins {
                        let b = usize::from(b);
                        if let Some(row) = block.dense_row(k as usize) {
                            for (sum, &a) in sums.iter_mut().zip(row) {
                                if a != 0 {
                                    *sum += self.delta(usize::from(a), b);
                                }
                            }
                        }
                        for &e in block.column(k as usize) {
                            sums[entry_sample(e)] += self.delta(entry_count(e), b);
                        }
                    }
                }
            }
        }
    }

    /// OpenCV's exact distance between one training sample and the dense
    /// query: terms in two f64 accumulators, even and odd bins, each in
    /// increasing bin order, result 2 * (even + odd). A bin where both
    /// counts are zero adds t(0, 0) = +0.0, which changes no sum.
    /// `scratch` (all zero, one per bin) is left all zero.
    fn exact(&self, sample: &[(u32, u16)], query: &[u16], scratch: &mut [u16]) -> f64 {
        for &(k, a) in sample {
            scratch[k as usize] = a;
        }
        let mut acc = [0.0f64; 2];
        match &self.tables {
            Some(t) => {
                let term = |a: u16, b: u16| t.terms[usize::from(b) * t.stride + usize::from(a)];
                let mut pairs = scratch.chunks_exact(2).zip(query.chunks_exact(2));
                for (a, b) in pairs.by_ref() {
                    acc[0] += term(a[0], b[0]);
                    acc[1] += term(a[1], b[1]);
                }
                if let (Some(&a), Some(&b)) = (scratch.last(), query.last())
                    && scratch.len() % 2 == 1
                {
                    acc[0] += term(a, b);
                }
            }
            None => {
                for (k, (&a, &b)) in scratch.iter().zip(query).enumerate() {
                    if a != 0 || b != 0 {
                        acc[k % 2] += self.term(usize::from(a), usize::from(b));
                    }
                }
            }
        }
        for &(k, _) in sample {
            scratch[k as usize] = 0;
        }
        2.0 * (acc[0] + acc[1])
    }
}

/// A dense row of byte counts and the deltas for its query count.
type DenseRow<'a> = (&'a [u8], &'a [f64; BYTE_COLUMN]);

/// Adds delta(a_s, b) of one dense row to every sample's sum (a zero count
/// adds delta(0, b), exactly 0).
#[inline(always)]
fn add_dense_row(sums: &mut [f64], row: &[u8], deltas: &[f64; BYTE_COLUMN]) {
    for (sum, &a) in sums.iter_mut().zip(row) {
        *sum += deltas[usize::from(a)];
    }
}

/// [`add_dense_row`] for four rows in one pass.
#[inline(always)]
fn add_four_dense_rows(sums: &mut [f64], rows: [DenseRow<'_>; 4]) {
    let [(r0, d0), (r1, d1), (r2, d2), (r3, d3)] = rows;
    let counts = r0.iter().zip(r1).zip(r2).zip(r3);
    for (sum, (((&a0, &a1), &a2), &a3)) in sums.iter_mut().zip(counts) {
        *sum += (d0[usize::from(a0)] + d1[usize::from(a1)])
            + (d2[usize::from(a2)] + d3[usize::from(a3)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lbph::chi_square;
    use ocellus_testdata::Noise;

    /// Random sparse histograms of `cells` cells of `bins_per_cell` bins,
    /// each cell's counts summing to `area`.
    fn random_histograms(
        seed: u64,
        n: usize,
        cells: usize,
        bins_per_cell: usize,
        area: usize,
    ) -> Vec<Vec<u16>> {
        let mut noise = Noise::new(seed);
        let mut next = move |m: usize| noise.below(m as u64) as usize;
        (0..n)
            .map(|_| {
                let mut h = vec![0u16; cells * bins_per_cell];
                for c in 0..cells {
                    // A few popular bins per cell, like LBP codes.
                    let popular = 1 + next(bins_per_cell / 4);
                    for _ in 0..area {
                        h[c * bins_per_cell + next(popular)] += 1;
                    }
                }
                h
            })
            .collect()
    }

    /// The exhaustive scan with the dense reference `chi_square`.
    fn brute_force(train: &[Vec<u16>], query: &[u16], reciprocal: f32) -> (usize, f64) {
        let values =
            |h: &[u16]| -> Vec<f32> { h.iter().map(|&c| bin_value(c, reciprocal)).collect() };
        let q = values(query);
        let mut best = (usize::MAX, f64::INFINITY);
        for (s, t) in train.iter().enumerate() {
            let d = chi_square(&values(t), &q);
            if d < best.1 {
                best = (s, d);
            }
        }
        best
    }

    fn check(train: &[Vec<u16>], queries: &[Vec<u16>], area: usize) {
        let reciprocal = (1.0 / area as f64) as f32;
        let mut index = HistogramIndex::new(train[0].len());
        // In two pushes, so that blocks are rebuilt.
        let (head, tail) = train.split_at(train.len() / 3);
        index.push(head.iter().map(|h| sparse(h)).collect());
        index.push(tail.iter().map(|h| sparse(h)).collect());
        let scan = ChiSquareScan::new(&index, area, reciprocal);
        for q in queries {
            let (s, d) = scan.nearest(&index, q).unwrap();
            let (want_s, want_d) = brute_force(train, q, reciprocal);
            assert_eq!((s, d.to_bits()), (want_s, want_d.to_bits()));
        }
    }

    #[test]
    fn tables_hold_the_terms_and_zero_deltas_for_empty_bins() {
        let area = 143;
        let scan = ChiSquareScan::new(&HistogramIndex::new(4), area, (1.0 / 143.0f64) as f32);
        let t = scan.tables.as_ref().unwrap();
        assert_eq!(t.stride, BYTE_COLUMN);
        for b in 0..=area {
            // A zero training count adds nothing to base + Q: the dense rows
            // rely on it.
            assert_eq!(t.deltas[b * t.stride], 0.0);
            for a in 0..=area {
                let i = b * t.stride + a;
                assert_eq!(t.terms[i].to_bits(), scan.term(a, b).to_bits());
                assert_eq!(t.deltas[i].to_bits(), scan.delta(a, b).to_bits());
            }
        }
    }

    #[test]
    fn same_answer_as_the_exhaustive_scan() {
        let train = random_histograms(1, 40, 9, 32, 60);
        let queries = random_histograms(2, 10, 9, 32, 60);
        check(&train, &queries, 60);
    }

    #[test]
    fn same_answer_when_the_filter_is_split_over_threads() {
        let (cells, bins_per_cell) = (64, 64);
        let train = random_histograms(7, 600, cells, bins_per_cell, 40);
        let queries = random_histograms(8, 3, cells, bins_per_cell, 40);
        let query_bins = queries[0].iter().filter(|&&c| c != 0).count();
        assert!(
            query_bins * train.len() >= PARALLEL_WORK,
            "large enough to split"
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| check(&train, &queries, 40));
    }

    #[test]
    fn same_answer_without_tables() {
        let area = MAX_TABLE_AREA + 1;
        let train = random_histograms(3, 12, 2, 64, area);
        let queries = random_histograms(4, 4, 2, 64, area);
        check(&train, &queries, area);
    }

    #[test]
    fn earliest_of_equal_distances_wins() {
        let mut train = random_histograms(5, 20, 4, 16, 30);
        // Duplicates of one sample at 3, 11 and 17, and the query itself.
        let query = train[11].clone();
        train[3] = query.clone();
        train[17] = query.clone();
        check(&train, std::slice::from_ref(&query), 30);
        // Near-ties: the query is one count away from several samples.
        let mut near = query.clone();
        let k = near.iter().position(|&c| c > 1).unwrap();
        near[k] -= 1;
        near[k + 1] += 1;
        check(&train, &[near], 30);
    }
}
