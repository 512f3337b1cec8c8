//! The detection pyramid: which scale factors are scanned (OpenCV's rules in
//! `detectMultiScale`) and the bit-exact bilinear downscale
//! (`INTER_LINEAR_EXACT`) that produces each level.

/// One scanned scale: the factor (stored in f32 as OpenCV does) and the
/// size of the downscaled image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    /// Scale factor f: windows of this level cover `window * f` pixels of
    /// the original image.
    pub factor: f32,
    /// Width of the downscaled image, round(image width / f).
    pub width: usize,
    /// Height of the downscaled image, round(image height / f).
    pub height: usize,
}

/// `cvRound` of an f32: nearest integer, ties to even.
#[inline]
pub(crate) fn round_f32(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// `cvRound` of an f64: nearest integer, ties to even.
#[inline]
pub(crate) fn round_f64(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// The levels OpenCV scans for an `image` (width, height), a cascade
/// `window` (width, height), `scale_factor` (> 1), `min_size` and `max_size`
/// ((0, 0) for "no limit"; a max_size with a zero side means the image
/// size).
///
/// Factors run 1, s, s^2, ... (in f64) while the rounded window fits in the
/// image; those whose window (now computed from the f32 factor) exceeds
/// max_size end the list, those under min_size are skipped. If nothing is
/// left and min_size equals max_size, the single factor whose window is
/// closest to that size is used.
pub fn levels(
    image: (usize, usize),
    window: (u32, u32),
    scale_factor: f64,
    min_size: (u32, u32),
    max_size: (u32, u32),
) -> Vec<Level> {
    let (img_w, img_h) = (image.0 as i64, image.1 as i64);
    let (win_w, win_h) = (window.0 as i64, window.1 as i64);
    let max_size = if max_size.0 == 0 || max_size.1 == 0 {
        (img_w, img_h)
    } else {
        (max_size.0 as i64, max_size.1 as i64)
    };
    let min_size = (min_size.0 as i64, min_size.1 as i64);
    if img_w < win_w || img_h < win_h || scale_factor.is_nan() || scale_factor <= 1.0 {
        return Vec::new();
    }

    let mut all = Vec::new();
    let mut factor = 1.0f64;
    loop {
        let w = round_f64(win_w as f64 * factor);
        let h = round_f64(win_h as f64 * factor);
        if w > img_w || h > img_h {
            break;
        }
        all.push(factor as f32);
        factor *= scale_factor;
    }

    let window_of = |f: f32| {
        (
            round_f32(win_w as f32 * f) as i64,
            round_f32(win_h as f32 * f) as i64,
        )
    };
    let mut kept = Vec::new();
    for &f in &all {
        let (w, h) = window_of(f);
        if w > max_size.0 || h > max_size.1 {
            break;
        }
        if w < min_size.0 || h < min_size.1 {
            continue;
        }
        kept.push(f);
    }
    if kept.is_empty() && !all.is_empty() && min_size == max_size {
        let mut best = (f32::MAX, 0.0f32);
        for &f in &all {
            let (w, h) = window_of(f);
            let dw = (w - min_size.0) as f64;
            let dh = (h - min_size.1) as f64;
            let dist = (dw * dw + dh * dh).sqrt() as f32;
            if dist < best.0 {
                best = (dist, f);
            }
        }
        kept.push(best.1);
    }

    kept.into_iter()
        .map(|f| Level {
            factor: f,
            width: round_f32(img_w as f32 / f).max(0) as usize,
            height: round_f32(img_h as f32 / f).max(0) as usize,
        })
        .collect()
}

/// Per destination index along one axis: the two source indices and their
/// weights (8 fractional bits, summing to 256).
struct AxisTaps {
    index: Vec<(u32, u32)>,
    weight: Vec<(u32, u32)>,
}

fn axis_taps(src: usize, dst: usize) -> AxisTaps {
    // OpenCV: inv_scale = dst / src, then scale = 1 / inv_scale (both f64).
    let scale = 1.0 / (dst as f64 / src as f64);
    let mut index = Vec::with_capacity(dst);
    let mut weight = Vec::with_capacity(dst);
    for d in 0..dst {
        let s = (d as f64 + 0.5) * scale - 0.5;
        let mut i0 = s.floor();
        let mut t = s - i0;
        if i0 < 0.0 {
            i0 = 0.0;
            t = 0.0;
        } else if i0 >= (src - 1) as f64 {
            i0 = (src - 1) as f64;
            t = 0.0;
        }
        let i0 = i0 as usize;
        let i1 = (i0 + 1).min(src - 1);
        let w1 = (t * 256.0).round_ties_even() as u32;
        index.push((i0 as u32, i1 as u32));
        weight.push((256 - w1, w1));
    }
    AxisTaps { index, weight }
}

/// Resizes a grey image (`src_w` x `src_h`, rows packed) to `dst_w` x
/// `dst_h` exactly as OpenCV's `resize(..., INTER_LINEAR_EXACT)` does for
/// 8-bit data: fixed-point bilinear weights with 8 fractional bits per axis
/// and rounding `(v + 2^15) >> 16`.
///
/// # Panics
/// If a size is zero or `src` is shorter than `src_w * src_h`.
pub fn resize_linear_exact(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    dst_w: usize,
    dst_h: usize,
) -> Vec<u8> {
    assert!(src_w > 0 && src_h > 0 && dst_w > 0 && dst_h > 0);
    assert!(src.len() >= src_w * src_h);
    if src_w == dst_w && src_h == dst_h {
        return src[..src_w * src_h].to_vec();
    }
    let xt = axis_taps(src_w, dst_w);
    let yt = axis_taps(src_h, dst_h);
    let mut out = vec![0u8; dst_w * dst_h];
    // Horizontally filtered source rows (scale 256), cached by row index.
    let mut rows: [(usize, Vec<u32>); 2] =
        [(usize::MAX, vec![0; dst_w]), (usize::MAX, vec![0; dst_w])];
    let filter_row = |y: usize, buf: &mut Vec<u32>| {
        let line = &src[y * src_w..(y + 1) * src_w];
        for ((b, &(i0, i1)), &(w0, w1)) in buf.iter_mut().zip(&xt.index).zip(&xt.weight) {
            *b = w0 * line[i0 as usize] as u32 + w1 * line[i1 as usize] as u32;
        }
    };
    for (dy, out_row) in out.chunks_exact_mut(dst_w).enumerate() {
        let (y0, y1) = yt.index[dy];
        let (wy0, wy1) = yt.weight[dy];
        let (y0, y1) = (y0 as usize, y1 as usize);
        if rows[0].0 != y0 {
            if rows[1].0 == y0 {
                rows.swap(0, 1);
            } else {
                filter_row(y0, &mut rows[0].1);
                rows[0].0 = y0;
            }
        }
        if rows[1].0 != y1 {
            filter_row(y1, &mut rows[1].1);
            rows[1].0 = y1;
        }
        let (r0, r1) = (&rows[0].1, &rows[1].1);
        for ((o, &a), &b) in out_row.iter_mut().zip(r0).zip(r1) {
            *o = ((wy0 * a + wy1 * b + (1 << 15)) >> 16).min(255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_resize_copies() {
        let px: Vec<u8> = (0..12).collect();
        assert_eq!(resize_linear_exact(&px, 4, 3, 4, 3), px);
    }

    #[test]
    fn halving_averages_two_by_two_blocks() {
        // At exactly 1/2, the bilinear taps sit between pixels with weights
        // 128/128: (a + b + c + d + 2) >> 2.
        let px = vec![10u8, 20, 30, 41, 50, 60, 70, 80];
        let out = resize_linear_exact(&px, 4, 2, 2, 1);
        assert_eq!(
            out,
            vec![(10 + 20 + 50 + 60 + 2) / 4, (30 + 41 + 70 + 80 + 2) / 4]
        );
    }

    #[test]
    fn levels_follow_window_growth_and_limits() {
        // 24x24 window in a 100x60 image, factor 1.1.
        let l = levels((100, 60), (24, 24), 1.1, (0, 0), (0, 0));
        assert!(!l.is_empty());
        assert_eq!(l[0].factor, 1.0);
        assert_eq!((l[0].width, l[0].height), (100, 60));
        // The last window still fits in the image, the next would not.
        let last = l.last().unwrap().factor as f64;
        assert!((24.0 * last).round() <= 60.0);
        assert!((24.0 * last * 1.1).round() > 60.0);
        // min_size skips small windows.
        let l30 = levels((100, 60), (24, 24), 1.1, (30, 30), (0, 0));
        assert!(l30.iter().all(|v| (24.0 * v.factor).round() >= 30.0));
        assert_eq!(l30.len(), l.len() - 3); // 24, 26.4, 29.04 dropped
        // min == max picks the single closest factor.
        let one = levels((100, 60), (24, 24), 1.1, (31, 31), (31, 31));
        assert_eq!(one.len(), 1);
        assert_eq!((24.0 * one[0].factor).round(), 32.0);
        // Window larger than the image: nothing.
        assert!(levels((20, 60), (24, 24), 1.1, (0, 0), (0, 0)).is_empty());
    }
}
