//! Drawing detection boxes onto an image (for annotated copies).

use ocellus_imaging::Image;

use crate::Rect;

/// Draws the outline of `rect` with the given colour and line thickness
/// (pixels, growing inwards), clipped to the image. The colour is given as
/// RGB; grey images get its luma, alpha channels are set opaque.
pub fn draw_rect(image: &mut Image, rect: &Rect, rgb: [u8; 3], thickness: u32) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let c = image.channels();
    let layout = image.layout();
    let luma = ocellus_imaging::filter::grayscale::luma(rgb[0], rgb[1], rgb[2]);
    let pixel: Vec<u8> = match (layout.color_channels(), layout.has_alpha()) {
        (1, false) => vec![luma],
        (1, true) => vec![luma, 255],
        (_, false) => rgb.to_vec(),
        (_, true) => vec![rgb[0], rgb[1], rgb[2], 255],
    };
    let t = thickness.max(1) as i64;
    let (x0, y0) = (rect.x as i64, rect.y as i64);
    let (x1, y1) = (x0 + rect.width as i64, y0 + rect.height as i64);
    let data = image.as_bytes_mut();
    let mut fill = |xa: i64, ya: i64, xb: i64, yb: i64| {
        for y in ya.max(0)..yb.min(h) {
            for x in xa.max(0)..xb.min(w) {
                let i = (y * w + x) as usize * c;
                data[i..i + c].copy_from_slice(&pixel);
            }
        }
    };
    fill(x0, y0, x1, y0 + t);
    fill(x0, y1 - t, x1, y1);
    fill(x0, y0, x0 + t, y1);
    fill(x1 - t, y0, x1, y1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocellus_imaging::PixelLayout;

    #[test]
    fn outline_only_and_clipped() {
        let mut img = Image::filled(6, 6, PixelLayout::Gray, 0);
        draw_rect(
            &mut img,
            &Rect {
                x: 1,
                y: 1,
                width: 4,
                height: 4,
            },
            [255, 255, 255],
            1,
        );
        let on = |x: u32, y: u32| img.pixel(x, y)[0] == 255;
        assert!(on(1, 1) && on(4, 4) && on(1, 4) && on(4, 1) && on(2, 1));
        assert!(!on(2, 2) && !on(0, 0) && !on(5, 5));
        // Partly outside: no panic.
        draw_rect(
            &mut img,
            &Rect {
                x: -3,
                y: 4,
                width: 20,
                height: 20,
            },
            [255, 0, 0],
            2,
        );
    }
}
