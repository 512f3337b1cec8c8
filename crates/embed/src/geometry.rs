//! Points, boxes and the least-squares similarity fit shared by the shape
//! predictor and the chip (docs/dlib-face-embedding.md, 4.2 and 5.1).
//!
//! Invariant: [`Rect`] corners are inclusive, as dlib's rectangles are; the
//! similarity fit works in f64 and never reflects.

/// An integer pixel position (a landmark), as dlib returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Point {
    /// Column.
    pub x: i64,
    /// Row.
    pub y: i64,
}

impl Point {
    /// A point at (x, y).
    pub const fn new(x: i64, y: i64) -> Self {
        Point { x, y }
    }
}

/// A face box with **inclusive** corners, as dlib's `rectangle`: an OpenCV
/// box (x, y, w, h) is left = x, top = y, right = x+w-1, bottom = y+h-1.
/// It may extend past the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Leftmost column.
    pub left: i64,
    /// Top row.
    pub top: i64,
    /// Rightmost column (inclusive).
    pub right: i64,
    /// Bottom row (inclusive).
    pub bottom: i64,
}

impl Rect {
    /// A box from its inclusive corners.
    pub const fn new(left: i64, top: i64, right: i64, bottom: i64) -> Self {
        Rect {
            left,
            top,
            right,
            bottom,
        }
    }

    /// The box of an OpenCV-style (x, y, width, height) rectangle.
    pub const fn from_xywh(x: i64, y: i64, width: i64, height: i64) -> Self {
        Rect::new(x, y, x + width - 1, y + height - 1)
    }

    /// Width, `right - left + 1`.
    pub const fn width(&self) -> i64 {
        self.right - self.left + 1
    }

    /// Height, `bottom - top + 1`.
    pub const fn height(&self) -> i64 {
        self.bottom - self.top + 1
    }
}

/// `x -> M x + m` with `M = [[a, -b], [b, a]]` (scale and rotation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Similarity {
    pub(crate) a: f64,
    pub(crate) b: f64,
    pub(crate) tx: f64,
    pub(crate) ty: f64,
}

/// The least-squares similarity (Umeyama, no reflection) mapping `from`
/// onto `to`, in closed form: with centred points a_i, b_i,
/// `M = [[p, -q], [q, p]] / sum |a_i|^2`, `p = sum a_i.b_i`,
/// `q = sum (a_ix b_iy - a_iy b_ix)`.
pub(crate) fn fit_similarity(from: &[[f64; 2]], to: &[[f64; 2]]) -> Similarity {
    let n = from.len().min(to.len());
    let nf = n as f64;
    let mean = |pts: &[[f64; 2]]| {
        let (sx, sy) = pts[..n]
            .iter()
            .fold((0.0, 0.0), |(sx, sy), p| (sx + p[0], sy + p[1]));
        (sx / nf, sy / nf)
    };
    let (fx, fy) = mean(from);
    let (tx, ty) = mean(to);
    let (mut p, mut q, mut var) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (ax, ay) = (from[i][0] - fx, from[i][1] - fy);
        let (bx, by) = (to[i][0] - tx, to[i][1] - ty);
        p += ax * bx + ay * by;
        q += ax * by - ay * bx;
        var += ax * ax + ay * ay;
    }
    let (a, b) = if var > 0.0 {
        (p / var, q / var)
    } else {
        (1.0, 0.0)
    };
    Similarity {
        a,
        b,
        tx: tx - (a * fx - b * fy),
        ty: ty - (b * fx + a * fy),
    }
}

impl Similarity {
    pub(crate) fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        let from = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0]];
        let (s, t) = (0.3f64, 1.7f64);
        let (a, b) = (t * s.cos(), t * s.sin());
        let to: Vec<[f64; 2]> = from
            .iter()
            .map(|p| [a * p[0] - b * p[1] + 5.0, b * p[0] + a * p[1] - 2.0])
            .collect();
        let m = fit_similarity(&from, &to);
        assert!((m.a - a).abs() < 1e-12 && (m.b - b).abs() < 1e-12);
        assert!((m.tx - 5.0).abs() < 1e-12 && (m.ty + 2.0).abs() < 1e-12);
    }

    #[test]
    fn xywh_is_inclusive() {
        let r = Rect::from_xywh(10, 20, 30, 40);
        assert_eq!((r.right, r.bottom, r.width(), r.height()), (39, 59, 30, 40));
    }
}
