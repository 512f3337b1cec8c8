//! Filter pipelines: a comma-separated list of operations such as
//! `blur=5,resize=800x,grayscale`, parsed once and applied left to right.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::Image;
use crate::filter::box_blur::box_blur;
use crate::filter::edges::sobel_edges;
use crate::filter::gaussian::gaussian_blur;
use crate::filter::geometry::{CropOutOfBounds, Flip, Rotation, crop, flip, rotate};
use crate::filter::grayscale::grayscale;
use crate::filter::median::median_filter;
use crate::filter::resize::{ResizeFilter, resize};
use crate::filter::sepia::sepia;
use crate::filter::sharpen::sharpen;
use crate::filter::tone::{brightness, contrast, invert};

/// Largest image a pipeline may produce (resize is otherwise a memory bomb).
pub const MAX_OUTPUT_PIXELS: u64 = 100_000_000;

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
    /// A resize to more pixels than [`MAX_OUTPUT_PIXELS`].
    #[error("resize to {width}x{height} exceeds the limit of {MAX_OUTPUT_PIXELS} pixels")]
    TooLarge {
        /// Requested width.
        width: u64,
        /// Requested height.
        height: u64,
    },
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

    /// Applies every operation in order.
    pub fn apply(&self, mut image: Image) -> Result<Image, FilterError> {
        for op in &self.ops {
            image = op.apply(image)?;
        }
        Ok(image)
    }
}

impl Op {
    /// Applies this one operation.
    pub fn apply(&self, mut image: Image) -> Result<Image, FilterError> {
        match *self {
            Op::Blur(sigma) => gaussian_blur(&mut image, sigma),
            Op::Box(r) => box_blur(&mut image, r),
            Op::Median(r) => median_filter(&mut image, r),
            Op::Sharpen { sigma, amount } => sharpen(&mut image, sigma, amount),
            Op::Edges => image = sobel_edges(&image),
            Op::Grayscale => image = grayscale(&image),
            Op::Sepia => image = sepia(&image),
            Op::Invert => invert(&mut image),
            Op::Brightness(d) => brightness(&mut image, d),
            Op::Contrast(f) => contrast(&mut image, f),
            Op::Resize {
                width,
                height,
                filter,
            } => {
                let (w, h) = resized_dimensions(image.width(), image.height(), width, height);
                if w * h > MAX_OUTPUT_PIXELS {
                    return Err(FilterError::TooLarge {
                        width: w,
                        height: h,
                    });
                }
                image = resize(&image, w as u32, h as u32, filter);
            }
            Op::Rotate(r) => image = rotate(&image, r),
            Op::Flip(axis) => flip(&mut image, axis),
            Op::Crop {
                width,
                height,
                x,
                y,
            } => image = crop(&image, width, height, x, y)?,
        }
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
    fn aspect_ratio_kept_when_one_side_missing() {
        assert_eq!(resized_dimensions(1920, 1080, Some(800), None), (800, 450));
        assert_eq!(resized_dimensions(1920, 1080, None, Some(540)), (960, 540));
        assert_eq!(resized_dimensions(1000, 1, Some(10), None), (10, 1));
    }
}
