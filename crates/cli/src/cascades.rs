//! Finding OpenCV cascade files: an explicit path, or a bare name looked up
//! in `OCELLUS_CASCADE_DIR` and then in the usual OpenCV data folders.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ocellus_detect::Cascade;

/// Environment variable holding extra folders (a path list) to search first.
pub const CASCADE_DIR_ENV: &str = "OCELLUS_CASCADE_DIR";

/// The default cascade: OpenCV's frontal-face Haar cascade.
pub const DEFAULT_CASCADE: &str = "haarcascade_frontalface_default.xml";

/// OpenCV data roots (each searched with `haarcascades/` and `lbpcascades/`).
const DATA_ROOTS: [&str; 7] = [
    "/usr/share/opencv4",
    "/usr/share/opencv",
    "/usr/local/share/opencv4",
    "/usr/local/share/opencv",
    "/opt/homebrew/share/opencv4",
    "/home/linuxbrew/.linuxbrew/share/opencv4",
    "/opt/local/share/opencv4",
];

/// File names a bare cascade name may stand for, most specific first:
/// `frontalface_default` -> `frontalface_default.xml`,
/// `haarcascade_frontalface_default.xml`, `lbpcascade_frontalface_default.xml`.
pub fn candidate_names(name: &str) -> Vec<String> {
    let file = if name.ends_with(".xml") {
        name.to_string()
    } else {
        format!("{name}.xml")
    };
    let mut names = vec![file.clone()];
    if !file.starts_with("haarcascade_") && !file.starts_with("lbpcascade_") {
        names.push(format!("haarcascade_{file}"));
        names.push(format!("lbpcascade_{file}"));
    }
    names
}

/// The folders searched, in order: each entry of `env_dirs` (the value of
/// `OCELLUS_CASCADE_DIR`, a path list) and its `haarcascades/` and
/// `lbpcascades/` subfolders, then the same for `$HOMEBREW_PREFIX/share/opencv4`
/// and the standard OpenCV data roots.
pub fn search_dirs(env_dirs: Option<OsString>, homebrew_prefix: Option<OsString>) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = env_dirs
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    if let Some(prefix) = homebrew_prefix {
        roots.push(Path::new(&prefix).join("share").join("opencv4"));
    }
    roots.extend(DATA_ROOTS.iter().map(PathBuf::from));
    let mut dirs = Vec::new();
    for root in roots {
        for dir in [
            root.clone(),
            root.join("haarcascades"),
            root.join("lbpcascades"),
        ] {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Resolves `spec` (a path, or a bare name such as
/// `haarcascade_frontalface_default.xml` or `frontalface_default`) to a file.
pub fn resolve(spec: &str) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(spec);
    let looks_like_path = spec.contains(std::path::MAIN_SEPARATOR) || spec.contains('/');
    if looks_like_path || as_path.is_file() {
        if as_path.is_file() {
            return Ok(as_path.to_path_buf());
        }
        bail!("cascade file {spec} does not exist");
    }
    let dirs = search_dirs(
        std::env::var_os(CASCADE_DIR_ENV),
        std::env::var_os("HOMEBREW_PREFIX"),
    );
    let names = candidate_names(spec);
    for dir in &dirs {
        for name in &names {
            let path = dir.join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| format!("  {}", d.display())).collect();
    bail!(
        "cascade {spec} not found (tried {}) in:\n{}\n\
         Install OpenCV's cascade files (Debian/Ubuntu: apt-get install opencv-data; \
         macOS: brew install opencv), set {CASCADE_DIR_ENV} to the folder holding them, \
         or pass --cascade /path/to/cascade.xml",
        names.join(", "),
        looked.join("\n")
    )
}

/// Resolves and loads a cascade.
pub fn load(spec: &str) -> anyhow::Result<(PathBuf, Cascade)> {
    let path = resolve(spec)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read cascade {}", path.display()))?;
    let cascade = Cascade::from_xml(&text)
        .with_context(|| format!("cannot load cascade {}", path.display()))?;
    Ok((path, cascade))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_expand_to_opencv_file_names() {
        assert_eq!(
            candidate_names("frontalface_default"),
            vec![
                "frontalface_default.xml",
                "haarcascade_frontalface_default.xml",
                "lbpcascade_frontalface_default.xml"
            ]
        );
        assert_eq!(
            candidate_names("haarcascade_frontalface_default.xml"),
            vec!["haarcascade_frontalface_default.xml"]
        );
    }

    #[test]
    fn env_folders_come_first_then_standard_ones() {
        let dirs = search_dirs(Some(OsString::from("/a")), Some(OsString::from("/brew")));
        assert_eq!(dirs[0], PathBuf::from("/a"));
        assert_eq!(dirs[1], PathBuf::from("/a/haarcascades"));
        assert_eq!(dirs[3], PathBuf::from("/brew/share/opencv4"));
        assert!(dirs.contains(&PathBuf::from("/usr/share/opencv4/haarcascades")));
        assert!(dirs.contains(&PathBuf::from("/usr/share/opencv4/lbpcascades")));
        assert!(dirs.contains(&PathBuf::from("/usr/local/share/opencv4/haarcascades")));
    }

    #[test]
    fn missing_cascade_error_says_where_and_how() {
        let err = resolve("no_such_cascade_here").unwrap_err().to_string();
        assert!(err.contains("/usr/share/opencv4/haarcascades"), "{err}");
        assert!(err.contains("apt-get install opencv-data"), "{err}");
        assert!(err.contains("--cascade"), "{err}");
    }
}
