//! Local binary pattern histograms (OpenCV's `LBPHFaceRecognizer`, spec
//! section 4), bit-exact: the same LBP codes (f32 bilinear sampling), the same
//! f32 histogram values and the same chi-square distances, summed in the same
//! order, as OpenCV 4 on x86-64.
//!
//! The parts, each keeping one of those promises:
//!
//! - `codes`: the LBP operator, OpenCV's f32 operations in OpenCV's order;
//! - `histogram`: the spatial histogram of one face and the chi-square
//!   distance. Histogram values are always `count * f32(1 / cell_area)`, so
//!   a histogram is stored as integer bin counts and each chi-square term is
//!   a function of the two counts only;
//! - `index`: the training histograms of a model, by sample and by bin;
//! - `scan`: prediction. It finds the nearest sample by filtering with an
//!   approximate, order-free distance that only visits bins where both
//!   histograms are non-zero, then computing the exact distance, in
//!   OpenCV's even/odd order, of the few samples that can be nearest: same
//!   nearest sample and same distance bits as the exhaustive scan;
//! - this module: the parameters, the trained model and the
//!   [`Recognizer`] implementation.

mod codes;
mod histogram;
pub(crate) mod index;
mod scan;

use ocellus_imaging::Image;
use rayon::prelude::*;

use crate::common::{Common, prediction, recognizer_accessors};
use crate::samples::{check_batch, check_face, check_training_set};
use crate::{Algorithm, Label, Prediction, RecognizeError, Recognizer, model_file};
pub use codes::lbp_codes;
pub use histogram::chi_square;
use histogram::{CellGeometry, bin_value, count_histogram, reciprocal_area, sparse};
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
            common: Common::new(DEFAULT_THRESHOLD),
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
        check_batch(faces, labels, size)?;
        let (histograms, _) = self.histograms_of(faces, size)?;
        if let Some(model) = &mut self.model {
            model.histograms.push(histograms);
            model.labels.extend_from_slice(labels);
            // The tables depend on the face size only: extend them with
            // the new samples rather than rebuild them from every sample.
            if let Some(scan) = &mut self.scan {
                scan.extend(&model.histograms);
                return Ok(());
            }
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
        Ok(prediction(
            &model.labels,
            nearest_index,
            distance,
            self.common.threshold,
        ))
    }

    recognizer_accessors!();

    fn to_bytes(&self) -> Result<Vec<u8>, RecognizeError> {
        let model = self.model.as_ref().ok_or(RecognizeError::NotTrained)?;
        Ok(model_file::write_lbph(&self.params, &self.common, model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocellus_imaging::PixelLayout;
    use ocellus_testdata::noise_bytes;

    fn noise_face(seed: u64, w: u32, h: u32) -> Image {
        let data = noise_bytes(seed, w as usize * h as usize);
        Image::from_vec(w, h, PixelLayout::Gray, data).unwrap()
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
    fn one_by_one_updates_answer_like_one_training() {
        // 70 samples: several blocks of the test size (16) and merges.
        let faces: Vec<Image> = (0..70).map(|s| noise_face(100 + s, 30, 30)).collect();
        let labels: Vec<Label> = (0..70).map(|s| (s % 7) as Label).collect();
        let mut whole = Lbph::new(LbphParams::default());
        whole.train(&faces, &labels).unwrap();
        let mut grown = Lbph::new(LbphParams::default());
        for (face, &label) in faces.iter().zip(&labels) {
            grown.update(std::slice::from_ref(face), &[label]).unwrap();
        }
        for lbph in [&mut whole, &mut grown] {
            lbph.set_threshold(f64::INFINITY);
        }
        let blocks = grown.model.as_ref().unwrap().histograms.blocks().len();
        assert!(blocks <= 8, "{blocks} blocks for 70 samples");
        for q in 0..20 {
            let query = if q < 10 {
                faces[q * 7].clone()
            } else {
                noise_face(1000 + q as u64, 30, 30)
            };
            let (a, b) = (
                whole.predict(&query).unwrap(),
                grown.predict(&query).unwrap(),
            );
            assert_eq!(a.nearest_index, b.nearest_index, "query {q}");
            assert_eq!(a.distance.to_bits(), b.distance.to_bits(), "query {q}");
        }
        assert_eq!(whole.to_bytes().unwrap(), grown.to_bytes().unwrap());
    }

    #[test]
    fn tiny_images_are_an_error() {
        let mut lbph = Lbph::new(LbphParams::default());
        let err = lbph.train(&[noise_face(1, 9, 9)], &[1]).unwrap_err();
        assert!(matches!(err, RecognizeError::TooSmallForLbph { .. }));
    }
}
