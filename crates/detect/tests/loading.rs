//! Loading real cascade files: every cascade OpenCV installs must load (or,
//! for unsupported kinds, fail with a clear error), and a cascade cut short
//! or corrupted anywhere must give an error, never a panic.

use std::path::PathBuf;

use ocellus_detect::{Cascade, CascadeError, FeatureKind};
use proptest::prelude::*;

const DIRS: [&str; 2] = [
    "/usr/share/opencv4/haarcascades",
    "/usr/share/opencv4/lbpcascades",
];

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn installed() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = DIRS
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    if files.is_empty() {
        assert!(
            !in_ci(),
            "OpenCV cascades missing (apt-get install opencv-data)"
        );
        eprintln!("skipping: no cascades in {DIRS:?} (apt-get install opencv-data)");
    }
    files
}

fn read(name: &str) -> Option<String> {
    let path = installed().into_iter().find(|p| p.ends_with(name))?;
    std::fs::read_to_string(path).ok()
}

#[test]
fn every_installed_cascade_loads() {
    for path in installed() {
        let text = std::fs::read_to_string(&path).expect("readable");
        let cascade =
            Cascade::from_xml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(cascade.stage_count() > 0);
        assert!(cascade.feature_count() > 0);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = if name.starts_with("lbp") {
            FeatureKind::Lbp
        } else {
            FeatureKind::Haar
        };
        assert_eq!(cascade.kind(), expected, "{name}");
    }
}

#[test]
fn frontal_face_cascades_have_the_documented_shape() {
    let Some(default) = read("haarcascade_frontalface_default.xml") else {
        return;
    };
    let c = Cascade::from_xml(&default).expect("loads");
    assert_eq!(c.window_size(), (24, 24));
    assert_eq!(c.stage_count(), 25);
    assert!(c.is_stump_based());
    let alt2 =
        Cascade::from_xml(&read("haarcascade_frontalface_alt2.xml").expect("alt2")).expect("loads");
    assert_eq!(alt2.window_size(), (20, 20));
    assert!(!alt2.is_stump_based(), "alt2 uses two-node trees");
    // The old-format plate cascade loads through the converter.
    let plate = read("haarcascade_licence_plate_rus_16stages.xml").expect("plate cascade");
    assert!(plate.contains("opencv-haar-classifier"));
    let plate = Cascade::from_xml(&plate).expect("old format loads");
    assert_eq!(plate.window_size(), (64, 16));
    assert_eq!(plate.stage_count(), 16);
    // Tilted features are read.
    let smile = Cascade::from_xml(&read("haarcascade_smile.xml").expect("smile")).expect("loads");
    assert!(smile.has_tilted_features());
}

#[test]
fn truncated_cascades_are_errors_not_panics() {
    let Some(text) = read("lbpcascade_frontalface_improved.xml") else {
        return;
    };
    let Some(haar) = read("haarcascade_frontalface_alt2.xml") else {
        return;
    };
    for text in [&text, &haar] {
        let n = text.len();
        // Many cut points across the file, on character boundaries.
        let mut cut = 0;
        while cut < n {
            if text.is_char_boundary(cut) {
                let result = Cascade::from_xml(&text[..cut]);
                assert!(result.is_err(), "truncation at {cut} of {n} loaded");
            }
            cut += 1 + n / 700;
        }
    }
}

#[test]
fn cascade_with_cut_lists_is_malformed() {
    let Some(text) = read("haarcascade_frontalface_default.xml") else {
        return;
    };
    // Remove the features list entirely: nodes then refer to missing features.
    let start = text.find("<features>").expect("features");
    let end = text.find("</features>").expect("features end") + "</features>".len();
    let cut = format!("{}<features></features>{}", &text[..start], &text[end..]);
    assert!(matches!(
        Cascade::from_xml(&cut),
        Err(CascadeError::Malformed(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Replacing a slice of a real cascade with arbitrary text never panics.
    #[test]
    fn corrupted_cascades_never_panic(start in 0.0f64..1.0, len in 0usize..64, junk in "[-0-9a-z <>/._]{0,16}") {
        if let Some(text) = read("haarcascade_frontalface_alt2.xml") {
            let mut at = (start * text.len() as f64) as usize;
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            let corrupted = format!("{}{}{}", &text[..at], junk, &text[end..]);
            let _ = Cascade::from_xml(&corrupted);
        }
    }
}
