//! Eigenfaces (OpenCV's `EigenFaceRecognizer`, spec section 2): PCA through
//! the N x N Gram matrix, nearest neighbour in the PCA subspace.

use std::collections::BTreeMap;

use ocellus_imaging::Image;

use crate::samples::{check_training_set, sample_matrix};
use crate::subspace::{Common, SubspaceModel};
use crate::{Algorithm, Label, Prediction, RecognizeError, Recognizer, model_file, pca};

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
            common: Common {
                threshold: DEFAULT_THRESHOLD,
                names: BTreeMap::new(),
            },
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
    let gram_columns = SubspaceModel::well_conditioned(&fitted.eigenvalues);
    let projector = SubspaceModel::projector(
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

impl Recognizer for EigenFaces {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Eigen
    }

    fn train(&mut self, faces: &[Image], labels: &[Label]) -> Result<(), RecognizeError> {
        self.model = Some(train_model(faces, labels, self.requested_components)?);
        Ok(())
    }

    fn predict(&self, face: &Image) -> Result<Prediction, RecognizeError> {
        self.model
            .as_ref()
            .ok_or(RecognizeError::NotTrained)?
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

    fn label_names(&self) -> &BTreeMap<Label, String> {
        &self.common.names
    }

    fn set_label_names(&mut self, names: BTreeMap<Label, String>) {
        self.common.names = names;
    }

    fn to_bytes(&self) -> Result<Vec<u8>, RecognizeError> {
        let model = self.model.as_ref().ok_or(RecognizeError::NotTrained)?;
        Ok(model_file::write_subspace(
            Algorithm::Eigen,
            self.requested_components,
            &self.common,
            model,
        ))
    }
}
