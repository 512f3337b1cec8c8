//! The trained state shared by Eigenfaces and Fisherfaces: a mean face, a
//! projection matrix W (D x K) and the projections of the training samples.
//! Prediction projects the query, q = (x - mu) W, and takes the nearest
//! training projection in Euclidean distance (spec sections 2 and 3).
//!
//! Both algorithms build W from the centred training samples A (N x D) as
//! W = A^T C with a small N x K matrix C (Gram-matrix PCA). W itself is
//! D x K f64: 16 MB for 200 ORL faces, read from memory on every
//! prediction. When N < D the model keeps instead the 8-bit training pixels
//! (N x D bytes) and C, and projects with
//! q = C^T g, g_j = (x - mu).(x_j - mu) = x.x_j - x.mu - mu.x_j + mu.mu,
//! where x.x_j is an exact integer dot product: a tenth of the memory
//! traffic, and the same projection to about 1e-13 relative. Otherwise
//! (Fisherfaces, Eigenfaces with few components) W is kept in column panels
//! streamed by a tight kernel ([`panel_matrix`]).

pub mod eigen;
pub mod fisher;
mod lda;
pub(crate) mod panel_matrix;
mod parallel;
mod pca;
pub mod real_eigen;

use std::collections::BTreeMap;

use faer::Mat;
use ocellus_imaging::Image;
use rayon::prelude::*;

use crate::samples::check_face;
use crate::{Label, Prediction, RecognizeError};
use panel_matrix::PanelMatrix;

/// A trained linear-subspace face model.
#[derive(Clone, Debug)]
pub(crate) struct SubspaceModel {
    /// Face width the model was trained on.
    pub width: u32,
    /// Face height the model was trained on.
    pub height: u32,
    /// Mean face (length D = width * height).
    pub mean: Vec<f64>,
    /// Eigenvalues of the kept components (length K).
    pub eigenvalues: Vec<f64>,
    /// How queries are projected.
    pub projector: Projector,
    /// Training projections, N rows of K values, row-major.
    pub projections: Vec<f64>,
    /// Training labels (length N), in training order.
    pub labels: Vec<Label>,
}

/// The projection (x - mu) W, explicit or through the training samples.
#[derive(Clone, Debug)]
pub(crate) enum Projector {
    /// W itself, D x K, laid out for the product.
    Dense(PanelMatrix),
    /// W = A^T C, kept as the training pixels and C (see the module docs).
    Gram(GramProjector),
}

/// W = A^T C through the training pixels, for the leading components; the
/// trailing components whose eigenvalue is zero up to rounding (their
/// direction is rounding noise, which the Gram form would amplify) are kept
/// as explicit columns of W.
#[derive(Clone, Debug)]
pub(crate) struct GramProjector {
    /// Training pixels, N rows of D bytes.
    pub pixels: Vec<u8>,
    /// C, N x K1 (the leading K1 components).
    pub coeffs: Mat<f64>,
    /// The last K - K1 columns of W, D x (K - K1).
    pub tail: PanelMatrix,
    /// mu . x_j for every training sample.
    pub mean_dot: Vec<f64>,
    /// mu . mu.
    pub mean_sq: f64,
}

/// Exact dot product of two byte vectors.
fn dot_u8(a: &[u8], b: &[u8]) -> u64 {
    // Blocks of 32768 keep the u32 partial sums below 2^31.
    a.chunks(32768)
        .zip(b.chunks(32768))
        .map(|(x, y)| {
            // i16 operands let the compiler use 16-bit multiply-add.
            let s: i32 = x
                .iter()
                .zip(y)
                .map(|(&p, &q)| i32::from(i16::from(p)) * i32::from(i16::from(q)))
                .sum();
            s as u64
        })
        .sum()
}

fn dot_f64_u8(a: &[f64], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(&m, &p)| m * f64::from(p)).sum()
}

impl GramProjector {
    /// Builds the projector from the training faces (N x D pixels), the mean
    /// and C.
    pub fn new(
        pixels: Vec<u8>,
        d: usize,
        mean: &[f64],
        coeffs: Mat<f64>,
        tail: PanelMatrix,
    ) -> Self {
        let mean_dot = pixels
            .chunks_exact(d.max(1))
            .map(|x| dot_f64_u8(mean, x))
            .collect();
        let mean_sq = mean.iter().map(|m| m * m).sum();
        GramProjector {
            pixels,
            coeffs,
            tail,
            mean_dot,
            mean_sq,
        }
    }

    fn project(&self, x: &[u8], mean: &[f64]) -> Vec<f64> {
        let d = x.len();
        let x_mean = dot_f64_u8(mean, x);
        let g: Vec<f64> = self
            .pixels
            .chunks_exact(d.max(1))
            .zip(&self.mean_dot)
            .map(|(train, &md)| dot_u8(x, train) as f64 - x_mean - md + self.mean_sq)
            .collect();
        let mut q: Vec<f64> = (0..self.coeffs.ncols())
            .map(|c| {
                let col = self.coeffs.col(c);
                let mut sum = 0.0;
                for (j, &gj) in g.iter().enumerate() {
                    sum += col[j] * gj;
                }
                sum
            })
            .collect();
        if self.tail.cols() > 0 {
            q.extend(self.tail.project(x, mean));
        }
        q
    }
}

impl SubspaceModel {
    /// Number of kept components K.
    pub fn components(&self) -> usize {
        match &self.projector {
            Projector::Dense(w) => w.cols(),
            Projector::Gram(g) => g.coeffs.ncols() + g.tail.cols(),
        }
    }

    /// Projects one face: (x - mu) W.
    pub fn project(&self, face: &Image) -> Result<Vec<f64>, RecognizeError> {
        check_face(face, 0, (self.width, self.height))?;
        let pixels = face.as_bytes();
        Ok(match &self.projector {
            Projector::Dense(w) => w.project(pixels, &self.mean),
            Projector::Gram(g) => g.project(pixels, &self.mean),
        })
    }

    /// The projector for a trained model: Gram form when the PCA went
    /// through the Gram matrix (N < D) and reading N x D bytes is cheaper
    /// than D x K f64 (N <= 2K: Eigenfaces with many components), else W.
    /// `gram_columns` is how many leading components may use the Gram form
    /// (the others have a zero eigenvalue and stay explicit).
    pub fn projector(
        faces: &[Image],
        mean: &[f64],
        basis: Mat<f64>,
        gram_coeffs: Option<Mat<f64>>,
        gram_columns: usize,
    ) -> Projector {
        match gram_coeffs {
            Some(coeffs) if gram_columns > 0 && coeffs.nrows() <= 2 * coeffs.ncols() => {
                let d = mean.len();
                let k = coeffs.ncols();
                let k1 = gram_columns.min(k);
                let mut pixels = Vec::with_capacity(faces.len() * d);
                for f in faces {
                    pixels.extend_from_slice(f.as_bytes());
                }
                let lead = Mat::from_fn(coeffs.nrows(), k1, |i, j| coeffs[(i, j)]);
                let tail = PanelMatrix::from_fn(d, k - k1, |i, j| basis[(i, k1 + j)]);
                Projector::Gram(GramProjector::new(pixels, d, mean, lead, tail))
            }
            _ => Projector::Dense(PanelMatrix::from_fn(
                basis.nrows(),
                basis.ncols(),
                |i, j| basis[(i, j)],
            )),
        }
    }

    /// Number of leading eigenvalues that are not zero up to rounding
    /// (above 1e-9 of the largest).
    pub fn well_conditioned(eigenvalues: &[f64]) -> usize {
        let largest = eigenvalues.first().copied().unwrap_or(0.0);
        eigenvalues
            .iter()
            .take_while(|&&v| v > 1e-9 * largest)
            .count()
    }

    /// Fills `projections` by projecting every training face exactly as a
    /// query is projected, so that a query identical to a training face is
    /// at distance 0 (as in OpenCV, which also projects both the same way).
    pub fn with_training_projections(mut self, faces: &[Image]) -> Result<Self, RecognizeError> {
        let rows: Vec<Vec<f64>> = faces
            .par_iter()
            .map(|f| self.project(f))
            .collect::<Result<_, _>>()?;
        self.projections = rows.into_iter().flatten().collect();
        Ok(self)
    }

    /// Nearest training projection to `query` with OpenCV's rule (strict
    /// minimum, earliest wins), and acceptance against `threshold`.
    pub fn nearest(&self, query: &[f64], threshold: f64) -> Prediction {
        let k = query.len();
        let mut best = (f64::INFINITY, 0usize);
        for (index, row) in self.projections.chunks_exact(k.max(1)).enumerate() {
            let mut sum = 0.0;
            for (a, b) in row.iter().zip(query) {
                let d = a - b;
                sum += d * d;
            }
            let distance = sum.sqrt();
            if distance < best.0 {
                best = (distance, index);
            }
        }
        let (distance, nearest_index) = best;
        let nearest_label = self.labels.get(nearest_index).copied().unwrap_or(-1);
        Prediction {
            label: (distance < threshold).then_some(nearest_label),
            nearest_label,
            nearest_index,
            distance,
        }
    }

    /// Projects the query and finds its nearest training sample.
    pub fn predict(&self, face: &Image, threshold: f64) -> Result<Prediction, RecognizeError> {
        let query = self.project(face)?;
        Ok(self.nearest(&query, threshold))
    }
}

/// Threshold and label names, common to every recognizer.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    /// Rejection threshold.
    pub threshold: f64,
    /// Optional label names.
    pub names: BTreeMap<Label, String>,
}

/// Implements [`Recognizer`](crate::Recognizer) for a subspace recognizer
/// (Eigenfaces, Fisherfaces): a struct with the fields
/// `requested_components`, `common: Common` and `model: Option<SubspaceModel>`,
/// and a function `train_model(faces, labels, requested_components)` in
/// scope. The two differ only in how they train, so everything else is
/// written once here.
macro_rules! subspace_recognizer {
    ($type:ident, $algorithm:expr) => {
        impl crate::Recognizer for $type {
            fn algorithm(&self) -> crate::Algorithm {
                $algorithm
            }

            fn train(
                &mut self,
                faces: &[ocellus_imaging::Image],
                labels: &[crate::Label],
            ) -> Result<(), crate::RecognizeError> {
                self.model = Some(train_model(faces, labels, self.requested_components)?);
                Ok(())
            }

            fn predict(
                &self,
                face: &ocellus_imaging::Image,
            ) -> Result<crate::Prediction, crate::RecognizeError> {
                self.model
                    .as_ref()
                    .ok_or(crate::RecognizeError::NotTrained)?
                    .predict(face, self.common.threshold)
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

            fn label_names(&self) -> &std::collections::BTreeMap<crate::Label, String> {
                &self.common.names
            }

            fn set_label_names(&mut self, names: std::collections::BTreeMap<crate::Label, String>) {
                self.common.names = names;
            }

            fn to_bytes(&self) -> Result<Vec<u8>, crate::RecognizeError> {
                let model = self
                    .model
                    .as_ref()
                    .ok_or(crate::RecognizeError::NotTrained)?;
                Ok(crate::model_file::write_subspace(
                    $algorithm,
                    self.requested_components,
                    &self.common,
                    model,
                ))
            }
        }
    };
}
pub(crate) use subspace_recognizer;
