//! Eigenfaces and Fisherfaces: the two linear-subspace recognizers and
//! what they share.
//!
//! A trained model ([`SubspaceModel`]) is a mean face mu, a projection W
//! (D x K) and the projections of the training samples. Prediction projects
//! the query, q = (x - mu) W, and takes the nearest training projection in
//! Euclidean distance (spec sections 2 and 3). The two algorithms differ
//! only in how they compute W.
//!
//! - [`eigen`], [`fisher`]: the recognizers, and how each trains;
//! - [`pca`], [`lda`]: OpenCV's PCA (through the N x N Gram matrix) and LDA;
//! - [`real_eigen`]: the non-symmetric eigen-solver with the EISPACK
//!   eigenvector scaling that Fisherfaces' distances depend on;
//! - [`projector`]: how W is kept and applied (explicit, or through the
//!   training pixels), and [`panel_matrix`], the kernel that streams an
//!   explicit W;
//! - [`linalg`]: how many threads the linear algebra may use, and the
//!   matrix product.
//!
//! Invariant of this module: the training projections are computed by the
//! same projector, in the same summation order, as a query's, so a query
//! identical to a training face is at distance 0 from it (as in OpenCV,
//! which also projects both the same way), and the earliest of equal
//! distances wins.

pub mod eigen;
pub mod fisher;
mod lda;
mod linalg;
pub(crate) mod panel_matrix;
mod pca;
mod projector;
pub mod real_eigen;

use faer::Mat;
use ocellus_imaging::Image;
use rayon::prelude::*;

use crate::common::prediction;
use crate::samples::check_face;
use crate::{Label, Prediction, RecognizeError};
pub(crate) use projector::{GramProjector, Projector};

/// The N x D matrix of samples (one flattened face per row, row-major pixels,
/// converted exactly to f64), as OpenCV builds it.
fn sample_matrix(faces: &[Image]) -> Mat<f64> {
    let d = faces.first().map_or(0, |f| f.as_bytes().len());
    Mat::from_fn(faces.len(), d, |i, j| f64::from(faces[i].as_bytes()[j]))
}

/// What a subspace training computes, before the projector is chosen.
pub(crate) struct Fit {
    /// Mean face (length D).
    pub mean: Vec<f64>,
    /// Eigenvalues of the kept components (length K).
    pub eigenvalues: Vec<f64>,
    /// W, D x K.
    pub basis: Mat<f64>,
    /// C with W = A^T C (N x K), when the PCA went through the Gram matrix.
    pub gram_coeffs: Option<Mat<f64>>,
    /// How many leading components may use the Gram form
    /// ([`Projector::choose`]).
    pub gram_columns: usize,
}

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

impl SubspaceModel {
    /// The model of `faces` (checked by `check_training_set`, of `size`)
    /// and `labels` from what training computed: chooses the projector,
    /// then projects every training face with it.
    pub fn train(
        faces: &[Image],
        labels: &[Label],
        (width, height): (u32, u32),
        fit: Fit,
    ) -> Result<Self, RecognizeError> {
        let projector = Projector::choose(
            faces,
            &fit.mean,
            fit.basis,
            fit.gram_coeffs,
            fit.gram_columns,
        );
        SubspaceModel {
            width,
            height,
            mean: fit.mean,
            eigenvalues: fit.eigenvalues,
            projector,
            projections: Vec::new(),
            labels: labels.to_vec(),
        }
        .with_training_projections(faces)
    }

    /// Number of kept components K.
    pub fn components(&self) -> usize {
        self.projector.components()
    }

    /// Projects one face: (x - mu) W.
    pub fn project(&self, face: &Image) -> Result<Vec<f64>, RecognizeError> {
        check_face(face, 0, (self.width, self.height))?;
        Ok(self.projector.project(face.as_bytes(), &self.mean))
    }

    /// Fills `projections` by projecting every training face exactly as a
    /// query is projected, so that a query identical to a training face is
    /// at distance 0 (as in OpenCV, which also projects both the same way).
    fn with_training_projections(mut self, faces: &[Image]) -> Result<Self, RecognizeError> {
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
        prediction(&self.labels, nearest_index, distance, threshold)
    }

    /// Projects the query and finds its nearest training sample.
    pub fn predict(&self, face: &Image, threshold: f64) -> Result<Prediction, RecognizeError> {
        let query = self.project(face)?;
        Ok(self.nearest(&query, threshold))
    }
}

/// Implements the methods of a subspace recognizer (Eigenfaces,
/// Fisherfaces): a struct with the fields `requested_components`,
/// `common: Common` and `model: Option<SubspaceModel>`, and a function
/// `train_model(faces, labels, requested_components)` in scope. The two
/// differ only in how they train (and in what their `new` means by the
/// number of components), so everything else is written once here: the
/// inherent accessors and [`Recognizer`](crate::Recognizer).
macro_rules! subspace_recognizer {
    ($type:ident, $algorithm:expr) => {
        impl $type {
            /// An untrained recognizer.
            fn untrained(requested_components: usize, threshold: f64) -> Self {
                $type {
                    requested_components,
                    common: crate::common::Common::new(threshold),
                    model: None,
                }
            }

            pub(crate) fn from_parts(
                requested_components: usize,
                common: crate::common::Common,
                model: crate::subspace::SubspaceModel,
            ) -> Self {
                $type {
                    requested_components,
                    common,
                    model: Some(model),
                }
            }

            /// Number of components of the trained model (for Eigenfaces N
            /// after a default training, like OpenCV's
            /// `getNumComponents()`; for Fisherfaces the discriminant
            /// axes), or the requested number before training.
            pub fn num_components(&self) -> usize {
                self.model.as_ref().map_or(
                    self.requested_components,
                    crate::subspace::SubspaceModel::components,
                )
            }

            /// Eigenvalues of the kept components, decreasing (of the
            /// covariance for Eigenfaces, the real parts of those of
            /// S_w^-1 S_b for Fisherfaces); empty before training.
            pub fn eigenvalues(&self) -> &[f64] {
                self.model.as_ref().map_or(&[], |m| &m.eigenvalues)
            }

            /// Training labels in training order (empty before training).
            pub fn labels(&self) -> &[crate::Label] {
                self.model.as_ref().map_or(&[], |m| &m.labels)
            }

            /// The projection (x - mu) W of a face into the model's
            /// subspace (diagnostics, tests).
            pub fn project(
                &self,
                face: &ocellus_imaging::Image,
            ) -> Result<Vec<f64>, crate::RecognizeError> {
                self.model
                    .as_ref()
                    .ok_or(crate::RecognizeError::NotTrained)?
                    .project(face)
            }
        }

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

            crate::common::recognizer_accessors!();

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
