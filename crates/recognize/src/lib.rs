//! Ocellus face recognizers: Eigenfaces, Fisherfaces, LBPH, and `resnet`
//! (dlib's 128-d face embedding, [`resnet`]).
//!
//! The three algorithms reproduce what OpenCV 4's `face` module computes
//! (`EigenFaceRecognizer`, `FisherFaceRecognizer`, `LBPHFaceRecognizer`), as
//! specified in `shared/docs/opencv-algorithms.md` sections 1-4, so that a
//! model trained here gives the same answers as OpenCV on the same images.
//! Two things differ on purpose:
//!
//! - every recognizer has a calibrated default *threshold*: a face whose
//!   nearest training sample is not strictly closer than the threshold is
//!   reported as unknown ([`Prediction::label`] is `None`). OpenCV's default
//!   (no threshold) would name a stranger as the nearest known person;
//! - models are saved to a compact, versioned, checksummed binary format
//!   ([`Recognizer::to_bytes`], [`model_from_bytes`]), not YAML.
//!
//! Inputs are greyscale [`Image`]s of one size, usually produced by
//! [`prepare::prepare_face`] from a detected face rectangle. [`eval`]
//! measures a recognizer on labelled faces (accuracy, k-fold, false-accept
//! and false-reject rates, threshold calibration), as `ocellus eval` does.
//!
//! Layout: [`lbph`] and the subspace recognizers ([`eigen`], [`fisher`],
//! with their PCA, LDA, [`real_eigen`] solver and projection kernels in the
//! private `subspace` folder); what every recognizer shares (threshold,
//! label names, the acceptance rule, the input checks) in private modules;
//! [`model_file`] and [`prepare`].
//!
//! Everything here is pure computation: no file or network I/O.

#![warn(missing_docs)]

mod common;
pub mod eval;
pub mod lbph;
pub mod model_file;
pub mod prepare;
pub mod resnet;
mod samples;
mod subspace;

pub use subspace::{eigen, fisher, real_eigen};

use std::collections::BTreeMap;

pub use ocellus_imaging::Image;
use thiserror::Error;

pub use eigen::EigenFaces;
pub use fisher::FisherFaces;
pub use lbph::{Lbph, LbphParams};
pub use model_file::{ModelFileError, model_from_bytes};
pub use prepare::{FaceRect, PrepareError, prepare_face};
pub use resnet::{DescriptorIndex, Resnet};

/// The identifier of a person in a trained model (OpenCV uses `int` labels).
pub type Label = i32;

/// Which recognition algorithm a model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Eigenfaces: PCA, nearest neighbour in the PCA subspace.
    Eigen,
    /// Fisherfaces: PCA then LDA, nearest neighbour in the LDA subspace.
    Fisher,
    /// Local binary pattern histograms, chi-square nearest neighbour.
    Lbph,
    /// dlib's 128-d ResNet descriptor of the aligned face, Euclidean
    /// nearest neighbour ([`resnet`]).
    Resnet,
}

impl Algorithm {
    /// The lower-case name used on the command line (`eigen`, `fisher`, `lbph`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Eigen => "eigen",
            Algorithm::Fisher => "fisher",
            Algorithm::Lbph => "lbph",
            Algorithm::Resnet => "resnet",
        }
    }

    /// Parses [`Algorithm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "eigen" => Some(Algorithm::Eigen),
            "fisher" => Some(Algorithm::Fisher),
            "lbph" => Some(Algorithm::Lbph),
            "resnet" => Some(Algorithm::Resnet),
            _ => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The answer of [`Recognizer::predict`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// The recognised person, or `None` when the face is unknown (its nearest
    /// distance is not strictly below the threshold).
    pub label: Option<Label>,
    /// Label of the nearest training sample, whether accepted or not.
    pub nearest_label: Label,
    /// Index (in training order) of the nearest training sample; among equal
    /// distances the earliest sample wins, as in OpenCV.
    pub nearest_index: usize,
    /// Distance to the nearest training sample (OpenCV's "confidence": smaller
    /// is more similar). Reported even when the face is rejected, so that
    /// thresholds can be calibrated.
    pub distance: f64,
}

/// Why a recognizer could not train, predict or update.
#[derive(Debug, Error, PartialEq)]
pub enum RecognizeError {
    /// No training images were given.
    #[error("no training images")]
    NoTrainingData,
    /// Images and labels differ in number.
    #[error("{images} images but {labels} labels")]
    LabelCount {
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// An image is not one-channel greyscale.
    #[error("image {index} is not greyscale (convert it with prepare_face or to_gray)")]
    NotGray {
        /// Index of the offending image (0 for a prediction query).
        index: usize,
    },
    /// Images of different sizes were mixed.
    #[error(
        "image {index} is {got_w}x{got_h} but the model expects {want_w}x{want_h}; \
         resize every face to one size (see prepare_face)"
    )]
    SizeMismatch {
        /// Index of the offending image (0 for a prediction query).
        index: usize,
        /// Its width.
        got_w: u32,
        /// Its height.
        got_h: u32,
        /// Expected width.
        want_w: u32,
        /// Expected height.
        want_h: u32,
    },
    /// Fisherfaces needs at least two people and more images than people.
    #[error(
        "Fisherfaces needs at least 2 people and more images than people (got {images} images of {classes} people)"
    )]
    TooFewForFisher {
        /// Number of images.
        images: usize,
        /// Number of distinct labels.
        classes: usize,
    },
    /// The image is too small for the LBPH parameters.
    #[error(
        "a {width}x{height} image is too small for LBPH radius {radius} and a {grid_x}x{grid_y} grid"
    )]
    TooSmallForLbph {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// LBP radius.
        radius: u32,
        /// Grid columns.
        grid_x: u32,
        /// Grid rows.
        grid_y: u32,
    },
    /// An LBPH parameter is out of range.
    #[error("invalid LBPH parameter: {0}")]
    InvalidParams(String),
    /// `predict` or `to_bytes` was called before `train`.
    #[error("the recognizer has not been trained")]
    NotTrained,
    /// `update` is only possible for LBPH (as in OpenCV).
    #[error("{0} models cannot be updated; train them again with all images")]
    UpdateUnsupported(Algorithm),
    /// `resnet` works on aligned face chips (150x150 RGB), not on this.
    #[error("face {index} is not an aligned 150x150 RGB face chip")]
    NotChip {
        /// Index of the offending image (0 for a prediction query).
        index: usize,
    },
    /// `resnet` needs the dlib model files, loaded by the caller.
    #[error("resnet needs the dlib model files (see Resnet::new)")]
    NeedsModels,
    /// The algorithm has no model file of its own.
    #[error("{0} models are not saved as model files")]
    NoModelFile(Algorithm),
    /// A numerical step failed (for example the eigen-solver did not converge).
    #[error("numerical failure: {0}")]
    Numerical(String),
}

/// A face recognizer: train on labelled greyscale faces, then name new faces.
///
/// All three implementations follow OpenCV's nearest-neighbour rule (spec
/// section 1): the query's distance to every training sample is computed in
/// training order, the earliest strictly smallest one wins, and it is accepted
/// only if it is strictly below [`Recognizer::threshold`].
pub trait Recognizer: Send + Sync {
    /// Which algorithm this is.
    fn algorithm(&self) -> Algorithm;

    /// Trains from scratch on `faces` (greyscale, all of one size) with one
    /// label per face; a previous model is discarded.
    fn train(&mut self, faces: &[Image], labels: &[Label]) -> Result<(), RecognizeError>;

    /// Adds samples to a trained model without retraining. Only LBPH supports
    /// it (as in OpenCV); the others return [`RecognizeError::UpdateUnsupported`].
    fn update(&mut self, faces: &[Image], labels: &[Label]) -> Result<(), RecognizeError> {
        let _ = (faces, labels);
        Err(RecognizeError::UpdateUnsupported(self.algorithm()))
    }

    /// Names one face (greyscale, the training size).
    fn predict(&self, face: &Image) -> Result<Prediction, RecognizeError>;

    /// The rejection threshold: a face is known only if its nearest distance
    /// is strictly below it. `f64::INFINITY` disables rejection.
    fn threshold(&self) -> f64;

    /// Sets the rejection threshold (see [`Recognizer::threshold`]).
    fn set_threshold(&mut self, threshold: f64);

    /// Whether `train` (or loading) has produced a model.
    fn is_trained(&self) -> bool;

    /// Number of training samples in the model.
    fn num_samples(&self) -> usize;

    /// The face size (width, height) the model was trained on, if trained.
    fn face_size(&self) -> Option<(u32, u32)>;

    /// Optional human-readable names of the labels (stored in model files).
    fn label_names(&self) -> &BTreeMap<Label, String>;

    /// Replaces the label names.
    fn set_label_names(&mut self, names: BTreeMap<Label, String>);

    /// Serialises the trained model (see [`model_file`] for the format).
    fn to_bytes(&self) -> Result<Vec<u8>, RecognizeError>;
}

/// Creates an untrained recognizer of the given algorithm with its default
/// parameters and calibrated default threshold. `resnet` needs the model
/// files: make it with [`Resnet::new`] ([`RecognizeError::NeedsModels`]).
pub fn new_recognizer(algorithm: Algorithm) -> Result<Box<dyn Recognizer>, RecognizeError> {
    Ok(match algorithm {
        Algorithm::Eigen => Box::new(EigenFaces::new(0)),
        Algorithm::Fisher => Box::new(FisherFaces::new(0)),
        Algorithm::Lbph => Box::new(Lbph::new(LbphParams::default())),
        Algorithm::Resnet => return Err(RecognizeError::NeedsModels),
    })
}
