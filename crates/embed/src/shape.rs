//! The 5-point shape predictor: its file (`shape_predictor_5_face_landmarks.dat`)
//! and the cascade of regression forests (docs/dlib-face-embedding.md,
//! section 4).
//!
//! Invariant: a parsed [`ShapePredictor`] is internally consistent (every
//! split index and anchor is in range, every tree is complete), so
//! [`ShapePredictor::landmarks`] indexes without failing; the arithmetic is
//! the spec's, f32 for the shape and f64 for the box map, which reproduces
//! dlib's integer landmarks exactly.

use ocellus_imaging::{Image, PixelLayout};

use crate::geometry::{Point, Rect, fit_similarity};
use crate::serialize::{ModelError, ModelFile, Reader};

/// Landmarks in the model (5 points, x and y each).
const PARTS: usize = 5;
const COORDS: usize = 2 * PARTS;

/// One cascade: its trees and its feature pixels.
#[derive(Debug)]
struct Cascade {
    /// Splits of each tree in breadth-first order (`splits_per_tree` each).
    splits: Vec<Split>,
    /// Leaves of each tree, `COORDS` values each (`splits_per_tree + 1` per
    /// tree).
    leaves: Vec<f32>,
    splits_per_tree: usize,
    /// For each feature pixel: the landmark it is anchored to.
    anchors: Vec<usize>,
    /// For each feature pixel: its offset from the anchor, in box units.
    deltas: Vec<[f32; 2]>,
}

#[derive(Clone, Copy, Debug)]
struct Split {
    idx1: usize,
    idx2: usize,
    threshold: f32,
}

/// dlib's 5-point face landmark model (an ensemble of regression trees).
#[derive(Debug)]
pub struct ShapePredictor {
    initial: [f32; COORDS],
    cascades: Vec<Cascade>,
}

impl ShapePredictor {
    /// Parses `shape_predictor_5_face_landmarks.dat` (spec 4.1). The whole
    /// slice must be the model.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let mut r = Reader::new(bytes, ModelFile::ShapePredictor);
        r.expect_u64(1, "version")?;
        let mut init = Vec::with_capacity(COORDS);
        r.f32_matrix(COORDS, 1, &mut init, "initial shape")?;
        let mut initial = [0f32; COORDS];
        initial.copy_from_slice(&init);

        // Forests: cascades of trees; each tree = splits, then leaves.
        let n_cascades = r.count(2, "cascade count")?;
        let mut forests = Vec::with_capacity(n_cascades);
        for _ in 0..n_cascades {
            let n_trees = r.count(4, "tree count")?;
            let mut splits = Vec::new();
            let mut leaves = Vec::new();
            let mut per_tree = None;
            for _ in 0..n_trees {
                let n_splits = r.count(8, "split count")?;
                if *per_tree.get_or_insert(n_splits) != n_splits
                    || n_splits == 0
                    || !(n_splits + 1).is_power_of_two()
                {
                    return Err(r.unexpected(
                        "split count",
                        n_splits,
                        "the same 2^d - 1 (d >= 1) in every tree of a cascade",
                    ));
                }
                for _ in 0..n_splits {
                    let idx1 = r.u64("split index")?;
                    let idx2 = r.u64("split index")?;
                    let threshold = r.finite_f32("split threshold")?;
                    let as_index = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
                    splits.push(Split {
                        idx1: as_index(idx1),
                        idx2: as_index(idx2),
                        threshold,
                    });
                }
                r.expect_count(n_splits + 1, "leaf count")?;
                for _ in 0..=n_splits {
                    r.f32_matrix(COORDS, 1, &mut leaves, "leaf")?;
                }
            }
            forests.push((splits, leaves, per_tree.unwrap_or(0)));
        }

        r.expect_count(n_cascades, "anchor list count")?;
        let mut anchors = Vec::with_capacity(n_cascades);
        for _ in 0..n_cascades {
            let n = r.count(2, "anchor count")?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                let a = r.u64("anchor")?;
                if a >= PARTS as u64 {
                    return Err(r.unexpected("anchor", a, "a landmark index 0..4"));
                }
                list.push(a as usize);
            }
            anchors.push(list);
        }

        r.expect_count(n_cascades, "delta list count")?;
        let mut cascades = Vec::with_capacity(n_cascades);
        for ((splits, leaves, splits_per_tree), anchors) in forests.into_iter().zip(anchors) {
            r.expect_count(anchors.len(), "delta count")?;
            let mut deltas = Vec::with_capacity(anchors.len());
            for _ in 0..anchors.len() {
                let dx = r.finite_f32("delta")?;
                let dy = r.finite_f32("delta")?;
                deltas.push([dx, dy]);
            }
            if let Some(s) = splits
                .iter()
                .find(|s| s.idx1 >= anchors.len() || s.idx2 >= anchors.len())
            {
                return Err(r.unexpected(
                    "split feature index",
                    s.idx1.max(s.idx2),
                    format!("below the {} feature pixels", anchors.len()),
                ));
            }
            cascades.push(Cascade {
                splits,
                leaves,
                splits_per_tree,
                anchors,
                deltas,
            });
        }
        r.finish()?;
        Ok(ShapePredictor { initial, cascades })
    }

    /// The five landmarks of the face in `rect` (spec 4.2), in dlib's order:
    /// outer and inner corner of the eye on the image's right, the same on
    /// the left, bottom of the nose. The box may extend past the image;
    /// feature pixels outside it read as 0, and the points are not clipped.
    ///
    /// RGB(A) pixels are read as floor((R+G+B)/3), grey as they are; alpha
    /// is ignored.
    pub fn landmarks(&self, image: &Image, rect: Rect) -> [Point; 5] {
        let (l, t) = (rect.left as f64, rect.top as f64);
        let (bw, bh) = (
            (rect.right - rect.left) as f64,
            (rect.bottom - rect.top) as f64,
        );
        let to_image = |u: f32, v: f32| -> (i64, i64) {
            let x = l + f64::from(u) * bw;
            let y = t + f64::from(v) * bh;
            ((x + 0.5).floor() as i64, (y + 0.5).floor() as i64)
        };
        let from: Vec<[f64; 2]> = (0..PARTS)
            .map(|i| {
                [
                    f64::from(self.initial[2 * i]),
                    f64::from(self.initial[2 * i + 1]),
                ]
            })
            .collect();
        let (w, h) = (i64::from(image.width()), i64::from(image.height()));
        let mut cur = self.initial;
        let mut features = Vec::new();
        for c in &self.cascades {
            let to: Vec<[f64; 2]> = (0..PARTS)
                .map(|i| [f64::from(cur[2 * i]), f64::from(cur[2 * i + 1])])
                .collect();
            let sim = fit_similarity(&from, &to);
            let (a, b) = (sim.a as f32, sim.b as f32);
            features.clear();
            features.extend(c.deltas.iter().zip(&c.anchors).map(|(d, &k)| {
                let u = a * d[0] - b * d[1] + cur[2 * k];
                let v = b * d[0] + a * d[1] + cur[2 * k + 1];
                let (x, y) = to_image(u, v);
                if x >= 0 && y >= 0 && x < w && y < h {
                    f32::from(intensity(image, x as u32, y as u32))
                } else {
                    0.0
                }
            }));
            let s = c.splits_per_tree;
            for (splits, leaves) in c
                .splits
                .chunks_exact(s.max(1))
                .zip(c.leaves.chunks_exact((s + 1) * COORDS))
            {
                let mut i = 0;
                while i < s {
                    let sp = splits[i];
                    i = if features[sp.idx1] - features[sp.idx2] > sp.threshold {
                        2 * i + 1
                    } else {
                        2 * i + 2
                    };
                }
                let leaf = &leaves[(i - s) * COORDS..(i - s + 1) * COORDS];
                for (x, d) in cur.iter_mut().zip(leaf) {
                    *x += d;
                }
            }
        }
        std::array::from_fn(|i| {
            let (x, y) = to_image(cur[2 * i], cur[2 * i + 1]);
            Point::new(x, y)
        })
    }
}

/// The grey level the predictor sees at (x, y).
fn intensity(image: &Image, x: u32, y: u32) -> u8 {
    let p = image.pixel(x, y);
    match image.layout() {
        PixelLayout::Gray | PixelLayout::GrayAlpha => p[0],
        PixelLayout::Rgb | PixelLayout::Rgba => {
            ((u16::from(p[0]) + u16::from(p[1]) + u16::from(p[2])) / 3) as u8
        }
    }
}
