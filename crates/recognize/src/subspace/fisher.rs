//! Fisherfaces (OpenCV's `FisherFaceRecognizer`, spec section 3): PCA to
//! N - C dimensions, then LDA keeping C - 1 (or fewer) discriminant axes,
//! with OpenCV's unnormalised eigenvector scaling; nearest neighbour in the
//! LDA subspace.

use ocellus_imaging::Image;

use super::linalg::product;
use super::projector::well_conditioned;
use super::{Fit, SubspaceModel, lda, pca, sample_matrix};
use crate::common::Common;
use crate::samples::check_training_set;
use crate::{Label, RecognizeError};

/// Default rejection threshold for Fisherfaces on prepared faces of the
/// default size ([`crate::prepare::DEFAULT_FACE_SIZE`]): the distance at
/// which 1 % of impostor faces are accepted in the ORL calibration run
/// described in `docs/recognition.md`.
pub const DEFAULT_THRESHOLD: f64 = 1305.0;

/// The Fisherfaces recognizer.
#[derive(Clone, Debug)]
pub struct FisherFaces {
    requested_components: usize,
    common: Common,
    model: Option<SubspaceModel>,
}

impl FisherFaces {
    /// A new recognizer keeping `num_components` discriminant axes; 0
    /// (OpenCV's default) or more than C - 1 (C = number of people) keeps
    /// C - 1. The threshold is [`DEFAULT_THRESHOLD`].
    pub fn new(num_components: usize) -> Self {
        Self::untrained(num_components, DEFAULT_THRESHOLD)
    }
}

/// Distinct labels in ascending order.
fn distinct_labels(labels: &[Label]) -> Vec<Label> {
    let mut distinct = labels.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
}

fn train_model(
    faces: &[Image],
    labels: &[Label],
    requested: usize,
) -> Result<SubspaceModel, RecognizeError> {
    let size = check_training_set(faces, labels)?;
    let classes = distinct_labels(labels);
    let n = faces.len();
    let c = classes.len();
    if c < 2 || n <= c {
        return Err(RecognizeError::TooFewForFisher {
            images: n,
            classes: c,
        });
    }
    let k = if requested == 0 || requested > c - 1 {
        c - 1
    } else {
        requested
    };
    let data = sample_matrix(faces);
    let fitted = pca::fit(data.as_ref(), n - c)?;
    let reduced = pca::project_rows(data.as_ref(), &fitted.mean, fitted.basis.as_ref());
    let discriminant = lda::fit(reduced.as_ref(), labels, &classes, k)?;
    // W = P V_K (D x K).
    let kk = discriminant.vectors.ncols();
    let basis = product(fitted.basis.as_ref(), discriminant.vectors.as_ref(), 1.0);
    // W = P V = A^T (C_pca V): the Gram form needs C_pca V (N x K).
    let gram_coeffs = fitted
        .gram_coeffs
        .map(|c| product(c.as_ref(), discriminant.vectors.as_ref(), 1.0));
    // Every PCA component feeds every LDA axis: Gram form only if none of
    // them is a rounding-noise direction.
    let gram_columns = if well_conditioned(&fitted.eigenvalues) == fitted.eigenvalues.len() {
        kk
    } else {
        0
    };
    let fit = Fit {
        mean: fitted.mean,
        eigenvalues: discriminant.eigenvalues,
        basis,
        gram_coeffs,
        gram_columns,
    };
    SubspaceModel::train(faces, labels, size, fit)
}

crate::subspace::subspace_recognizer!(FisherFaces, crate::Algorithm::Fisher);
