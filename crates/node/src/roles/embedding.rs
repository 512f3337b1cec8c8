//! The `resnet` embedding of a face: its five landmarks, its aligned chip
//! and its 128-d descriptor (`ocellus-embed`), computed where the photo is.
//!
//! Invariant: a face's embedding comes from the largest image of it this
//! node has: the colour photo and the detection box on a detection node;
//! only when no photo is at hand (crops from a node without the model
//! files, or faces stored before the upgrade) from the greyscale crop,
//! its whole area taken as the box. The detection box is used as found:
//! dlib's shape predictor was trained on dlib's own boxes, about 1.28x
//! wider than our cascade's, and the oracle shows the descriptors move by
//! a median 0.04 with the same answers on the people set.

use ocellus_codec::{EncodeOptions, ImageFormat, encode};
use ocellus_embed::{Chip, Descriptor, FaceModels, Rect};
use ocellus_imaging::Image;
use ocellus_protocol::ErrorCode;
use ocellus_protocol::ErrorEvent;
use ocellus_protocol::face::FaceBox;
use ocellus_store::Embedding;

use crate::call::error;

/// What to tell someone who asks for `resnet` on a node without the model
/// files.
pub(crate) const INSTALL_HINT: &str = "the resnet model files are not installed on this node: \
     run scripts/setup (or pass --models DIR / set OCELLUS_MODEL_DIR) and restart it";

/// The box of a detected face.
fn rect(face: &FaceBox) -> Rect {
    Rect::from_xywh(
        i64::from(face.x),
        i64::from(face.y),
        i64::from(face.width),
        i64::from(face.height),
    )
}

/// The aligned chip of the face in `photo` (colour or grey).
fn chip(models: &FaceModels, photo: &Image, face: &FaceBox) -> Chip {
    let landmarks = models.landmarks(photo, rect(face));
    models.chip(photo, &landmarks)
}

/// The descriptor of the face in `photo` (to recognize it).
pub(crate) fn descriptor(models: &FaceModels, photo: &Image, face: &FaceBox) -> Descriptor {
    models.descriptor(&chip(models, photo, face))
}

/// Chip and descriptor of the face in `photo` (to enroll it).
pub(crate) fn embed(
    models: &FaceModels,
    photo: &Image,
    face: &FaceBox,
) -> Result<Embedding, ErrorEvent> {
    let chip = chip(models, photo, face);
    let descriptor = models.descriptor(&chip);
    let chip_png = encode(
        &chip.to_image(),
        ImageFormat::Png,
        &EncodeOptions::default(),
    )
    .map_err(|e| error(ErrorCode::Internal, format!("cannot encode a chip: {e}")))?;
    Ok(Embedding {
        chip_png,
        descriptor,
    })
}

/// Chip and descriptor of a face crop, its whole area taken as the box
/// (no photo at hand: see the module doc).
pub(crate) fn embed_crop(models: &FaceModels, crop: &Image) -> Result<Embedding, ErrorEvent> {
    embed(models, crop, &whole(crop))
}

/// The descriptor of a face crop, its whole area taken as the box.
pub(crate) fn crop_descriptor(models: &FaceModels, crop: &Image) -> Descriptor {
    descriptor(models, crop, &whole(crop))
}

/// The whole of a face crop as its box.
fn whole(crop: &Image) -> FaceBox {
    FaceBox {
        x: 0,
        y: 0,
        width: crop.width() as i32,
        height: crop.height() as i32,
    }
}
