//! In-place separable convolution with a symmetric kernel, the engine behind
//! the Gaussian and box blurs.
//!
//! Written by hand because no crate we measured offers an in-place, banded,
//! symmetric 8-bit convolution: allocating a fresh output image costs as much
//! as a whole pass over it on these machines (page faults on ~36 MB for a
//! 12-megapixel RGB image), and exploiting the kernel's symmetry halves the
//! multiplications.
//!
//! Arithmetic: 16-bit fixed point, so that one AVX2 instruction handles 16
//! samples. Weights have 15 fractional bits and sum to exactly 2^15; each
//! product is rounded to nearest (`vpmulhrsw`), intermediate values keep 6
//! fractional bits. The rounding errors are independent and centred, so the
//! result is within one level of the exact convolution and almost always
//! equal to it (the reference tests measure this against OpenCV). The
//! portable fallback does the same integer arithmetic, so every CPU gives
//! the same bytes.
//!
//! Per output row: a vertical pass over the 2r+1 source rows, then a
//! horizontal pass on that single row. Original rows are kept in a small
//! ring (2r+1 rows, a few hundred KB: it stays in the core's L2), so the
//! image can be overwritten row by row. Borders reflect without repeating
//! the edge pixel (OpenCV's BORDER_REFLECT_101). Large images are cut into
//! horizontal bands processed in parallel; the rows each band reads from its
//! neighbours are copied before the bands start.

use rayon::prelude::*;

use crate::{Cancel, Cancelled, Image};

/// Fixed-point one: weights sum to exactly 2^15.
const ONE: i32 = 1 << 15;

/// Fractional bits of the intermediate (vertically filtered) values.
const INTERMEDIATE_BITS: u32 = 6;

/// Images with fewer pixels than this are not split into bands: the set-up
/// of a parallel job costs more than it saves.
const PARALLEL_MIN_PIXELS: usize = 1 << 16;

// The cost figures below were fitted to the one-thread CPU times of
// `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`
// (blur=1..100 and box=1..500 on 1920x1080 RGB, 2026-12-02, on the shared
// 2-core Xeon, 2 MiB of L2 per core): 0.30 ns per sample at box=1, 0.78 at
// box=5, 2.0 at blur=5 (16 taps), 7.5-7.7 at box=50 / blur=20 (51-61 taps),
// then 106 at blur=100 (301 taps) and 237 at box=500 (501 taps), whose rings
// of 3.5-5.8 MB no longer fit in L2. The table is in docs/limits-cost.md.

/// Single-thread cost of [`convolve_separable`], ns per sample (channel
/// value), apart from the taps: ring copies, border padding, rounding.
pub const COST_NS_PER_SAMPLE: f64 = 0.05;

/// Single-thread cost of one kernel tap (the vertical and the horizontal
/// pass together), ns per sample, while the ring of 2r+1 rows fits in
/// [`CACHED_RING_BYTES`]; a radius-r kernel has r + 1 distinct taps.
pub const COST_NS_PER_SAMPLE_TAP: f64 = 0.13;

/// The same when the ring is larger than [`CACHED_RING_BYTES`] and the
/// vertical pass reads from L3 or memory.
pub const COST_NS_PER_SAMPLE_TAP_UNCACHED: f64 = 0.45;

/// Ring size up to which the cheaper tap cost applies (half of the measuring
/// machine's 2 MiB L2 per core).
pub const CACHED_RING_BYTES: usize = 1 << 20;

/// Estimated single-thread ns per sample of a convolution of radius
/// `radius` over rows of `row_len` bytes (width x channels).
pub fn cost_ns_per_sample(radius: usize, row_len: usize) -> f64 {
    if radius == 0 {
        return 0.0;
    }
    let ring = (2 * radius + 1).saturating_mul(row_len);
    let tap = if ring <= CACHED_RING_BYTES {
        COST_NS_PER_SAMPLE_TAP
    } else {
        COST_NS_PER_SAMPLE_TAP_UNCACHED
    };
    COST_NS_PER_SAMPLE + tap * (radius + 1) as f64
}

/// Bytes [`convolve_separable`] allocates besides the image for a
/// `width` x `channels` row: one ring of 2r+1 rows per band (one band per
/// thread) and the padded row.
pub fn scratch_bytes(width: usize, channels: usize, radius: usize, threads: usize) -> u64 {
    if radius == 0 {
        return 0;
    }
    let row = (width * channels) as u64;
    let per_band = (2 * radius as u64 + 1) * row + 2 * (row + 2 * (radius * channels) as u64);
    per_band * threads.max(1) as u64
}

/// A symmetric, normalised 1-D kernel given by its centre weight and its
/// right half: `weights[0]` is the centre, `weights[j]` applies at +-j.
#[derive(Clone, Debug, PartialEq)]
pub struct SymmetricKernel {
    weights: Vec<f32>,
}

impl SymmetricKernel {
    /// Builds a kernel from its centre and right-half weights, rescaled so
    /// that the full kernel sums to one.
    ///
    /// # Panics
    /// If `half` is empty or its full sum is not positive and finite.
    pub fn from_half(half: &[f64]) -> Self {
        assert!(!half.is_empty(), "kernel needs a centre weight");
        let sum: f64 = half[0] + 2.0 * half[1..].iter().sum::<f64>();
        assert!(
            sum.is_finite() && sum > 0.0,
            "kernel weights must sum to a positive number"
        );
        SymmetricKernel {
            weights: half.iter().map(|w| (w / sum) as f32).collect(),
        }
    }

    /// Radius r: the kernel has 2r+1 taps.
    pub fn radius(&self) -> usize {
        self.weights.len() - 1
    }

    /// Centre and right-half weights.
    pub fn half(&self) -> &[f32] {
        &self.weights
    }

    /// Weights quantised to 15 fractional bits so that the full kernel sums
    /// to exactly 2^15 (a flat image stays exactly flat): every weight is
    /// rounded down, then the missing units go to the weights that lost the
    /// most (largest remainder), so no weight is off by more than one unit.
    fn quantised(&self) -> Vec<i16> {
        let scaled: Vec<f64> = self
            .weights
            .iter()
            .map(|&w| w as f64 * ONE as f64)
            .collect();
        let mut q: Vec<i32> = scaled.iter().map(|w| w.floor() as i32).collect();
        let total = |q: &[i32]| q[0] + 2 * q[1..].iter().sum::<i32>();
        let mut missing = ONE - total(&q);
        // Side weights count twice: an odd shortfall takes one unit at the
        // centre, the rest goes in pairs to the side weights in order of
        // remainder (flooring loses less than one unit a weight, so one pass
        // suffices).
        if missing % 2 == 1 {
            q[0] += 1;
            missing -= 1;
        }
        let mut sides: Vec<usize> = (1..q.len()).collect();
        sides.sort_by(|&a, &b| {
            (scaled[b] - scaled[b].floor()).total_cmp(&(scaled[a] - scaled[a].floor()))
        });
        for i in sides {
            if missing < 2 {
                break;
            }
            q[i] += 1;
            missing -= 2;
        }
        q[0] += missing;
        debug_assert_eq!(total(&q), ONE);
        // A centre weight of exactly one (a one-tap kernel) does not fit in
        // an i16; callers skip radius-0 kernels, so this clamp never changes
        // a weight that matters.
        q.into_iter()
            .map(|w| w.clamp(0, i16::MAX as i32) as i16)
            .collect()
    }
}

/// Reflects index `i` into `0..n` without repeating the edge (…2 1 | 0 1 2 … n-1 | n-2 …).
#[inline]
pub(crate) fn reflect_101(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// Convolves every channel of `image` with `kernel` vertically and
/// horizontally, in place.
pub fn convolve_separable(image: &mut Image, kernel: &SymmetricKernel) {
    if convolve_separable_cancellable(image, kernel, &Cancel::never()).is_err() {
        unreachable!("Cancel::never() is never raised");
    }
}

/// [`convolve_separable`], polling `cancel` before each output row of every
/// band: once it is raised the bands stop and `Err(Cancelled)` is returned
/// (the image is then partly filtered and should be dropped).
pub fn convolve_separable_cancellable(
    image: &mut Image,
    kernel: &SymmetricKernel,
    cancel: &Cancel,
) -> Result<(), Cancelled> {
    if kernel.radius() == 0 {
        return Ok(());
    }
    let plan = Plan::new(image, kernel);
    let height = image.height() as usize;
    let row_len = image.row_len();
    let pixels = image.width() as usize * height;
    let bands = if pixels >= PARALLEL_MIN_PIXELS {
        rayon::current_num_threads().clamp(1, height)
    } else {
        1
    };
    let rows_per_band = height.div_ceil(bands);
    let data = image.as_bytes_mut();

    if bands == 1 {
        let mut scratch = Scratch::new(&plan);
        plan.run_band(data, 0, height, &[], &mut scratch, cancel);
        return cancel.check();
    }

    // Rows each band needs from outside itself, copied before any band writes.
    let halos: Vec<Vec<(usize, Vec<u8>)>> = (0..bands)
        .map(|b| {
            let y0 = b * rows_per_band;
            let y1 = ((b + 1) * rows_per_band).min(height);
            plan.outside_rows(y0, y1)
                .into_iter()
                .map(|p| (p, data[p * row_len..(p + 1) * row_len].to_vec()))
                .collect()
        })
        .collect();

    data.par_chunks_mut(rows_per_band * row_len)
        .zip(halos.par_iter())
        .enumerate()
        .for_each(|(b, (band, halo))| {
            let y0 = b * rows_per_band;
            let y1 = y0 + band.len() / row_len;
            let mut scratch = Scratch::new(&plan);
            plan.run_band(band, y0, y1, halo, &mut scratch, cancel);
        });
    cancel.check()
}

/// Everything about one convolution that does not change between rows.
struct Plan {
    width: usize,
    height: usize,
    channels: usize,
    radius: usize,
    /// Centre and right-half weights, 15-bit fixed point.
    weights: Vec<i16>,
}

/// Per-band working memory.
struct Scratch {
    /// Copies of the original rows y-r ..= y+r, slot = row % (2r+1).
    ring: Vec<u8>,
    /// Which row each ring slot holds (usize::MAX: none).
    ring_rows: Vec<usize>,
    /// Byte offsets in `ring` of the rows y-j and y+j, j = 1..=r.
    pairs: Vec<(usize, usize)>,
    /// Vertical pass result for one row (6 fractional bits), with r
    /// reflected pixels of padding on each side.
    padded: Vec<i16>,
}

impl Scratch {
    fn new(plan: &Plan) -> Self {
        let row_len = plan.width * plan.channels;
        let slots = 2 * plan.radius + 1;
        Scratch {
            ring: vec![0; slots * row_len],
            ring_rows: vec![usize::MAX; slots],
            pairs: Vec::with_capacity(plan.radius),
            padded: vec![0; (plan.width + 2 * plan.radius) * plan.channels],
        }
    }
}

impl Plan {
    fn new(image: &Image, kernel: &SymmetricKernel) -> Self {
        Plan {
            width: image.width() as usize,
            height: image.height() as usize,
            channels: image.channels(),
            radius: kernel.radius(),
            weights: kernel.quantised(),
        }
    }

    /// Source rows outside `y0..y1` that output rows `y0..y1` read.
    fn outside_rows(&self, y0: usize, y1: usize) -> Vec<usize> {
        let r = self.radius as isize;
        let mut rows: Vec<usize> = (y0 as isize - r..y1 as isize + r)
            .map(|v| reflect_101(v, self.height))
            .filter(|&p| p < y0 || p >= y1)
            .collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// Convolves output rows `y0..y1`, stored in `band` (which starts at row
    /// `y0`); rows outside the band come from `halo`. Stops early, leaving
    /// the rest of the band unfiltered, once `cancel` is raised.
    fn run_band(
        &self,
        band: &mut [u8],
        y0: usize,
        y1: usize,
        halo: &[(usize, Vec<u8>)],
        s: &mut Scratch,
        cancel: &Cancel,
    ) {
        let row_len = self.width * self.channels;
        let r = self.radius;
        let slots = 2 * r + 1;
        for y in y0..y1 {
            if cancel.is_cancelled() {
                return;
            }
            // Make sure every source row in [y-r, y+r] (clipped) is in the ring.
            // Rows of the band are copied before the band overwrites them: row
            // p is first needed at output row p - r < p.
            let lo = y.saturating_sub(r);
            let hi = (y + r).min(self.height - 1);
            for p in lo..=hi {
                let slot = p % slots;
                if s.ring_rows[slot] != p {
                    let src: &[u8] = if (y0..y1).contains(&p) {
                        &band[(p - y0) * row_len..(p - y0 + 1) * row_len]
                    } else {
                        match halo.iter().find(|(row, _)| *row == p) {
                            Some((_, data)) => data,
                            None => unreachable!("halo row {p} missing for band {y0}..{y1}"),
                        }
                    };
                    s.ring[slot * row_len..(slot + 1) * row_len].copy_from_slice(src);
                    s.ring_rows[slot] = p;
                }
            }
            let offset = |v: isize| (reflect_101(v, self.height) % slots) * row_len;
            let centre = offset(y as isize);
            s.pairs.clear();
            s.pairs.extend(
                (1..=r).map(|j| (offset(y as isize - j as isize), offset((y + j) as isize))),
            );
            let padded_row = &mut s.padded[r * self.channels..(r + self.width) * self.channels];
            kernels::vertical(
                &s.ring,
                row_len,
                centre,
                &s.pairs,
                &self.weights,
                padded_row,
            );
            self.reflect_borders(&mut s.padded);
            let out = &mut band[(y - y0) * row_len..(y - y0 + 1) * row_len];
            kernels::horizontal(&s.padded, self.channels, &self.weights, out);
        }
    }

    /// Fills the r pixels of padding on each side of the vertical result.
    fn reflect_borders(&self, padded: &mut [i16]) {
        let c = self.channels;
        let r = self.radius;
        for i in 0..r {
            let left = r + reflect_101(i as isize - r as isize, self.width);
            let right = r + reflect_101((self.width + i) as isize, self.width);
            for ch in 0..c {
                padded[i * c + ch] = padded[left * c + ch];
                padded[(r + self.width + i) * c + ch] = padded[right * c + ch];
            }
        }
    }
}

/// The two inner loops: AVX2 where the CPU has it, otherwise a portable
/// version that computes exactly the same integers.
mod kernels {
    use super::INTERMEDIATE_BITS;

    /// round(a * b / 2^15), the semantics of `vpmulhrsw`.
    #[inline(always)]
    fn mulhrs(a: i16, b: i16) -> i16 {
        ((a as i32 * b as i32 + (1 << 14)) >> 15) as i16
    }

    fn vertical_portable(
        ring: &[u8],
        row_len: usize,
        centre: usize,
        pairs: &[(usize, usize)],
        weights: &[i16],
        out: &mut [i16],
    ) {
        let c = &ring[centre..centre + row_len];
        for (o, &v) in out.iter_mut().zip(c) {
            *o = mulhrs((v as i16) << INTERMEDIATE_BITS, weights[0]);
        }
        for (&(up, down), &k) in pairs.iter().zip(&weights[1..]) {
            let (u, d) = (&ring[up..up + row_len], &ring[down..down + row_len]);
            for ((o, &a), &b) in out.iter_mut().zip(u).zip(d) {
                *o += mulhrs((a as i16 + b as i16) << INTERMEDIATE_BITS, k);
            }
        }
    }

    /// The portable horizontal pass for outputs `start..`: the whole row,
    /// or the tail the SIMD loop leaves.
    fn horizontal_portable(
        padded: &[i16],
        channels: usize,
        weights: &[i16],
        out: &mut [u8],
        start: usize,
    ) {
        let base = (weights.len() - 1) * channels;
        for (x, o) in out.iter_mut().enumerate().skip(start) {
            let p = base + x;
            let mut acc = mulhrs(padded[p], weights[0]);
            for (j, &k) in weights.iter().enumerate().skip(1) {
                acc += mulhrs(padded[p - j * channels] + padded[p + j * channels], k);
            }
            *o = to_u8(acc);
        }
    }

    /// Rounds a value with 6 fractional bits to a byte, clamping.
    #[inline(always)]
    fn to_u8(v: i16) -> u8 {
        ((v as i32 + (1 << (INTERMEDIATE_BITS - 1))) >> INTERMEDIATE_BITS).clamp(0, 255) as u8
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use std::arch::x86_64::*;

        use super::{INTERMEDIATE_BITS, mulhrs};

        /// Vertical pass, 16 samples per instruction.
        ///
        /// # Safety
        /// The CPU must support AVX2. Offsets must lie in `ring` with a row
        /// of `row_len` bytes after each, and `out.len() == row_len`.
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn vertical(
            ring: &[u8],
            row_len: usize,
            centre: usize,
            pairs: &[(usize, usize)],
            weights: &[i16],
            out: &mut [i16],
        ) {
            assert!(out.len() == row_len && centre + row_len <= ring.len());
            assert!(pairs.iter().all(|&(u, d)| u.max(d) + row_len <= ring.len()));
            assert!(weights.len() > pairs.len());
            let base = ring.as_ptr();
            let shift = _mm_cvtsi32_si128(INTERMEDIATE_BITS as i32);
            let mut x = 0;
            // SAFETY (all loads and stores below): x + 16 <= row_len, and every
            // offset plus row_len lies within `ring` (asserted above).
            unsafe {
                while x + 32 <= row_len {
                    let load = |off: usize| {
                        let p = base.add(off + x);
                        (
                            _mm256_cvtepu8_epi16(_mm_loadu_si128(p as *const __m128i)),
                            _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(16) as *const __m128i)),
                        )
                    };
                    let k0 = _mm256_set1_epi16(weights[0]);
                    let (c0, c1) = load(centre);
                    let mut a0 = _mm256_mulhrs_epi16(_mm256_sll_epi16(c0, shift), k0);
                    let mut a1 = _mm256_mulhrs_epi16(_mm256_sll_epi16(c1, shift), k0);
                    for (&(up, down), &k) in pairs.iter().zip(&weights[1..]) {
                        let kv = _mm256_set1_epi16(k);
                        let (u0, u1) = load(up);
                        let (d0, d1) = load(down);
                        let s0 = _mm256_sll_epi16(_mm256_add_epi16(u0, d0), shift);
                        let s1 = _mm256_sll_epi16(_mm256_add_epi16(u1, d1), shift);
                        a0 = _mm256_add_epi16(a0, _mm256_mulhrs_epi16(s0, kv));
                        a1 = _mm256_add_epi16(a1, _mm256_mulhrs_epi16(s1, kv));
                    }
                    let o = out.as_mut_ptr().add(x);
                    _mm256_storeu_si256(o as *mut __m256i, a0);
                    _mm256_storeu_si256(o.add(16) as *mut __m256i, a1);
                    x += 32;
                }
            }
            for x in x..row_len {
                let mut acc = mulhrs((ring[centre + x] as i16) << INTERMEDIATE_BITS, weights[0]);
                for (&(up, down), &k) in pairs.iter().zip(&weights[1..]) {
                    acc += mulhrs(
                        (ring[up + x] as i16 + ring[down + x] as i16) << INTERMEDIATE_BITS,
                        k,
                    );
                }
                out[x] = acc;
            }
        }

        /// Horizontal pass, 16 samples per instruction.
        ///
        /// # Safety
        /// The CPU must support AVX2, and
        /// `padded.len() == out.len() + 2 * r * channels` with r = weights.len() - 1.
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn horizontal(
            padded: &[i16],
            channels: usize,
            weights: &[i16],
            out: &mut [u8],
        ) {
            let r = weights.len() - 1;
            let n = out.len();
            assert!(padded.len() == n + 2 * r * channels);
            let base = r * channels;
            let round = _mm256_set1_epi16(1 << (INTERMEDIATE_BITS - 1));
            let shift = _mm_cvtsi32_si128(INTERMEDIATE_BITS as i32);
            let mut x = 0;
            // SAFETY: for x + 32 <= n, every index x + base +- j*channels + 32
            // stays within padded (length n + 2*base).
            unsafe {
                let p = padded.as_ptr();
                let load = |i: usize| {
                    (
                        _mm256_loadu_si256(p.add(i) as *const __m256i),
                        _mm256_loadu_si256(p.add(i + 16) as *const __m256i),
                    )
                };
                while x + 32 <= n {
                    let k0 = _mm256_set1_epi16(weights[0]);
                    let (c0, c1) = load(base + x);
                    let mut a0 = _mm256_mulhrs_epi16(c0, k0);
                    let mut a1 = _mm256_mulhrs_epi16(c1, k0);
                    for (j, &k) in weights.iter().enumerate().skip(1) {
                        let kv = _mm256_set1_epi16(k);
                        let (l0, l1) = load(base + x - j * channels);
                        let (r0, r1) = load(base + x + j * channels);
                        a0 =
                            _mm256_add_epi16(a0, _mm256_mulhrs_epi16(_mm256_add_epi16(l0, r0), kv));
                        a1 =
                            _mm256_add_epi16(a1, _mm256_mulhrs_epi16(_mm256_add_epi16(l1, r1), kv));
                    }
                    let b0 = _mm256_sra_epi16(_mm256_add_epi16(a0, round), shift);
                    let b1 = _mm256_sra_epi16(_mm256_add_epi16(a1, round), shift);
                    // packus interleaves 128-bit lanes; permute restores order.
                    let packed =
                        _mm256_permute4x64_epi64(_mm256_packus_epi16(b0, b1), 0b11_01_10_00);
                    _mm256_storeu_si256(out.as_mut_ptr().add(x) as *mut __m256i, packed);
                    x += 32;
                }
            }
            super::horizontal_portable(padded, channels, weights, out, x);
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn has_avx2() -> bool {
        use std::sync::OnceLock;
        static AVX2: OnceLock<bool> = OnceLock::new();
        *AVX2.get_or_init(|| is_x86_feature_detected!("avx2"))
    }

    /// out = w0 * centre + sum_j w_j * (up_j + down_j), with 6 fractional
    /// bits; rows are given as byte offsets into `ring`.
    pub(super) fn vertical(
        ring: &[u8],
        row_len: usize,
        centre: usize,
        pairs: &[(usize, usize)],
        weights: &[i16],
        out: &mut [i16],
    ) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: AVX2 is present; the function asserts its bounds.
            return unsafe { avx2::vertical(ring, row_len, centre, pairs, weights, out) };
        }
        vertical_portable(ring, row_len, centre, pairs, weights, out)
    }

    /// out[x] = w0 * p[x] + sum_j w_j * (p[x - j c] + p[x + j c]), rounded to
    /// a byte, where p is `padded` shifted by r pixels.
    pub(super) fn horizontal(padded: &[i16], channels: usize, weights: &[i16], out: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: AVX2 is present; the function asserts its bounds.
            return unsafe { avx2::horizontal(padded, channels, weights, out) };
        }
        horizontal_portable(padded, channels, weights, out, 0)
    }

    #[cfg(test)]
    mod tests {
        /// The AVX2 and portable paths must give identical integers.
        #[test]
        #[cfg(target_arch = "x86_64")]
        fn simd_equals_portable() {
            if !super::has_avx2() {
                return;
            }
            let weights: Vec<i16> = vec![2615, 2600, 2400, 2000, 1500, 900, 400, 100, 29];
            let row_len = 3 * 45;
            let ring: Vec<u8> = (0..row_len * 17).map(|i| (i * 7919 % 256) as u8).collect();
            let pairs: Vec<(usize, usize)> = (1..weights.len())
                .map(|j| (j * row_len, (j + 8) * row_len))
                .collect();
            let mut a = vec![0i16; row_len];
            let mut b = vec![0i16; row_len];
            unsafe { super::avx2::vertical(&ring, row_len, 0, &pairs, &weights, &mut a) };
            super::vertical_portable(&ring, row_len, 0, &pairs, &weights, &mut b);
            assert_eq!(a, b);
            let r = weights.len() - 1;
            let padded: Vec<i16> = (0..row_len + 2 * r * 3)
                .map(|i| (i * 31 % 16000) as i16)
                .collect();
            let mut oa = vec![0u8; row_len];
            let mut ob = vec![0u8; row_len];
            unsafe { super::avx2::horizontal(&padded, 3, &weights, &mut oa) };
            super::horizontal_portable(&padded, 3, &weights, &mut ob, 0);
            assert_eq!(oa, ob);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PixelLayout;

    #[test]
    fn reflect_101_matches_opencv() {
        let got: Vec<usize> = (-4..9).map(|i| reflect_101(i, 5)).collect();
        assert_eq!(got, vec![4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]);
        assert_eq!(reflect_101(-7, 1), 0);
        assert_eq!(reflect_101(-3, 2), 1);
    }

    /// Straightforward double-precision reference.
    fn naive(image: &Image, kernel: &SymmetricKernel) -> Vec<u8> {
        let (w, h, c) = (
            image.width() as usize,
            image.height() as usize,
            image.channels(),
        );
        let r = kernel.radius() as isize;
        let k = |j: isize| kernel.half()[j.unsigned_abs()] as f64;
        let src = image.as_bytes();
        let mut tmp = vec![0f64; w * h * c];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    tmp[(y * w + x) * c + ch] = (-r..=r)
                        .map(|j| {
                            k(j) * src[(reflect_101(y as isize + j, h) * w + x) * c + ch] as f64
                        })
                        .sum();
                }
            }
        }
        let mut out = vec![0u8; w * h * c];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v: f64 = (-r..=r)
                        .map(|j| k(j) * tmp[(y * w + reflect_101(x as isize + j, w)) * c + ch])
                        .sum();
                    out[(y * w + x) * c + ch] = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        out
    }

    fn noise(w: u32, h: u32, layout: PixelLayout) -> Image {
        let data = ocellus_testdata::noise_bytes(1, w as usize * h as usize * layout.channels());
        Image::from_vec(w, h, layout, data).unwrap()
    }

    #[test]
    fn matches_double_precision_reference_within_one_level() {
        let kernel = SymmetricKernel::from_half(&[6.0, 4.0, 1.0, 0.5]);
        for (w, h) in [(1, 1), (2, 3), (5, 4), (37, 29), (300, 250)] {
            for layout in [PixelLayout::Gray, PixelLayout::Rgb, PixelLayout::Rgba] {
                let img = noise(w, h, layout);
                let expected = naive(&img, &kernel);
                let mut got = img.clone();
                convolve_separable(&mut got, &kernel);
                let worst = got
                    .as_bytes()
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| a.abs_diff(*b))
                    .max()
                    .unwrap();
                assert!(worst <= 1, "{w}x{h} {layout:?}: off by {worst}");
            }
        }
    }

    #[test]
    fn banded_result_equals_single_band() {
        // 400x300 crosses the parallel threshold; compare with a forced single
        // band by running inside a one-thread pool.
        let kernel = SymmetricKernel::from_half(&[5.0, 4.0, 3.0, 2.0, 1.0]);
        let img = noise(400, 300, PixelLayout::Rgb);
        let mut parallel = img.clone();
        rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| convolve_separable(&mut parallel, &kernel));
        let mut serial = img;
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| convolve_separable(&mut serial, &kernel));
        assert_eq!(parallel, serial);
    }

    #[test]
    fn quantised_weights_sum_to_one_and_stay_close() {
        for half in [
            vec![1.0; 1001],
            vec![5.0, 4.0, 3.0, 2.0, 1.0],
            vec![1.0, 1e-3, 1e-6],
        ] {
            let k = SymmetricKernel::from_half(&half);
            let q = k.quantised();
            assert_eq!(
                q[0] as i32 + 2 * q[1..].iter().map(|&v| v as i32).sum::<i32>(),
                ONE
            );
            for (&w, &qw) in k.half().iter().zip(&q) {
                assert!(
                    (w as f64 * ONE as f64 - qw as f64).abs() <= 1.5,
                    "{w} -> {qw}"
                );
            }
        }
    }

    #[test]
    fn flat_image_stays_flat() {
        let kernel = SymmetricKernel::from_half(&[1.0, 0.9, 0.7, 0.3]);
        for v in [0u8, 1, 128, 254, 255] {
            let mut img = Image::filled(50, 40, PixelLayout::Rgb, v);
            convolve_separable(&mut img, &kernel);
            assert!(img.as_bytes().iter().all(|&p| p == v));
        }
    }
}
