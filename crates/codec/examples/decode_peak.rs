//! Measures what one decode really costs, to check the formulas behind
//! `ImageInfo::decode_bytes` (see `docs/limits-decode.md`).
//!
//! `decode_peak gen KIND W H FILE` writes a test image (KIND: png8, png16,
//! webp-rgb, webp-rgba, jpeg, jpeg-prog, jpeg-scans:N), and
//! `decode_peak FILE` decodes it in this fresh process and prints the
//! growth of the peak resident set (`VmHWM`) across the decode, the
//! estimate from `inspect`, and the time taken; `decode_peak turbo FILE`
//! times libjpeg-turbo alone, without a scan limit, and
//! `decode_peak fallback FILE` the image crate's JPEG decoder alone.

use std::io::Cursor;
use std::time::Instant;

use image::ImageEncoder;
use ocellus_codec::{DecodeLimits, decode, inspect};

fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Deterministic, mildly compressible pixel bytes.
fn pixels(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491u32;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((i / 7) as u8).wrapping_add((x >> 28) as u8)
        })
        .collect()
}

fn generate(kind: &str, w: u32, h: u32) -> Vec<u8> {
    let n = (w * h) as usize;
    let mut out = Vec::new();
    let sink = Cursor::new(&mut out);
    match kind {
        "png8" => image::codecs::png::PngEncoder::new(sink)
            .write_image(&pixels(n * 3), w, h, image::ExtendedColorType::Rgb8)
            .expect("png"),
        "png16" => image::codecs::png::PngEncoder::new(sink)
            .write_image(&pixels(n * 8), w, h, image::ExtendedColorType::Rgba16)
            .expect("png"),
        "webp-rgb" => image::codecs::webp::WebPEncoder::new_lossless(sink)
            .write_image(&pixels(n * 3), w, h, image::ExtendedColorType::Rgb8)
            .expect("webp"),
        "webp-rgba" => image::codecs::webp::WebPEncoder::new_lossless(sink)
            .write_image(&pixels(n * 4), w, h, image::ExtendedColorType::Rgba8)
            .expect("webp"),
        _ => return jpeg(kind, w, h),
    }
    out
}

fn jpeg(kind: &str, w: u32, h: u32) -> Vec<u8> {
    // A scan attack is cheapest to send on a flat image (tiny scans).
    let scans = kind.strip_prefix("jpeg-scans:");
    let data = match scans {
        Some(_) => vec![128; (w * h * 3) as usize],
        None => pixels((w * h * 3) as usize),
    };
    let mut c = turbojpeg::Compressor::new().expect("compressor");
    c.set_quality(90).expect("quality");
    c.set_subsamp(turbojpeg::Subsamp::Sub2x2).expect("subsamp");
    c.set_progressive(kind != "jpeg").expect("progressive");
    let image = turbojpeg::Image {
        pixels: data.as_slice(),
        width: w as usize,
        pitch: w as usize * 3,
        height: h as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    let file = c.compress_to_vec(image).expect("jpeg");
    match scans {
        Some(n) => repeat_first_scan(&file, n.parse().expect("scan count")),
        None => file,
    }
}

/// Repeats the first scan (the DC scan of every component: its SOS
/// segment and entropy data) until the file has `total` scans.
fn repeat_first_scan(file: &[u8], total: usize) -> Vec<u8> {
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("gen") {
        let [_, kind, w, h, path] = args.as_slice() else {
            eprintln!("usage: decode_peak gen KIND W H FILE");
            std::process::exit(2);
        };
        let bytes = generate(kind, w.parse().expect("W"), h.parse().expect("H"));
        std::fs::write(path, bytes).expect("write");
        return;
    }
    if let [mode, path] = args.as_slice()
        && mode == "turbo"
    {
        // libjpeg-turbo alone without a scan limit: the time the scans cost.
        let bytes = std::fs::read(path).expect("read");
        let start = Instant::now();
        let result = turbojpeg::decompress(&bytes, turbojpeg::PixelFormat::RGB);
        println!(
            "{path}: turbojpeg {:.3} s, {}",
            start.elapsed().as_secs_f64(),
            result.map_or_else(|e| e.to_string(), |_| "ok".into())
        );
        return;
    }
    if let [mode, path] = args.as_slice()
        && mode == "fallback"
    {
        // The image crate's JPEG decoder (the fallback) alone.
        let bytes = std::fs::read(path).expect("read");
        let start = Instant::now();
        let result = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg);
        println!(
            "{path}: image crate {:.3} s, {}",
            start.elapsed().as_secs_f64(),
            result.map_or_else(|e| e.to_string(), |_| "ok".into())
        );
        return;
    }
    let Some(path) = args.first() else {
        eprintln!("usage: decode_peak FILE | decode_peak gen KIND W H FILE");
        std::process::exit(2);
    };
    let bytes = std::fs::read(path).expect("read");
    let info = inspect(&bytes);
    let before = vm_hwm();
    let start = Instant::now();
    let limits = DecodeLimits {
        max_pixels: u64::MAX,
        max_dimension: u32::MAX,
        max_decode_bytes: u64::MAX,
    };
    let result = decode(&bytes, &limits);
    let secs = start.elapsed().as_secs_f64();
    let grew = vm_hwm() - before;
    let estimate = info.as_ref().map_or(0, |i| i.decode_bytes);
    println!(
        "{path}: {} bytes, peak RSS +{:.1} MB, estimate {:.1} MB, {secs:.3} s, {}, {info:?}",
        bytes.len(),
        grew as f64 / 1e6,
        estimate as f64 / 1e6,
        match &result {
            Ok((img, _)) => format!("decoded {}x{}", img.width(), img.height()),
            Err(e) => format!("error: {e}"),
        }
    );
}
