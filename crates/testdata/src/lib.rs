//! Test support shared by every crate: locating the shared test data
//! (`../shared/data` beside the project root), and the one seeded noise
//! generator ([`Noise`]).
//!
//! Every test that needs the data set calls [`data_dir`] (or the [`require_data!`]
//! macro), so that there is one rule: the environment variable
//! `OCELLUS_TEST_DATA` overrides the default path; when the data is missing
//! the test is skipped with a printed reason, except under `CI=true`, where
//! a missing data set is a failure.

#![warn(missing_docs)]

mod noise;

pub use noise::{Noise, noise_bytes};

use std::path::{Path, PathBuf};

/// Environment variable that points at the data folder (the one holding
/// `faces/`, `photos/`, `people/` and `oracle/`).
pub const DATA_ENV: &str = "OCELLUS_TEST_DATA";

/// The default location: `<workspace>/../shared/data`.
pub fn default_data_dir() -> PathBuf {
    workspace_root().join("..").join("shared").join("data")
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The data folder, or `None` (with a message on stderr) when it is absent
/// outside CI.
///
/// # Panics
/// Under `CI=true` when the folder is absent: CI must always run these tests.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os(DATA_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(default_data_dir);
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "test data not found at {} (set {DATA_ENV} to the shared data folder)",
        dir.display()
    );
    if in_ci() {
        panic!("{msg}; under CI=true the data set is required");
    }
    eprintln!("skipping: {msg}");
    None
}

/// Environment variable naming the folder of the dlib model files (as the
/// binary reads it).
pub const MODEL_ENV: &str = "OCELLUS_MODEL_DIR";

/// The folder of the two dlib model files (`scripts/setup` installs them):
/// `OCELLUS_MODEL_DIR`, else `~/.local/share/ocellus/models`; `None` (with
/// a message) when absent outside CI.
///
/// # Panics
/// Under `CI=true` when they are absent.
pub fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os(MODEL_ENV)
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/ocellus/models"))
        })
        .unwrap_or_else(|| PathBuf::from("/usr/local/share/ocellus/models"));
    let files = [
        "dlib_face_recognition_resnet_model_v1.dat",
        "shape_predictor_5_face_landmarks.dat",
    ];
    if files.iter().all(|f| dir.join(f).is_file()) {
        return Some(dir);
    }
    let msg = format!(
        "dlib model files not found in {} (run scripts/setup or set {MODEL_ENV})",
        dir.display()
    );
    if in_ci() {
        panic!("{msg}; under CI=true they are required");
    }
    eprintln!("skipping: {msg}");
    None
}

/// Evaluates to the model folder, or returns from the calling test
/// (skipping it) when the model files are absent outside CI.
#[macro_export]
macro_rules! require_models {
    () => {
        match $crate::model_dir() {
            Some(dir) => dir,
            None => return,
        }
    };
}

/// Evaluates to the data folder as a `PathBuf`, or returns from the calling
/// test (skipping it) when the data is absent outside CI.
#[macro_export]
macro_rules! require_data {
    () => {
        match $crate::data_dir() {
            Some(dir) => dir,
            None => return,
        }
    };
}
