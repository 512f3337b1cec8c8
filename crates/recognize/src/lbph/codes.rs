//! The LBP operator (spec section 4.1): for each pixel at least R from the
//! border, one bit per sampling point on the circle of radius R, set when
//! the bilinearly interpolated neighbour is not below the centre.
//!
//! Invariant: the same f32 operations in the same order as OpenCV 4 on
//! x86-64 (sampling offsets and weights computed as OpenCV computes them,
//! then w1 a + w2 b + w3 c + w4 d compared with the centre), in the AVX2
//! build as in the portable one, so every code is OpenCV's bit for bit.

use ocellus_imaging::Image;

/// One sampling point of the LBP operator: integer corners and f32 bilinear
/// weights, as OpenCV computes them.
#[derive(Clone, Copy, Debug)]
struct SamplePoint {
    fx: isize,
    cx: isize,
    fy: isize,
    cy: isize,
    w1: f32,
    w2: f32,
    w3: f32,
    w4: f32,
}

fn sample_points(radius: u32, neighbors: u32) -> Vec<SamplePoint> {
    (0..neighbors)
        .map(|n| {
            let angle = 2.0 * std::f64::consts::PI * f64::from(n) / f64::from(neighbors as f32);
            let x = (f64::from(radius) * angle.cos()) as f32;
            let y = (-f64::from(radius) * angle.sin()) as f32;
            let (fx, cx) = (x.floor(), x.ceil());
            let (fy, cy) = (y.floor(), y.ceil());
            let tx = x - fx;
            let ty = y - fy;
            SamplePoint {
                fx: fx as isize,
                cx: cx as isize,
                fy: fy as isize,
                cy: cy as isize,
                w1: (1.0 - tx) * (1.0 - ty),
                w2: tx * (1.0 - ty),
                w3: (1.0 - tx) * ty,
                w4: tx * ty,
            }
        })
        .collect()
}

impl SamplePoint {
    /// Which corner the point reads exactly, when one bilinear weight is 1
    /// and the others 0 (the axis points of radius-1 operators): then
    /// w1 a + w2 b + w3 c + w4 d is exactly that corner's pixel in f32.
    fn exact_corner(&self) -> Option<(isize, isize)> {
        match (self.w1, self.w2, self.w3, self.w4) {
            (1.0, 0.0, 0.0, 0.0) => Some((self.fx, self.fy)),
            (0.0, 1.0, 0.0, 0.0) => Some((self.cx, self.fy)),
            (0.0, 0.0, 1.0, 0.0) => Some((self.fx, self.cy)),
            (0.0, 0.0, 0.0, 1.0) => Some((self.cx, self.cy)),
            _ => None,
        }
    }
}

/// The LBP code image of a greyscale face: (h - 2R) rows of (w - 2R) codes
/// (spec section 4.1). Returns (codes, lbp_width, lbp_height).
pub fn lbp_codes(face: &Image, radius: u32, neighbors: u32) -> (Vec<u32>, usize, usize) {
    let w = face.width() as usize;
    let h = face.height() as usize;
    let r = radius as usize;
    if w <= 2 * r || h <= 2 * r {
        return (Vec::new(), 0, 0);
    }
    let (out_w, out_h) = (w - 2 * r, h - 2 * r);
    // Converted once: every pixel is read by up to 4 * neighbors samples.
    let pixels: Vec<f32> = face.as_bytes().iter().map(|&p| f32::from(p)).collect();
    let points = sample_points(radius, neighbors);
    let mut codes = vec![0u32; out_w * out_h];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { lbp_rows_avx2(&pixels, w, r, &points, &mut codes) };
        return (codes, out_w, out_h);
    }
    lbp_rows(&pixels, w, r, &points, &mut codes);
    (codes, out_w, out_h)
}

/// [`lbp_rows`] compiled for AVX2 (8 f32 lanes instead of 4); the same
/// operations, so the same codes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lbp_rows_avx2(px: &[f32], w: usize, r: usize, points: &[SamplePoint], codes: &mut [u32]) {
    lbp_rows(px, w, r, points, codes);
}

/// Fills the LBP codes of a w-pixel-wide image (as f32, row-major) for
/// radius r, one output row of w - 2r codes at a time.
#[inline(always)]
fn lbp_rows(px: &[f32], w: usize, r: usize, points: &[SamplePoint], codes: &mut [u32]) {
    let out_w = w - 2 * r;
    // Column offset of a sampling point relative to the first output column.
    let col = |dx: isize| (r as isize + dx) as usize;
    let row = |i: usize, dy: isize| &px[((i as isize + dy) as usize) * w..][..w];
    for (out_row, i) in codes.chunks_exact_mut(out_w).zip(r..) {
        let centre = &px[i * w + r..][..out_w];
        for (n, p) in points.iter().enumerate() {
            if let Some((dx, dy)) = p.exact_corner() {
                // t is exactly the pixel a, so "t > v or |t - v| < eps" on
                // integer values is a >= v.
                let a = &row(i, dy)[col(dx)..][..out_w];
                for ((code, &a), &v) in out_row.iter_mut().zip(a).zip(centre) {
                    *code |= u32::from(a >= v) << n;
                }
                continue;
            }
            let (row_f, row_c) = (row(i, p.fy), row(i, p.cy));
            let a = &row_f[col(p.fx)..][..out_w];
            let b = &row_f[col(p.cx)..][..out_w];
            let c = &row_c[col(p.fx)..][..out_w];
            let d = &row_c[col(p.cx)..][..out_w];
            let (w1, w2, w3, w4) = (p.w1, p.w2, p.w3, p.w4);
            for j in 0..out_w {
                // Same f32 operations in the same order as OpenCV.
                let t = w1 * a[j] + w2 * b[j] + w3 * c[j] + w4 * d[j];
                let v = centre[j];
                let bit = (t > v) | ((t - v).abs() < f32::EPSILON);
                out_row[j] |= u32::from(bit) << n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocellus_imaging::PixelLayout;

    #[test]
    fn sampling_points_match_the_spec_table() {
        let p = sample_points(1, 8);
        assert_eq!((p[0].fx, p[0].cx, p[0].fy, p[0].cy), (1, 1, 0, 0));
        // n = 4: floor(y) = -1 but ty rounds to 1 in f32, so it reads row i.
        assert_eq!((p[4].fx, p[4].fy, p[4].cy), (-1, -1, 0));
        assert_eq!(p[4].w3, 1.0);
        assert_eq!(p[1].w2, 0.49999997);
    }

    #[test]
    fn flat_image_sets_the_axis_bits() {
        // Axis neighbours read a pixel exactly (equal: bit set); the diagonal
        // bilinear weights do not sum to exactly 1 in f32, so those bits
        // depend on rounding, as in OpenCV.
        let img = Image::filled(5, 5, PixelLayout::Gray, 7);
        let (codes, w, h) = lbp_codes(&img, 1, 8);
        assert_eq!((w, h), (3, 3));
        assert!(codes.iter().all(|&c| c & 0b0101_0101 == 0b0101_0101));
    }
}
