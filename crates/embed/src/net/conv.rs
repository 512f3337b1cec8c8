//! Convolution as im2col + a matrix product ([`super::gemm`]), with dlib's
//! per-layer epilogue (bias, affine, relu, residual add) fused into the
//! product's store.
//!
//! Invariant: out[f][i][j] = bias[f] + sum over (k, y, x) of
//! W[f][k][y][x] * in[k][i*s-p+y][j*s-p+x], zero outside the input
//! (correlation, spec 3), then the epilogue in the order dlib applies its
//! layers: `gamma * (acc + bias) + beta`, then the residual, then relu. Only
//! the summation order of the product differs from dlib (f32 throughout).

use super::gemm::{self, Isa};
use super::layers::{Affine, Conv, Planes};

/// What follows the convolution.
pub(crate) enum Epilogue<'a> {
    /// affine, relu.
    AffineRelu(&'a Affine),
    /// affine only.
    Affine(&'a Affine),
    /// affine, add this (same shape), relu: the end of an `ares` block.
    AffineAddRelu(&'a Affine, &'a Planes),
}

/// Writes the im2col matrix of `x` for `c`: rows (k, y, x), one column per
/// output pixel. Each (row, output row) is a run of zeros, a (strided) copy
/// of one input row, and zeros.
fn im2col(c: &Conv, x: &Planes, oh: usize, ow: usize, cols: &mut Vec<f32>) {
    let n = oh * ow;
    let (s, st, p) = (c.size, c.stride, c.pad);
    cols.clear();
    cols.resize(c.inputs * s * s * n, 0.0);
    for kx in 0..s {
        // Output columns j whose input column j*st + kx - p is inside.
        let j0 = p.saturating_sub(kx).div_ceil(st).min(ow);
        let j1 = if x.w + p > kx {
            ((x.w + p - kx - 1) / st + 1).min(ow)
        } else {
            0
        }
        .max(j0);
        for k in 0..c.inputs {
            let plane = x.plane(k);
            for ky in 0..s {
                let row = &mut cols[((k * s + ky) * s + kx) * n..][..n];
                for i in 0..oh {
                    let iy = i * st + ky;
                    if iy < p || iy - p >= x.h {
                        continue; // already zero
                    }
                    let src = &plane[(iy - p) * x.w..][..x.w];
                    let dst = &mut row[i * ow + j0..i * ow + j1];
                    let first = j0 * st + kx - p;
                    if st == 1 {
                        dst.copy_from_slice(&src[first..first + dst.len()]);
                    } else {
                        for (d, v) in dst.iter_mut().zip(src[first..].iter().step_by(st)) {
                            *d = *v;
                        }
                    }
                }
            }
        }
    }
}

/// The convolution of `x` by `c`, followed by `epilogue`. `cols` is scratch
/// space, reused between calls.
///
/// Stride-1 layers skip im2col: the input is copied once into planes padded
/// by `p` on every side, of width `w + 2p`, and row (k, y, x) of the product
/// is that padded plane shifted by `y * (w + 2p) + x`. The product is then
/// computed over `h` rows of `w + 2p` columns, the last `2p` of which are
/// junk and dropped when the result is compacted (the same values, since
/// each output still sums the same terms in the same order).
pub(crate) fn conv(
    isa: Isa,
    c: &Conv,
    x: &Planes,
    epilogue: Epilogue<'_>,
    cols: &mut Vec<f32>,
) -> Planes {
    let (oh, ow) = (c.out_side(x.h), c.out_side(x.w));
    let (affine, residual, relu) = match epilogue {
        Epilogue::AffineRelu(a) => (a, None, true),
        Epilogue::Affine(a) => (a, None, false),
        Epilogue::AffineAddRelu(a, r) => (a, Some(r), true),
    };
    let s = c.size;
    let mut out = Planes::zeros(c.filters, oh, ow);
    if c.stride == 1 && ow > 1 {
        let (p, pw, ph) = (c.pad, x.w + 2 * c.pad, x.h + 2 * c.pad);
        let plane = ph * pw;
        cols.clear();
        // Slack: the last row's junk columns read up to 2p past the end.
        cols.resize(c.inputs * plane + 2 * p + 16, 0.0);
        for k in 0..c.inputs {
            for i in 0..x.h {
                let dst = &mut cols[k * plane + (i + p) * pw + p..][..x.w];
                dst.copy_from_slice(&x.plane(k)[i * x.w..(i + 1) * x.w]);
            }
        }
        let rows: Vec<usize> = (0..c.inputs * s * s)
            .map(|r| {
                let (k, ky, kx) = (r / (s * s), r / s % s, r % s);
                k * plane + ky * pw + kx
            })
            .collect();
        let n = oh * pw;
        let mut wide = vec![0f32; c.filters * n];
        // The residual and relu come after the affine: applied on compaction.
        let e = gemm::Epilogue {
            bias: &c.bias,
            gamma: &affine.gamma,
            beta: &affine.beta,
            residual: None,
            relu: relu && residual.is_none(),
        };
        gemm::gemm(isa, &c.packed, cols, &rows, n, &mut wide, &e);
        for f in 0..c.filters {
            for i in 0..oh {
                let src = &wide[f * n + i * pw..][..ow];
                let at = (f * oh + i) * ow;
                let dst = &mut out.data[at..at + ow];
                match residual {
                    Some(r) => {
                        for ((d, &v), &rv) in dst.iter_mut().zip(src).zip(&r.data[at..at + ow]) {
                            *d = (v + rv).max(0.0);
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        }
        return out;
    }
    let n = oh * ow;
    im2col(c, x, oh, ow, cols);
    let rows: Vec<usize> = (0..c.inputs * s * s).map(|r| r * n).collect();
    let e = gemm::Epilogue {
        bias: &c.bias,
        gamma: &affine.gamma,
        beta: &affine.beta,
        residual: residual.map(|r| &r.data[..]),
        relu,
    };
    gemm::gemm(isa, &c.packed, cols, &rows, n, &mut out.data, &e);
    out
}
