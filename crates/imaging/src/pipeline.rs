//! Filter pipelines: a comma-separated list of operations such as
//! `blur=5,resize=800x,grayscale`, parsed once, planned, and applied left
//! to right.
//!
//! Owns the pipeline syntax, the limits on a pipeline (at most [`MAX_OPS`]
//! operations, bounded parameters, no intermediate image over a pixel
//! limit) and its cost model. Invariant: [`Pipeline::plan`] walks exactly
//! the sizes and layouts [`Pipeline::apply`] produces, without touching a
//! pixel, so a caller can refuse a pipeline on its estimated time
//! ([`Plan::cost_ns`]) and memory ([`Plan::peak_bytes`]) before running it.
//! Each operation's cost figures live beside the operation, in its
//! `filter` module; [`Op::cost_ns`] combines them. See docs/limits-cost.md.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::filter;
use crate::filter::box_blur::box_blur_cancellable;
use crate::filter::edges::sobel_edges_cancellable;
use crate::filter::gaussian::gaussian_blur_cancellable;
use crate::filter::geometry::{CropOutOfBounds, Flip, Rotation, crop, flip, rotate_cancellable};
use crate::filter::grayscale::grayscale;
use crate::filter::median::median_filter_cancellable;
use crate::filter::resize::{ResizeFilter, resize_cancellable};
use crate::filter::sepia::sepia_cancellable;
use crate::filter::sharpen::sharpen_cancellable;
use crate::filter::tone::{brightness, contrast, invert};
use crate::{Cancel, Cancelled, Image, PixelLayout};

/// Largest image a pipeline may produce by default (resize is otherwise a
/// memory bomb): the limit [`Op::apply`] and [`Pipeline::apply`] enforce;
/// [`Pipeline::plan`] takes the limit as an argument.
pub const MAX_OUTPUT_PIXELS: u64 = 100_000_000;

/// Most operations one pipeline may hold. Each is bounded on its own, so
/// this bounds a pipeline's cost; 32 is far more than any real chain needs
/// (the longest in the tests and examples has 15).
pub const MAX_OPS: usize = 32;

/// Largest blur sigma and median radius accepted: beyond them the result is
/// flat grey anyway and the cost unreasonable for a shared server.
const MAX_SIGMA: f32 = 100.0;
const MAX_MEDIAN_RADIUS: u32 = 50;
const MAX_BOX_RADIUS: u32 = 500;

/// Every operation name with its syntax, for help and error messages.
pub const OPERATIONS: &[&str] = &[
    "blur=SIGMA",
    "box=R",
    "median=R",
    "sharpen=SIGMA:AMOUNT",
    "edges",
    "grayscale",
    "sepia",
    "invert",
    "brightness=DELTA",
    "contrast=FACTOR",
    "resize=WxH[:lanczos|:bilinear] (or Wx / xH to keep the aspect ratio)",
    "rotate=90|180|270",
    "flip=h|v",
    "crop=WxH+X+Y",
];

/// One step of a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Gaussian blur with this standard deviation.
    Blur(f32),
    /// Box blur of this radius.
    Box(u32),
    /// Median filter of this radius.
    Median(u32),
    /// Unsharp mask.
    Sharpen {
        /// Standard deviation of the blur that is subtracted.
        sigma: f32,
        /// Strength: 1.0 doubles local contrast.
        amount: f32,
    },
    /// Sobel gradient magnitude (grey output).
    Edges,
    /// BT.601 luma (grey output, alpha kept).
    Grayscale,
    /// Sepia toning.
    Sepia,
    /// Negative.
    Invert,
    /// Add a constant to every colour value.
    Brightness(i32),
    /// Scale the distance from mid-grey.
    Contrast(f32),
    /// Resample; a missing side keeps the aspect ratio.
    Resize {
        /// Target width, or `None` to derive it from the height.
        width: Option<u32>,
        /// Target height, or `None` to derive it from the width.
        height: Option<u32>,
        /// Interpolation kernel.
        filter: ResizeFilter,
    },
    /// Clockwise quarter-turn rotation.
    Rotate(Rotation),
    /// Mirror.
    Flip(Flip),
    /// Cut out a rectangle.
    Crop {
        /// Width of the rectangle.
        width: u32,
        /// Height of the rectangle.
        height: u32,
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
    },
}

/// A pipeline that could not be parsed: names the bad operation and lists
/// the valid ones.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid operation `{op}`: {reason}; valid operations: {}", OPERATIONS.join(", "))]
pub struct ParseError {
    /// The operation text as given.
    pub op: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a pipeline could not be applied to a particular image.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FilterError {
    /// A crop rectangle outside the image.
    #[error(transparent)]
    Crop(#[from] CropOutOfBounds),
    /// An operation that would grow the image beyond the pixel limit.
    #[error("`{op}` would make a {width}x{height} image, over the limit of {limit} pixels")]
    TooLarge {
        /// The operation, as it would be written in a pipeline.
        op: String,
        /// Width it would produce.
        width: u64,
        /// Height it would produce.
        height: u64,
        /// The limit, in pixels.
        limit: u64,
    },
    /// The [`Cancel`] token was raised; the partial result was dropped.
    #[error("cancelled")]
    Cancelled,
}

impl From<Cancelled> for FilterError {
    fn from(_: Cancelled) -> Self {
        FilterError::Cancelled
    }
}

/// What a pipeline will do to an image of a given size, computed by
/// [`Pipeline::plan`] without touching a pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Width of the result.
    pub width: u32,
    /// Height of the result.
    pub height: u32,
    /// Channels of the result (1 to 4).
    pub channels: u8,
    /// Estimated single-thread time of the whole pipeline, nanoseconds:
    /// the sum of [`Op::cost_ns`] over the operations.
    pub cost_ns: u64,
    /// The most bytes alive at once: the largest, over the operations, of
    /// its input, its output and its working buffers together.
    pub peak_bytes: u64,
}

/// The size and channel count of an image between two operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    width: u32,
    height: u32,
    channels: u8,
}

impl Shape {
    fn pixels(self) -> u64 {
        self.width as u64 * self.height as u64
    }

    fn samples(self) -> f64 {
        self.pixels() as f64 * self.channels as f64
    }

    fn bytes(self) -> u64 {
        self.pixels() * self.channels as u64
    }

    fn row_len(self) -> usize {
        self.width as usize * self.channels as usize
    }
}

/// A parsed list of operations.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Pipeline {
    ops: Vec<Op>,
}

impl Pipeline {
    /// The operations, in application order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Applies every operation in order; the same as
    /// [`apply_cancellable`](Self::apply_cancellable) with [`Cancel::never`].
    pub fn apply(&self, image: Image) -> Result<Image, FilterError> {
        self.apply_cancellable(image, &Cancel::never())
    }

    /// Applies every operation in order, giving up with
    /// [`FilterError::Cancelled`] at the first checkpoint after `cancel` is
    /// raised: before each operation and between row bands inside the slow
    /// filters. When not cancelled the result is exactly [`apply`](Self::apply)'s.
    pub fn apply_cancellable(
        &self,
        mut image: Image,
        cancel: &Cancel,
    ) -> Result<Image, FilterError> {
        for op in &self.ops {
            cancel.check()?;
            image = op.apply_cancellable(image, cancel)?;
        }
        Ok(image)
    }

    /// Walks the operations over a `width` x `height` image of `channels`
    /// channels (1 to 4) without touching a pixel: the result's size, the
    /// estimated single-thread time and the peak memory. Fails as
    /// [`apply`](Self::apply) would on a crop outside the image, and on any
    /// operation that grows the image beyond `max_pixels`.
    pub fn plan(
        &self,
        width: u32,
        height: u32,
        channels: u8,
        max_pixels: u64,
    ) -> Result<Plan, FilterError> {
        let mut shape = Shape {
            width,
            height,
            channels,
        };
        let mut cost = 0.0f64;
        let mut peak = shape.bytes();
        for op in &self.ops {
            let out = op.output(shape, max_pixels)?;
            cost += op.cost_ns(shape, out);
            peak = peak.max(op.peak_bytes(shape, out));
            shape = out;
        }
        Ok(Plan {
            width: shape.width,
            height: shape.height,
            channels: shape.channels,
            // `as` saturates: an absurd estimate stays absurd, not wrapped.
            cost_ns: cost.ceil() as u64,
            peak_bytes: peak,
        })
    }
}

fn channels_of(layout: PixelLayout) -> u8 {
    layout.channels() as u8
}

impl Op {
    /// The shape this operation produces from `input`, or why it cannot
    /// run: a crop outside the image, or growth beyond `max_pixels`.
    fn output(&self, input: Shape, max_pixels: u64) -> Result<Shape, FilterError> {
        let out = match *self {
            Op::Edges => Shape {
                channels: 1,
                ..input
            },
            Op::Grayscale => Shape {
                // Rgb becomes Gray, Rgba GrayAlpha; grey stays as it is.
                channels: match input.channels {
                    3 => 1,
                    4 => 2,
                    c => c,
                },
                ..input
            },
            Op::Sepia => Shape {
                // Alpha (2 or 4 channels) is kept.
                channels: if matches!(input.channels, 2 | 4) {
                    4
                } else {
                    3
                },
                ..input
            },
            Op::Resize { width, height, .. } => {
                let (w, h) = resized_dimensions(input.width, input.height, width, height);
                // Larger than any u32 is over every limit anyway.
                let fits = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                if w * h > max_pixels && w * h > input.pixels() {
                    return Err(self.too_large(w, h, max_pixels));
                }
                Shape {
                    width: fits(w),
                    height: fits(h),
                    ..input
                }
            }
            Op::Rotate(Rotation::Half) => input,
            Op::Rotate(_) => Shape {
                width: input.height,
                height: input.width,
                ..input
            },
            Op::Crop {
                width,
                height,
                x,
                y,
            } => {
                let fits = width > 0
                    && height > 0
                    && x.checked_add(width).is_some_and(|r| r <= input.width)
                    && y.checked_add(height).is_some_and(|b| b <= input.height);
                if !fits {
                    return Err(FilterError::Crop(CropOutOfBounds {
                        width,
                        height,
                        x,
                        y,
                        image_width: input.width,
                        image_height: input.height,
                    }));
                }
                Shape {
                    width,
                    height,
                    ..input
                }
            }
            Op::Blur(_)
            | Op::Box(_)
            | Op::Median(_)
            | Op::Sharpen { .. }
            | Op::Invert
            | Op::Brightness(_)
            | Op::Contrast(_)
            | Op::Flip(_) => input,
        };
        Ok(out)
    }

    fn too_large(&self, width: u64, height: u64, limit: u64) -> FilterError {
        FilterError::TooLarge {
            op: self.to_string(),
            width,
            height,
            limit,
        }
    }

    /// Estimated single-thread nanoseconds of this operation from `input`
    /// to `output`: the samples its time scales with times its measured ns
    /// per sample (a function of its parameter where the time depends on
    /// it). The figures and how they were measured are beside each filter.
    fn cost_ns(&self, input: Shape, output: Shape) -> f64 {
        match *self {
            Op::Blur(sigma) => {
                input.samples() * filter::gaussian::cost_ns_per_sample(sigma, input.row_len())
            }
            Op::Box(r) => {
                input.samples() * filter::box_blur::cost_ns_per_sample(r, input.row_len())
            }
            Op::Median(r) => filter::median::cost_ns(input.width, input.height, input.channels, r),
            Op::Sharpen { sigma, .. } => {
                input.samples() * filter::sharpen::cost_ns_per_sample(sigma, input.row_len())
            }
            Op::Edges => input.pixels() as f64 * filter::edges::COST_NS_PER_PIXEL,
            Op::Grayscale => input.pixels() as f64 * filter::grayscale::COST_NS_PER_PIXEL,
            Op::Sepia => output.pixels() as f64 * filter::sepia::COST_NS_PER_PIXEL,
            Op::Invert | Op::Brightness(_) | Op::Contrast(_) => {
                input.samples() * filter::tone::COST_NS_PER_SAMPLE
            }
            Op::Resize { filter: kind, .. } => filter::resize::cost_ns(
                input.width,
                input.height,
                input.channels,
                output.width,
                output.height,
                kind,
            ),
            Op::Rotate(_) => input.pixels() as f64 * filter::geometry::ROTATE_COST_NS_PER_PIXEL,
            Op::Flip(Flip::Horizontal) => {
                input.samples() * filter::geometry::FLIP_H_COST_NS_PER_SAMPLE
            }
            Op::Flip(Flip::Vertical) => {
                input.samples() * filter::geometry::FLIP_V_COST_NS_PER_SAMPLE
            }
            Op::Crop { .. } => output.samples() * filter::geometry::CROP_COST_NS_PER_SAMPLE,
        }
    }

    /// Bytes alive at once while this operation runs: its input, its output
    /// (or the copy it works from) and its working buffers.
    fn peak_bytes(&self, input: Shape, output: Shape) -> u64 {
        let threads = rayon::current_num_threads();
        let convolution = |radius: usize| {
            filter::convolve::scratch_bytes(
                input.width as usize,
                input.channels as usize,
                radius,
                threads,
            )
        };
        let (i, o) = (input.bytes(), output.bytes());
        match *self {
            // In place, with a ring of rows per band.
            Op::Blur(sigma) => i + convolution(filter::gaussian::kernel_radius(sigma)),
            Op::Box(r) => i + convolution(r as usize),
            // A blurred copy, then combined in place.
            Op::Sharpen { sigma, .. } => {
                2 * i + convolution(filter::gaussian::kernel_radius(sigma))
            }
            // Works from a copy of the input.
            Op::Median(_) => 2 * i,
            // The luma, then the gradient.
            Op::Edges => i + input.pixels() + o,
            // The horizontal pass's result lives until the vertical pass ends.
            Op::Resize { .. } => {
                let mid = output.width as u64 * input.height as u64 * input.channels as u64;
                i + mid + o
            }
            Op::Grayscale | Op::Sepia | Op::Rotate(_) | Op::Crop { .. } => i + o,
            Op::Invert | Op::Brightness(_) | Op::Contrast(_) | Op::Flip(_) => i,
        }
    }

    /// Applies this one operation, refusing growth beyond
    /// [`MAX_OUTPUT_PIXELS`].
    pub fn apply(&self, image: Image) -> Result<Image, FilterError> {
        self.apply_cancellable(image, &Cancel::never())
    }

    /// [`apply`](Self::apply), giving up with [`FilterError::Cancelled`]
    /// once `cancel` is raised: polled before each output row of blur, box,
    /// median, sharpen, edges, sepia, resize and rotate, and after every
    /// operation (the others, table look-ups, grayscale, flip and crop, take
    /// at most about 0.2 s on 100 megapixels).
    pub fn apply_cancellable(
        &self,
        mut image: Image,
        cancel: &Cancel,
    ) -> Result<Image, FilterError> {
        let input = Shape {
            width: image.width(),
            height: image.height(),
            channels: channels_of(image.layout()),
        };
        let out = self.output(input, MAX_OUTPUT_PIXELS)?;
        match *self {
            Op::Blur(sigma) => gaussian_blur_cancellable(&mut image, sigma, cancel)?,
            Op::Box(r) => box_blur_cancellable(&mut image, r, cancel)?,
            Op::Median(r) => median_filter_cancellable(&mut image, r, cancel)?,
            Op::Sharpen { sigma, amount } => {
                sharpen_cancellable(&mut image, sigma, amount, cancel)?
            }
            Op::Edges => image = sobel_edges_cancellable(&image, cancel)?,
            Op::Grayscale => image = grayscale(&image),
            Op::Sepia => image = sepia_cancellable(&image, cancel)?,
            Op::Invert => invert(&mut image),
            Op::Brightness(d) => brightness(&mut image, d),
            Op::Contrast(f) => contrast(&mut image, f),
            Op::Resize { filter, .. } => {
                image = resize_cancellable(&image, out.width, out.height, filter, cancel)?;
            }
            Op::Rotate(r) => image = rotate_cancellable(&image, r, cancel)?,
            Op::Flip(axis) => flip(&mut image, axis),
            Op::Crop {
                width,
                height,
                x,
                y,
            } => image = crop(&image, width, height, x, y)?,
        }
        cancel.check()?;
        Ok(image)
    }
}

/// Target size of a resize where one side may be derived from the aspect ratio.
fn resized_dimensions(w: u32, h: u32, width: Option<u32>, height: Option<u32>) -> (u64, u64) {
    let derive = |given: u32, num: u32, den: u32| {
        ((given as f64 * num as f64 / den as f64).round() as u64).max(1)
    };
    match (width, height) {
        (Some(tw), Some(th)) => (tw as u64, th as u64),
        (Some(tw), None) => (tw as u64, derive(tw, h, w)),
        (None, Some(th)) => (derive(th, w, h), th as u64),
        (None, None) => (w as u64, h as u64),
    }
}

fn bad(op: &str, reason: impl Into<String>) -> ParseError {
    ParseError {
        op: op.to_string(),
        reason: reason.into(),
    }
}

fn number<T: FromStr>(op: &str, text: &str, what: &str) -> Result<T, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| bad(op, format!("{what} `{text}` is not a valid number")))
}

fn ranged_f32(op: &str, text: &str, what: &str, lo: f32, hi: f32) -> Result<f32, ParseError> {
    let v: f32 = number(op, text, what)?;
    if !(lo..=hi).contains(&v) {
        return Err(bad(op, format!("{what} must be between {lo} and {hi}")));
    }
    Ok(v)
}

fn radius(op: &str, text: &str, max: u32) -> Result<u32, ParseError> {
    let r: u32 = number(op, text, "radius")?;
    if r > max {
        return Err(bad(op, format!("radius must be at most {max}")));
    }
    Ok(r)
}

/// Parses `W`, returning an error for zero or absurd sizes.
fn side(op: &str, text: &str) -> Result<u32, ParseError> {
    let v: u32 = number(op, text, "size")?;
    if v == 0 || v > 65_535 {
        return Err(bad(op, "sizes must be between 1 and 65535"));
    }
    Ok(v)
}

fn parse_resize(op: &str, arg: &str) -> Result<Op, ParseError> {
    let (dims, filter) = match arg.split_once(':') {
        Some((d, f)) => (
            d,
            match f {
                "lanczos" | "lanczos3" => ResizeFilter::Lanczos3,
                "bilinear" => ResizeFilter::Bilinear,
                other => {
                    return Err(bad(
                        op,
                        format!("unknown filter `{other}` (lanczos or bilinear)"),
                    ));
                }
            },
        ),
        None => (arg, ResizeFilter::Lanczos3),
    };
    let (w, h) = dims
        .split_once(['x', 'X'])
        .ok_or_else(|| bad(op, "expected WxH, Wx or xH"))?;
    let width = if w.is_empty() {
        None
    } else {
        Some(side(op, w)?)
    };
    let height = if h.is_empty() {
        None
    } else {
        Some(side(op, h)?)
    };
    if width.is_none() && height.is_none() {
        return Err(bad(op, "give at least one of width and height"));
    }
    Ok(Op::Resize {
        width,
        height,
        filter,
    })
}

fn parse_crop(op: &str, arg: &str) -> Result<Op, ParseError> {
    let syntax = || bad(op, "expected WxH+X+Y");
    let (dims, rest) = arg.split_once('+').ok_or_else(syntax)?;
    let (x, y) = rest.split_once('+').ok_or_else(syntax)?;
    let (w, h) = dims.split_once(['x', 'X']).ok_or_else(syntax)?;
    Ok(Op::Crop {
        width: side(op, w)?,
        height: side(op, h)?,
        x: number(op, x, "x")?,
        y: number(op, y, "y")?,
    })
}

impl FromStr for Op {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let op = text.trim();
        let (name, arg) = match op.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (op, None),
        };
        let need = || arg.ok_or_else(|| bad(op, format!("`{name}` needs a value")));
        let none = |o: Op| match arg {
            Some(_) => Err(bad(op, format!("`{name}` takes no value"))),
            None => Ok(o),
        };
        match name {
            "blur" => Ok(Op::Blur(ranged_f32(op, need()?, "sigma", 0.0, MAX_SIGMA)?)),
            "box" => Ok(Op::Box(radius(op, need()?, MAX_BOX_RADIUS)?)),
            "median" => Ok(Op::Median(radius(op, need()?, MAX_MEDIAN_RADIUS)?)),
            "sharpen" => {
                let a = need()?;
                let (s, amt) = a.split_once(':').unwrap_or((a, "1"));
                Ok(Op::Sharpen {
                    sigma: ranged_f32(op, s, "sigma", 0.0, MAX_SIGMA)?,
                    amount: ranged_f32(op, amt, "amount", 0.0, 100.0)?,
                })
            }
            "edges" => none(Op::Edges),
            "grayscale" | "greyscale" | "gray" | "grey" => none(Op::Grayscale),
            "sepia" => none(Op::Sepia),
            "invert" => none(Op::Invert),
            "brightness" => {
                let d: i32 = number(op, need()?, "delta")?;
                if !(-255..=255).contains(&d) {
                    return Err(bad(op, "delta must be between -255 and 255"));
                }
                Ok(Op::Brightness(d))
            }
            "contrast" => Ok(Op::Contrast(ranged_f32(op, need()?, "factor", 0.0, 100.0)?)),
            "resize" => parse_resize(op, need()?),
            "rotate" => match need()? {
                "90" => Ok(Op::Rotate(Rotation::Quarter)),
                "180" => Ok(Op::Rotate(Rotation::Half)),
                "270" | "-90" => Ok(Op::Rotate(Rotation::ThreeQuarters)),
                _ => Err(bad(op, "angle must be 90, 180 or 270")),
            },
            "flip" => match need()? {
                "h" | "horizontal" => Ok(Op::Flip(Flip::Horizontal)),
                "v" | "vertical" => Ok(Op::Flip(Flip::Vertical)),
                _ => Err(bad(op, "axis must be h or v")),
            },
            "crop" => parse_crop(op, need()?),
            "" => Err(bad(op, "empty operation")),
            other => Err(bad(op, format!("unknown operation `{other}`"))),
        }
    }
}

impl FromStr for Pipeline {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let count = text.split(',').count();
        if count > MAX_OPS {
            return Err(bad(
                text.split(',').nth(MAX_OPS).unwrap_or_default(),
                format!("a pipeline holds at most {MAX_OPS} operations (got {count})"),
            ));
        }
        let ops = text
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Op>, _>>()?;
        Ok(Pipeline { ops })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Blur(s) => write!(f, "blur={s}"),
            Op::Box(r) => write!(f, "box={r}"),
            Op::Median(r) => write!(f, "median={r}"),
            Op::Sharpen { sigma, amount } => write!(f, "sharpen={sigma}:{amount}"),
            Op::Edges => f.write_str("edges"),
            Op::Grayscale => f.write_str("grayscale"),
            Op::Sepia => f.write_str("sepia"),
            Op::Invert => f.write_str("invert"),
            Op::Brightness(d) => write!(f, "brightness={d}"),
            Op::Contrast(c) => write!(f, "contrast={c}"),
            Op::Resize {
                width,
                height,
                filter,
            } => {
                let side = |v: &Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
                write!(f, "resize={}x{}", side(width), side(height))?;
                if *filter == ResizeFilter::Bilinear {
                    f.write_str(":bilinear")?;
                }
                Ok(())
            }
            Op::Rotate(r) => write!(
                f,
                "rotate={}",
                match r {
                    Rotation::Quarter => 90,
                    Rotation::Half => 180,
                    Rotation::ThreeQuarters => 270,
                }
            ),
            Op::Flip(Flip::Horizontal) => f.write_str("flip=h"),
            Op::Flip(Flip::Vertical) => f.write_str("flip=v"),
            Op::Crop {
                width,
                height,
                x,
                y,
            } => write!(f, "crop={width}x{height}+{x}+{y}"),
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, op) in self.ops.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{op}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_examples() {
        let p: Pipeline = "blur=5,resize=800x,grayscale".parse().unwrap();
        assert_eq!(
            p.ops(),
            &[
                Op::Blur(5.0),
                Op::Resize {
                    width: Some(800),
                    height: None,
                    filter: ResizeFilter::Lanczos3
                },
                Op::Grayscale
            ]
        );
        let all = "blur=1.5,box=2,median=7,sharpen=2:1.5,edges,grayscale,sepia,invert,brightness=-20,\
                   contrast=1.2,resize=10x20:bilinear,resize=x30,rotate=270,flip=v,crop=4x5+1+2";
        let p: Pipeline = all.parse().unwrap();
        assert_eq!(p.ops().len(), 15);
        // Display round-trips.
        assert_eq!(p.to_string().parse::<Pipeline>().unwrap(), p);
    }

    #[test]
    fn errors_name_the_op_and_list_valid_ones() {
        for bad in [
            "blurr=5",
            "blur",
            "blur=x",
            "blur=-1",
            "rotate=45",
            "resize=x",
            "crop=3x3",
            "edges=1",
            "",
            "a,,b",
        ] {
            let err = bad.parse::<Pipeline>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("valid operations: blur=SIGMA"), "{msg}");
        }
        let err = "blur=5,sharpen=1:2,bogus".parse::<Pipeline>().unwrap_err();
        assert_eq!(err.op, "bogus");
    }

    #[test]
    fn more_than_max_ops_is_refused_naming_the_limit() {
        let ok = vec!["invert"; MAX_OPS].join(",");
        assert_eq!(ok.parse::<Pipeline>().unwrap().ops().len(), MAX_OPS);
        let over = vec!["median=50"; MAX_OPS + 1].join(",");
        let err = over.parse::<Pipeline>().unwrap_err();
        assert!(err.reason.contains("at most 32 operations"), "{err}");
        assert!(err.to_string().contains("32"), "{err}");
        // Thousands of operations are refused just as fast.
        let huge = vec!["median=50"; 5000].join(",");
        assert!(huge.parse::<Pipeline>().is_err());
    }

    #[test]
    fn plan_follows_sizes_and_channels_through_a_chain() {
        let p: Pipeline = "resize=400x,rotate=90,crop=100x50+10+20,grayscale"
            .parse()
            .unwrap();
        let plan = p.plan(800, 600, 3, MAX_OUTPUT_PIXELS).unwrap();
        // 800x600 -> 400x300 -> 300x400 -> 100x50, RGB -> grey.
        assert_eq!((plan.width, plan.height, plan.channels), (100, 50, 1));
        assert!(plan.cost_ns > 0);
        // The largest pair: the resize's input, intermediate and output.
        assert_eq!(
            plan.peak_bytes,
            800 * 600 * 3 + 400 * 600 * 3 + 400 * 300 * 3
        );
        let img = Image::filled(800, 600, PixelLayout::Rgb, 9);
        let out = p.apply(img).unwrap();
        assert_eq!((out.width(), out.height(), out.channels()), (100, 50, 1));

        let p: Pipeline = "sepia,edges,rotate=270".parse().unwrap();
        let plan = p.plan(7, 5, 2, 100).unwrap();
        assert_eq!((plan.width, plan.height, plan.channels), (5, 7, 1));
        let p: Pipeline = "grayscale,sepia".parse().unwrap();
        assert_eq!(p.plan(7, 5, 4, 100).unwrap().channels, 4);
        assert_eq!(p.plan(7, 5, 3, 100).unwrap().channels, 3);
    }

    #[test]
    fn plan_refuses_an_oversize_op_in_the_middle_and_a_bad_crop() {
        let p: Pipeline = "blur=1,resize=4000x4000,rotate=90,resize=10x10"
            .parse()
            .unwrap();
        let err = p.plan(1, 1, 3, 1_000_000).unwrap_err();
        assert_eq!(
            err,
            FilterError::TooLarge {
                op: "resize=4000x4000".into(),
                width: 4000,
                height: 4000,
                limit: 1_000_000
            }
        );
        assert!(err.to_string().contains("1000000"), "{err}");
        assert!(p.plan(1, 1, 3, 16_000_000).is_ok());
        // Derived sides count too.
        let p: Pipeline = "crop=10x1+0+0,resize=x60000".parse().unwrap();
        assert!(matches!(
            p.plan(100, 100, 1, MAX_OUTPUT_PIXELS),
            Err(FilterError::TooLarge { .. })
        ));
        // 50x100 turns into 100x50: a 60-row crop no longer fits.
        let p: Pipeline = "rotate=90,crop=50x60+0+0".parse().unwrap();
        assert!(matches!(
            p.plan(50, 100, 3, 1000),
            Err(FilterError::Crop(_))
        ));
        assert!(p.plan(100, 50, 3, 1000).is_ok());
        // apply uses the same rule with the default limit.
        let p: Pipeline = "resize=20000x20000".parse().unwrap();
        let err = p
            .apply(Image::filled(1, 1, PixelLayout::Gray, 0))
            .unwrap_err();
        assert!(matches!(
            err,
            FilterError::TooLarge {
                limit: MAX_OUTPUT_PIXELS,
                ..
            }
        ));
    }

    #[test]
    fn cost_grows_with_median_radius_and_image_size() {
        let cost = |spec: &str, w: u32, h: u32| {
            let p: Pipeline = spec.parse().unwrap();
            p.plan(w, h, 3, MAX_OUTPUT_PIXELS).unwrap().cost_ns
        };
        let mut last = 0;
        for r in [1, 2, 5, 10, 25, 50] {
            let c = cost(&format!("median={r}"), 1000, 1000);
            assert!(c > last, "median={r}: {c} <= {last}");
            last = c;
        }
        assert!(cost("median=3", 2000, 1000) > cost("median=3", 1000, 1000));
        assert!(cost("blur=10", 1000, 1000) > cost("blur=1", 1000, 1000));
        assert!(cost("box=100", 1000, 1000) > cost("box=1", 1000, 1000));
        assert!(cost("resize=4000x4000,median=50", 1, 1) > 1_000_000_000);
        // Twice the same op costs twice as much.
        let one = cost("median=5", 640, 480);
        assert!(cost("median=5,median=5", 640, 480) >= 2 * one - 1);
    }

    #[test]
    fn a_raised_flag_stops_before_any_work() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let cancel = Cancel::new(Arc::new(AtomicBool::new(true)));
        let p: Pipeline = "median=5,blur=3".parse().unwrap();
        let img = Image::filled(300, 200, PixelLayout::Rgb, 7);
        assert_eq!(
            p.apply_cancellable(img.clone(), &cancel),
            Err(FilterError::Cancelled)
        );
        let ok = p.apply_cancellable(img.clone(), &Cancel::never()).unwrap();
        assert_eq!(ok, p.apply(img).unwrap());
    }

    #[test]
    fn aspect_ratio_kept_when_one_side_missing() {
        assert_eq!(resized_dimensions(1920, 1080, Some(800), None), (800, 450));
        assert_eq!(resized_dimensions(1920, 1080, None, Some(540)), (960, 540));
        assert_eq!(resized_dimensions(1000, 1, Some(10), None), (10, 1));
    }
}
