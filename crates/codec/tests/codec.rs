//! Decoding and encoding: formats, limits, orientation, bad input.

use std::io::Cursor;

use image::ImageEncoder;
use ocellus_codec::{
    DecodeError, DecodeLimits, EncodeOptions, Image, ImageFormat, PixelLayout, decode, encode,
};

fn gradient(w: u32, h: u32, layout: PixelLayout) -> Image {
    let c = layout.channels();
    let data = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            (0..c)
                .map(move |ch| ((x * 180 / w.max(1)) as usize + ch * 20 + (y as usize % 32)) as u8)
        })
        .collect();
    Image::from_vec(w, h, layout, data).unwrap()
}

fn png_bytes(w: u32, h: u32, color: image::ExtendedColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(Cursor::new(&mut out))
        .write_image(data, w, h, color)
        .unwrap();
    out
}

#[test]
fn png_round_trip_is_lossless_for_every_layout() {
    for layout in [
        PixelLayout::Gray,
        PixelLayout::GrayAlpha,
        PixelLayout::Rgb,
        PixelLayout::Rgba,
    ] {
        let img = gradient(17, 9, layout);
        let bytes = encode(&img, ImageFormat::Png, &EncodeOptions::default()).unwrap();
        let (back, format) = decode(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(format, ImageFormat::Png);
        assert_eq!(back, img, "{layout:?}");
    }
}

#[test]
fn webp_round_trip_is_lossless() {
    let img = gradient(20, 10, PixelLayout::Rgba);
    let bytes = encode(&img, ImageFormat::WebP, &EncodeOptions::default()).unwrap();
    let (back, format) = decode(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(format, ImageFormat::WebP);
    assert_eq!(back, img);
}

#[test]
fn jpeg_round_trip_is_close_and_drops_alpha() {
    let img = gradient(64, 48, PixelLayout::Rgba);
    let bytes = encode(&img, ImageFormat::Jpeg, &EncodeOptions { jpeg_quality: 95 }).unwrap();
    let (back, format) = decode(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(format, ImageFormat::Jpeg);
    assert_eq!(back.layout(), PixelLayout::Rgb);
    let diff: u64 = back
        .as_bytes()
        .chunks_exact(3)
        .zip(img.as_bytes().chunks_exact(4))
        .map(|(a, b)| (0..3).map(|i| a[i].abs_diff(b[i]) as u64).sum::<u64>())
        .sum();
    let mean = diff as f64 / (64.0 * 48.0 * 3.0);
    assert!(mean < 3.0, "mean error {mean}");
    // Greyscale stays one channel.
    let grey = gradient(30, 20, PixelLayout::Gray);
    let bytes = encode(&grey, ImageFormat::Jpeg, &EncodeOptions::default()).unwrap();
    assert_eq!(
        decode(&bytes, &DecodeLimits::default()).unwrap().0.layout(),
        PixelLayout::Gray
    );
}

#[test]
fn sixteen_bit_png_is_reduced_to_eight_bits() {
    let data: Vec<u8> = [0u16, 0x8000, 0xFFFF, 0x0101]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let bytes = png_bytes(4, 1, image::ExtendedColorType::L16, &data);
    let (img, _) = decode(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(img.layout(), PixelLayout::Gray);
    assert_eq!(img.as_bytes(), &[0, 128, 255, 1]);
}

/// A PNG whose header declares 100000 x 100000 pixels but holds no data.
fn png_bomb() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A few bytes of image data and the end marker, as a real bomb has.
    for (name, body) in [
        (&b"IDAT"[..], &[0x78u8, 0x9c, 0x63, 0x00, 0x00][..]),
        (b"IEND", &[]),
    ] {
        let mut chunk = name.to_vec();
        chunk.extend_from_slice(body);
        png.extend_from_slice(&(body.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

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

#[test]
fn decompression_bomb_is_refused_from_the_header() {
    let bomb = png_bomb();
    assert!(bomb.len() < 100);
    let err = decode(&bomb, &DecodeLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooLarge { .. } | DecodeError::TooManyPixels { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("too large"), "{err}");
    // Under the dimension limit but over the pixel limit.
    let limits = DecodeLimits {
        max_pixels: 1000,
        max_dimension: 65_535,
        ..DecodeLimits::default()
    };
    let img = gradient(40, 30, PixelLayout::Rgb);
    let bytes = encode(&img, ImageFormat::Jpeg, &EncodeOptions::default()).unwrap();
    assert!(matches!(
        decode(&bytes, &limits),
        Err(DecodeError::TooManyPixels {
            width: 40,
            height: 30,
            ..
        })
    ));
}

#[test]
fn garbage_and_truncated_files_are_errors_not_panics() {
    assert!(matches!(
        decode(b"hello world", &DecodeLimits::default()),
        Err(DecodeError::UnknownFormat)
    ));
    assert!(matches!(
        decode(b"", &DecodeLimits::default()),
        Err(DecodeError::UnknownFormat)
    ));
    let img = gradient(50, 40, PixelLayout::Rgb);
    for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
        let bytes = encode(&img, format, &EncodeOptions::default()).unwrap();
        for cut in [3, 10, 30, bytes.len() / 2, bytes.len() - 3] {
            // Truncated data may decode partially (JPEG) or fail, but never panics.
            let _ = decode(&bytes[..cut], &DecodeLimits::default());
        }
    }
}

/// Inserts an APP1 EXIF segment with the given orientation after SOI.
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut body = b"Exif\0\0".to_vec();
    body.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied() {
    let img = gradient(40, 16, PixelLayout::Gray);
    let plain = encode(
        &img,
        ImageFormat::Jpeg,
        &EncodeOptions { jpeg_quality: 100 },
    )
    .unwrap();
    let (upright, _) = decode(&plain, &DecodeLimits::default()).unwrap();
    let (rotated, _) = decode(&with_orientation(&plain, 6), &DecodeLimits::default()).unwrap();
    assert_eq!((rotated.width(), rotated.height()), (16, 40));
    // Orientation 6: the stored image must be turned 90 degrees clockwise.
    assert_eq!(rotated.pixel(15, 0), upright.pixel(0, 0));
    let (mirrored, _) = decode(&with_orientation(&plain, 2), &DecodeLimits::default()).unwrap();
    assert_eq!(mirrored.pixel(39, 0), upright.pixel(0, 0));
}

#[test]
fn every_shared_photo_decodes() {
    let dir = ocellus_testdata::require_data!();
    let mut count = 0;
    for entry in std::fs::read_dir(dir.join("photos")).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("jpg" | "jpeg" | "png")
        ) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let (img, _) = decode(&bytes, &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(img.width() > 0);
        count += 1;
    }
    assert!(count >= 70, "only {count} photos");
    // Yale files are GIFs without an extension; ORL are PGM.
    let yale = std::fs::read(dir.join("faces/yale/subject01.normal")).unwrap();
    let (img, format) = decode(&yale, &DecodeLimits::default()).unwrap();
    assert_eq!(
        (format, img.width(), img.height()),
        (ImageFormat::Gif, 320, 243)
    );
    let orl = std::fs::read(dir.join("faces/orl/s1/1.pgm")).unwrap();
    let (img, format) = decode(&orl, &DecodeLimits::default()).unwrap();
    assert_eq!(
        (format, img.layout(), img.width(), img.height()),
        (ImageFormat::Pnm, PixelLayout::Gray, 92, 112)
    );
}
