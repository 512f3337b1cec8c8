//! Decoding within a budget: header inspection, the memory and scan
//! limits, the attack files of issue #14, and damaged headers.

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::ImageEncoder;
use ocellus_codec::{
    DecodeError, DecodeLimits, ImageFormat, MAX_SCAN_LIMIT, MIN_SCAN_LIMIT, check, decode, inspect,
    scan_limit,
};

/// Refusals come from the header: far below a millisecond each; the bound
/// leaves room for a loaded machine and an unoptimised build.
const QUICK: Duration = Duration::from_millis(200);

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, name: &[u8], body: &[u8]) {
    let mut chunk = name.to_vec();
    chunk.extend_from_slice(body);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
}

/// A 16-bit RGBA PNG of `w` x `h` whose data is zeros: the first rows as
/// stored deflate blocks (valid, incompressible), the rest left out, as a
/// small attack file whose header is all that matters.
fn png16_zeros(w: u32, h: u32, rows: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    let raw = vec![0u8; (rows * (1 + w * 8)) as usize];
    let mut zlib = vec![0x78, 0x01];
    for (i, block) in raw.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= raw.len();
        zlib.push(last as u8);
        zlib.extend_from_slice(&(block.len() as u16).to_le_bytes());
        zlib.extend_from_slice(&(!(block.len() as u16)).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    png_chunk(&mut png, b"IDAT", &zlib);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A lossless WebP that declares `w` x `h` (no alpha) and holds a few
/// bytes of data: 34 bytes in all.
fn webp_lossless_header(w: u32, h: u32) -> Vec<u8> {
    let bits: u32 = (w - 1) | ((h - 1) << 14);
    let mut vp8l = vec![0x2F];
    vp8l.extend_from_slice(&bits.to_le_bytes());
    vp8l.extend_from_slice(&[0; 9]);
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&((4 + 8 + vp8l.len()) as u32).to_le_bytes());
    webp.extend_from_slice(b"WEBPVP8L");
    webp.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    webp.extend_from_slice(&vp8l);
    webp
}

/// A valid progressive 4:2:0 JPEG of a flat image.
fn progressive_jpeg(w: usize, h: usize) -> Vec<u8> {
    let pixels = vec![128u8; w * h * 3];
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_subsamp(turbojpeg::Subsamp::Sub2x2).unwrap();
    c.set_progressive(true).unwrap();
    c.compress_to_vec(turbojpeg::Image {
        pixels: pixels.as_slice(),
        width: w,
        pitch: w * 3,
        height: h,
        format: turbojpeg::PixelFormat::RGB,
    })
    .unwrap()
}

/// `file` with its first scan repeated until it has `total` scans.
fn with_scans(file: &[u8], total: usize) -> Vec<u8> {
    let sos: Vec<usize> = (0..file.len() - 1)
        .filter(|&i| file[i] == 0xFF && file[i + 1] == 0xDA)
        .collect();
    let (first, second) = (sos[0], sos[1]);
    let mut out = file[..second].to_vec();
    for _ in sos.len()..total {
        out.extend_from_slice(&file[first..second]);
    }
    out.extend_from_slice(&file[second..]);
    out
}

/// `file` with the frame header's height and width replaced.
fn with_jpeg_size(file: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut out = file.to_vec();
    let sof = (0..out.len() - 1)
        .find(|&i| out[i] == 0xFF && matches!(out[i + 1], 0xC0 | 0xC2))
        .unwrap();
    out[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    out[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    out
}

fn refused_quickly(bytes: &[u8], limits: &DecodeLimits) -> DecodeError {
    let start = Instant::now();
    let err = decode(bytes, limits).unwrap_err();
    assert!(start.elapsed() < QUICK, "took {:?}: {err}", start.elapsed());
    err
}

#[test]
fn a_sixteen_bit_rgba_png_at_the_pixel_limit_is_too_costly() {
    let png = png16_zeros(10_000, 10_000, 4);
    assert!(png.len() < 400_000, "{}", png.len());
    let info = inspect(&png).unwrap();
    assert_eq!((info.channels, info.bytes_per_sample), (4, 2));
    // 100 MP x 8 bytes, and our 8-bit copy: 1.2 GB.
    assert!(info.decode_bytes >= 1_200_000_000, "{}", info.decode_bytes);
    let err = refused_quickly(&png, &DecodeLimits::default());
    let DecodeError::TooCostly { needed, limit } = err else {
        panic!("{err}");
    };
    assert_eq!((needed, limit), (info.decode_bytes, 1 << 30));
    let message = err.to_string();
    assert!(message.contains("--max-decode-bytes"), "{message}");
    assert!(message.contains(&format!("{needed} bytes")), "{message}");
    assert!(message.contains("1073741824 bytes (1073 MB"), "{message}");
}

#[test]
fn a_small_sixteen_bit_png_decodes_within_exactly_its_estimate() {
    let png = png16_zeros(64, 48, 48);
    let info = inspect(&png).unwrap();
    let tight = DecodeLimits {
        max_decode_bytes: info.decode_bytes,
        ..DecodeLimits::default()
    };
    let (img, _) = decode(&png, &tight).unwrap();
    assert_eq!((img.width(), img.height()), (64, 48));
    let short = DecodeLimits {
        max_decode_bytes: info.decode_bytes - 1,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        refused_quickly(&png, &short),
        DecodeError::TooCostly { .. }
    ));
}

#[test]
fn a_tiny_lossless_webp_declaring_a_huge_image_is_costed_from_its_header() {
    let webp = webp_lossless_header(10_000, 9_500);
    assert_eq!(webp.len(), 34);
    let info = inspect(&webp).unwrap();
    assert_eq!(info.format, ImageFormat::WebP);
    assert_eq!((info.width, info.height, info.channels), (10_000, 9_500, 3));
    // RGBA decode buffer + RGB output: 7 bytes per pixel, 665 MB.
    assert!(info.decode_bytes >= 7 * 95_000_000, "{}", info.decode_bytes);
    // Within the 1 GiB default (the cost is now known and bounded) ...
    check(&info, &DecodeLimits::default()).unwrap();
    // ... and refused from the header under a smaller budget.
    let limits = DecodeLimits {
        max_decode_bytes: 256 << 20,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        refused_quickly(&webp, &limits),
        DecodeError::TooCostly { .. }
    ));
    // Past the pixel limit it is refused under the defaults.
    let bigger = webp_lossless_header(16_000, 16_000);
    assert!(matches!(
        refused_quickly(&bigger, &DecodeLimits::default()),
        DecodeError::TooManyPixels { .. }
    ));
}

#[test]
fn a_small_lossless_webp_decodes_within_its_estimate() {
    let (w, h) = (40u32, 30u32);
    let data: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(Cursor::new(&mut webp))
        .write_image(&data, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    let info = inspect(&webp).unwrap();
    let tight = DecodeLimits {
        max_decode_bytes: info.decode_bytes,
        ..DecodeLimits::default()
    };
    assert_eq!(decode(&webp, &tight).unwrap().0.as_bytes(), &data[..]);
}

#[test]
fn scan_limits_scale_with_the_image_size() {
    assert_eq!(scan_limit(640 * 480), MAX_SCAN_LIMIT);
    assert_eq!(scan_limit(4_000_000), MAX_SCAN_LIMIT);
    assert_eq!(scan_limit(12_000_000), 166);
    assert_eq!(scan_limit(100_000_000), MIN_SCAN_LIMIT);
    assert_eq!(scan_limit(0), MAX_SCAN_LIMIT);
    // Ordinary progressive files (10 scans) pass at every size.
    assert!(scan_limit(u64::MAX) >= 10);
}

#[test]
fn a_progressive_jpeg_with_too_many_scans_is_refused_before_decoding() {
    let base = progressive_jpeg(256, 256);
    let info = inspect(&base).unwrap();
    assert!(info.progressive);
    assert_eq!(info.scans, 10);
    decode(&base, &DecodeLimits::default()).unwrap();

    // Small: 500 scans are allowed, 600 are not.
    let many = with_scans(&base, 600);
    assert_eq!(inspect(&many).unwrap().scans, 600);
    let err = refused_quickly(&many, &DecodeLimits::default());
    assert!(
        matches!(
            err,
            DecodeError::TooManyScans {
                scans: 600,
                limit: 500
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("too many scans"), "{err}");
    check(
        &inspect(&with_scans(&base, 400)).unwrap(),
        &DecodeLimits::default(),
    )
    .unwrap();

    // The attack: 10000x10000 (a 470 KB file with hundreds of
    // scans). Here its header with 40 scans is already over the limit.
    let huge = with_jpeg_size(&with_scans(&base, 40), 10_000, 10_000);
    let info = inspect(&huge).unwrap();
    assert_eq!((info.width, info.height, info.scans), (10_000, 10_000, 40));
    let err = refused_quickly(&huge, &DecodeLimits::default());
    assert!(
        matches!(
            err,
            DecodeError::TooManyScans {
                scans: 40,
                limit: 32
            }
        ),
        "{err}"
    );
    // 40 scans are fine at 4000x3000.
    let photo_sized = with_jpeg_size(&with_scans(&base, 40), 4000, 3000);
    check(&inspect(&photo_sized).unwrap(), &DecodeLimits::default()).unwrap();
}

#[test]
fn progressive_jpeg_memory_counts_the_coefficient_buffer() {
    let base = progressive_jpeg(256, 256);
    let huge = with_jpeg_size(&base, 10_000, 10_000);
    let info = inspect(&huge).unwrap();
    // RGB output 300 MB + coefficients (luma 1250x1250 blocks, two chroma
    // 625x625) x 128 bytes = 300 MB.
    let expected = 300_000_000 + (1250 * 1250 + 2 * 625 * 625) * 128;
    assert!(
        info.decode_bytes >= expected && info.decode_bytes < expected + (2 << 20),
        "{}",
        info.decode_bytes
    );
}

fn photos() -> Vec<(String, Vec<u8>)> {
    let Some(dir) = ocellus_testdata::data_dir() else {
        return Vec::new();
    };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("photos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            matches!(ext, "jpg" | "jpeg" | "png")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn real_photos_pass_with_the_defaults_and_inspect_matches_the_decode() {
    let photos = photos();
    for (name, bytes) in &photos {
        let info = inspect(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&info, &DecodeLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(info.scans <= 16, "{name}: {} scans", info.scans);
        let (img, format) = decode(bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(format, info.format, "{name}");
        let dims = (img.width(), img.height());
        assert!(
            dims == (info.width, info.height) || dims == (info.height, info.width),
            "{name}: decoded {dims:?}, header {}x{}",
            info.width,
            info.height
        );
        let decoded = img.as_bytes().len() as u64;
        assert!(info.decode_bytes >= decoded, "{name}");
    }
}

#[test]
fn damaged_headers_are_errors_never_panics() {
    let photos = photos();
    for (n, (name, bytes)) in photos.iter().enumerate() {
        let mut cuts: Vec<usize> = (0..bytes.len().min(700)).step_by(7).collect();
        cuts.extend((1..20).map(|k| bytes.len() * k / 20));
        for cut in cuts {
            let part = &bytes[..cut];
            let _ = inspect(part);
            // Decoding every cut of every photo is slow; a few photos do.
            if n % 8 == 0 && cut % 5 == 0 {
                let _ = decode(part, &DecodeLimits::default());
            }
        }
        // Bytes flipped one at a time in the header region.
        for i in (2..bytes.len().min(400)).step_by(3) {
            let mut bad = bytes.clone();
            bad[i] ^= 0xA5;
            if let Ok(info) = inspect(&bad)
                && check(&info, &DecodeLimits::default()).is_ok()
                && n % 8 == 0
            {
                let _ = decode(&bad, &DecodeLimits::default());
            }
        }
        assert!(inspect(&bytes[..2.min(bytes.len())]).is_err(), "{name}");
    }
    // The largest sizes a PNG header can declare: no overflow, a clear refusal.
    let mut huge = png16_zeros(1, 1, 1);
    huge[16..24].fill(0xFF);
    let info = inspect(&huge).unwrap();
    assert_eq!(info.decode_bytes, u64::MAX);
    assert!(matches!(
        check(&info, &DecodeLimits::default()),
        Err(DecodeError::TooLarge { .. })
    ));
    // A JPEG that stops right after its start marker, or has no frame header.
    let err = inspect(&[0xFF, 0xD8, 0xFF]).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Corrupt { .. } | DecodeError::UnknownFormat
        ),
        "{err}"
    );
    let err = inspect(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9]).unwrap_err();
    assert!(err.to_string().contains("frame header"), "{err}");
}

/// The inputs fuzzing found (fuzz/README.md): each made a decoder
/// allocate far beyond what its header showed. They are refused, or
/// costed at what the decoder really takes, before decoding.
#[test]
fn fuzzing_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzzed");
    let small = DecodeLimits {
        max_pixels: 4_000_000,
        max_dimension: 16_384,
        max_decode_bytes: 64 << 20,
    };
    // A 16x16 animated WebP canvas whose frame declares 6400x4900.
    let webp = std::fs::read(dir.join("webp_frame_over_canvas.webp")).unwrap();
    if let Ok(info) = inspect(&webp) {
        assert!(info.decode_bytes > 100 << 20, "{info:?}");
        assert!(check(&info, &small).is_err());
    }
    assert!(decode(&webp, &small).is_err());
    // A TIFF whose tag declares more values than the file holds.
    let tiff = std::fs::read(dir.join("tiff_tag_count.tif")).unwrap();
    assert!(matches!(inspect(&tiff), Err(DecodeError::Corrupt { .. })));
    assert!(decode(&tiff, &small).is_err());
}
