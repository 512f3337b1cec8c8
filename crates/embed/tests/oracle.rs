//! Landmarks and chips against dlib's own outputs (the oracle files in
//! `data/oracle/dlib_*.json`, made by `tools/oracle/dlib_oracle.py`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{OracleFace, decode_file, oracle_chip, oracle_faces, rgb_bytes, sha256_hex};
use ocellus_embed::{ShapePredictor, chip_details, extract_chip};
use ocellus_imaging::Image;

/// Decodes every oracle image once and checks it against the oracle's
/// SHA-256 of Pillow's RGB pixels (same pixels in, or the comparison
/// means nothing).
fn decoded(faces: &[OracleFace]) -> HashMap<PathBuf, Image> {
    let mut out = HashMap::new();
    for f in faces {
        if out.contains_key(&f.image) {
            continue;
        }
        let img = decode_file(&f.image);
        assert_eq!(
            sha256_hex(&rgb_bytes(&img)),
            f.rgb_sha256,
            "{}: decoded pixels differ from Pillow's",
            f.image.display()
        );
        out.insert(f.image.clone(), img);
    }
    out
}

#[test]
fn landmarks_are_dlibs_on_every_oracle_face() {
    let data = ocellus_testdata::require_data!();
    let dir = require_models!();
    let sp = ShapePredictor::from_bytes(&common::read_model(&dir, common::SHAPE))
        .expect("shape predictor parses");
    let faces = oracle_faces(&data);
    let images = decoded(&faces);
    let mut wrong = Vec::new();
    for f in &faces {
        let got = sp.landmarks(&images[&f.image], f.rect);
        if got != f.landmarks {
            wrong.push(format!("{}: {:?} != {:?}", f.name, got, f.landmarks));
        }
    }
    eprintln!(
        "landmarks identical: {}/{}",
        faces.len() - wrong.len(),
        faces.len()
    );
    assert_eq!(faces.len(), 313);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn chips_match_dlibs_on_the_oracle_faces() {
    let data = ocellus_testdata::require_data!();
    let faces = oracle_faces(&data);
    let images = decoded(&faces);
    let (mut identical, mut max_diff, mut pixels_off) = (0usize, 0u8, 0usize);
    let (mut max_rect, mut max_angle) = (0f64, 0f64);
    for f in &faces {
        let d = chip_details(&f.landmarks);
        for k in 0..4 {
            max_rect = max_rect.max((d.rect[k] - f.chip_rect[k]).abs());
        }
        max_angle = max_angle.max((d.angle - f.chip_angle).abs());
        let ours = extract_chip(&images[&f.image], &f.landmarks);
        let theirs = oracle_chip(f);
        if ours == theirs {
            identical += 1;
            continue;
        }
        let diffs: Vec<u8> = ours
            .as_bytes()
            .iter()
            .zip(theirs.as_bytes())
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let n = diffs.iter().filter(|&&d| d != 0).count();
        let m = diffs.iter().copied().max().unwrap_or(0);
        eprintln!("{}: {n} values differ, by at most {m}", f.name);
        pixels_off += n;
        max_diff = max_diff.max(m);
    }
    eprintln!(
        "chips bit-identical: {identical}/{}; {pixels_off} values differ, by at most {max_diff}; \
         rect within {max_rect:e} px, angle within {max_angle:e} rad",
        faces.len()
    );
    assert!(max_rect < 1e-9, "chip rectangle off by {max_rect}");
    assert!(max_angle < 1e-12, "chip angle off by {max_angle}");
    assert!(
        identical * 100 >= faces.len() * 99,
        "only {identical} identical chips"
    );
    assert!(max_diff <= 1, "a chip value differs by {max_diff}");
}
