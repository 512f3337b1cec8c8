//! Shared test support: the model files and the dlib oracle.
//!
//! Model files are found by `ocellus_testdata::model_dir`: the environment
//! variable `OCELLUS_MODEL_DIR`, else `~/.local/share/ocellus/models`;
//! absent outside CI, the test is skipped with a printed reason; under
//! `CI=true` a missing file is a failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ocellus_embed::{Chip, Point, Rect};
use ocellus_imaging::{Image, PixelLayout};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The ResNet model's file name.
pub const RESNET: &str = "dlib_face_recognition_resnet_model_v1.dat";
/// The 5-point shape predictor's file name.
pub const SHAPE: &str = "shape_predictor_5_face_landmarks.dat";

/// The folder that holds both model files, or `None` (with a message) when
/// they are absent outside CI: `ocellus_testdata`'s one rule.
pub fn model_dir() -> Option<PathBuf> {
    ocellus_testdata::model_dir()
}

/// Reads one model file (after [`model_dir`] found it).
pub fn read_model(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).expect("model file readable")
}

/// Evaluates to the model folder, or returns from the test (skipping it).
#[macro_export]
macro_rules! require_models {
    () => {
        match common::model_dir() {
            Some(dir) => dir,
            None => return,
        }
    };
}

/// One face of an oracle file.
pub struct OracleFace {
    /// `<oracle file>:<image key>#<face index>`.
    pub name: String,
    /// Image path under the data folder.
    pub image: PathBuf,
    /// The image's decoded-RGB SHA-256 according to the oracle.
    pub rgb_sha256: String,
    pub rect: Rect,
    pub landmarks: [Point; 5],
    pub chip_rect: [f64; 4],
    pub chip_angle: f64,
    pub chip_png: PathBuf,
    pub chip_sha256: String,
    pub descriptor: [f32; 128],
}

/// Every face of the three dlib oracle files.
pub fn oracle_faces(data: &Path) -> Vec<OracleFace> {
    let mut out = Vec::new();
    for file in [
        "dlib_people.json",
        "dlib_people_lbpboxes.json",
        "dlib_photos.json",
    ] {
        let text = std::fs::read_to_string(data.join("oracle").join(file)).expect("oracle file");
        let v: Value = serde_json::from_str(&text).expect("oracle json");
        let folder = v["folders"][0].as_str().expect("folder");
        let folder = data.join(folder.strip_prefix("data/").unwrap_or(folder));
        let images = v["images"].as_object().expect("images");
        for (key, rec) in images {
            let Some(faces) = rec["faces"].as_array() else {
                continue;
            };
            for (i, f) in faces.iter().enumerate() {
                let b = &f["box"];
                let int = |v: &Value| v.as_i64().expect("integer");
                let lm = f["landmarks"].as_array().expect("landmarks");
                let cd = &f["chip_details"];
                let rect = cd["rect"].as_array().expect("rect");
                let desc = f["descriptor"].as_array().expect("descriptor");
                let png = f["chip_png"].as_str().expect("chip_png");
                out.push(OracleFace {
                    name: format!("{file}:{key}#{i}"),
                    image: folder.join(key),
                    rgb_sha256: rec["rgb_sha256"].as_str().expect("sha").to_string(),
                    rect: Rect::new(
                        int(&b["left"]),
                        int(&b["top"]),
                        int(&b["right"]),
                        int(&b["bottom"]),
                    ),
                    landmarks: std::array::from_fn(|k| Point::new(int(&lm[k][0]), int(&lm[k][1]))),
                    chip_rect: std::array::from_fn(|k| rect[k].as_f64().expect("f64")),
                    chip_angle: cd["angle"].as_f64().expect("angle"),
                    chip_png: data.join(png.strip_prefix("data/").unwrap_or(png)),
                    chip_sha256: f["chip_sha256"].as_str().expect("sha").to_string(),
                    descriptor: std::array::from_fn(|k| desc[k].as_f64().expect("f64") as f32),
                });
            }
        }
    }
    out
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The image's pixels as H x W x 3 RGB bytes, the way Pillow's
/// `convert("RGB")` gives them (alpha dropped, grey replicated).
pub fn rgb_bytes(img: &Image) -> Vec<u8> {
    let mut out = Vec::with_capacity(img.width() as usize * img.height() as usize * 3);
    let c = img.channels();
    for p in img.as_bytes().chunks_exact(c) {
        match img.layout() {
            PixelLayout::Rgb | PixelLayout::Rgba => out.extend_from_slice(&p[..3]),
            PixelLayout::Gray | PixelLayout::GrayAlpha => out.extend_from_slice(&[p[0]; 3]),
        }
    }
    out
}

/// Decodes an image file with ocellus-codec.
pub fn decode_file(path: &Path) -> Image {
    let bytes = std::fs::read(path).expect("image readable");
    ocellus_codec::decode(&bytes, &Default::default())
        .expect("decodable")
        .0
}

/// An oracle chip PNG as a [`Chip`].
pub fn oracle_chip(face: &OracleFace) -> Chip {
    let img = decode_file(&face.chip_png);
    let chip = Chip::from_image(&img).expect("150x150 chip");
    assert_eq!(
        sha256_hex(chip.as_bytes()),
        face.chip_sha256,
        "{}",
        face.name
    );
    chip
}
