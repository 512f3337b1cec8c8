//! Ocellus face detection: OpenCV cascade classifiers (Haar and LBP, from
//! OpenCV's XML files) evaluated exactly as OpenCV 4's
//! `CascadeClassifier::detectMultiScale` does, so that the same image and
//! parameters give the same boxes; pyramid levels and window rows are
//! evaluated in parallel.
//!
//! ```no_run
//! # fn demo(xml: &str, image: &ocellus_imaging::Image) -> Result<(), Box<dyn std::error::Error>> {
//! use ocellus_detect::{Cascade, DetectParams, detect};
//! let cascade = Cascade::from_xml(xml)?; // load once, share between threads
//! let faces = detect(&cascade, image, &DetectParams::default())?;
//! # Ok(()) }
//! ```
//!
//! Pure computation: reading cascade files from disk is the caller's job.
//!
//! Bounded cost: [`detect_cost_ns`] estimates, from the image size alone,
//! the single-thread time of a detection (an upper-ish bound: the time per
//! window was measured on the content that is slowest to reject), and
//! [`detect_cancellable`] stops between pyramid levels and between window
//! rows once its [`Cancel`] token is raised. See docs/limits-cost.md.

#![warn(missing_docs)]

mod boost;
mod cascade;
mod cost;
pub mod draw;
pub mod group;
mod haar;
pub mod integral;
mod lbp;
mod legacy;
pub mod pyramid;
mod scan;
mod tables;
mod xml;

use std::borrow::Cow;

use ocellus_imaging::filter::grayscale::to_gray;
use ocellus_imaging::{Cancel, Cancelled, Image, PixelLayout};
use thiserror::Error;

pub use cascade::{
    Cascade, CascadeError, FeatureKind, HaarFeature, LbpFeature, Node, Stage, Tree, WeightedRect,
};
pub use cost::{DetectWork, detect_cost_ns, detect_work};
pub use lbp::lbp_code;

/// OpenCV's grouping tolerance (`GROUP_EPS` in `detectMultiScale`).
pub const GROUP_EPS: f64 = 0.2;

/// An axis-aligned box in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
}

/// The parameters of `detectMultiScale`, with OpenCV's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectParams {
    /// Ratio between successive window sizes; must be > 1 (default 1.1).
    pub scale_factor: f64,
    /// A box is kept when at least this many + 1 raw detections support it;
    /// 0 returns the raw detections ungrouped (default 3).
    pub min_neighbors: u32,
    /// Smallest window (width, height); (0, 0) means no minimum (default).
    pub min_size: (u32, u32),
    /// Largest window (width, height); a zero side means the image size
    /// (default (0, 0)).
    pub max_size: (u32, u32),
}

impl Default for DetectParams {
    fn default() -> Self {
        DetectParams {
            scale_factor: 1.1,
            min_neighbors: 3,
            min_size: (0, 0),
            max_size: (0, 0),
        }
    }
}

/// Why detection could not run.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DetectError {
    /// The scale factor is not a number greater than 1.
    #[error("scale factor must be greater than 1 (got {0})")]
    ScaleFactor(f64),
    /// The [`Cancel`] token was raised; the partial result was dropped.
    #[error("cancelled")]
    Cancelled,
}

impl From<Cancelled> for DetectError {
    fn from(_: Cancelled) -> Self {
        DetectError::Cancelled
    }
}

fn gray_of(image: &Image) -> Cow<'_, Image> {
    if image.layout() == PixelLayout::Gray {
        Cow::Borrowed(image)
    } else {
        Cow::Owned(to_gray(image))
    }
}

/// The raw detections (every accepted window, in original-image
/// coordinates) before grouping, in OpenCV's single-thread order: by scale,
/// then row, then column. Colour images are converted with BT.601 luma first.
pub fn detect_candidates(
    cascade: &Cascade,
    image: &Image,
    params: &DetectParams,
) -> Result<Vec<Rect>, DetectError> {
    detect_candidates_cancellable(cascade, image, params, &Cancel::never())
}

/// [`detect_candidates`], polling `cancel` before each pyramid level and
/// each window row: [`DetectError::Cancelled`] once it is raised.
pub fn detect_candidates_cancellable(
    cascade: &Cascade,
    image: &Image,
    params: &DetectParams,
    cancel: &Cancel,
) -> Result<Vec<Rect>, DetectError> {
    if params.scale_factor.is_nan() || params.scale_factor <= 1.0 {
        return Err(DetectError::ScaleFactor(params.scale_factor));
    }
    let gray = gray_of(image);
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let levels = pyramid::levels(
        (w, h),
        cascade.window_size(),
        params.scale_factor,
        params.min_size,
        params.max_size,
    );
    cancel.check()?;
    Ok(scan::scan_levels(
        cascade,
        gray.as_bytes(),
        w,
        h,
        &levels,
        cancel,
    )?)
}

/// Detects objects as OpenCV's `detectMultiScale(gray, scaleFactor,
/// minNeighbors, 0, minSize, maxSize)` does: raw detections, then
/// `groupRectangles` with eps 0.2, then clipping to the image. Colour images
/// are converted with BT.601 luma first (OpenCV's `BGR2GRAY`).
pub fn detect(
    cascade: &Cascade,
    image: &Image,
    params: &DetectParams,
) -> Result<Vec<Rect>, DetectError> {
    detect_cancellable(cascade, image, params, &Cancel::never())
}

/// [`detect`], polling `cancel` before each pyramid level and each window
/// row: [`DetectError::Cancelled`] once it is raised. When not cancelled
/// the boxes are exactly [`detect`]'s.
pub fn detect_cancellable(
    cascade: &Cascade,
    image: &Image,
    params: &DetectParams,
    cancel: &Cancel,
) -> Result<Vec<Rect>, DetectError> {
    let raw = detect_candidates_cancellable(cascade, image, params, cancel)?;
    let grouped = group::group_rectangles(&raw, params.min_neighbors, GROUP_EPS);
    Ok(group::clip_to_image(
        &grouped,
        image.width(),
        image.height(),
    ))
}
