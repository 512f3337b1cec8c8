//! Finding and loading the dlib model files of the `resnet` recognizer:
//! `--models DIR`, then `OCELLUS_MODEL_DIR`, `<data-dir>/models`,
//! `~/.local/share/ocellus/models` and `/usr/local/share/ocellus/models`.
//!
//! Only the two files released into the public domain (CC0) by their
//! author, Davis King, are read; `scripts/setup` installs them (and checks
//! their SHA-256). The 68-point predictor is never looked for: its
//! training set's licence excludes commercial use.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use ocellus_embed::FaceModels;

/// Environment variable naming the model folder.
pub const MODEL_DIR_ENV: &str = "OCELLUS_MODEL_DIR";
/// The network.
pub const RESNET_FILE: &str = "dlib_face_recognition_resnet_model_v1.dat";
/// The 5-point shape predictor.
pub const SHAPE_FILE: &str = "shape_predictor_5_face_landmarks.dat";
/// The one command that installs them.
pub const INSTALL: &str = "scripts/setup";

/// The folders searched, in order (`explicit` is `--models`).
pub fn search_dirs(explicit: Option<&Path>, data_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_path_buf());
    }
    if let Some(v) = std::env::var_os(MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(v));
    }
    if let Some(d) = data_dir {
        dirs.push(d.join("models"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(home).join(".local/share/ocellus/models"));
    }
    dirs.push(PathBuf::from("/usr/local/share/ocellus/models"));
    dirs.dedup();
    dirs
}

/// The first folder holding both files.
fn find(dirs: &[PathBuf]) -> Option<&PathBuf> {
    dirs.iter()
        .find(|d| d.join(RESNET_FILE).is_file() && d.join(SHAPE_FILE).is_file())
}

/// Where it looked and how to install them, for errors and log lines.
pub fn not_found(dirs: &[PathBuf]) -> String {
    let looked: Vec<String> = dirs.iter().map(|d| format!("  {}", d.display())).collect();
    format!(
        "the resnet model files ({RESNET_FILE}, {SHAPE_FILE}) are not in any of:\n{}\n\
         Install them with: {INSTALL}  (or pass --models DIR, or set {MODEL_DIR_ENV})",
        looked.join("\n")
    )
}

/// Loads the models from `dir`: a missing, truncated, corrupt or foreign
/// file is an error that names it.
pub fn load_from(dir: &Path) -> anyhow::Result<FaceModels> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let (resnet, shape) = (read(RESNET_FILE)?, read(SHAPE_FILE)?);
    FaceModels::from_bytes(&resnet, &shape).with_context(|| {
        format!(
            "cannot load the resnet model files in {} (reinstall them with {INSTALL})",
            dir.display()
        )
    })
}

/// The models, if installed. With `--models`, their absence is an error;
/// without, `Ok(None)` (the caller logs [`not_found`]). A file that is
/// there but unreadable is always an error.
pub fn discover(
    explicit: Option<&Path>,
    data_dir: Option<&Path>,
) -> anyhow::Result<Option<(PathBuf, FaceModels)>> {
    let dirs = search_dirs(explicit, data_dir);
    let found = match explicit {
        Some(d) => {
            if !(d.join(RESNET_FILE).is_file() && d.join(SHAPE_FILE).is_file()) {
                bail!(
                    "--models {}: {RESNET_FILE} and {SHAPE_FILE} are not both there. \
                     Install them with: {INSTALL}",
                    d.display()
                );
            }
            d.to_path_buf()
        }
        None => match find(&dirs) {
            Some(d) => d.clone(),
            None => return Ok(None),
        },
    };
    let started = Instant::now();
    let models = load_from(&found)?;
    tracing::info!(
        dir = %found.display(),
        ms = started.elapsed().as_millis() as u64,
        "resnet model files loaded"
    );
    Ok(Some((found, models)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_folder_comes_first_and_must_hold_the_files() {
        let dir = std::env::temp_dir().join(format!("ocellus-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dirs = search_dirs(Some(&dir), Some(Path::new("/data")));
        assert_eq!(dirs[0], dir);
        assert!(dirs.contains(&PathBuf::from("/data/models")));
        assert_eq!(
            dirs.last().unwrap(),
            Path::new("/usr/local/share/ocellus/models")
        );
        let e = discover(Some(&dir), None)
            .expect_err("missing files")
            .to_string();
        assert!(e.contains(INSTALL), "{e}");
        // Present but foreign: a clear error naming the folder, no panic.
        std::fs::write(dir.join(RESNET_FILE), b"not a dlib file").unwrap();
        std::fs::write(dir.join(SHAPE_FILE), b"nor this").unwrap();
        let e = format!(
            "{:#}",
            discover(Some(&dir), None).expect_err("foreign files")
        );
        assert!(
            e.contains("cannot load") && e.contains(&dir.display().to_string()),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(not_found(&dirs).contains("scripts/setup"));
    }
}
