//! Eigenfaces (OpenCV's `EigenFaceRecognizer`, spec section 2): PCA through
//! the N x N Gram matrix, nearest neighbour in the PCA subspace.

use ocellus_imaging::Image;

use super::projector::{Projector, well_conditioned};
use super::{SubspaceModel, pca, sample_matrix};
use crate::common::Common;
use crate::samples::check_training_set;
use crate::{Label, RecognizeError};

/// Default rejection threshold for Eigenfaces on prepared faces of the
/// default size ([`crate::prepare::DEFAULT_FACE_SIZE`], 100 x 100): the
/// distance at which 1 % of impostor faces are accepted in the ORL
/// calibration run described in `docs/recognition.md`.
pub const DEFAULT_THRESHOLD: f64 = 2314.0;

/// The Eigenfaces recognizer.
#[derive(Clone, Debug)]
pub struct EigenFaces {
    requested_components: usize,
    common: Common,
    model: Option<SubspaceModel>,
}

impl EigenFaces {
    /// A new recognizer keeping `num_components` principal components;
    /// 0 (OpenCV's default) or more than the number of training images
    /// keeps one per training image. The threshold is [`DEFAULT_THRESHOLD`].
    pub fn new(num_components: usize) -> Self {
        EigenFaces {
            requested_components: num_components,
            common: Common::new(DEFAULT_THRESHOLD),
            model: None,
        }
    }

    /// Number of components of the trained model (N after a default
    /// training, like OpenCV's `getNumComponents()`), or the requested number
    /// before training.
    pub fn num_components(&self) -> usize {
        self.model
            .as_ref()
            .map_or(self.requested_components, SubspaceModel::components)
    }

    /// Eigenvalues of the kept components, decreasing (empty before training).
    pub fn eigenvalues(&self) -> &[f64] {
        self.model.as_ref().map_or(&[], |m| &m.eigenvalues)
    }

    /// Training labels in training order (empty before training).
    pub fn labels(&self) -> &[Label] {
        self.model.as_ref().map_or(&[], |m| &m.labels)
    }

    /// The projection (x - mu) W of a face into the model's subspace
    /// (diagnostics, tests).
    pub fn project(&self, face: &Image) -> Result<Vec<f64>, RecognizeError> {
        self.model
            .as_ref()
            .ok_or(RecognizeError::NotTrained)?
            .project(face)
    }

    pub(crate) fn from_parts(requested: usize, common: Common, model: SubspaceModel) -> Self {
        EigenFaces {
            requested_components: requested,
            common,
            model: Some(model),
        }
    }
}

/// Trains an Eigenfaces subspace model (shared with tests and benchmarks).
fn train_model(
    faces: &[Image],
    labels: &[Label],
    requested: usize,
) -> Result<SubspaceModel, RecognizeError> {
    let (width, height) = check_training_set(faces, labels)?;
    let data = sample_matrix(faces);
    let n = faces.len();
    let k = if requested == 0 || requested > n {
        n
    } else {
        requested
    };
    let fitted = pca::fit(data.as_ref(), k)?;
    let gram_columns = well_conditioned(&fitted.eigenvalues);
    let projector = Projector::choose(
        faces,
        &fitted.mean,
        fitted.basis,
        fitted.gram_coeffs,
        gram_columns,
    );
    SubspaceModel {
        width,
        height,
        mean: fitted.mean,
        eigenvalues: fitted.eigenvalues,
        projector,
        projections: Vec::new(),
        labels: labels.to_vec(),
    }
    .with_training_projections(faces)
}

crate::subspace::subspace_recognizer!(EigenFaces, crate::Algorithm::Eigen);
