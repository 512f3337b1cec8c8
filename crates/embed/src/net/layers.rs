//! The network's layers other than the convolution arithmetic: the
//! activation tensor, affine, pooling and dlib's padded residual add
//! (spec 3).
//!
//! Invariant: each function computes exactly the spec's f32 values for its
//! layer; shapes follow dlib's rules (`1 + (H - k) div s`, no padding in the
//! pools, the add padded with zeros at the high channels, bottom rows and
//! right columns).

use super::gemm::Packed;

/// Activations of one face: `c` planes of `h` x `w`, plane-major.
#[derive(Clone, Debug, Default)]
pub(crate) struct Planes {
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) data: Vec<f32>,
}

impl Planes {
    pub(crate) fn zeros(c: usize, h: usize, w: usize) -> Self {
        Planes {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }

    pub(crate) fn plane(&self, k: usize) -> &[f32] {
        &self.data[k * self.h * self.w..(k + 1) * self.h * self.w]
    }
}

/// A convolution: `filters` x `inputs` x `size` x `size` weights (W[f][k][y][x],
/// packed for the kernels), one bias per filter.
#[derive(Debug)]
pub(crate) struct Conv {
    pub(crate) filters: usize,
    pub(crate) inputs: usize,
    pub(crate) size: usize,
    pub(crate) stride: usize,
    pub(crate) pad: usize,
    pub(crate) packed: Packed,
    pub(crate) bias: Vec<f32>,
}

impl Conv {
    pub(crate) fn new(
        filters: usize,
        inputs: usize,
        size: usize,
        stride: usize,
        pad: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    ) -> Self {
        Conv {
            filters,
            inputs,
            size,
            stride,
            pad,
            packed: Packed::new(&weights, filters, inputs * size * size),
            bias,
        }
    }

    /// Output side for an input side: `1 + (n + 2p - k) div s`.
    pub(crate) fn out_side(&self, n: usize) -> usize {
        1 + (n + 2 * self.pad - self.size) / self.stride
    }
}

/// Batch norm folded by dlib into a per-channel `gamma * x + beta`.
#[derive(Debug)]
pub(crate) struct Affine {
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
}

/// A residual block: `ares` (down = false) or `ares_down`.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) down: bool,
    pub(crate) conv1: Conv,
    pub(crate) affine1: Affine,
    pub(crate) conv2: Conv,
    pub(crate) affine2: Affine,
}

/// max_pool 3x3, stride 2, no padding.
pub(crate) fn max_pool_3x3_s2(x: &Planes) -> Planes {
    let (oh, ow) = (1 + (x.h - 3) / 2, 1 + (x.w - 3) / 2);
    let mut out = Planes::zeros(x.c, oh, ow);
    for k in 0..x.c {
        let p = x.plane(k);
        let o = &mut out.data[k * oh * ow..(k + 1) * oh * ow];
        for i in 0..oh {
            for j in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for y in 0..3 {
                    let row = &p[(2 * i + y) * x.w + 2 * j..][..3];
                    for &v in row {
                        m = m.max(v);
                    }
                }
                o[i * ow + j] = m;
            }
        }
    }
    out
}

/// avg_pool 2x2, stride 2, no padding: the f32 sum of the window over 4;
/// at odd sizes the last row and column are dropped.
pub(crate) fn avg_pool_2x2_s2(x: &Planes) -> Planes {
    let (oh, ow) = (1 + (x.h - 2) / 2, 1 + (x.w - 2) / 2);
    let mut out = Planes::zeros(x.c, oh, ow);
    for k in 0..x.c {
        let p = x.plane(k);
        let o = &mut out.data[k * oh * ow..(k + 1) * oh * ow];
        for i in 0..oh {
            for j in 0..ow {
                let (r0, r1) = (2 * i * x.w + 2 * j, (2 * i + 1) * x.w + 2 * j);
                let s = p[r0] + p[r0 + 1] + p[r1] + p[r1 + 1];
                o[i * ow + j] = s / 4.0;
            }
        }
    }
    out
}

/// The shortcut add of the down blocks, then relu: the output has the
/// larger of both inputs' channels, rows and columns; each input adds its
/// values where its own index range reaches.
pub(crate) fn padded_add_relu(a: &Planes, b: &Planes) -> Planes {
    let (c, h, w) = (a.c.max(b.c), a.h.max(b.h), a.w.max(b.w));
    let mut out = Planes::zeros(c, h, w);
    for x in [a, b] {
        for k in 0..x.c {
            for i in 0..x.h {
                let src = &x.data[(k * x.h + i) * x.w..][..x.w];
                let dst = &mut out.data[(k * h + i) * w..][..x.w];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
    for v in &mut out.data {
        *v = v.max(0.0);
    }
    out
}

/// avg_pool_everything: the mean of each plane.
pub(crate) fn mean_planes(x: &Planes) -> Vec<f32> {
    let n = (x.h * x.w) as f32;
    (0..x.c)
        .map(|k| x.plane(k).iter().sum::<f32>() / n)
        .collect()
}
