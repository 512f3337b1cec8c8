//! Header-only inspection: what a decode will cost, known before it starts.
//!
//! This module owns [`ImageInfo`], [`inspect`] and [`check`]. Its invariant:
//! `inspect` reads headers and marker/chunk structure only (it allocates
//! nothing proportional to the declared image), and
//! [`ImageInfo::decode_bytes`] is never below the peak memory that
//! [`crate::decode`] allocates for that file, so that checking it against
//! [`DecodeLimits::max_decode_bytes`] bounds the decode's memory.
//!
//! Every per-format formula below was measured as the growth of the
//! process's peak resident set (`VmHWM` in `/proc/self/status`) across one
//! decode, with `cargo run --release -p ocellus-codec --example decode_peak`
//! (see `docs/limits-decode.md` for the table).

use std::io::Cursor;

use image::{ImageDecoder, ImageReader};

use crate::decode::corrupt;
use crate::{DecodeError, DecodeLimits, ImageFormat};

/// What the header of an encoded image declares, and what decoding it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// The detected format.
    pub format: ImageFormat,
    /// Declared width in pixels.
    pub width: u32,
    /// Declared height in pixels.
    pub height: u32,
    /// Channels of the pixels the decoder produces (JPEG: 1 for greyscale,
    /// otherwise 3; PNG: after palette and transparency expansion).
    pub channels: u8,
    /// Bytes per sample the decoder produces (2 for 16-bit PNG, TIFF, PNM).
    pub bytes_per_sample: u8,
    /// A progressive JPEG (or interlaced PNG).
    pub progressive: bool,
    /// JPEG: the number of start-of-scan markers, counted by walking the
    /// marker segments; every other format: 1.
    pub scans: u32,
    /// Peak bytes the decode will allocate: the decoder's output, its own
    /// working memory and our conversion to 8 bits.
    pub decode_bytes: u64,
}

impl ImageInfo {
    /// Width x height.
    pub fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// Bytes of the decoder's output (pixels x channels x bytes per sample),
    /// saturating: a header may declare 2^32 x 2^32 pixels.
    pub fn output_bytes(&self) -> u64 {
        self.pixels()
            .saturating_mul(self.channels as u64 * self.bytes_per_sample as u64)
    }
}

/// Fixed allowance for every decoder's small buffers (rows, Huffman and
/// zlib tables, the turbojpeg handle): the measured growth of the peak RSS
/// for 16x16 images of every format was at most 0.4 MiB.
const FIXED_OVERHEAD: u64 = 1 << 20;

/// Scans allowed for any JPEG, whatever its size: libjpeg-turbo's and
/// mozjpeg's progressive scripts use 10 scans for colour (6 for grey) and
/// the most seen in the shared photos is 10.
pub const MIN_SCAN_LIMIT: u32 = 32;

/// Scans allowed for small JPEGs: the previous fixed limit.
pub const MAX_SCAN_LIMIT: u32 = 500;

/// Scan x pixel products allowed. Measured with `decode_peak turbo` on flat
/// 4:2:0 progressive JPEGs whose DC scan is repeated (a scan attack costs
/// little to send): libjpeg-turbo spends 0.6 ms per scan-megapixel at
/// 4000x4000 (400 scans: 3.9 s) and 1.0 ms at 8000x8000 (200 scans:
/// 12.9 s). 2e9 (2000 scan-megapixels) bounds the scan work of a file
/// between 4 and 100 MP to about 2 s; below 4 MP the 500-scan cap applies,
/// and at 100 MP the 32-scan floor allows 3.2 s. A 12 MP photo may have
/// 166 scans.
pub const SCAN_PIXEL_BUDGET: u64 = 2_000_000_000;

/// The number of scans accepted for an image of `pixels` pixels:
/// `max(32, min(500, SCAN_PIXEL_BUDGET / pixels))`.
pub fn scan_limit(pixels: u64) -> u32 {
    let scaled = SCAN_PIXEL_BUDGET / pixels.max(1);
    (scaled.min(MAX_SCAN_LIMIT as u64) as u32).max(MIN_SCAN_LIMIT)
}

/// Reads the header of an encoded image: its format, size, sample layout
/// and the memory a decode will need. Cheap: nothing proportional to the
/// declared image is allocated, and JPEG marker walking is one pass over
/// the bytes.
pub fn inspect(bytes: &[u8]) -> Result<ImageInfo, DecodeError> {
    let format = ImageFormat::sniff(bytes).ok_or(DecodeError::UnknownFormat)?;
    match format {
        ImageFormat::Jpeg => inspect_jpeg(bytes),
        ImageFormat::Png => inspect_png(bytes),
        ImageFormat::WebP => inspect_webp(bytes),
        _ => inspect_other(bytes, format),
    }
}

/// Checks what [`inspect`] found against `limits`: size, dimensions, decode
/// memory and (JPEG) the number of scans, in that order.
pub fn check(info: &ImageInfo, limits: &DecodeLimits) -> Result<(), DecodeError> {
    let (width, height) = (info.width, info.height);
    if width == 0 || height == 0 {
        return Err(DecodeError::Empty { width, height });
    }
    if width > limits.max_dimension || height > limits.max_dimension {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_dimension: limits.max_dimension,
        });
    }
    if info.pixels() > limits.max_pixels {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    if info.decode_bytes > limits.max_decode_bytes {
        return Err(DecodeError::TooCostly {
            needed: info.decode_bytes,
            limit: limits.max_decode_bytes,
        });
    }
    let limit = scan_limit(info.pixels());
    if info.scans > limit {
        return Err(DecodeError::TooManyScans {
            scans: info.scans,
            limit,
        });
    }
    Ok(())
}

/// JPEG. The turbojpeg decode allocates its output (1 or 3 bytes per
/// pixel) and, for a progressive file only, the whole-image coefficient
/// buffer: 64 coefficients x 2 bytes per 8x8 block of every component at
/// its own sampling, with the block counts rounded up to the component's
/// sampling factors (libjpeg's `jround_up` in `jdcoefct.c`). Measured
/// (peak RSS growth / estimate): 4000x3000 baseline 36.5 / 37.0 MB,
/// progressive 4:2:0 72.5 / 73.1 MB, 4000x4000 progressive 96.4 / 97.0 MB.
/// A quarter or half turn from EXIF orientation adds one more output
/// buffer. The fallback decoder (the `image` crate's) allocates no more.
fn inspect_jpeg(bytes: &[u8]) -> Result<ImageInfo, DecodeError> {
    let header = crate::jpeg::walk(bytes).map_err(|m| corrupt(ImageFormat::Jpeg, m))?;
    let channels: u8 = if header.components.len() == 1 { 1 } else { 3 };
    let (w, h) = (header.width as u64, header.height as u64);
    let output = w * h * channels as u64;
    let mut working = 0;
    if header.progressive {
        let hmax = header
            .components
            .iter()
            .map(|c| c.0)
            .max()
            .unwrap_or(1)
            .max(1) as u64;
        let vmax = header
            .components
            .iter()
            .map(|c| c.1)
            .max()
            .unwrap_or(1)
            .max(1) as u64;
        for &(hs, vs) in &header.components {
            let (hs, vs) = (hs.max(1) as u64, vs.max(1) as u64);
            let bw = (w * hs).div_ceil(8 * hmax).next_multiple_of(hs);
            let bh = (h * vs).div_ceil(8 * vmax).next_multiple_of(vs);
            working += bw * bh * 128;
        }
    }
    let turned = matches!(crate::jpeg::exif_orientation(bytes), Some(3 | 5..=8));
    let decode_bytes = output + working + if turned { output } else { 0 } + FIXED_OVERHEAD;
    Ok(ImageInfo {
        format: ImageFormat::Jpeg,
        width: header.width,
        height: header.height,
        channels,
        bytes_per_sample: 1,
        progressive: header.progressive,
        scans: header.scans,
        decode_bytes,
    })
}

/// PNG. The `png` crate decodes rows straight into the output buffer
/// (after palette/transparency expansion, 16-bit kept as 16-bit); a 16-bit
/// image then needs our 8-bit copy beside it, and an interlaced one a
/// second full buffer while the passes are merged. Measured (peak RSS
/// growth / estimate): 5000x5000 RGB8 76.0 / 76.0 MB, 5000x5000 RGBA16
/// 301.0 / 301.0 MB.
fn inspect_png(bytes: &[u8]) -> Result<ImageInfo, DecodeError> {
    let bad = |m: &str| corrupt(ImageFormat::Png, m);
    if bytes.get(12..16) != Some(b"IHDR") {
        return Err(bad("the first chunk is not IHDR"));
    }
    let ihdr = bytes
        .get(16..29)
        .ok_or_else(|| bad("truncated IHDR chunk"))?;
    let width = u32::from_be_bytes([ihdr[0], ihdr[1], ihdr[2], ihdr[3]]);
    let height = u32::from_be_bytes([ihdr[4], ihdr[5], ihdr[6], ihdr[7]]);
    let (depth, color, interlace) = (ihdr[8], ihdr[9], ihdr[12]);
    let trns = png_has_trns(bytes);
    let channels: u8 = match color {
        0 => 1 + trns as u8,
        2 => 3 + trns as u8,
        3 => 3 + trns as u8,
        4 => 2,
        6 => 4,
        _ => return Err(bad("invalid colour type")),
    };
    let bytes_per_sample: u8 = if depth == 16 { 2 } else { 1 };
    let mut info = ImageInfo {
        format: ImageFormat::Png,
        width,
        height,
        channels,
        bytes_per_sample,
        progressive: interlace == 1,
        scans: 1,
        decode_bytes: 0,
    };
    let output = info.output_bytes();
    let eight_bit = if bytes_per_sample == 2 { output / 2 } else { 0 };
    let interlaced = if info.progressive { output } else { 0 };
    info.decode_bytes = output
        .saturating_add(eight_bit.max(interlaced))
        .saturating_add(FIXED_OVERHEAD);
    Ok(info)
}

/// Whether a `tRNS` chunk comes before the first `IDAT` (the decoder then
/// adds an alpha channel). Stops quietly at damaged chunk structure.
fn png_has_trns(bytes: &[u8]) -> bool {
    let mut i = 8usize;
    while let Some(head) = bytes.get(i..i + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..8] {
            b"tRNS" => return true,
            b"IDAT" | b"IEND" => return false,
            _ => {}
        }
        i = match i.checked_add(12).and_then(|j| j.checked_add(len)) {
            Some(j) => j,
            None => return false,
        };
    }
    false
}

/// WebP, decoded by `image-webp`. Lossless without alpha decodes to an
/// RGBA buffer and copies it to RGB (4 + 3 bytes per pixel), with alpha
/// straight into RGBA (4). Lossy keeps Y, U and V planes padded to 16x16
/// macroblocks (1.5 bytes per pixel) and a copy of the compressed data
/// beside the RGB output; with an alpha plane it also builds an RGB frame
/// and decodes the alpha through a 4-byte buffer (4 + 3 + 1.5 + 4 bytes per
/// pixel). Animated files composite on an RGBA canvas from RGBA frames:
/// counted as three canvases. Measured (peak RSS growth / estimate),
/// 5000x5000: lossless RGB 175.4 / 176.0 MB, lossless RGBA 100.5 /
/// 101.0 MB, lossy RGB (17 MB file) 115.8 / 130.9 MB, lossy RGBA 265.9 /
/// 330.9 MB.
fn inspect_webp(bytes: &[u8]) -> Result<ImageInfo, DecodeError> {
    let format = ImageFormat::WebP;
    let reader = ImageReader::with_format(Cursor::new(bytes), format.to_image());
    let (decoder, _) = header_decoder(reader, format)?;
    let (width, height) = decoder.dimensions();
    let channels = decoder.color_type().channel_count();
    // WebP sizes have at most 24 bits, so none of this can overflow.
    let px = width as u64 * height as u64;
    let kind = webp_kind(bytes);
    // The decoder allocates each frame at the size its own VP8/VP8L
    // header declares, which a file may make larger than the canvas
    // (found by fuzzing: a 16x16 animated canvas whose first frame
    // declared 6400x4900). Such a frame is counted as four bytes a pixel
    // beside the canvas.
    let frame_px = webp_largest_frame(bytes);
    let oversize = if frame_px > px { 4 * frame_px } else { 0 };
    let working = oversize
        + match kind {
            WebpKind::Lossless if channels == 3 => 4 * px,
            WebpKind::Lossless => 0,
            WebpKind::Lossy { alpha } => {
                let (mbw, mbh) = (width.div_ceil(16) as u64, height.div_ceil(16) as u64);
                let planes = mbw * mbh * 384 + bytes.len() as u64;
                planes + if alpha { 7 * px } else { 0 }
            }
            WebpKind::Animated => 8 * px,
        };
    Ok(ImageInfo {
        format,
        width,
        height,
        channels,
        bytes_per_sample: 1,
        progressive: false,
        scans: 1,
        decode_bytes: px * channels as u64 + working + FIXED_OVERHEAD,
    })
}

/// The largest frame, in pixels, that the VP8 or VP8L headers of a WebP
/// file declare, at the top level or inside ANMF chunks (0 when none can
/// be read).
fn webp_largest_frame(bytes: &[u8]) -> u64 {
    fn frame_pixels(kind: &[u8], data: &[u8]) -> u64 {
        match kind {
            // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit sides.
            b"VP8 " => match data.get(3..10) {
                Some(d) if d[..3] == [0x9d, 0x01, 0x2a] => {
                    let w = u16::from_le_bytes([d[3], d[4]]) & 0x3fff;
                    let h = u16::from_le_bytes([d[5], d[6]]) & 0x3fff;
                    w as u64 * h as u64
                }
                _ => 0,
            },
            // Signature 0x2f, then width - 1 and height - 1 in 14 bits each.
            b"VP8L" => match data.get(0..5) {
                Some(d) if d[0] == 0x2f => {
                    let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
                    let w = (bits & 0x3fff) as u64 + 1;
                    let h = ((bits >> 14) & 0x3fff) as u64 + 1;
                    w * h
                }
                _ => 0,
            },
            _ => 0,
        }
    }
    fn walk(bytes: &[u8], mut i: usize, end: usize, depth: u8) -> u64 {
        let mut largest = 0;
        while let Some(head) = bytes.get(i..i + 8) {
            if i + 8 > end {
                break;
            }
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let start = i + 8;
            let stop = start.saturating_add(len).min(end).min(bytes.len());
            let data = bytes.get(start..stop).unwrap_or(&[]);
            let kind = &head[..4];
            largest = largest.max(frame_pixels(kind, data));
            // ANMF: 16 bytes of frame position and timing, then chunks.
            if kind == b"ANMF" && depth == 0 {
                largest = largest.max(walk(bytes, start + 16, stop, 1));
            }
            i = match start.checked_add(len + (len & 1)) {
                Some(j) => j,
                None => break,
            };
        }
        largest
    }
    walk(bytes, 12, bytes.len(), 0)
}

enum WebpKind {
    Lossless,
    Lossy { alpha: bool },
    Animated,
}

/// The kind of a WebP file from its RIFF chunks (the decoder has already
/// validated the header; anything unrecognised is costed as the most
/// expensive kind).
fn webp_kind(bytes: &[u8]) -> WebpKind {
    match bytes.get(12..16) {
        Some(b"VP8L") => WebpKind::Lossless,
        Some(b"VP8 ") => WebpKind::Lossy { alpha: false },
        Some(b"VP8X") => {
            let flags = bytes.get(20).copied().unwrap_or(0xFF);
            if flags & 0x02 != 0 {
                return WebpKind::Animated;
            }
            // The chunks after VP8X: ALPH then VP8, or VP8L.
            let mut i = 30usize;
            let mut alpha = false;
            while let Some(head) = bytes.get(i..i + 8) {
                let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
                match &head[..4] {
                    b"VP8L" => return WebpKind::Lossless,
                    b"VP8 " => return WebpKind::Lossy { alpha },
                    b"ALPH" => alpha = true,
                    _ => {}
                }
                i = match i
                    .checked_add(8)
                    .and_then(|j| j.checked_add(len + (len & 1)))
                {
                    Some(j) => j,
                    None => break,
                };
            }
            WebpKind::Animated
        }
        _ => WebpKind::Animated,
    }
}

/// Refuses a TIFF whose first directory has a tag declaring more data
/// than the whole file holds. The `tiff` crate allocates a tag's values
/// from its declared count while reading the header, before any limit
/// applies (found by fuzzing: a 1 KB file made it allocate 124 MB); no
/// valid file has such a tag.
fn tiff_tags_fit(bytes: &[u8]) -> Result<(), DecodeError> {
    let bad = |message: &str| DecodeError::Corrupt {
        format: ImageFormat::Tiff,
        message: message.to_string(),
    };
    let little = match bytes.get(0..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return Err(bad("no TIFF byte-order mark")),
    };
    let u16_at = |i: usize| {
        bytes.get(i..i + 2).map(|b| {
            if little {
                u16::from_le_bytes([b[0], b[1]])
            } else {
                u16::from_be_bytes([b[0], b[1]])
            }
        })
    };
    let u32_at = |i: usize| {
        bytes.get(i..i + 4).map(|b| {
            let a = [b[0], b[1], b[2], b[3]];
            if little {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        })
    };
    if u16_at(2) != Some(42) {
        // BigTIFF (43) and anything else: left to the decoder, which
        // refuses what it does not read.
        return Ok(());
    }
    let ifd = u32_at(4).ok_or_else(|| bad("truncated header"))? as usize;
    let entries = u16_at(ifd).ok_or_else(|| bad("directory outside the file"))?;
    for e in 0..entries as usize {
        let at = ifd + 2 + 12 * e;
        let (Some(kind), Some(count)) = (u16_at(at + 2), u32_at(at + 4)) else {
            return Err(bad("truncated directory"));
        };
        let size: u64 = match kind {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 | 16 | 17 | 18 => 8,
            _ => 1,
        };
        if u64::from(count) * size > bytes.len() as u64 {
            return Err(bad("a tag declares more data than the file holds"));
        }
    }
    Ok(())
}

/// GIF, BMP, TIFF and PNM through the `image` crate's decoders, whose
/// headers give the output's size and sample type. Their working memory is
/// counted as one more output buffer (GIF's frame buffer, TIFF's strips);
/// a 16-bit output adds our 8-bit copy.
fn inspect_other(bytes: &[u8], format: ImageFormat) -> Result<ImageInfo, DecodeError> {
    if format == ImageFormat::Tiff {
        tiff_tags_fit(bytes)?;
    }
    let reader = ImageReader::with_format(Cursor::new(bytes), format.to_image());
    let (decoder, _) = header_decoder(reader, format)?;
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    let channels = color.channel_count();
    let bytes_per_sample = (color.bytes_per_pixel() / channels.max(1)).max(1);
    let mut info = ImageInfo {
        format,
        width,
        height,
        channels,
        bytes_per_sample,
        progressive: false,
        scans: 1,
        decode_bytes: 0,
    };
    let output = info.output_bytes();
    let eight_bit = if bytes_per_sample > 1 {
        info.pixels().saturating_mul(channels as u64)
    } else {
        0
    };
    info.decode_bytes = output
        .saturating_mul(2)
        .saturating_add(eight_bit)
        .saturating_add(FIXED_OVERHEAD);
    Ok(info)
}

/// Opens the `image` crate's decoder for the header only, with its own
/// allocation limit set low: reading a header needs no pixel memory.
fn header_decoder<'a>(
    mut reader: ImageReader<Cursor<&'a [u8]>>,
    format: ImageFormat,
) -> Result<(Box<dyn ImageDecoder + 'a>, ()), DecodeError> {
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(HEADER_ALLOC);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| corrupt(format, e))?;
    Ok((Box::new(decoder), ()))
}

/// Allocation allowed to the `image` crate while it reads a header only
/// (metadata chunks such as ICC profiles and text are read with it).
const HEADER_ALLOC: u64 = 16 << 20;
