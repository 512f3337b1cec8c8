//! The aligned 150x150 face chip: `get_face_chip_details(shape, 150, 0.25)`
//! and `extract_image_chip` (docs/dlib-face-embedding.md, section 5).
//!
//! Invariant: the chip is a pure function of the image pixels and the five
//! integer landmarks, computed with the spec's exact integer pyramid and
//! f64 bilinear sampling truncated to u8, so that it is bit-identical to
//! dlib's except where a sample lands within ~1e-12 of an integer.

use ocellus_imaging::{Image, PixelLayout};

use crate::geometry::{Point, fit_similarity};

/// Side of the chip in pixels (spec 5: `get_face_chip_details(shape, 150,
/// 0.25)`; the network input is 150x150).
pub const CHIP_SIZE: usize = 150;

/// Padding around the template, as a fraction of its size (spec 5).
pub const CHIP_PADDING: f64 = 0.25;

/// Bytes of one RGB chip.
pub const CHIP_BYTES: usize = CHIP_SIZE * CHIP_SIZE * 3;

/// The 5-point template in unit coordinates (spec 5.1), in dlib's landmark
/// order.
const TEMPLATE: [[f64; 2]; 5] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];

/// The pyramid is applied while the rectangle's area stays above this many
/// pixels: the chip's own area, 150 x 150 (spec 5.2, step 1).
const PYRAMID_MIN_AREA: f64 = (CHIP_SIZE * CHIP_SIZE) as f64;

/// Where the chip lies in the image: dlib's `chip_details`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipDetails {
    /// The square the chip covers, before rotation: left, top, right,
    /// bottom (inclusive corners, as doubles).
    pub rect: [f64; 4],
    /// Rotation about the square's centre, radians.
    pub angle: f64,
}

/// A 150x150 RGB face chip, rows packed, channels interleaved.
#[derive(Clone, PartialEq, Eq)]
pub struct Chip {
    data: Box<[u8]>,
}

impl std::fmt::Debug for Chip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chip").finish_non_exhaustive()
    }
}

impl Chip {
    /// Wraps 150 x 150 x 3 RGB bytes; `None` for any other length.
    pub fn from_rgb(data: Vec<u8>) -> Option<Self> {
        (data.len() == CHIP_BYTES).then(|| Chip {
            data: data.into_boxed_slice(),
        })
    }

    /// A chip from a 150x150 [`Image`] (grey is replicated, alpha dropped);
    /// `None` for any other size.
    pub fn from_image(image: &Image) -> Option<Self> {
        if image.width() as usize != CHIP_SIZE || image.height() as usize != CHIP_SIZE {
            return None;
        }
        let mut data = Vec::with_capacity(CHIP_BYTES);
        for y in 0..image.height() {
            push_rgb_row(image, y, 0, image.width(), &mut data);
        }
        Chip::from_rgb(data)
    }

    /// The RGB bytes, row-major.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The chip as an RGB [`Image`].
    pub fn to_image(&self) -> Image {
        // 150 x 150 x 3 bytes always make a valid image.
        Image::from_vec(
            CHIP_SIZE as u32,
            CHIP_SIZE as u32,
            PixelLayout::Rgb,
            self.data.to_vec(),
        )
        .unwrap_or_else(|_| Image::filled(CHIP_SIZE as u32, CHIP_SIZE as u32, PixelLayout::Rgb, 0))
    }
}

/// Appends columns `x0..x1` of row `y` as RGB.
fn push_rgb_row(image: &Image, y: u32, x0: u32, x1: u32, out: &mut Vec<u8>) {
    let c = image.channels();
    let row = &image.row(y)[x0 as usize * c..x1 as usize * c];
    match image.layout() {
        PixelLayout::Rgb => out.extend_from_slice(row),
        PixelLayout::Rgba => row
            .chunks_exact(4)
            .for_each(|p| out.extend_from_slice(&p[..3])),
        PixelLayout::Gray | PixelLayout::GrayAlpha => row
            .chunks_exact(c)
            .for_each(|p| out.extend_from_slice(&[p[0]; 3])),
    }
}

/// `get_face_chip_details(landmarks, 150, 0.25)` (spec 5.1).
pub fn chip_details(landmarks: &[Point; 5]) -> ChipDetails {
    let size = CHIP_SIZE as f64;
    let from: Vec<[f64; 2]> = TEMPLATE
        .iter()
        .map(|t| {
            [
                (CHIP_PADDING + t[0]) / (2.0 * CHIP_PADDING + 1.0) * size,
                (CHIP_PADDING + t[1]) / (2.0 * CHIP_PADDING + 1.0) * size,
            ]
        })
        .collect();
    let to: Vec<[f64; 2]> = landmarks.iter().map(|p| [p.x as f64, p.y as f64]).collect();
    let m = fit_similarity(&from, &to);
    let angle = m.b.atan2(m.a);
    let scale = m.a.hypot(m.b);
    let (cx, cy) = m.apply(size / 2.0, size / 2.0);
    let e = (size * scale - 1.0) / 2.0;
    ChipDetails {
        rect: [cx - e, cy - e, cx + e, cy + e],
        angle,
    }
}

/// One pyramid level's coordinates of a rectangle (spec 5.2, step 1; the
/// x and y offsets really differ).
fn down(r: [f64; 4]) -> [f64; 4] {
    [
        r[0] / 2.0 - 1.25,
        r[1] / 2.0 - 0.75,
        r[2] / 2.0 - 1.25,
        r[3] / 2.0 - 0.75,
    ]
}

fn area(r: [f64; 4]) -> f64 {
    (r[2] - r[0] + 1.0) * (r[3] - r[1] + 1.0)
}

fn rotate(cx: f64, cy: f64, x: f64, y: f64, sin: f64, cos: f64) -> (f64, f64) {
    let (dx, dy) = (x - cx, y - cy);
    (cos * dx - sin * dy + cx, sin * dx + cos * dy + cy)
}

/// An RGB plane set: `h` rows of `w` pixels.
struct Rgb {
    w: usize,
    h: usize,
    data: Vec<u8>,
}

/// dlib's `pyramid_down<2>` on exact integers (spec 5.2, step 3): a
/// separable (1, 4, 6, 4, 1) filter, every second pixel, floor of the sum
/// over 256.
fn pyr_down(src: &Rgb) -> Rgb {
    let oh = src.h.saturating_sub(3) / 2;
    let ow = src.w.saturating_sub(3) / 2;
    if oh == 0 || ow == 0 {
        return Rgb {
            w: 0,
            h: 0,
            data: Vec::new(),
        };
    }
    // Horizontal pass on every source row (interleaved RGB: neighbours are
    // 3 apart), then vertical; integer sums are exact, so the order of the
    // passes does not matter.
    let row_len = ow * 3;
    let mut tmp = vec![0u32; src.h * row_len];
    for (y, out) in tmp.chunks_exact_mut(row_len).enumerate() {
        let row = &src.data[y * src.w * 3..(y + 1) * src.w * 3];
        for (x, o) in out.chunks_exact_mut(3).enumerate() {
            let r = &row[6 * x..6 * x + 15];
            for ch in 0..3 {
                let t = |j: usize| u32::from(r[3 * j + ch]);
                o[ch] = t(0) + 4 * t(1) + 6 * t(2) + 4 * t(3) + t(4);
            }
        }
    }
    let mut data = vec![0u8; oh * row_len];
    for (y, out) in data.chunks_exact_mut(row_len).enumerate() {
        let r = |k: usize| &tmp[(2 * y + k) * row_len..(2 * y + k + 1) * row_len];
        let (r0, r1, r2, r3, r4) = (r(0), r(1), r(2), r(3), r(4));
        for (i, o) in out.iter_mut().enumerate() {
            let v = r0[i] + 4 * r1[i] + 6 * r2[i] + 4 * r3[i] + r4[i];
            *o = (v / 256) as u8;
        }
    }
    Rgb { w: ow, h: oh, data }
}

/// The chip for `landmarks` (spec 5.2): `dlib.get_face_chip(img, shape,
/// 150, 0.25)`. Grey images are replicated to RGB; alpha is ignored.
/// Pixels whose sample falls outside the image are black.
pub fn extract_chip(image: &Image, landmarks: &[Point; 5]) -> Chip {
    let details = chip_details(landmarks);
    extract_with_details(image, &details)
}

/// The chip for given [`ChipDetails`].
pub fn extract_with_details(image: &Image, details: &ChipDetails) -> Chip {
    let mut out = vec![0u8; CHIP_BYTES];
    let rect = details.rect;
    let (sin, cos) = details.angle.sin_cos();

    // 1. Pyramid depth.
    let mut depth = 0u32;
    let mut r = rect;
    while depth < 32 {
        let n = down(r);
        if area(n) > PYRAMID_MIN_AREA {
            r = n;
            depth += 1;
        } else {
            break;
        }
    }

    // 2. Crop box: the rotated square's bounding box, grown by the
    // pyramid's reach, clipped to the image, sides rounded half away from 0.
    let (cx, cy) = ((rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0);
    let corners = [
        (rect[0], rect[1]),
        (rect[2], rect[1]),
        (rect[0], rect[3]),
        (rect[2], rect[3]),
    ]
    .map(|(x, y)| rotate(cx, cy, x, y, sin, cos));
    let g = f64::from((1u32 << (depth + 2).min(31)) - 2);
    let min_x = corners.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) - g;
    let max_x = corners
        .iter()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        + g;
    let min_y = corners.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) - g;
    let max_y = corners
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max)
        + g;
    let bl = min_x.max(0.0).round();
    let bt = min_y.max(0.0).round();
    let br = max_x.min(f64::from(image.width()) - 1.0).round();
    let bb = max_y.min(f64::from(image.height()) - 1.0).round();
    if !(bl <= br && bt <= bb) {
        return Chip {
            data: out.into_boxed_slice(),
        };
    }

    // 3. Levels.
    let (x0, x1) = (bl as u32, br as u32 + 1);
    let mut level = Rgb {
        w: (x1 - x0) as usize,
        h: (bb - bt) as usize + 1,
        data: Vec::new(),
    };
    level.data.reserve(level.w * level.h * 3);
    for y in bt as u32..=bb as u32 {
        push_rgb_row(image, y, x0, x1, &mut level.data);
    }
    for _ in 0..depth {
        level = pyr_down(&level);
    }

    // 4. Map from chip pixels to the level.
    let mut r = [rect[0] - bl, rect[1] - bt, rect[2] - bl, rect[3] - bt];
    for _ in 0..depth {
        r = down(r);
    }
    let (lcx, lcy) = ((r[0] + r[2]) / 2.0, (r[1] + r[3]) / 2.0);
    let tl = rotate(lcx, lcy, r[0], r[1], sin, cos);
    let tr = rotate(lcx, lcy, r[2], r[1], sin, cos);
    let bl_ = rotate(lcx, lcy, r[0], r[3], sin, cos);
    let last = (CHIP_SIZE - 1) as f64;
    let (ux, uy) = ((tr.0 - tl.0) / last, (tr.1 - tl.1) / last);
    let (vx, vy) = ((bl_.0 - tl.0) / last, (bl_.1 - tl.1) / last);

    // 5. Bilinear sampling, truncated.
    let (lw, lh) = (level.w as i64, level.h as i64);
    for row in 0..CHIP_SIZE {
        for col in 0..CHIP_SIZE {
            let (c, rr) = (col as f64, row as f64);
            let x = ux * c + vx * rr + tl.0;
            let y = uy * c + vy * rr + tl.1;
            let (fx0, fy0) = (x.floor(), y.floor());
            let (xi, yi) = (fx0 as i64, fy0 as i64);
            if xi < 0 || yi < 0 || xi + 1 >= lw || yi + 1 >= lh {
                continue;
            }
            let (fx, fy) = (x - fx0, y - fy0);
            let i00 = (yi as usize * level.w + xi as usize) * 3;
            let i10 = i00 + level.w * 3;
            let o = (row * CHIP_SIZE + col) * 3;
            for ch in 0..3 {
                let p = |i: usize| f64::from(level.data[i + ch]);
                let top = (1.0 - fx) * p(i00) + fx * p(i00 + 3);
                let bottom = (1.0 - fx) * p(i10) + fx * p(i10 + 3);
                let v = (1.0 - fy) * top + fy * bottom;
                out[o + ch] = v as u8;
            }
        }
    }
    Chip {
        data: out.into_boxed_slice(),
    }
}
