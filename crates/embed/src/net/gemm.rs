//! The convolution's matrix product, `out = W x B` with the layer's
//! epilogue fused into the store: AVX-512 and AVX2 kernels, and a portable
//! fallback.
//!
//! Invariant: every path computes every output element the same way, as one
//! fused multiply-add chain over k = 0..K in order, starting from 0, then
//! `gamma * (acc + bias) + beta`, `+ residual`, `max(0)` as separate
//! roundings. So the AVX-512, AVX2 and scalar paths give bit-identical
//! results (tested), whatever the tiling.
//!
//! Why our own kernel rather than faer 0.24 or gemm: measured A/B on the
//! oracle chips (examples/embed_timing, 40 faces, CPU time per face on one
//! thread, shared 2-vCPU Xeon at load ~7), faer's `matmul` (`Par::Seq`)
//! behind the same im2col took 18.1 ms, this kernel 14.4-17.4 ms: about
//! the same speed. We keep it because it fuses the epilogue into the store,
//! reads the shifted windows of stride-1 layers without an im2col copy, and
//! gives the same bits on every CPU (AVX-512, AVX2 or none), which a
//! library that picks its kernels and blocking itself does not promise.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Filters per packed panel: every layer's filter count (32..256) is a
/// multiple of 8, so no panel is padded.
pub(crate) const MR: usize = 8;

/// Filter weights packed for the kernels: panels of [`MR`] filters, each
/// stored as `[k][MR]` so that a kernel step reads 8 consecutive floats.
#[derive(Debug)]
pub(crate) struct Packed {
    pub(crate) filters: usize,
    pub(crate) k: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Packs row-major `filters x k` weights (W[f][k]).
    pub(crate) fn new(w: &[f32], filters: usize, k: usize) -> Self {
        let panels = filters.div_ceil(MR);
        let mut data = vec![0.0; panels * k * MR];
        for f in 0..filters {
            let (p, r) = (f / MR, f % MR);
            for kk in 0..k {
                data[(p * k + kk) * MR + r] = w[f * k + kk];
            }
        }
        Packed { filters, k, data }
    }

    fn panel(&self, p: usize) -> &[f32] {
        &self.data[p * self.k * MR..(p + 1) * self.k * MR]
    }
}

/// What is applied to each accumulator before it is stored.
pub(crate) struct Epilogue<'a> {
    pub(crate) bias: &'a [f32],
    pub(crate) gamma: &'a [f32],
    pub(crate) beta: &'a [f32],
    /// Added after the affine (same shape as the output).
    pub(crate) residual: Option<&'a [f32]>,
    pub(crate) relu: bool,
}

impl Epilogue<'_> {
    #[inline]
    fn apply(&self, acc: f32, f: usize, idx: usize) -> f32 {
        let mut v = self.gamma[f] * (acc + self.bias[f]) + self.beta[f];
        if let Some(r) = self.residual {
            v += r[idx];
        }
        if self.relu { v.max(0.0) } else { v }
    }
}

/// Which implementation [`gemm`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Avx512,
    Avx2,
    Portable,
}

/// The best implementation this CPU runs.
pub(crate) fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// `out[f][j] = epilogue(sum_k W[f][k] * b[rows[k] + j])`, `out` row-major
/// `filters x n`: row k of the right-hand matrix starts at `b[rows[k]]`
/// (im2col rows, or shifted windows of a padded input).
pub(crate) fn gemm(
    isa: Isa,
    w: &Packed,
    b: &[f32],
    rows: &[usize],
    n: usize,
    out: &mut [f32],
    e: &Epilogue<'_>,
) {
    assert!(rows.len() == w.k && rows.iter().all(|&r| r + n <= b.len()));
    assert!(out.len() >= w.filters * n);
    assert!(e.bias.len() >= w.filters && e.gamma.len() >= w.filters && e.beta.len() >= w.filters);
    assert!(e.residual.is_none_or(|r| r.len() >= w.filters * n));
    match isa {
        // SAFETY: the feature was detected at run time by `detect`, and the
        // asserts above bound every index the kernels touch.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if is_x86_feature_detected!("avx512f") => unsafe {
            avx512::gemm(w, b, rows, n, out, e)
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") => unsafe {
            avx2::gemm(w, b, rows, n, out, e)
        },
        _ => portable(w, b, rows, n, out, e, 0),
    }
}

/// The reference: columns `from..n`, one FMA chain per element.
fn portable(
    w: &Packed,
    b: &[f32],
    rows: &[usize],
    n: usize,
    out: &mut [f32],
    e: &Epilogue<'_>,
    from: usize,
) {
    for f in 0..w.filters {
        let panel = w.panel(f / MR);
        let r = f % MR;
        for j in from..n {
            let mut acc = 0f32;
            for kk in 0..w.k {
                acc = panel[kk * MR + r].mul_add(b[rows[kk] + j], acc);
            }
            out[f * n + j] = e.apply(acc, f, f * n + j);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;

    fn lane_mask(lanes: usize) -> __mmask16 {
        if lanes >= 16 {
            0xffff
        } else {
            ((1u32 << lanes) - 1) as __mmask16
        }
    }

    /// Tiles of `NV` x 16 columns by 8 filters; 8 x NV accumulators.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm(
        w: &Packed,
        b: &[f32],
        rows: &[usize],
        n: usize,
        out: &mut [f32],
        e: &Epilogue<'_>,
    ) {
        // Column tile width by layer size: 48 for the wide early layers,
        // 32 in the middle, 16 for the 4x4 and smaller maps.
        unsafe {
            if n >= 1000 {
                tiles::<3>(w, b, rows, n, out, e)
            } else if n > 16 {
                tiles::<2>(w, b, rows, n, out, e)
            } else {
                tiles::<1>(w, b, rows, n, out, e)
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tiles<const NV: usize>(
        w: &Packed,
        b: &[f32],
        rows: &[usize],
        n: usize,
        out: &mut [f32],
        e: &Epilogue<'_>,
    ) {
        let nr = NV * 16;
        let panels = w.filters.div_ceil(MR);
        let bp = b.as_ptr();
        let op = out.as_mut_ptr();
        for n0 in (0..n).step_by(nr) {
            let masks: [__mmask16; NV] =
                std::array::from_fn(|v| lane_mask(n.saturating_sub(n0 + 16 * v)));
            for p in 0..panels {
                let wp = w.panel(p).as_ptr();
                let mut acc = [[_mm512_setzero_ps(); NV]; MR];
                for kk in 0..w.k {
                    // SAFETY: kk < k = rows.len(), and every lane read is masked
                    // to columns < n, with rows[kk] + n <= b.len() (asserted).
                    unsafe {
                        let row = bp.add(*rows.get_unchecked(kk) + n0);
                        let bv: [__m512; NV] = std::array::from_fn(|v| {
                            _mm512_maskz_loadu_ps(masks[v], row.add(16 * v))
                        });
                        let wk = wp.add(kk * MR);
                        for (r, a) in acc.iter_mut().enumerate() {
                            let wv = _mm512_set1_ps(*wk.add(r));
                            for v in 0..NV {
                                a[v] = _mm512_fmadd_ps(wv, bv[v], a[v]);
                            }
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    let f = p * MR + r;
                    if f >= w.filters {
                        break;
                    }
                    let bias = _mm512_set1_ps(e.bias[f]);
                    let g = _mm512_set1_ps(e.gamma[f]);
                    let be = _mm512_set1_ps(e.beta[f]);
                    for v in 0..NV {
                        let at = f * n + n0 + 16 * v;
                        let mut x = _mm512_add_ps(_mm512_mul_ps(g, _mm512_add_ps(a[v], bias)), be);
                        // SAFETY: masked to columns < n of row f < filters.
                        unsafe {
                            if let Some(res) = e.residual {
                                x = _mm512_add_ps(
                                    x,
                                    _mm512_maskz_loadu_ps(masks[v], res.as_ptr().add(at)),
                                );
                            }
                            if e.relu {
                                x = _mm512_max_ps(x, _mm512_setzero_ps());
                            }
                            _mm512_mask_storeu_ps(op.add(at), masks[v], x);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    /// Tiles of 8 columns by 8 filters; the last partial tile goes to the
    /// portable path (same values).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm(
        w: &Packed,
        b: &[f32],
        rows: &[usize],
        n: usize,
        out: &mut [f32],
        e: &Epilogue<'_>,
    ) {
        let full = n / 8 * 8;
        let panels = w.filters.div_ceil(MR);
        let bp = b.as_ptr();
        let op = out.as_mut_ptr();
        for n0 in (0..full).step_by(8) {
            for p in 0..panels {
                let wp = w.panel(p).as_ptr();
                let mut acc = [_mm256_setzero_ps(); MR];
                for kk in 0..w.k {
                    // SAFETY: kk < k = rows.len(), n0 + 8 <= n, rows[kk] + n <= b.len().
                    unsafe {
                        let bv = _mm256_loadu_ps(bp.add(*rows.get_unchecked(kk) + n0));
                        let wk = wp.add(kk * MR);
                        for (r, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_fmadd_ps(_mm256_set1_ps(*wk.add(r)), bv, *a);
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    let f = p * MR + r;
                    if f >= w.filters {
                        break;
                    }
                    let at = f * n + n0;
                    let bias = _mm256_set1_ps(e.bias[f]);
                    let g = _mm256_set1_ps(e.gamma[f]);
                    let be = _mm256_set1_ps(e.beta[f]);
                    let mut x = _mm256_add_ps(_mm256_mul_ps(g, _mm256_add_ps(*a, bias)), be);
                    // SAFETY: columns n0..n0+8 <= n of row f < filters.
                    unsafe {
                        if let Some(res) = e.residual {
                            x = _mm256_add_ps(x, _mm256_loadu_ps(res.as_ptr().add(at)));
                        }
                        if e.relu {
                            x = _mm256_max_ps(x, _mm256_setzero_ps());
                        }
                        _mm256_storeu_ps(op.add(at), x);
                    }
                }
            }
        }
        if full < n {
            portable(w, b, rows, n, out, e, full);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        let mut s = 42;
        for &(filters, k, n) in &[
            (8, 5, 1),
            (16, 27, 9),
            (32, 147, 50),
            (24, 40, 16),
            (8, 3, 1100),
        ] {
            let w: Vec<f32> = (0..filters * k).map(|_| lcg(&mut s)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| lcg(&mut s)).collect();
            let res: Vec<f32> = (0..filters * n).map(|_| lcg(&mut s)).collect();
            let bias: Vec<f32> = (0..filters).map(|_| lcg(&mut s)).collect();
            let gamma: Vec<f32> = (0..filters).map(|_| lcg(&mut s) * 4.0).collect();
            let beta: Vec<f32> = (0..filters).map(|_| lcg(&mut s)).collect();
            let p = Packed::new(&w, filters, k);
            let rows: Vec<usize> = (0..k).map(|kk| kk * n).collect();
            for (residual, relu) in [(None, false), (Some(&res[..]), true)] {
                let e = Epilogue {
                    bias: &bias,
                    gamma: &gamma,
                    beta: &beta,
                    residual,
                    relu,
                };
                let mut want = vec![0f32; filters * n];
                gemm(Isa::Portable, &p, &b, &rows, n, &mut want, &e);
                // Against the textbook formula, loosely.
                for f in 0..filters {
                    for j in 0..n {
                        let dot: f32 = (0..k).map(|kk| w[f * k + kk] * b[kk * n + j]).sum();
                        let v = e.apply(dot, f, f * n + j);
                        assert!((v - want[f * n + j]).abs() < 1e-4);
                    }
                }
                for isa in [Isa::Avx512, Isa::Avx2, detect()] {
                    let mut got = vec![0f32; filters * n];
                    gemm(isa, &p, &b, &rows, n, &mut got, &e);
                    assert_eq!(got, want, "{isa:?} {filters}x{k}x{n}");
                }
            }
        }
    }
}
