//! A D x K projection matrix (Eigenfaces / Fisherfaces W) laid out for the
//! product (x - mu) W of one face, the whole cost of a subspace prediction.
//!
//! The product streams all of W (D x K f64: 3.2 MB for ORL Fisherfaces)
//! once per query, so it is bound by memory bandwidth and by how many
//! independent additions are in flight. W is stored in panels of
//! [`PANEL`] columns, each panel contiguous and row-major (the [`PANEL`]
//! values of one pixel next to each other): one pass per panel reads it
//! front to back, broadcasting each centred pixel over [`PANEL`] lanes, with
//! [`ROWS`] sets of accumulators for consecutive pixels so that the
//! additions do not wait on each other. The last panel is padded with zero
//! columns.
//!
//! The summation order is fixed (it depends neither on the CPU nor on the
//! number of threads): each panel is cut into runs of [`ROW_CHUNK`] pixels
//! (the units of work shared among threads); in a run, lane j sums the
//! pixels d = r (mod [`ROWS`]) in accumulator r, the leftover pixels into
//! accumulator 0, then (acc0 + acc1) + (acc2 + acc3); the runs of a panel
//! are added in order. Products and sums are separate f64 operations (no
//! fused multiply-add), so the AVX2 build and the portable build give the
//! same bits.

use rayon::prelude::*;

/// Columns per panel (two AVX2 registers of f64).
const PANEL: usize = 8;
/// Pixels in flight per step (independent accumulator sets).
const ROWS: usize = 4;
/// Rows per work unit (a multiple of [`ROWS`]).
const ROW_CHUNK: usize = 2048;
/// Below this many matrix entries (8 MiB) the product runs on one thread:
/// handing work to the thread pool and waiting for it costs 10-30 us, a
/// large part of streaming a few MiB (about 60 us for ORL Fisherfaces).
const PARALLEL_ENTRIES: usize = 1 << 20;

/// A rows x cols f64 matrix in column panels (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PanelMatrix {
    rows: usize,
    cols: usize,
    /// Panel p holds columns p*PANEL.., rows * PANEL values, row-major.
    panels: Vec<f64>,
}

impl PanelMatrix {
    /// The matrix whose entry (i, j) is `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f64) -> Self {
        let panel_count = cols.div_ceil(PANEL);
        let mut panels = vec![0.0; panel_count * rows * PANEL];
        for (p, panel) in panels.chunks_exact_mut((rows * PANEL).max(1)).enumerate() {
            for (i, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (lane, v) in row.iter_mut().enumerate() {
                    let j = p * PANEL + lane;
                    if j < cols {
                        *v = f(i, j);
                    }
                }
            }
        }
        PanelMatrix { rows, cols, panels }
    }

    /// Number of columns (K).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Entry (i, j).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.panels[(j / PANEL) * self.rows * PANEL + i * PANEL + j % PANEL]
    }

    /// (x - mean) W for the 8-bit pixels x (both of length `rows`).
    pub fn project(&self, pixels: &[u8], mean: &[f64]) -> Vec<f64> {
        let centred: Vec<f64> = pixels
            .iter()
            .zip(mean)
            .map(|(&p, &m)| f64::from(p) - m)
            .collect();
        // Work units: one run of up to ROW_CHUNK rows of one panel, the same
        // whatever the number of threads (so is the summation order).
        let chunks = self.rows.div_ceil(ROW_CHUNK).max(1);
        let panel_count = self.cols.div_ceil(PANEL);
        let unit = |u: usize| {
            let (p, c) = (u / chunks, u % chunks);
            let start = (c * ROW_CHUNK).min(self.rows);
            let end = ((c + 1) * ROW_CHUNK).min(self.rows);
            let panel = &self.panels[p * self.rows * PANEL..][..self.rows * PANEL];
            panel_product(&panel[start * PANEL..end * PANEL], &centred[start..end])
        };
        let units = panel_count * chunks;
        let partial: Vec<[f64; PANEL]> =
            if rayon::current_num_threads() > 1 && self.panels.len() >= PARALLEL_ENTRIES {
                (0..units).into_par_iter().map(unit).collect()
            } else {
                (0..units).map(unit).collect()
            };
        partial
            .chunks_exact(chunks)
            .flat_map(|runs| {
                let mut sum = runs[0];
                for run in &runs[1..] {
                    for (s, v) in sum.iter_mut().zip(run) {
                        *s += v;
                    }
                }
                sum
            })
            .take(self.cols)
            .collect()
    }
}

/// centred^T panel: PANEL sums over the rows.
fn panel_product(panel: &[f64], centred: &[f64]) -> [f64; PANEL] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { panel_product_avx2(panel, centred) };
    }
    panel_product_portable(panel, centred)
}

/// [`panel_product_portable`] compiled for AVX2: the same operations in the
/// same order, four lanes per instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn panel_product_avx2(panel: &[f64], centred: &[f64]) -> [f64; PANEL] {
    panel_product_portable(panel, centred)
}

#[inline(always)]
fn panel_product_portable(panel: &[f64], centred: &[f64]) -> [f64; PANEL] {
    let mut acc = [[0.0f64; PANEL]; ROWS];
    let mut blocks = panel.chunks_exact(PANEL * ROWS);
    let mut pixels = centred.chunks_exact(ROWS);
    for (w, c) in (&mut blocks).zip(&mut pixels) {
        for (r, set) in acc.iter_mut().enumerate() {
            let row = &w[r * PANEL..][..PANEL];
            for (a, &v) in set.iter_mut().zip(row) {
                *a += c[r] * v;
            }
        }
    }
    for (row, &c) in blocks
        .remainder()
        .chunks_exact(PANEL)
        .zip(pixels.remainder())
    {
        for (a, &v) in acc[0].iter_mut().zip(row) {
            *a += c * v;
        }
    }
    std::array::from_fn(|j| (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_matches_the_definition() {
        // Sizes that leave remainders in both rows and panels.
        let (rows, cols) = (23, 11);
        let w = PanelMatrix::from_fn(rows, cols, |i, j| ((i * 7 + j * 3) % 13) as f64 - 6.0);
        assert_eq!((w.rows, w.cols()), (rows, cols));
        assert_eq!(w.get(5, 9), ((5 * 7 + 9 * 3) % 13) as f64 - 6.0);
        let pixels: Vec<u8> = (0..rows).map(|i| (i * 37 % 256) as u8).collect();
        let mean: Vec<f64> = (0..rows).map(|i| i as f64 * 0.5).collect();
        let q = w.project(&pixels, &mean);
        assert_eq!(q.len(), cols);
        for (j, &v) in q.iter().enumerate() {
            // Small integers and halves: every order gives the exact sum.
            let want: f64 = (0..rows)
                .map(|i| (f64::from(pixels[i]) - mean[i]) * w.get(i, j))
                .sum();
            assert_eq!(v, want, "column {j}");
        }
    }

    #[test]
    fn avx2_and_portable_builds_agree_bit_for_bit() {
        let rows = 1001;
        let w = PanelMatrix::from_fn(rows, PANEL, |i, j| ((i * 31 + j) as f64).sin());
        let centred: Vec<f64> = (0..rows).map(|i| (i as f64 * 0.37).cos() * 100.0).collect();
        let portable = panel_product_portable(&w.panels, &centred);
        assert_eq!(panel_product(&w.panels, &centred), portable);
    }

    #[test]
    fn same_bits_on_one_and_several_threads() {
        let (rows, cols) = (22 * ROW_CHUNK + 5, 2 * PANEL + 3);
        assert!(
            rows * 3 * PANEL >= PARALLEL_ENTRIES,
            "large enough to run in parallel"
        );
        let w = PanelMatrix::from_fn(rows, cols, |i, j| ((i * 31 + j * 7) as f64).sin());
        let pixels: Vec<u8> = (0..rows).map(|i| (i * 37 % 256) as u8).collect();
        let mean: Vec<f64> = (0..rows)
            .map(|i| (i as f64 * 0.1).cos() * 50.0 + 100.0)
            .collect();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let q1 = one.install(|| w.project(&pixels, &mean));
        let q2 = two.install(|| w.project(&pixels, &mean));
        assert_eq!(q1, q2);
    }
}
