//! Integral images (summed-area tables) of an 8-bit grey image.
//!
//! Each table has one more row and column than the image, the first row and
//! column being zero: `S(y, x)` is the sum of the pixels above and to the
//! left of (x, y). Values are kept modulo 2^32 (wrapping arithmetic), like
//! OpenCV's 32-bit tables: only differences of four corners are used, and
//! those are exact as long as the true rectangle sum fits in 32 bits.

/// Upright sums of pixels and of squared pixels, stride `width + 1`.
pub struct Integral {
    /// Row length of the tables (image width + 1).
    pub stride: usize,
    /// Number of rows of the tables (image height + 1).
    pub rows: usize,
    /// Sum of pixels.
    pub sum: Vec<u32>,
    /// Sum of squared pixels (empty unless requested).
    pub sq_sum: Vec<u32>,
}

impl Integral {
    /// Builds the tables for a `width` x `height` image stored row by row in
    /// `pixels`; `with_squares` also builds the squared-pixel table.
    ///
    /// # Panics
    /// If `pixels` is shorter than `width * height`.
    pub fn new(pixels: &[u8], width: usize, height: usize, with_squares: bool) -> Integral {
        let stride = width + 1;
        let rows = height + 1;
        let mut sum = vec![0u32; stride * rows];
        let mut sq_sum = if with_squares {
            vec![0u32; stride * rows]
        } else {
            Vec::new()
        };
        for y in 0..height {
            let src = &pixels[y * width..(y + 1) * width];
            let (above, below) = sum.split_at_mut((y + 1) * stride);
            let prev = &above[y * stride..];
            let cur = &mut below[..stride];
            let mut run = 0u32;
            for x in 0..width {
                run = run.wrapping_add(src[x] as u32);
                cur[x + 1] = prev[x + 1].wrapping_add(run);
            }
            if with_squares {
                let (above, below) = sq_sum.split_at_mut((y + 1) * stride);
                let prev = &above[y * stride..];
                let cur = &mut below[..stride];
                let mut run = 0u32;
                for x in 0..width {
                    let p = src[x] as u32;
                    run = run.wrapping_add(p * p);
                    cur[x + 1] = prev[x + 1].wrapping_add(run);
                }
            }
        }
        Integral {
            stride,
            rows,
            sum,
            sq_sum,
        }
    }

    /// Sum over the rectangle (x, y, w, h) (checked indexing; for tests and
    /// one-off use, not for the scanning loop).
    pub fn rect_sum(&self, x: usize, y: usize, w: usize, h: usize) -> u32 {
        corner_sum(&self.sum, self.stride, x, y, w, h)
    }
}

fn corner_sum(t: &[u32], stride: usize, x: usize, y: usize, w: usize, h: usize) -> u32 {
    let a = t[y * stride + x];
    let b = t[y * stride + x + w];
    let c = t[(y + h) * stride + x];
    let d = t[(y + h) * stride + x + w];
    a.wrapping_sub(b).wrapping_sub(c).wrapping_add(d)
}

/// The rotated (45 degree) integral image, OpenCV's third `integral` output:
/// `T(y, x)` is the sum of pixels (r, c) with r < y and
/// |c - (x - 1)| <= y - 1 - r (a triangle whose apex is pixel (x - 1, y - 1),
/// widening upwards), stride `width + 1`.
///
/// Computed in O(width x height) as the difference of two diagonal
/// accumulations of row prefix sums `P(r, k)` (sum of the first k pixels of
/// row r, k clamped to 0..=width):
/// `T(y, x) = sum_r P(r, x + d) - sum_r P(r, x - 1 - d)`, d = y - 1 - r.
pub fn tilted_integral(pixels: &[u8], width: usize, height: usize) -> Vec<u32> {
    let stride = width + 1;
    let mut out = vec![0u32; stride * (height + 1)];
    // Row prefix sums of the current row.
    let mut prefix = vec![0u32; stride];
    // d1[x] = sum over rows r < y of P(r, min(x + y - 1 - r, width)).
    let mut d1 = vec![0u32; stride];
    // d2[x] = sum over rows r < y of P(r, max(x - y + r, 0)).
    let mut d2 = vec![0u32; stride];
    let mut next1 = vec![0u32; stride];
    let mut next2 = vec![0u32; stride];
    // Sum over rows r < y of P(r, width): d1 beyond the right edge.
    let mut full_rows = 0u32;
    for y in 1..=height {
        let src = &pixels[(y - 1) * width..y * width];
        prefix[0] = 0;
        for x in 0..width {
            prefix[x + 1] = prefix[x].wrapping_add(src[x] as u32);
        }
        for x in 0..stride {
            let diag1 = if x < width { d1[x + 1] } else { full_rows };
            next1[x] = diag1.wrapping_add(prefix[x]);
            next2[x] = if x == 0 {
                0
            } else {
                d2[x - 1].wrapping_add(prefix[x - 1])
            };
        }
        full_rows = full_rows.wrapping_add(prefix[width]);
        std::mem::swap(&mut d1, &mut next1);
        std::mem::swap(&mut d2, &mut next2);
        let row = &mut out[y * stride..(y + 1) * stride];
        for x in 0..stride {
            row[x] = d1[x].wrapping_sub(d2[x]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use ocellus_testdata::noise_bytes;

    use super::*;

    #[test]
    fn corners_and_rectangle_sums_match_brute_force() {
        let (w, h) = (7, 5);
        let px = noise_bytes(3, w * h);
        let ii = Integral::new(&px, w, h, true);
        // Leading zero row and column.
        assert!(ii.sum[..ii.stride].iter().all(|&v| v == 0));
        assert!((0..ii.rows).all(|y| ii.sum[y * ii.stride] == 0));
        // Bottom-right corner is the total.
        let total: u32 = px.iter().map(|&p| p as u32).sum();
        assert_eq!(ii.sum[ii.stride * ii.rows - 1], total);
        let total_sq: u32 = px.iter().map(|&p| p as u32 * p as u32).sum();
        assert_eq!(ii.sq_sum[ii.stride * ii.rows - 1], total_sq);
        for (x, y, rw, rh) in [(0, 0, 1, 1), (2, 1, 3, 4), (6, 4, 1, 1), (1, 2, 6, 3)] {
            let mut s = 0u32;
            for r in y..y + rh {
                for c in x..x + rw {
                    s += px[r * w + c] as u32;
                }
            }
            assert_eq!(ii.rect_sum(x, y, rw, rh), s, "rect {x} {y} {rw} {rh}");
        }
    }

    #[test]
    fn tilted_integral_matches_its_definition() {
        for (w, h) in [(1, 1), (5, 3), (3, 8), (9, 9)] {
            let px = noise_bytes((w * 31 + h) as u64, w * h);
            let t = tilted_integral(&px, w, h);
            for y in 0..=h {
                for x in 0..=w {
                    let mut s = 0u32;
                    for r in 0..y {
                        for c in 0..w {
                            let d = (c as i64 - (x as i64 - 1)).abs();
                            if d <= (y - 1 - r) as i64 {
                                s += px[r * w + c] as u32;
                            }
                        }
                    }
                    assert_eq!(t[y * (w + 1) + x], s, "{w}x{h} at ({x}, {y})");
                }
            }
        }
    }
}
