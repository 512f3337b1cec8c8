//! Sepia toning.

use crate::{Cancel, Cancelled, Image, PixelLayout};

/// Single-thread ns per output pixel of [`sepia`]: 16-17 measured at
/// 640x480 and 1920x1080 RGB (one-thread CPU time, `nice -n 10 cargo run --release -p ocellus-imaging --example cost_table`,
/// 2026-12-02; docs/limits-cost.md).
pub const COST_NS_PER_PIXEL: f64 = 16.0;

/// The classic sepia matrix: each output channel is a weighted sum of the
/// input R, G, B, clamped. Grey input becomes RGB (alpha kept).
pub fn sepia(image: &Image) -> Image {
    match sepia_cancellable(image, &Cancel::never()) {
        Ok(v) => v,
        Err(Cancelled) => unreachable!("Cancel::never() is never raised"),
    }
}

/// [`sepia`], polling `cancel` before each row; `Err(Cancelled)` once it
/// is raised.
pub fn sepia_cancellable(image: &Image, cancel: &Cancel) -> Result<Image, Cancelled> {
    let layout = if image.layout().has_alpha() {
        PixelLayout::Rgba
    } else {
        PixelLayout::Rgb
    };
    let c = image.channels();
    let grey = image.layout().color_channels() == 1;
    let mut data =
        Vec::with_capacity(image.width() as usize * image.height() as usize * layout.channels());
    for row in image.as_bytes().chunks_exact(image.row_len()) {
        cancel.check()?;
        for p in row.chunks_exact(c) {
            let (r, g, b) = if grey {
                (p[0] as f32, p[0] as f32, p[0] as f32)
            } else {
                (p[0] as f32, p[1] as f32, p[2] as f32)
            };
            let px = |v: f32| v.round().min(255.0) as u8;
            data.push(px(0.393 * r + 0.769 * g + 0.189 * b));
            data.push(px(0.349 * r + 0.686 * g + 0.168 * b));
            data.push(px(0.272 * r + 0.534 * g + 0.131 * b));
            if layout.has_alpha() {
                data.push(p[c - 1]);
            }
        }
    }
    cancel.check()?;
    Ok(Image::from_vec(image.width(), image.height(), layout, data).expect("same pixel count"))
}
