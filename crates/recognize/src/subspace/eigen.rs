//! Eigenfaces (OpenCV's `EigenFaceRecognizer`, spec section 2): PCA through
//! the N x N Gram matrix, nearest neighbour in the PCA subspace.

use ocellus_imaging::Image;

use super::projector::well_conditioned;
use super::{Fit, SubspaceModel, pca, sample_matrix};
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
        Self::untrained(num_components, DEFAULT_THRESHOLD)
    }
}

/// Trains an Eigenfaces subspace model.
fn train_model(
    faces: &[Image],
    labels: &[Label],
    requested: usize,
) -> Result<SubspaceModel, RecognizeError> {
    let size = check_training_set(faces, labels)?;
    let data = sample_matrix(faces);
    let n = faces.len();
    let k = if requested == 0 || requested > n {
        n
    } else {
        requested
    };
    let fitted = pca::fit(data.as_ref(), k)?;
    // Components with a zero eigenvalue stay explicit (see `projector`).
    let gram_columns = well_conditioned(&fitted.eigenvalues);
    let fit = Fit {
        mean: fitted.mean,
        eigenvalues: fitted.eigenvalues,
        basis: fitted.basis,
        gram_coeffs: fitted.gram_coeffs,
        gram_columns,
    };
    SubspaceModel::train(faces, labels, size, fit)
}

crate::subspace::subspace_recognizer!(EigenFaces, crate::Algorithm::Eigen);
