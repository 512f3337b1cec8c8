//! Checks and conversions shared by the recognizers: greyscale, one size,
//! one label per image, flattening to vectors.

use faer::Mat;
use ocellus_imaging::{Image, PixelLayout};

use crate::{Label, RecognizeError};

/// Checks that `faces` and `labels` pair up and that every face is greyscale
/// and of the same size; returns that size.
pub(crate) fn check_training_set(
    faces: &[Image],
    labels: &[Label],
) -> Result<(u32, u32), RecognizeError> {
    if faces.is_empty() {
        return Err(RecognizeError::NoTrainingData);
    }
    if faces.len() != labels.len() {
        return Err(RecognizeError::LabelCount {
            images: faces.len(),
            labels: labels.len(),
        });
    }
    let size = (faces[0].width(), faces[0].height());
    for (index, face) in faces.iter().enumerate() {
        check_face(face, index, size)?;
    }
    Ok(size)
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

/// The N x D matrix of samples (one flattened face per row, row-major pixels,
/// converted exactly to f64), as OpenCV builds it.
pub(crate) fn sample_matrix(faces: &[Image]) -> Mat<f64> {
    let d = faces.first().map_or(0, |f| f.as_bytes().len());
    Mat::from_fn(faces.len(), d, |i, j| f64::from(faces[i].as_bytes()[j]))
}

/// Distinct labels in ascending order.
pub(crate) fn distinct_labels(labels: &[Label]) -> Vec<Label> {
    let mut distinct = labels.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
}
