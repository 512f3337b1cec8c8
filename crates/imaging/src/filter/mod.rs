//! One filter per module. Each takes an 8-bit [`Image`](crate::Image) and
//! either changes it in place or returns a new one.

pub mod box_blur;
pub mod convolve;
pub mod edges;
pub mod gaussian;
pub mod geometry;
pub mod grayscale;
pub mod median;
pub mod resize;
pub mod sepia;
pub mod sharpen;
pub mod tone;
