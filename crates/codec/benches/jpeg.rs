//! JPEG decode and encode: libjpeg-turbo (what Ocellus uses) against the
//! `image` crate's own codecs (zune-jpeg decoder, pure-Rust encoder), on a
//! 1920x1080 photo. `cargo bench -p ocellus-codec --bench jpeg`.
//!
//! Measured when the choice was made (same machine, same photo): decode
//! turbo 17.9 ms vs zune 17.5 ms; encode q90 turbo 13 ms vs `image` 138 ms
//! vs `jpeg-encoder` with SIMD 77 ms (under load; the ratios are what
//! matters).

use std::io::Cursor;

use criterion::{Criterion, criterion_group, criterion_main};
use image::ImageEncoder;
use ocellus_codec::{DecodeLimits, EncodeOptions, ImageFormat, decode, encode};

fn photo() -> Option<Vec<u8>> {
    let dir = ocellus_testdata::data_dir()?;
    std::fs::read(dir.join("photos/fr_obama-1080p.jpg")).ok()
}

fn jpeg(c: &mut Criterion) {
    let Some(bytes) = photo() else { return };
    let (img, _) = decode(&bytes, &DecodeLimits::default()).expect("photo decodes");
    let mut group = c.benchmark_group("jpeg_1080p");
    group.sample_size(20);
    group.bench_function("decode/libjpeg-turbo", |b| {
        b.iter(|| decode(&bytes, &DecodeLimits::default()).expect("decodes"))
    });
    group.bench_function("decode/image-zune", |b| {
        b.iter(|| {
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).expect("decodes")
        })
    });
    let options = EncodeOptions { jpeg_quality: 90 };
    group.bench_function("encode_q90/libjpeg-turbo", |b| {
        b.iter(|| encode(&img, ImageFormat::Jpeg, &options).expect("encodes"))
    });
    group.bench_function("encode_q90/image", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut out), 90)
                .write_image(
                    img.as_bytes(),
                    img.width(),
                    img.height(),
                    image::ExtendedColorType::Rgb8,
                )
                .expect("encodes");
            out
        })
    });
    group.finish();
}

criterion_group!(benches, jpeg);
criterion_main!(benches);
