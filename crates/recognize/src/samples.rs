//! The input checks every recognizer makes: one label per image, every
//! image greyscale and of one size.
//!
//! Invariant: every image a model trains on or predicts has passed them, so
//! the algorithms index pixels without checks of their own.

use ocellus_imaging::{Image, PixelLayout};

use crate::{Label, RecognizeError};

/// Checks that `faces` and `labels` pair up and that every face is greyscale
/// and of the same size; returns that size.
pub(crate) fn check_training_set(
    faces: &[Image],
    labels: &[Label],
) -> Result<(u32, u32), RecognizeError> {
    let first = faces.first().ok_or(RecognizeError::NoTrainingData)?;
    let size = (first.width(), first.height());
    check_batch(faces, labels, size)?;
    Ok(size)
}

/// Checks that `faces` and `labels` pair up and that every face is greyscale
/// and of the given size (images added to a trained model).
pub(crate) fn check_batch(
    faces: &[Image],
    labels: &[Label],
    size: (u32, u32),
) -> Result<(), RecognizeError> {
    if faces.len() != labels.len() {
        return Err(RecognizeError::LabelCount {
            images: faces.len(),
            labels: labels.len(),
        });
    }
    for (index, face) in faces.iter().enumerate() {
        check_face(face, index, size)?;
    }
    Ok(())
}

/// Checks that one face is greyscale and of the expected size.
pub(crate) fn check_face(
    face: &Image,
    index: usize,
    (want_w, want_h): (u32, u32),
) -> Result<(), RecognizeError> {
    if face.layout() != PixelLayout::Gray {
        return Err(RecognizeError::NotGray { index });
    }
    if face.width() != want_w || face.height() != want_h {
        return Err(RecognizeError::SizeMismatch {
            index,
            got_w: face.width(),
            got_h: face.height(),
            want_w,
            want_h,
        });
    }
    Ok(())
}
