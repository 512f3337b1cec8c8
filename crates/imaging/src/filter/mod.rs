//! One filter per module. Each takes an 8-bit [`Image`](crate::Image) and
//! either changes it in place or returns a new one.

pub mod grayscale;
