//! Local binary pattern histograms (OpenCV's `LBPHFaceRecognizer`, spec
//! section 4), bit-exact: the same LBP codes (f32 bilinear sampling), the same
//! f32 histogram values and the same chi-square distances, summed in the same
//! order, as OpenCV 4 on x86-64.
//!
//! Histogram values are always `count * f32(1 / cell_area)`, so a histogram
//! is stored as integer bin counts ([`index`]) and each
//! chi-square term is a function of the two counts only, read from tables.
//! Prediction finds the nearest sample by filtering with an approximate,
//! order-free distance that only visits bins where both histograms are
//! non-zero, then computing the exact distance, in OpenCV's even/odd order,
//! of the few samples that can be nearest ([`scan`]): same
//! nearest sample and same distance bits as the exhaustive scan.

pub(crate) mod index;
mod scan;

use std::collections::BTreeMap;

use ocellus_imaging::Image;
use rayon::prelude::*;

use crate::samples::{check_face, check_training_set};
use crate::subspace::Common;
use crate::{Algorithm, Label, Prediction, RecognizeError, Recognizer, model_file};
use index::{HistogramIndex, SparseHistogram};
use scan::ChiSquareScan;

/// Default rejection threshold (chi-square distance) for LBPH with the
/// default parameters on prepared faces of the default size
/// ([`crate::prepare::DEFAULT_FACE_SIZE`]): the distance at which 1 % of
/// impostor faces are accepted in the ORL calibration run described in
/// `docs/recognition.md`.
pub const DEFAULT_THRESHOLD: f64 = 80.65;

/// LBPH parameters (OpenCV's defaults: radius 1, 8 neighbours, 8 x 8 grid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbphParams {
    /// Radius of the sampling circle, >= 1.
    pub radius: u32,
    /// Number of sampling points, 1..=16 (each cell histogram has 2^neighbors bins).
    pub neighbors: u32,
    /// Number of grid columns, >= 1.
    pub grid_x: u32,
    /// Number of grid rows, >= 1.
    pub grid_y: u32,
}

impl Default for LbphParams {
    fn default() -> Self {
        LbphParams {
            radius: 1,
            neighbors: 8,
            grid_x: 8,
            grid_y: 8,
        }
    }
}

impl LbphParams {
    /// Checks the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), RecognizeError> {
        if self.radius == 0 || self.radius > 1024 {
            return Err(RecognizeError::InvalidParams(format!(
                "radius must be 1..=1024, got {}",
                self.radius
            )));
        }
        if self.neighbors == 0 || self.neighbors > 16 {
            return Err(RecognizeError::InvalidParams(format!(
                "neighbors must be 1..=16, got {}",
                self.neighbors
            )));
        }
        if self.grid_x == 0 || self.grid_y == 0 || self.grid_x > 1024 || self.grid_y > 1024 {
            return Err(RecognizeError::InvalidParams(format!(
                "grid must be 1..=1024 in each direction, got {}x{}",
                self.grid_x, self.grid_y
            )));
        }
        Ok(())
    }

    /// Bins per cell histogram (2^neighbors).
    pub fn bins_per_cell(&self) -> usize {
        1usize << self.neighbors
    }

    /// Length of a whole feature vector (grid_x * grid_y * 2^neighbors).
    pub fn histogram_len(&self) -> usize {
        self.grid_x as usize * self.grid_y as usize * self.bins_per_cell()
    }
}

/// Geometry of the spatial histogram for one image size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CellGeometry {
    cell_w: usize,
    cell_h: usize,
}

impl CellGeometry {
    fn new(params: &LbphParams, width: u32, height: u32) -> Result<Self, RecognizeError> {
        let too_small = || RecognizeError::TooSmallForLbph {
            width,
            height,
            radius: params.radius,
            grid_x: params.grid_x,
            grid_y: params.grid_y,
        };
        let lbp_w = (width as usize)
            .checked_sub(2 * params.radius as usize)
            .ok_or_else(too_small)?;
        let lbp_h = (height as usize)
            .checked_sub(2 * params.radius as usize)
            .ok_or_else(too_small)?;
        let cell_w = lbp_w / params.grid_x as usize;
        let cell_h = lbp_h / params.grid_y as usize;
        if cell_w == 0 || cell_h == 0 {
            return Err(too_small());
        }
        if cell_w * cell_h > u16::MAX as usize {
            return Err(RecognizeError::InvalidParams(format!(
                "grid cells of {cell_w}x{cell_h} pixels are too large (at most 65535 pixels per cell); use a finer grid or smaller faces"
            )));
        }
        Ok(CellGeometry { cell_w, cell_h })
    }

    fn area(&self) -> usize {
        self.cell_w * self.cell_h
    }
}

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

/// Bin counts of the spatial histogram (spec section 4.2), dense.
fn count_histogram(face: &Image, params: &LbphParams, geometry: CellGeometry) -> Vec<u16> {
    let (codes, lbp_w, _) = lbp_codes(face, params.radius, params.neighbors);
    let bins = params.bins_per_cell();
    let mut counts = vec![0u16; params.histogram_len()];
    for gy in 0..params.grid_y as usize {
        for gx in 0..params.grid_x as usize {
            let cell = &mut counts[(gy * params.grid_x as usize + gx) * bins..][..bins];
            for row in gy * geometry.cell_h..(gy + 1) * geometry.cell_h {
                let start = row * lbp_w + gx * geometry.cell_w;
                for &code in &codes[start..start + geometry.cell_w] {
                    cell[code as usize] += 1;
                }
            }
        }
    }
    counts
}

/// The non-zero bins of a dense count histogram.
pub(crate) fn sparse(counts: &[u16]) -> SparseHistogram {
    // Branch-free compaction: about half the bins are zero, in no pattern.
    let mut out = vec![(0u32, 0u16); counts.len()];
    let mut len = 0;
    for (k, &c) in counts.iter().enumerate() {
        if let Some(slot) = out.get_mut(len) {
            *slot = (k as u32, c);
        }
        len += usize::from(c != 0);
    }
    out.truncate(len);
    // Training histograms are kept: do not keep room for every bin.
    out.shrink_to_fit();
    out
}

/// The f32 value OpenCV stores for a bin count: count * f32(1 / area).
#[inline]
pub(crate) fn bin_value(count: u16, reciprocal_area: f32) -> f32 {
    f32::from(count) * reciprocal_area
}

fn reciprocal_area(area: usize) -> f32 {
    (1.0 / area as f64) as f32
}

/// One chi-square term for bin values a (training) and b (query), in OpenCV's
/// arithmetic: f64 operands, (a - b)^2 times the reciprocal of (a + b); bins
/// whose sum is not above DBL_EPSILON contribute nothing.
#[inline]
pub(crate) fn chi_square_term(a: f32, b: f32) -> f64 {
    let (a, b) = (f64::from(a), f64::from(b));
    let sum = a + b;
    if sum.abs() > f64::EPSILON {
        let diff = a - b;
        diff * diff * (1.0 / sum)
    } else {
        0.0
    }
}

/// OpenCV's `compareHist(train, query, HISTCMP_CHISQR_ALT)` on two dense
/// histograms, bit-exact (spec section 4.3): terms summed in two f64
/// accumulators, even and odd bins, each in increasing bin order; the result
/// is 2 * (even + odd).
pub fn chi_square(train: &[f32], query: &[f32]) -> f64 {
    let mut even = 0.0;
    let mut odd = 0.0;
    for (k, (&a, &b)) in train.iter().zip(query).enumerate() {
        let sum = f64::from(a) + f64::from(b);
        if sum.abs() > f64::EPSILON {
            if k % 2 == 0 {
                even += chi_square_term(a, b);
            } else {
                odd += chi_square_term(a, b);
            }
        }
    }
    2.0 * (even + odd)
}

/// The trained LBPH state.
#[derive(Clone, Debug)]
pub(crate) struct LbphModel {
    pub width: u32,
    pub height: u32,
    pub histograms: HistogramIndex,
    pub labels: Vec<Label>,
}

/// The LBPH recognizer.
#[derive(Clone, Debug)]
pub struct Lbph {
    params: LbphParams,
    common: Common,
    model: Option<LbphModel>,
    /// Prediction tables of the model (built with it).
    scan: Option<ChiSquareScan>,
}

impl Lbph {
    /// A new recognizer with the given parameters and [`DEFAULT_THRESHOLD`]
    /// (calibrated for the default parameters).
    pub fn new(params: LbphParams) -> Self {
        Lbph {
            params,
            common: Common {
                threshold: DEFAULT_THRESHOLD,
                names: BTreeMap::new(),
            },
            model: None,
            scan: None,
        }
    }

    /// The parameters.
    pub fn params(&self) -> LbphParams {
        self.params
    }

    /// Training labels in training order (empty before training).
    pub fn labels(&self) -> &[Label] {
        self.model.as_ref().map_or(&[], |m| &m.labels)
    }

    /// The f32 spatial histogram OpenCV would compute for this face (the
    /// values stored in its model files), for diagnostics and tests.
    pub fn histogram(&self, face: &Image) -> Result<Vec<f32>, RecognizeError> {
        self.params.validate()?;
        let geometry = CellGeometry::new(&self.params, face.width(), face.height())?;
        check_face(face, 0, (face.width(), face.height()))?;
        let counts = count_histogram(face, &self.params, geometry);
        let reciprocal = reciprocal_area(geometry.area());
        Ok(counts.iter().map(|&c| bin_value(c, reciprocal)).collect())
    }

    pub(crate) fn from_parts(params: LbphParams, common: Common, model: LbphModel) -> Self {
        let mut lbph = Lbph::new(params);
        lbph.common = common;
        lbph.model = Some(model);
        lbph.rebuild_scan();
        lbph
    }

    /// Checks a loaded model: the face size fits the grid and no bin count
    /// exceeds the cell area (so distance tables are never indexed out of range).
    pub(crate) fn check_loaded(&self) -> Result<(), RecognizeError> {
        let model = self.model.as_ref().ok_or(RecognizeError::NotTrained)?;
        let area = CellGeometry::new(&self.params, model.width, model.height)?.area();
        if usize::from(model.histograms.max_count()) > area {
            return Err(RecognizeError::InvalidParams(format!(
                "a bin count exceeds the cell area {area}"
            )));
        }
        Ok(())
    }

    fn histograms_of(
        &self,
        faces: &[Image],
        size: (u32, u32),
    ) -> Result<(Vec<SparseHistogram>, CellGeometry), RecognizeError> {
        self.params.validate()?;
        let geometry = CellGeometry::new(&self.params, size.0, size.1)?;
        let histograms = faces
            .par_iter()
            .map(|f| sparse(&count_histogram(f, &self.params, geometry)))
            .collect();
        Ok((histograms, geometry))
    }

    /// Rebuilds the prediction tables after the model changed (none when
    /// the face size does not fit the parameters; predict then reports it).
    fn rebuild_scan(&mut self) {
        self.scan = self.model.as_ref().and_then(|model| {
            let geometry = CellGeometry::new(&self.params, model.width, model.height).ok()?;
            let area = geometry.area();
            Some(ChiSquareScan::new(
                &model.histograms,
                area,
                reciprocal_area(area),
            ))
        });
    }
}

impl Recognizer for Lbph {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Lbph
    }

    fn train(&mut self, faces: &[Image], labels: &[Label]) -> Result<(), RecognizeError> {
        let size = check_training_set(faces, labels)?;
        let (histograms, _) = self.histograms_of(faces, size)?;
        let mut index = HistogramIndex::new(self.params.histogram_len());
        index.push(histograms);
        self.model = Some(LbphModel {
            width: size.0,
            height: size.1,
            histograms: index,
            labels: labels.to_vec(),
        });
        self.rebuild_scan();
        Ok(())
    }

    fn update(&mut self, faces: &[Image], labels: &[Label]) -> Result<(), RecognizeError> {
        let Some(model) = &self.model else {
            return self.train(faces, labels);
        };
        let size = (model.width, model.height);
        if faces.len() != labels.len() {
            return Err(RecognizeError::LabelCount {
                images: faces.len(),
                labels: labels.len(),
            });
        }
        for (index, face) in faces.iter().enumerate() {
            check_face(face, index, size)?;
        }
        let (histograms, _) = self.histograms_of(faces, size)?;
        if let Some(model) = &mut self.model {
            model.histograms.push(histograms);
            model.labels.extend_from_slice(labels);
        }
        self.rebuild_scan();
        Ok(())
    }

    fn predict(&self, face: &Image) -> Result<Prediction, RecognizeError> {
        let model = self.model.as_ref().ok_or(RecognizeError::NotTrained)?;
        check_face(face, 0, (model.width, model.height))?;
        let geometry = CellGeometry::new(&self.params, model.width, model.height)?;
        let query = count_histogram(face, &self.params, geometry);
        let scan = self.scan.as_ref().ok_or(RecognizeError::NotTrained)?;
        // Earliest strictly smallest distance, as in OpenCV.
        let (nearest_index, distance) = scan
            .nearest(&model.histograms, &query)
            .unwrap_or((0, f64::INFINITY));
        let nearest_label = model.labels.get(nearest_index).copied().unwrap_or(-1);
        Ok(Prediction {
            label: (distance < self.common.threshold).then_some(nearest_label),
            nearest_label,
            nearest_index,
            distance,
        })
    }

    fn threshold(&self) -> f64 {
        self.common.threshold
    }

    fn set_threshold(&mut self, threshold: f64) {
        self.common.threshold = threshold;
    }

    fn is_trained(&self) -> bool {
        self.model.is_some()
    }

    fn num_samples(&self) -> usize {
        self.model.as_ref().map_or(0, |m| m.labels.len())
    }

    fn face_size(&self) -> Option<(u32, u32)> {
        self.model.as_ref().map(|m| (m.width, m.height))
    }

    fn label_names(&self) -> &BTreeMap<Label, String> {
        &self.common.names
    }

    fn set_label_names(&mut self, names: BTreeMap<Label, String>) {
        self.common.names = names;
    }

    fn to_bytes(&self) -> Result<Vec<u8>, RecognizeError> {
        let model = self.model.as_ref().ok_or(RecognizeError::NotTrained)?;
        Ok(model_file::write_lbph(&self.params, &self.common, model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocellus_imaging::PixelLayout;

    fn noise_face(seed: u32, w: u32, h: u32) -> Image {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
        let data = (0..w * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        Image::from_vec(w, h, PixelLayout::Gray, data).unwrap()
    }

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

    #[test]
    fn sparse_distance_equals_dense_chi_square() {
        let params = LbphParams::default();
        let mut lbph = Lbph::new(params);
        let faces: Vec<Image> = (0..3).map(|s| noise_face(s, 40, 44)).collect();
        lbph.train(&faces, &[1, 2, 3]).unwrap();
        lbph.set_threshold(f64::INFINITY);
        let query = noise_face(9, 40, 44);
        let q = lbph.histogram(&query).unwrap();
        let p = lbph.predict(&query).unwrap();
        let dense: Vec<f64> = faces
            .iter()
            .map(|f| chi_square(&lbph.histogram(f).unwrap(), &q))
            .collect();
        let min = dense.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(p.distance.to_bits(), min.to_bits());
        assert_eq!(p.distance, dense[p.nearest_index]);
    }

    #[test]
    fn update_appends_samples() {
        let mut lbph = Lbph::new(LbphParams::default());
        lbph.train(&[noise_face(1, 30, 30)], &[1]).unwrap();
        lbph.update(&[noise_face(2, 30, 30)], &[2]).unwrap();
        assert_eq!(lbph.labels(), &[1, 2]);
        lbph.set_threshold(f64::INFINITY);
        let p = lbph.predict(&noise_face(2, 30, 30)).unwrap();
        assert_eq!((p.label, p.distance), (Some(2), 0.0));
        assert!(matches!(
            lbph.update(&[noise_face(3, 31, 30)], &[3]),
            Err(RecognizeError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn tiny_images_are_an_error() {
        let mut lbph = Lbph::new(LbphParams::default());
        let err = lbph.train(&[noise_face(1, 9, 9)], &[1]).unwrap_err();
        assert!(matches!(err, RecognizeError::TooSmallForLbph { .. }));
    }
}
