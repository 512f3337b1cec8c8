//! The model loaders on damaged input: every truncation, byte flip and
//! foreign file is a [`ModelError`], never a panic, and the real files
//! parse to exactly their end.

mod common;

use ocellus_embed::{ErrorKind, FaceNet, ModelFile, ShapePredictor};
use ocellus_testdata::{Noise, noise_bytes};

/// Cut points: every offset in the first `dense` bytes, then `sparse`
/// seeded random offsets, then the last few bytes.
fn cut_points(len: usize, dense: usize, sparse: usize, seed: u64) -> Vec<usize> {
    let mut noise = Noise::new(seed);
    let mut cuts: Vec<usize> = (0..dense.min(len)).collect();
    cuts.extend((0..sparse).map(|_| noise.below(len as u64) as usize));
    cuts.extend(len.saturating_sub(16)..len);
    cuts
}

fn check_truncations<T: std::fmt::Debug>(
    bytes: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, ocellus_embed::ModelError>,
    file: ModelFile,
    sparse: usize,
) {
    let cuts = cut_points(bytes.len(), 1500, sparse, 7);
    for &cut in &cuts {
        match parse(&bytes[..cut]) {
            Ok(_) => panic!(
                "{file}: a file cut at {cut} of {} bytes parsed",
                bytes.len()
            ),
            Err(e) => {
                assert_eq!(e.file, file);
                assert!(e.offset <= cut, "{e}: offset past the cut {cut}");
            }
        }
    }
    eprintln!("{file}: {} truncations rejected", cuts.len());
}

#[test]
fn truncated_model_files_are_errors() {
    let dir = require_models!();
    let shape = common::read_model(&dir, common::SHAPE);
    let resnet = common::read_model(&dir, common::RESNET);
    check_truncations(
        &shape,
        ShapePredictor::from_bytes,
        ModelFile::ShapePredictor,
        300,
    );
    check_truncations(&resnet, FaceNet::from_bytes, ModelFile::Resnet, 40);
}

#[test]
fn trailing_bytes_are_an_error() {
    let dir = require_models!();
    let mut shape = common::read_model(&dir, common::SHAPE);
    shape.push(0);
    let e = ShapePredictor::from_bytes(&shape).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TrailingBytes(1));
    let mut resnet = common::read_model(&dir, common::RESNET);
    resnet.extend_from_slice(b"xy");
    let e = FaceNet::from_bytes(&resnet).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TrailingBytes(2));
}

#[test]
fn foreign_files_are_errors() {
    let dir = require_models!();
    let shape = common::read_model(&dir, common::SHAPE);
    let resnet = common::read_model(&dir, common::RESNET);
    // Each file read as the other.
    let e = FaceNet::from_bytes(&shape).unwrap_err();
    eprintln!("shape file as network: {e}");
    let e = ShapePredictor::from_bytes(&resnet).unwrap_err();
    eprintln!("network file as shape predictor: {e}");
    for seed in 0..50 {
        let junk = noise_bytes(seed, 4096);
        assert!(FaceNet::from_bytes(&junk).is_err());
        assert!(ShapePredictor::from_bytes(&junk).is_err());
    }
    assert!(FaceNet::from_bytes(&[]).is_err());
    assert!(ShapePredictor::from_bytes(&[]).is_err());
    assert!(FaceNet::from_bytes(b"PNG\x89 not a model").is_err());
}

/// Flips bytes at seeded positions (structure and data alike): the parser
/// must answer without panicking; a flip inside raw weights may still be a
/// valid model.
fn check_flips<T>(
    bytes: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, ocellus_embed::ModelError>,
    dense: usize,
    sparse: usize,
    seed: u64,
) -> (usize, usize) {
    let mut noise = Noise::new(seed);
    let mut buf = bytes.to_vec();
    let mut positions: Vec<usize> = (0..dense.min(bytes.len())).collect();
    positions.extend((0..sparse).map(|_| noise.below(bytes.len() as u64) as usize));
    let (mut ok, mut err) = (0, 0);
    for p in positions {
        let old = buf[p];
        buf[p] = old ^ (1 + noise.byte() % 255);
        match parse(&buf) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
        buf[p] = old;
    }
    (ok, err)
}

#[test]
fn flipped_bytes_never_panic() {
    let dir = require_models!();
    let shape = common::read_model(&dir, common::SHAPE);
    let t = std::time::Instant::now();
    ShapePredictor::from_bytes(&shape).expect("parses");
    eprintln!("shape predictor parse: {:?}", t.elapsed());
    let (ok, err) = check_flips(&shape, ShapePredictor::from_bytes, 300, 60, 11);
    eprintln!("shape predictor: {err} flips rejected, {ok} still valid");
    assert!(err > 0);
    let resnet = common::read_model(&dir, common::RESNET);
    let t = std::time::Instant::now();
    FaceNet::from_bytes(&resnet).expect("parses");
    eprintln!("network parse: {:?}", t.elapsed());
    // The first 300 bytes are all structure (headers up to the first
    // tensor); random flips land mostly in weights.
    let (ok, err) = check_flips(&resnet, FaceNet::from_bytes, 300, 25, 13);
    eprintln!("network: {err} flips rejected, {ok} still valid");
    assert!(err > 0);
}
